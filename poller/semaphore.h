// WaiterSemaphore: a counting semaphore whose waiters are user threads (fibers or OS threads).
//
// Acquire() takes a unit or parks the caller through the user-thread interface until Release()
// hands it one; Release() gives a unit to the longest-waiting caller (FIFO) or banks it. A fiber
// blocked here costs no OS thread. Used by netfd's fd mutex for its read/write lock waiters and
// for Close waiting on the last reference (Go's runtime_Semacquire/Semrelease).
//
// Thread-safety: all methods are thread-safe. Lifetime: destroy only with no waiter parked.
#ifndef NETPOLL_POLLER_SEMAPHORE_H_
#define NETPOLL_POLLER_SEMAPHORE_H_

#include <cstdint>

#include "platform/futex_mutex.h"
#include "poller/waiter.h"

namespace netpoll::poller {

class WaiterSemaphore {
 public:
  explicit WaiterSemaphore(uint32_t initial = 0) : count_(initial) {}
  WaiterSemaphore(const WaiterSemaphore&) = delete;
  WaiterSemaphore& operator=(const WaiterSemaphore&) = delete;

  // Takes one unit, parking the calling user thread until one is available.
  void Acquire(const char* what = "semaphore");
  // Takes one unit if one is available now.
  bool TryAcquire();
  // Adds one unit: readies the first parked waiter, if any, which then owns the unit.
  void Release();

 private:
  static bool CommitQueued(Waiter* self, void* semaphore);

  platform::FutexMutex mutex_;
  uint32_t count_;           // Guarded by mutex_.
  Waiter* head_ = nullptr;   // FIFO of parked waiters, guarded by mutex_.
  Waiter* tail_ = nullptr;
};

}  // namespace netpoll::poller

#endif  // NETPOLL_POLLER_SEMAPHORE_H_
