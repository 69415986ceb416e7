// PollDesc: the per-descriptor state machine that parks a user thread on EAGAIN and wakes it
// exactly once, for readiness, a deadline or a close, with no lost and no stale wake-ups.
//
// This is Go's runtime pollDesc (runtime/netpoll.go), re-expressed for C++. The operations, in the
// order a descriptor meets them:
//   Poller::Open(fd)         registers fd with the backend and hands out a PollDesc
//   Prepare(mode)            before each syscall: report closing/timeout, else forget any stale
//                            readiness of that direction (Go pollReset)
//   Wait(mode)               after EAGAIN: park until ready, timed out, or closing (pollWait)
//   SetDeadline(d, mode)     change the read and/or write deadline, waking waiters if it passed
//   Evict()                  first half of Close: mark closing and wake every waiter (pollUnblock)
//   Poller::Close(pd)        unregister from the backend and free the slot (pollClose)
//
// ## The per-direction semaphore (rg for reads, wg for writes)
// One atomic word per direction, with at most one waiter (the fd mutex of netfd guarantees a
// single reader and a single writer):
//
//   state     meaning
//   kNil      nothing pending
//   kReady    an I/O notification arrived and nobody consumed it yet
//   kWait     a waiter is committing to park
//   Waiter*   that waiter is parked
//
//   who                   transition                      effect
//   T1  waiter            kReady  -> kNil                 consume the notification, no park
//   T2  waiter            kNil    -> kWait                begin to park
//   T3  park commit       kWait   -> Waiter*              parked; waiter count += 1
//   T4  park commit       (state is no longer kWait)      abort: resume at once
//   T5  waiter, woken     any     -> kNil (exchange)      ready iff it was kReady; a Waiter* here
//                                                         is fatal ("corrupted state")
//   T6  I/O event         kNil    -> kReady               remembered for later
//   T7  I/O event         kWait   -> kReady               the commit's CAS fails (T4), the waiter
//                                                         sees kReady at T5
//   T8  I/O event         Waiter* -> kReady               ready the waiter; count -= 1
//   T9  I/O event         kReady  -> kReady               no-op (notifications do not count)
//   T10 timeout/close     kNil    -> kNil                 no-op; a later waiter sees the error
//   T11 timeout/close     kWait   -> kNil                 the commit fails, T5 says "not ready",
//                                                         the waiter re-checks errors
//   T12 timeout/close     Waiter* -> kNil                 ready the waiter; count -= 1
//   T13 timeout/close     kReady  -> kReady               a pending I/O notification beats a
//                                                         timeout or close not yet observed
//   T14 Prepare           any     -> kNil (store)         only legal because no waiter exists
//   A second waiter finding kWait or a Waiter* is fatal ("double wait").
//
// ## The summary word
// closing | event error | read expired | write expired | generation. Written only under the
// descriptor lock and only *before* the writer wakes anybody; waiters publish kWait *then* read
// the summary. Both sides use seq_cst on these two words, so in every interleaving either the
// waiter sees the new state and does not park, or the writer sees kWait/Waiter* and wakes it
// (the Dekker handshake of R4/R5; Go #45211 was this going wrong on ARM64).
//
// ## Deadlines
// 0 = none, > 0 absolute monotonic ns, < 0 expired. `rseq`/`wseq` change on every deadline change
// and on close, and a timer callback whose seq is stale does nothing (R15, R21). When the read and
// write deadlines are equal and positive one timer serves both (the "combo", R20). A deadline in
// the past wakes parked waiters synchronously inside SetDeadline (R17).
//
// ## Lifetime and memory
// PollDescs live in a type-stable slab and are never freed: the kernel, timers and late poller
// threads may touch one after Poller::Close, and the generation checks make those touches
// harmless. The backend knows a descriptor by a 64-bit token {slot index, generation}; an event
// whose generation is not the slot's current one is ignored (R24), and the event-error bit is set
// only if the generation still matches inside the CAS that sets it (R25).
//
// Thread-safety: every method may be called from any thread. Prepare/Wait for one direction must
// not run concurrently with each other (netfd's read/write locks ensure it); everything else may.
#ifndef NETPOLL_POLLER_POLL_DESC_H_
#define NETPOLL_POLLER_POLL_DESC_H_

#include <atomic>
#include <cstdint>

#include "backends/contract.h"
#include "platform/futex_mutex.h"
#include "platform/socket.h"
#include "poller/timer.h"
#include "poller/waiter.h"

namespace netpoll::poller {

// Directions, as bits; kReadWrite is both (SetDeadline).
enum Mode : uint32_t {
  kRead = backends::kEventRead,
  kWrite = backends::kEventWrite,
  kReadWrite = backends::kEventRead | backends::kEventWrite,
};

// Why an operation cannot proceed (Go's pollErr* codes).
enum class PollError {
  kNone = 0,
  kClosing = 1,      // Evict() ran: the descriptor is being closed
  kTimeout = 2,      // the direction's deadline has passed
  kNotPollable = 3,  // the kernel reported an error on the descriptor (readers only)
};

const char* PollErrorName(PollError error);

class Poller;

class alignas(64) PollDesc {
 public:
  PollDesc(const PollDesc&) = delete;
  PollDesc& operator=(const PollDesc&) = delete;

