// Poller: the process-wide network poller (one per process, like Go's).
//
// It owns the backend (epoll, io_uring, kqueue or IOCP, chosen at compile time), the slab of
// PollDescs, the shared timer heap, and the protocol that lets several threads drive it:
//
//   * Any thread may call Poll(): it waits in the backend for at most the given time and for no
//     longer than the earliest timer of any heap, runs the timers that are due, and returns the
//     waiters to make runnable. At most one thread at a time *blocks* in the backend (the "poll
//     owner", Go's lastpoll == 0 token); it publishes when it plans to wake (Go's pollUntil), so
//     a thread that arms an earlier timer breaks the poll with Wakeup() (R30). Non-blocking polls
//     may run beside a blocked owner.
//   * Plain OS threads need nobody else: when one parks on I/O or arms a timer, EnsurePolling()
//     starts the background poll thread (once, lazily), which loops in Poll().
//   * The fiber runtime drives Poll() from its workers and registers a hook so the poller can ask
//     it for a worker when a timer is armed and nobody is polling.
//
// Lifetime: created on first use by Get(), never destroyed (late timers and kernel events may
// reach a PollDesc at any time, so its memory must outlive everything).
// Thread-safety: every method is thread-safe.
#ifndef NETPOLL_POLLER_POLLER_H_
#define NETPOLL_POLLER_POLLER_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "absl/status/statusor.h"
#include "backends/native.h"
#include "platform/futex_mutex.h"
#include "platform/socket.h"
#include "poller/poll_desc.h"
#include "poller/timer.h"
#include "poller/waiter.h"

namespace netpoll::poller {

// The type-stable store of PollDescs: chunks that are allocated on demand and never freed.
class PollDescSlab {
 public:
  static constexpr uint32_t kChunkBits = 10;
  static constexpr uint32_t kChunkSize = 1u << kChunkBits;  // PollDescs per chunk
  static constexpr uint32_t kMaxChunks = 1u << 16;          // 67M descriptors in all

  PollDescSlab() = default;
  PollDescSlab(const PollDescSlab&) = delete;
  PollDescSlab& operator=(const PollDescSlab&) = delete;

  // A free PollDesc (allocating a chunk when none is free), or nullptr when all are in use.
  PollDesc* Allocate();
  // Returns `pd` to the free list; bumps its generation (under its lock) so stale tokens miss.
  void Free(PollDesc* pd);
  // The PollDesc of slot `index`, or nullptr if no such slot was ever allocated. Lock-free.
  PollDesc* Lookup(uint32_t index) const;

  size_t allocated_slots() const;

 private:
  platform::FutexMutex mutex_;
  PollDesc* free_list_ = nullptr;
  uint32_t chunks_used_ = 0;
  // Published with release once a chunk is fully constructed; read with acquire by Lookup.
  std::atomic<PollDesc*> chunks_[kMaxChunks] = {};
  std::atomic<uint32_t> slots_{0};
};

// Counters for tests, dumps and benchmarks. Relaxed: statistics only.
struct PollerStats {
  uint64_t polls = 0;            // Poll() calls that reached the backend
  uint64_t blocking_polls = 0;   // of which were allowed to block
  uint64_t events = 0;           // events delivered to a current PollDesc
  uint64_t stale_events = 0;     // events ignored because their generation was stale (R24)
  uint64_t timers_fired = 0;
  uint64_t wakeups = 0;          // Wakeup() calls (before coalescing)
};

class Poller {
 public:
  // The process-wide poller, initialised on first use. A backend that fails to initialise (no
  // epoll fd can be created) is fatal, as in Go: nothing network-related could work.
  static Poller& Get();

  // Registers `fd` (non-blocking) with the backend. Errors: the backend's (for example EPERM
  // for a regular file on epoll), or ResourceExhausted when every PollDesc slot is in use.
  absl::StatusOr<PollDesc*> Open(platform::SocketHandle fd);

  // Unregisters pd's descriptor from the backend (the descriptor must still be open: this runs
  // before close(2), R11) and frees the slot. Requires a prior pd->Evict() and no waiter left.
  // Returns the backend's error, which callers usually ignore.
  absl::Status Close(PollDesc* pd);

