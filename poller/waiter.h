// The user-thread interface: how the poller parks and readies "waiters" without knowing what they
// are (fibers from uthread/, or plain OS threads).
//
// A Waiter is one user thread that can block. The poller needs three things from it:
//   * Park(commit, arg): suspend the caller; once it is *safely suspended* (another thread may now
//     resume it), run commit(self, arg). If commit returns false the caller resumes at once. This
//     is Go's gopark with an unlock function; the commit-or-abort step is what makes a readiness
//     event that lands between "decide to wait" and "really asleep" impossible to lose (R2).
//   * Ready(): make a parked waiter runnable again, from any thread. Called exactly once for each
//     Park whose commit returned true, never otherwise.
//   * CurrentWaiter(): the calling user thread's Waiter.
//
// Two implementations pass the same suites: OsThreadWaiter here (parks on a futex), and the fiber
// waiter of uthread/, which installs itself as the current waiter of the worker thread it runs on
// through SetCurrentFiberWaiter().
//
// Lifetime: a Waiter must stay valid from Park until its Ready() has returned. OS-thread waiters
// are allocated once per thread and recycled, never freed, so a late futex wake can touch only
// valid memory.
#ifndef NETPOLL_POLLER_WAITER_H_
#define NETPOLL_POLLER_WAITER_H_

#include <atomic>
#include <cstdint>

namespace netpoll::poller {

class TimerHeap;

// Why a waiter is parked, for debugging dumps ("IO wait read fd 7, deadline in 1.2s").
struct WaitReason {
  const char* what = "parked";  // A static string: "IO wait read", "sleep", "mutex", ...
  int64_t fd = -1;              // The descriptor waited on, or -1.
  int64_t deadline = 0;         // Monotonic ns (platform::MonotonicNanos), 0 = none, < 0 = expired.
};

class Waiter {
 public:
  // Returns true to stay parked (the waiter is now owned by whoever will call Ready), false to
  // resume at once. Runs exactly once per Park, on an unspecified thread, after the waiter is
  // safely suspended; it must not block.
  using CommitFn = bool (*)(Waiter* self, void* arg);

  // Suspends the calling user thread, which must be this waiter, then runs `commit`.
  virtual void Park(CommitFn commit, void* arg, const WaitReason& reason) = 0;

  // Makes this parked waiter runnable. Thread-safe; see the class comment for when it is legal.
  virtual void Ready() = 0;

  // True for fibers, false for OS threads. Lets a scheduler take the fast path for its own kind.
  virtual bool IsFiber() const = 0;

  // Link for ReadyList; owned by whoever holds the waiter in a list (one list at a time).
  Waiter* ready_next = nullptr;
  // Link for wait queues (WaiterSemaphore and the like), owned by the queue while queued.
  Waiter* wait_next = nullptr;

 protected:
  ~Waiter() = default;
};

// A batch of waiters to make runnable, collected while locks are held and readied after they are
// released. Intrusive (through Waiter::ready_next), so collecting costs no allocation.
//
// `waiter_delta` is how the count of parked I/O waiters changes once these are readied; it is
// applied only after they are runnable, so the count never shows "nobody waits" while a readied
// waiter is not yet visible to its scheduler (Go #61454, race R32).
class ReadyList {
 public:
  ReadyList() = default;
  ReadyList(const ReadyList&) = delete;
  ReadyList& operator=(const ReadyList&) = delete;

  void Push(Waiter* w) {
    w->ready_next = nullptr;
    if (tail_ == nullptr) {
      head_ = w;
    } else {
      tail_->ready_next = w;
    }
    tail_ = w;
    ++size_;
  }
  // Removes and returns the first waiter, or nullptr.
  Waiter* Pop() {
    Waiter* w = head_;
    if (w == nullptr) return nullptr;
    head_ = w->ready_next;
    if (head_ == nullptr) tail_ = nullptr;
    w->ready_next = nullptr;
    --size_;
    return w;
  }
  bool empty() const { return head_ == nullptr; }
  int size() const { return size_; }

  int waiter_delta = 0;

 private:
  Waiter* head_ = nullptr;
  Waiter* tail_ = nullptr;
  int size_ = 0;
};

// The calling user thread's waiter: the running fiber's, or else this OS thread's own.
Waiter* CurrentWaiter();

// Shorthands for CurrentWaiter()->Park(...) and w->Ready().
void Park(Waiter::CommitFn commit, void* arg, const WaitReason& reason);
inline void Ready(Waiter* w) { w->Ready(); }

// For uthread/: the fiber waiter running on this OS thread (nullptr when none is). Worker threads
// set it on every switch into a fiber and clear it on the way out.
void SetCurrentFiberWaiter(Waiter* fiber);

// For uthread/: the timer heap that deadlines and sleeps armed on this OS thread go to (nullptr =
// the poller's shared heap, driven by whoever polls). Worker threads set their own heap.
void SetCurrentTimerHeap(TimerHeap* heap);
TimerHeap* CurrentTimerHeap();

// The OS-thread implementation of Waiter: parks the thread on a futex.
class OsThreadWaiter final : public Waiter {
 public:
  // This thread's waiter, created on first use and recycled when the thread exits.
  static OsThreadWaiter* ForCurrentThread();

  void Park(CommitFn commit, void* arg, const WaitReason& reason) override;
  void Ready() override;
  bool IsFiber() const override { return false; }

  // What this thread is parked for (valid while parked), for debugging.
  WaitReason reason() const { return reason_; }

 private:
  friend struct OsThreadWaiterPool;
  OsThreadWaiter() = default;

  // 0 while parked and not yet readied, 1 once readied. The futex word.
  std::atomic<uint32_t> readied_{0};
  WaitReason reason_;
  OsThreadWaiter* free_next_ = nullptr;
};

}  // namespace netpoll::poller

#endif  // NETPOLL_POLLER_WAITER_H_
