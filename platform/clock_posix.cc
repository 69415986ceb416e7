#include <time.h>

#include <cstdlib>

#include "platform/clock.h"

namespace netpoll::platform {

int64_t MonotonicNanos() {
  struct timespec ts;
  // CLOCK_MONOTONIC cannot fail with a valid pointer; a failure means the process is broken.
  if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) std::abort();
  // +1 keeps the result positive even on a machine whose clock starts at exactly 0.
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec + 1;
}

}  // namespace netpoll::platform