  // Waits for I/O for at most `timeout_ns` (< 0 forever, 0 not at all) and no longer than the
  // earliest timer, runs due timers, and puts the waiters to make runnable into `ready`. Only one
  // caller at a time blocks; a caller that cannot become the blocking owner polls without
  // blocking. May return early with nothing (a wake-up, EINTR).
  void Poll(int64_t timeout_ns, ReadyList* ready);

  // Runs every due timer of every heap; returns how many ran.
  int RunDueTimers(int64_t now, ReadyList* ready);

  // Readies every waiter in `ready` in order, then applies its waiter_delta (R32). Empties it.
  void ReadyAll(ReadyList& ready);

  // Breaks a blocked Poll. Coalesced: concurrent calls make one kernel write (R28).
  void Wakeup();

  // Called when arming made `when` the earliest time of some timer heap. Breaks the blocked poll if
  // it would sleep past `when`; if nobody is blocked, makes sure somebody will poll.
  void NotifyTimerArmed(int64_t when);

  // Starts the background poll thread if it is not running. Called when an OS thread parks on I/O.
  void EnsurePolling();

  // The heap for timers armed outside the fiber runtime.
  TimerHeap& shared_timers() { return shared_timers_; }
  // Heaps of the fiber runtime's workers; all registered heaps are scanned for the poll timeout and
  // run by whoever polls. A heap must be unregistered before it is destroyed.
  void RegisterTimerHeap(TimerHeap* heap);
  void UnregisterTimerHeap(TimerHeap* heap);
  // The earliest `when` across all heaps, or kNever.
  int64_t EarliestTimer() const;

  // For the fiber runtime: called (from any thread) when a timer is armed while no thread blocks
  // in the backend, so that the runtime can make sure a worker will poll. It returns false when no
  // runtime can take the job, and the background poll thread is started instead.
  void SetNoPollerHook(bool (*hook)());

  // The number of waiters parked on I/O right now (Go's netpollWaiters).
  int64_t waiters() const { return waiters_.load(std::memory_order_seq_cst); }
  void AdjustWaiters(int delta) {
    // seq_cst: readers use it to decide whether to poll at all; see ReadyList::waiter_delta.
    waiters_.fetch_add(delta, std::memory_order_seq_cst);
  }

  // Whether a thread is blocked in the backend right now, and until when it plans to sleep.
  bool poll_owned() const { return poll_owner_.load(std::memory_order_seq_cst) != 0; }
  int64_t poll_until() const { return poll_until_.load(std::memory_order_seq_cst); }

  // Test support: delivers a readiness event as if the backend had reported it (R26).
  void InjectEvent(uint64_t token, uint32_t modes, bool error_only, ReadyList* ready);
  bool IsPollDescriptor(platform::SocketHandle fd) const { return backend_.IsPollDescriptor(fd); }
  const char* backend_name() const { return backends::NativeBackend::kName; }
  backends::NativeBackend& backend() { return backend_; }
  PollerStats stats() const;
  PollDescSlab& slab() { return slab_; }

 private:
  Poller();
  void DispatchEvent(const backends::BackendEvent& event, ReadyList* ready);
  void BackgroundLoop();

  backends::NativeBackend backend_;
  PollDescSlab slab_;
  TimerHeap shared_timers_;

  // Registered worker heaps. The vector is replaced, never mutated in place, so Poll can scan it
  // without a lock (heaps_ is the current snapshot; old snapshots are kept until exit because a
  // poller may still be reading one; registration happens a handful of times per runtime start).
  std::mutex heaps_mutex_;
  std::atomic<const std::vector<TimerHeap*>*> heaps_{nullptr};
  // Every snapshot ever published, kept (reachable) because a poller may still be reading one.
  std::vector<std::unique_ptr<const std::vector<TimerHeap*>>> snapshots_;  // Guarded by heaps_mutex_.

  // The poll-owner token (1 while a thread blocks in the backend) and that thread's planned wake
  // time (kNever = no timer; 0 = not published yet). See Poll() for the ordering argument.
  std::atomic<uint32_t> poll_owner_{0};
  std::atomic<int64_t> poll_until_{0};
  std::atomic<int64_t> waiters_{0};
  std::atomic<bool (*)()> no_poller_hook_{nullptr};
  std::once_flag background_started_;

  std::atomic<uint64_t> polls_{0}, blocking_polls_{0}, events_{0}, stale_events_{0},
      timers_fired_{0}, wakeups_{0};
};

}  // namespace netpoll::poller

#endif  // NETPOLL_POLLER_POLLER_H_
