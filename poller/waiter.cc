#include "poller/waiter.h"

#include <mutex>

#include "platform/futex.h"
#include "platform/futex_mutex.h"

namespace netpoll::poller {
namespace {

thread_local Waiter* current_fiber_waiter = nullptr;
thread_local TimerHeap* current_timer_heap = nullptr;

}  // namespace

// OS-thread waiters are never freed: a waker may still be inside FutexWake on a waiter whose
// thread has already returned from Park (and even exited), so the memory must stay valid. A
// thread's waiter goes back to this pool when the thread exits; the worst a late wake can do to
// its next owner is a spurious futex return, which Park tolerates.
struct OsThreadWaiterPool {
  platform::FutexMutex mutex;
  OsThreadWaiter* free_list = nullptr;

  static OsThreadWaiterPool& Get() {
    static OsThreadWaiterPool* pool = new OsThreadWaiterPool();  // Never destroyed, on purpose.
    return *pool;
  }

  OsThreadWaiter* Take() {
    {
      std::lock_guard<platform::FutexMutex> lock(mutex);
      if (free_list != nullptr) {
        OsThreadWaiter* w = free_list;
        free_list = w->free_next_;
        return w;
      }
    }
    return new OsThreadWaiter();
  }

  void Give(OsThreadWaiter* w) {
    std::lock_guard<platform::FutexMutex> lock(mutex);
    w->free_next_ = free_list;
    free_list = w;
  }
};

namespace {

// Returns this thread's waiter to the pool when the thread exits.
struct ThreadWaiterHolder {
  OsThreadWaiter* waiter = nullptr;
  ~ThreadWaiterHolder() {
    if (waiter != nullptr) OsThreadWaiterPool::Get().Give(waiter);
  }
};

thread_local ThreadWaiterHolder thread_waiter;

}  // namespace

OsThreadWaiter* OsThreadWaiter::ForCurrentThread() {
  if (thread_waiter.waiter == nullptr) thread_waiter.waiter = OsThreadWaiterPool::Get().Take();
  return thread_waiter.waiter;
}

void OsThreadWaiter::Park(CommitFn commit, void* arg, const WaitReason& reason) {
  reason_ = reason;
  // relaxed is enough for the reset: only this thread parks on this waiter, and the commit below
  // (a seq_cst CAS in the poller) publishes the waiter to wakers after this store.
  readied_.store(0, std::memory_order_relaxed);
  // An OS thread is "safely suspended" as soon as it commits: Ready() only sets the flag and
  // wakes the futex, and the loop below notices the flag whether it comes before or after.
  if (!commit(this, arg)) return;
  // acquire: pairs with the release in Ready(), so everything the waker did before readying us
  // (for example the data it produced) is visible after we return.
  while (readied_.load(std::memory_order_acquire) == 0) platform::FutexWait(&readied_, 0);
}

void OsThreadWaiter::Ready() {
  // release: publishes the waker's prior writes to the parked thread (see Park).
  readied_.store(1, std::memory_order_release);
  platform::FutexWake(&readied_, 1);
}

Waiter* CurrentWaiter() {
  Waiter* fiber = current_fiber_waiter;
  return fiber != nullptr ? fiber : OsThreadWaiter::ForCurrentThread();
}

void Park(Waiter::CommitFn commit, void* arg, const WaitReason& reason) {
  CurrentWaiter()->Park(commit, arg, reason);
}

void SetCurrentFiberWaiter(Waiter* fiber) { current_fiber_waiter = fiber; }

void SetCurrentTimerHeap(TimerHeap* heap) { current_timer_heap = heap; }

TimerHeap* CurrentTimerHeap() { return current_timer_heap; }

}  // namespace netpoll::poller
