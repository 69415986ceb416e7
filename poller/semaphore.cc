#include "poller/semaphore.h"

#include <mutex>

namespace netpoll::poller {

bool WaiterSemaphore::TryAcquire() {
  std::lock_guard<platform::FutexMutex> lock(mutex_);
  if (count_ == 0) return false;
  --count_;
  return true;
}

void WaiterSemaphore::Acquire(const char* what) {
  mutex_.lock();
  if (count_ > 0) {
    --count_;
    mutex_.unlock();
    return;
  }
  // Still holding the lock: CommitQueued enqueues us and unlocks once we are safely suspended, so
  // a Release cannot find the queue empty and bank the unit while we go to sleep.
  WaitReason reason;
  reason.what = what;
  Park(&WaiterSemaphore::CommitQueued, this, reason);
  // Woken by Release, which handed us its unit directly.
}

bool WaiterSemaphore::CommitQueued(Waiter* self, void* semaphore) {
  auto* sem = static_cast<WaiterSemaphore*>(semaphore);
  self->wait_next = nullptr;
  if (sem->tail_ == nullptr) {
    sem->head_ = self;
  } else {
    sem->tail_->wait_next = self;
  }
  sem->tail_ = self;
  sem->mutex_.unlock();
  return true;
}

void WaiterSemaphore::Release() {
  Waiter* w;
  {
    std::lock_guard<platform::FutexMutex> lock(mutex_);
    w = head_;
    if (w == nullptr) {
      ++count_;
      return;
    }
    head_ = w->wait_next;
    if (head_ == nullptr) tail_ = nullptr;
    w->wait_next = nullptr;
  }
  w->Ready();
}

}  // namespace netpoll::poller
