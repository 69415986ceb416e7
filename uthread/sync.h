// Synchronisation for user threads: Mutex, CondVar and WaitGroup that block by parking the calling
// user thread through the user-thread interface (poller/waiter.h), never its OS thread.
//
// A fiber that waits on one of these is suspended and its worker goes on running other fibers; a
// plain OS thread that waits parks on its own futex. Both kinds may share one Mutex, CondVar or
// WaitGroup, in any mix. Nothing here knows which kind it is serving: it only calls
// poller::CurrentWaiter(), Waiter::Park() and Waiter::Ready().
//
//   netpoll::Mutex mu;
//   netpoll::CondVar cv;
//   std::deque<Job> jobs;            // guarded by mu
//
//   // consumer                                   // producer
//   std::unique_lock<netpoll::Mutex> l(mu);        {
//   while (jobs.empty()) {                           std::lock_guard<netpoll::Mutex> l(mu);
//     if (!cv.WaitFor(mu, absl::Seconds(1))) ...     jobs.push_back(job);
//   }                                              }
//   Job job = std::move(jobs.front());             cv.Signal();
//
// Internally the types use platform::FutexMutex for their short bookkeeping sections (never
// absl::Mutex, which ThreadSanitizer cannot see in the system build), so an operation may block its
// OS thread for the few instructions another thread spends in such a section, never longer.
//
// These are Go's sync.Mutex, sync.Cond and sync.WaitGroup, with C++ names and timed waits added.
#ifndef NETPOLL_UTHREAD_SYNC_H_
#define NETPOLL_UTHREAD_SYNC_H_

#include <atomic>
#include <cstdint>

#include "absl/time/time.h"
#include "platform/futex_mutex.h"
#include "uthread/wait_node.h"

namespace netpoll {

// Mutex: mutual exclusion for user threads. Satisfies Lockable (lock/unlock/try_lock), so
// std::lock_guard, std::unique_lock and std::scoped_lock work with it.
//
// Cost: lock() and unlock() without contention are one compare-and-swap each. A contended lock()
// spins briefly (the holder may be about to leave on another CPU), then parks the calling user
// thread; unlock() then wakes one parked waiter, or hands the lock to it directly (see Fairness).
//
// Fairness: barging, with a starvation hand-off like Go's sync.Mutex.
//   * Normal mode: an unlocked Mutex goes to whichever user thread takes it first, a newcomer or
//     the one waiter that unlock() woke (at most one woken waiter competes at a time). This keeps
//     the lock busy instead of idle while a woken thread is being scheduled. A woken waiter that
//     loses goes back to the *front* of the queue.
//   * Hand-off mode: when a woken waiter has been waiting for more than 1 ms and loses again, the
//     Mutex switches modes: unlock() passes ownership directly to the first waiter in FIFO order,
//     and newcomers neither spin nor barge but queue at the back. It returns to normal mode when
//     the queue empties or when the waiter it hands to has waited for less than 1 ms.
//   So waiters are served in FIFO order (a requeued one at the front), and no waiter waits much
//   longer than 1 ms plus the critical sections of the waiters ahead of it.
//
// Not recursive: locking a Mutex that the caller holds deadlocks. unlock() of a Mutex that is not
// locked is a fatal error. Any user thread may unlock a Mutex that another locked (as in Go);
// keep to lock and unlock by the same thread anyway, for the readers of your code.
//
// Lifetime: destroy only when unlocked with no user thread waiting. Destroying it right after
// unlocking it (the usual "last reference" pattern: lock, decrement, unlock, delete) is safe:
// once unlock() has made the Mutex available to others it no longer touches its memory.
//
// Memory ordering: everything written before unlock() is visible after the next lock() (or
// successful try_lock()) returns, also when ownership is handed off.
class Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;
  ~Mutex();

  // Blocks (parks the calling user thread) until the Mutex is held by the caller.
  void lock() {
    uint32_t expected = 0;
    // acquire: the critical section starts here. relaxed on failure: the slow path reloads.
    if (state_.compare_exchange_strong(expected, kLocked, std::memory_order_acquire,
                                       std::memory_order_relaxed)) {
      return;
    }
    LockSlow();
  }

  // Takes the Mutex if it is unlocked now (even if others are queued, in normal mode); never
  // parks. Returns whether it did. A fiber that retries it in a loop must Yield() between tries:
  // in hand-off mode the Mutex already belongs to a queued fiber that cannot run while the
  // spinners occupy every worker (fibers are not preempted).
  bool try_lock();

  // Releases the Mutex. Fatal if it is not locked.
  void unlock() {
    uint32_t expected = kLocked;
    // release: publishes the critical section to the next owner.
    if (state_.compare_exchange_strong(expected, 0, std::memory_order_release,
                                       std::memory_order_relaxed)) {
      return;
    }
    UnlockSlow(expected);
  }

 private:
  friend class CondVar;
  struct WaitNode;  // A parked locker, on its own stack.
  struct ParkContext;

  // state_ bits. Invariants: kHandoff implies kLocked and kQueued; kQueued is set if and only if
  // the queue is non-empty, except while its lock is held; kWoken is held by at most one waiter.
  static constexpr uint32_t kLocked = 1u << 0;   // held
  static constexpr uint32_t kQueued = 1u << 1;   // the wait queue is not empty
  static constexpr uint32_t kWoken = 1u << 2;    // a woken waiter is running: wake nobody else
  static constexpr uint32_t kHandoff = 1u << 3;  // starvation mode: unlock hands off, no barging

