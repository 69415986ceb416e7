// The backend contract: what every poller backend (epoll, io_uring, kqueue, IOCP) provides.
//
// Exactly one backend is linked, chosen at compile time by the `//backends:native` alias; the
// poller reaches it through `backends::NativeBackend` (backends/native.h), with no virtual calls.
// Each backend is a class with this shape (in the words of Go's runtime/netpoll.go):
//
//   static constexpr const char* kName;           // "epoll", ...
//   absl::Status Init();                          // create the kernel object and the wake-up
//                                                 // channel; called once, before anything else
//   absl::Status Open(SocketHandle fd, uint64_t token);
//                                                 // register fd for read and write, edge-triggered,
//                                                 // for its whole life; events carry `token`
//   absl::Status Close(SocketHandle fd);          // unregister; runs before the fd is closed
//   int Wait(int64_t timeout_ns, absl::Span<BackendEvent> events);
//                                                 // < 0 block, 0 poll, > 0 at most that long; fills
//                                                 // events, returns how many; may return 0 early
//                                                 // (a wake-up, EINTR in a timed wait)
//   void Wakeup();                                // break a blocked Wait; coalesced; a wake-up is
//                                                 // never swallowed by a non-blocking Wait
//   bool IsPollDescriptor(SocketHandle fd) const; // the backend's own descriptors
//
// Thread-safety: Open, Close, Wait and Wakeup may be called from any thread concurrently; several
// threads may be in Wait at once (at most one of them blocking, by the poller's protocol).
#ifndef NETPOLL_BACKENDS_CONTRACT_H_
#define NETPOLL_BACKENDS_CONTRACT_H_

#include <cstdint>

namespace netpoll::backends {

// Readiness directions, as bits.
inline constexpr uint32_t kEventRead = 1;
inline constexpr uint32_t kEventWrite = 2;

// One readiness report for a registered descriptor.
struct BackendEvent {
  uint64_t token;   // as given to Open
  uint32_t modes;   // kEventRead | kEventWrite
  // The kernel reported an error and nothing else (EPOLLERR alone, EV_ERROR alone). The poller
  // turns this into "not pollable" for readers only; writers retry and get the real errno.
  bool error_only;
};

// A token no PollDesc ever has (generation 0 is never used), reserved for wake-up channels so that
// a descriptor's event can never be mistaken for a wake-up (Go #67056, #72900).
inline constexpr uint64_t kWakeToken = 0;

}  // namespace netpoll::backends

#endif  // NETPOLL_BACKENDS_CONTRACT_H_
