// Process signals delivered as ordinary callbacks on a helper thread (a self-pipe), so that
// reacting to SIGINT/SIGTERM/SIGUSR1 can do real work (close a listener, dump fibers) instead of
// being limited to the async-signal-safe functions a signal handler may call.
//
// Thread-safety: OnSignal may be called from any thread. Callbacks run one at a time, in signal
// order, on one dedicated thread, which is a plain OS thread (not a fiber): they may block.
#ifndef NETPOLL_PLATFORM_SIGNAL_H_
#define NETPOLL_PLATFORM_SIGNAL_H_

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"

namespace netpoll::platform {

// From now on, every delivery of `signal_number` runs `callback(signal_number)` on the signal
// thread. Several callbacks may watch one signal. The signal's previous disposition is replaced
// (the default action, e.g. termination on SIGINT, no longer happens).
// Errors: InvalidArgument for a signal that cannot be caught (SIGKILL, SIGSTOP, out of range);
// the OS error if the pipe, the thread or sigaction cannot be set up.
absl::Status OnSignal(int signal_number, absl::AnyInvocable<void(int)> callback);

}  // namespace netpoll::platform

#endif  // NETPOLL_PLATFORM_SIGNAL_H_
