#include "platform/check.h"

#include <cstdio>
#include <cstdlib>

namespace netpoll::platform {

void FatalError(const char* message, const char* file, int line) {
  std::fprintf(stderr, "netpoll: fatal error: %s (%s:%d)\n", message, file, line);
  std::fflush(stderr);
  std::abort();
}

}  // namespace netpoll::platform
