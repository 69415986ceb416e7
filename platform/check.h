// Fatal invariant checks: a broken invariant of the state machine stops the process with a clear
// message instead of corrupting memory or hanging. These are not for errors a caller can cause
// through the public API; those return absl::Status.
#ifndef NETPOLL_PLATFORM_CHECK_H_
#define NETPOLL_PLATFORM_CHECK_H_

namespace netpoll::platform {

// Prints "netpoll: fatal error: <message> (<file>:<line>)" to stderr and aborts.
[[noreturn]] void FatalError(const char* message, const char* file, int line);

}  // namespace netpoll::platform

#define NETPOLL_FATAL(message) ::netpoll::platform::FatalError((message), __FILE__, __LINE__)

// Aborts with `message` when `condition` is false. Always on, also in optimised builds.
#define NETPOLL_CHECK(condition, message)   \
  do {                                      \
    if (__builtin_expect(!(condition), 0)) { \
      NETPOLL_FATAL(message);               \
    }                                       \
  } while (0)

#endif  // NETPOLL_PLATFORM_CHECK_H_
