// The monotonic clock that every deadline and timer in netpoll is measured on.
//
// Deadlines are turned into monotonic nanoseconds when they are set, so a change of the wall
// clock never makes one fire early or late (Go does the same with nanotime()).
#ifndef NETPOLL_PLATFORM_CLOCK_H_
#define NETPOLL_PLATFORM_CLOCK_H_

#include <cstdint>

namespace netpoll::platform {

// Nanoseconds since an arbitrary fixed point (boot, on Linux). Never decreases, and is always
// positive, so 0 can mean "no deadline" and negative values "already expired". Thread-safe.
int64_t MonotonicNanos();

}  // namespace netpoll::platform

#endif  // NETPOLL_PLATFORM_CLOCK_H_
