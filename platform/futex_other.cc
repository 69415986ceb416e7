// Systems without a futex syscall use the portable parking lot.
#include <climits>

#include "platform/futex.h"

namespace netpoll::platform {

FutexWaitResult FutexWait(std::atomic<uint32_t>* word, uint32_t expected, int64_t timeout_ns) {
  return portable::FutexWait(word, expected, timeout_ns);
}

int FutexWake(std::atomic<uint32_t>* word, int count) { return portable::FutexWake(word, count); }

int FutexWakeAll(std::atomic<uint32_t>* word) { return portable::FutexWake(word, INT_MAX); }

}  // namespace netpoll::platform
