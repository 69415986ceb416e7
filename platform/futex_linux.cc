#include <errno.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>

#include "platform/futex.h"

namespace netpoll::platform {

static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t), "futex words must be plain 32-bit");

FutexWaitResult FutexWait(std::atomic<uint32_t>* word, uint32_t expected, int64_t timeout_ns) {
  struct timespec timeout;
  struct timespec* timeout_ptr = nullptr;
  if (timeout_ns >= 0) {
    timeout.tv_sec = static_cast<time_t>(timeout_ns / 1'000'000'000);
    timeout.tv_nsec = static_cast<long>(timeout_ns % 1'000'000'000);
    timeout_ptr = &timeout;
  }
  // FUTEX_WAIT's timeout is relative (CLOCK_MONOTONIC).
  long rc = syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT_PRIVATE, expected,
                    timeout_ptr, nullptr, 0);
  if (rc == 0) return FutexWaitResult::kWoken;
  switch (errno) {
    case EAGAIN:
      return FutexWaitResult::kValueMismatch;
    case ETIMEDOUT:
      return FutexWaitResult::kTimedOut;
    case EINTR:
      return FutexWaitResult::kWoken;  // Spurious, which every caller tolerates.
    default:
      // EFAULT/EINVAL/ENOSYS mean a broken caller or kernel; continuing would spin or hang.
      std::abort();
  }
}

int FutexWake(std::atomic<uint32_t>* word, int count) {
  long rc = syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE_PRIVATE, count, nullptr,
                    nullptr, 0);
  // A waker may wake a word whose owner has already returned and freed it (the unlock of a lock
  // that the woken thread then destroys); the kernel only uses the address as a key, and EFAULT
  // for unmapped memory means nobody waited there. Both are harmless, as for glibc's mutexes.
  return rc < 0 ? 0 : static_cast<int>(rc);
}

int FutexWakeAll(std::atomic<uint32_t>* word) { return FutexWake(word, INT_MAX); }

}  // namespace netpoll::platform
