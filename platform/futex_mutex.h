// FutexMutex: a 4-byte mutex for the per-descriptor locks of the poller.
//
// std::mutex is 40 bytes and absl::Mutex is invisible to ThreadSanitizer in the system build (see
// BUILDING.md); a PollDesc needs a lock that is small, fast when uncontended (one CAS to lock, one
// exchange to unlock) and that sleeps instead of spinning when contended. This is the classic
// three-state futex mutex: 0 unlocked, 1 locked, 2 locked with possible sleepers.
//
// It is not recursive and not fair. It satisfies Lockable, so std::lock_guard works.
//
// Memory ordering: Lock() is an acquire and Unlock() a release of the protected data; the state
// word is accessed with acquire/release (not seq_cst) because it orders only the data it guards,
// exactly like any mutex, and nothing reasons about the order of two different locks.
#ifndef NETPOLL_PLATFORM_FUTEX_MUTEX_H_
#define NETPOLL_PLATFORM_FUTEX_MUTEX_H_

#include <atomic>
#include <cstdint>

#include "platform/futex.h"

namespace netpoll::platform {

class FutexMutex {
 public:
  FutexMutex() = default;
  FutexMutex(const FutexMutex&) = delete;
  FutexMutex& operator=(const FutexMutex&) = delete;

  void lock() {
    uint32_t expected = 0;
    if (state_.compare_exchange_strong(expected, 1, std::memory_order_acquire,
                                       std::memory_order_relaxed)) {
      return;
    }
    LockSlow(expected);
  }

  bool try_lock() {
    uint32_t expected = 0;
    return state_.compare_exchange_strong(expected, 1, std::memory_order_acquire,
                                          std::memory_order_relaxed);
  }

  void unlock() {
    if (state_.exchange(0, std::memory_order_release) == 2) FutexWake(&state_, 1);
  }

 private:
  void LockSlow(uint32_t seen) {
    // Spin briefly: the critical sections this lock guards are a few dozen instructions.
    for (int i = 0; i < 100 && seen == 1; ++i) {
#if defined(__x86_64__)
      __builtin_ia32_pause();
#endif
      seen = state_.load(std::memory_order_relaxed);
      if (seen == 0) {
        uint32_t expected = 0;
        if (state_.compare_exchange_strong(expected, 1, std::memory_order_acquire,
                                           std::memory_order_relaxed)) {
          return;
        }
        seen = expected;
      }
    }
    // Mark "locked, maybe sleepers" and sleep until we take it in that state.
    while (state_.exchange(2, std::memory_order_acquire) != 0) FutexWait(&state_, 2);
  }

  std::atomic<uint32_t> state_{0};
};

}  // namespace netpoll::platform

#endif  // NETPOLL_PLATFORM_FUTEX_MUTEX_H_
