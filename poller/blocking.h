// RunBlocking: run blocking work (a file read, getaddrinfo, a C library call) without stalling
// the other user threads of the caller's scheduler.
//
// Called from a fiber, the work runs on a small pool of helper OS threads while the fiber is
// parked, so its worker goes on running other fibers; called from a plain OS thread, it simply
// runs inline (blocking that thread is what the caller asked for).
//
// The pool starts empty, grows on demand up to kMaxBlockingThreads threads, and keeps idle
// threads for reuse. Work beyond the cap queues until a thread is free.
//
// Thread-safety: callable from any user thread. `work` must not call Park on its own (it runs on
// a helper thread that is not a user thread of the caller).
#ifndef NETPOLL_POLLER_BLOCKING_H_
#define NETPOLL_POLLER_BLOCKING_H_

#include "absl/functional/function_ref.h"

namespace netpoll::poller {

inline constexpr int kMaxBlockingThreads = 64;

// Runs `work` to completion and returns after it has; see the file comment for where it runs.
void RunBlocking(absl::FunctionRef<void()> work);

// Test support: how many helper threads exist now.
int BlockingThreadCount();

}  // namespace netpoll::poller

#endif  // NETPOLL_POLLER_BLOCKING_H_
