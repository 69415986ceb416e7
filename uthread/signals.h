// Signals for fiber programs, Go-style.
//
//   netpoll::Channel<int> signals(1);
//   netpoll::NotifySignals(signals, {SIGINT, SIGTERM});
//   signals.Receive();        // parks the fiber until Ctrl-C
//
// Thread-safety: callable from any thread or fiber.
#ifndef NETPOLL_UTHREAD_SIGNALS_H_
#define NETPOLL_UTHREAD_SIGNALS_H_

#include <initializer_list>

#include "absl/status/status.h"
#include "uthread/channel.h"

namespace netpoll {

// Go's signal.Notify: from now on every delivery of one of `signals` sends its number to `channel`
// without blocking; if the channel is full the signal is dropped, as in Go (give it a buffer).
// The signals' default actions no longer happen. `channel` must stay alive for as long as the
// signals can arrive (make it outlive the program's main fiber, e.g. a local of Run's main).
// Errors: those of platform::OnSignal (an uncatchable signal, a setup failure).
absl::Status NotifySignals(Channel<int>& channel, std::initializer_list<int> signals);

// Opt-in debugging: on `signal_number` (e.g. SIGUSR1) print DumpAllFibers() to stderr.
absl::Status EnableFiberDumpOnSignal(int signal_number);

}  // namespace netpoll

#endif  // NETPOLL_UTHREAD_SIGNALS_H_