  void LockSlow();
  void UnlockSlow(uint32_t state);
  void WakeOne();
  void HandOff();
  static bool CommitQueued(poller::Waiter* self, void* context);

  std::atomic<uint32_t> state_{0};
  // Guards the wait queue. Lock order: this is the innermost lock of the file.
  platform::FutexMutex queue_mutex_;
  WaitNode* head_ = nullptr;  // FIFO (with requeued waiters at the front); guarded by queue_mutex_
  WaitNode* tail_ = nullptr;
};

// CondVar: a condition variable for user threads, used with netpoll::Mutex.
//
// Wait*(mu) atomically releases `mu` and waits until Signal()/SignalAll() picks this waiter or
// the deadline passes, then re-acquires `mu` before returning; the caller must hold `mu`. Waiters
// are woken in FIFO order. There are no spurious wake-ups, but the condition may have changed
// again by the time `mu` is re-acquired, so check it in a loop as with any condition variable.
//
// Timeouts vs signals: each wait has an atomic state word that Signal and the deadline timer both
// try to claim with a compare-and-swap; exactly one wins and wakes the waiter, once, and the
// other does nothing. A Signal that finds a waiter whose deadline already claimed it moves on to
// the next waiter, so a signal is never spent on a waiter that is going to report a timeout.
// See uthread/wait_node.h for the protocol.
//
// Thread-safety: all methods are thread-safe. Signal/SignalAll may be called with or without the
// Mutex held. Lifetime: destroy only when no user thread waits on it; a waiter may destroy it as
// soon as its Wait returns (Signal does not touch the CondVar after waking the last waiter).
//
// Memory ordering: only through the Mutex, as usual: what a signaller wrote under `mu` is seen by
// a waiter once it holds `mu` again.
class CondVar {
 public:
  CondVar() = default;
  CondVar(const CondVar&) = delete;
  CondVar& operator=(const CondVar&) = delete;
  ~CondVar();

  // Waits until signalled. `mu` must be held; it is held again on return.
  void Wait(Mutex& mu);

  // Waits until signalled (returns true) or until `deadline` passes (returns false).
  // absl::InfiniteFuture() waits without a deadline. A deadline that has already passed returns
  // false at once, without releasing `mu`. The deadline is measured on the monotonic clock from
  // the moment of the call, so a step of the wall clock does not move it; it never fires early.
  bool WaitUntil(Mutex& mu, absl::Time deadline);

  // WaitUntil(mu, now + timeout); absl::InfiniteDuration() waits without a deadline and a
  // timeout <= 0 returns false at once.
  bool WaitFor(Mutex& mu, absl::Duration timeout);

  // Wakes the longest-waiting user thread, if any waits.
  void Signal();
  // Wakes every user thread waiting now.
  void SignalAll();

 private:
  // `deadline` as sync_internal::MonotonicDeadline returns it (0 = none).
  bool WaitInternal(Mutex& mu, int64_t deadline);

  platform::FutexMutex queue_mutex_;
  sync_internal::WaitList waiters_;  // guarded by queue_mutex_
};

// WaitGroup: waits for a collection of tasks to finish, like Go's sync.WaitGroup.
//
// Add(n) before starting n tasks, each calls Done() when finished, and Wait() blocks until the
// counter is back to zero:
//
//   netpoll::WaitGroup wg;
//   for (Job& job : jobs) {
//     wg.Add(1);
//     Spawn([&] { job.Run(); wg.Done(); });
//   }
//   wg.Wait();
//
// Errors (fatal, as the corresponding panics are in Go; these are bugs in the caller):
//   * the counter going negative: "netpoll::WaitGroup: negative counter";
//   * Add() with a positive delta racing with the Wait() calls of a round that is finishing
//     (reuse a WaitGroup only after all Wait calls of the previous round have returned; an Add
//     that starts a round must happen before the Wait that should wait for it);
//   * the counter exceeding INT32_MAX.
//
// Thread-safety: all methods are thread-safe. Lifetime: a WaitGroup may be destroyed as soon as
// Wait() returns (the final Done() does not touch it after waking the waiters). Memory ordering:
// everything written before a Done() is visible after the Wait() it releases returns.
class WaitGroup {
 public:
  WaitGroup() = default;
  WaitGroup(const WaitGroup&) = delete;
  WaitGroup& operator=(const WaitGroup&) = delete;
  ~WaitGroup();

  // Adds `delta` (which may be negative) to the counter; when it reaches zero, every Wait()
  // blocked on it returns.
  void Add(int delta);
  // Add(-1).
  void Done() { Add(-1); }
  // Blocks until the counter is zero. Returns at once if it is zero now.
  void Wait();

 private:
  // High 32 bits: the counter (as int32). Low 32 bits: how many Wait() calls are parked (they
  // register under queue_mutex_). One word, so the final Done() learns in the same atomic step
  // whether anybody waits; if nobody does it never touches the WaitGroup again.
  std::atomic<uint64_t> state_{0};
  platform::FutexMutex queue_mutex_;
  sync_internal::WaitList waiters_;  // guarded by queue_mutex_
};

namespace sync_internal {

// Test support: how many times, process-wide, a Mutex has handed itself to a waiter in hand-off
// (starvation) mode. Relaxed: a statistic.
uint64_t MutexHandoffs();

}  // namespace sync_internal

}  // namespace netpoll

#endif  // NETPOLL_UTHREAD_SYNC_H_