  // Before a syscall in direction `mode` (kRead or kWrite): the current error if there is one,
  // else kNone after discarding any readiness notification left from earlier (T14, R3).
  PollError Prepare(Mode mode);

  // After the syscall said EAGAIN: parks the caller until the direction is ready (kNone), its
  // deadline passes (kTimeout) or the descriptor is evicted (kClosing). Spurious returns of kNone
  // are possible (a stale event, R26); callers retry the syscall, which is always correct.
  PollError Wait(Mode mode);

  // Windows completion ports only: after cancelling an overlapped operation, waits for its
  // completion packet however it ends, ignoring closing and deadlines.
  void WaitCanceled(Mode mode);

  // Sets the deadline of `mode` (kRead, kWrite or kReadWrite): 0 none, > 0 absolute monotonic ns,
  // < 0 already expired. Ignored once Evict() ran (R13).
  void SetDeadline(int64_t deadline, Mode mode);

  // Marks the descriptor closing and wakes every waiter (they return kClosing). Must be called
  // exactly once, before Poller::Close.
  void Evict();

  // The error an operation in `mode` would get now, from one lock-free load (netpollcheckerr).
  PollError CheckError(Mode mode) const;

  platform::SocketHandle fd() const { return fd_; }
  // The backend token of the current registration: {generation << 32 | slot index}.
  uint64_t token() const;

  // For the poller: an event for `token`'s generation. Stale tokens are ignored (returns false).
  bool DeliverEvent(uint32_t generation, uint32_t modes, bool error_only, ReadyList* ready);

 private:
  friend class Poller;
  friend class PollDescSlab;
  friend class PollDescTestPeer;

  PollDesc() = default;

  static constexpr uintptr_t kNil = 0;
  static constexpr uintptr_t kReady = 1;
  static constexpr uintptr_t kWait = 2;

  // Summary word layout: flags in the low bits, the full 32-bit generation in the high half.
  static constexpr uint64_t kInfoClosing = 1;
  static constexpr uint64_t kInfoEventError = 2;
  static constexpr uint64_t kInfoReadExpired = 4;
  static constexpr uint64_t kInfoWriteExpired = 8;

  std::atomic<uintptr_t>& Semaphore(Mode mode) { return mode == kRead ? rg_ : wg_; }

  // Go's netpollblock: true if I/O is ready, false if woken by a timeout, a close or spuriously.
  bool Block(Mode mode, bool wait_io);
  // Go's netpollunblock: moves the semaphore on, and returns a waiter to ready, or nullptr.
  Waiter* Unblock(Mode mode, bool io_ready, int* waiter_delta);
  static bool CommitPark(Waiter* self, void* semaphore);

  // Requires lock_. Recomputes the summary word from closing_/rd_/wd_/generation, keeping the
  // event-error bit, and publishes it.
  void PublishInfoLocked();
  // Sets or clears the event-error bit if `generation` is 0 or still current (R25).
  void SetEventError(bool error, uint32_t generation);

  // Deadline timer callbacks (Go's netpolldeadlineimpl and its three wrappers).
  static void FireRead(void* pd, uintptr_t seq, ReadyList* ready);
  static void FireWrite(void* pd, uintptr_t seq, ReadyList* ready);
  static void FireBoth(void* pd, uintptr_t seq, ReadyList* ready);
  void DeadlineExpired(uintptr_t seq, bool read, bool write, ReadyList* ready);

  // Lock-free fields.
  std::atomic<uintptr_t> rg_{kNil};
  std::atomic<uintptr_t> wg_{kNil};
  std::atomic<uint64_t> info_{0};
  // The generation of the current registration (Go's fdseq). Bumped, under lock_, when the slot is
  // freed; never 0 for a slot in use.
  std::atomic<uint32_t> generation_{1};
  uint32_t index_ = 0;  // Slot index in the slab; constant.
  // Copies of rd_/wd_ for debugging dumps (WaitReason::deadline), written under lock_ and read
  // without it. relaxed: informational only; nothing is decided on them.
  std::atomic<int64_t> read_deadline_for_dumps_{0};
  std::atomic<int64_t> write_deadline_for_dumps_{0};

  // Everything below is guarded by lock_ (fd_ is also constant while the descriptor is open).
  platform::FutexMutex lock_;
  bool closing_ = false;
  bool read_timer_armed_ = false;   // Go's rrun
  bool write_timer_armed_ = false;  // Go's wrun
  platform::SocketHandle fd_ = platform::kInvalidSocket;
  uintptr_t rseq_ = 0;
  uintptr_t wseq_ = 0;
  int64_t rd_ = 0;
  int64_t wd_ = 0;
  Timer read_timer_;   // Serves both directions in combo mode.
  Timer write_timer_;
  PollDesc* free_next_ = nullptr;  // Guarded by the slab's lock.
};

// Converts a duration from now into a deadline for SetDeadline, as Go does: a duration <= 0 is
// "expired" (0 becomes -1, so "right now" is never mistaken for "no deadline"; negative values
// are kept), and now + d that overflows is clamped to kNever, which never fires (R23). "No
// deadline" (0) never comes from a duration; callers pass 0 themselves.
int64_t DeadlineAfter(int64_t duration_ns, int64_t now_ns);

}  // namespace netpoll::poller

#endif  // NETPOLL_POLLER_POLL_DESC_H_
