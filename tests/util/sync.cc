#include "tests/util/sync.h"

#include <cstdio>
#include <cstdlib>

namespace netpoll::testing {

void BoundedThread::Join(std::chrono::nanoseconds timeout) {
  if (!done_.WaitFor(timeout)) {
    std::fprintf(stderr, "netpoll test: a thread did not finish within %lld ms (a hang)\n",
                 static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count()));
    std::abort();
  }
  thread_.join();
}

}  // namespace netpoll::testing
