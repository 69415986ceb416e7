#include "uthread/signals.h"

#include <cstdio>
#include <string>

#include "platform/signal.h"
#include "uthread/runtime.h"

namespace netpoll {

absl::Status NotifySignals(Channel<int>& channel, std::initializer_list<int> signals) {
  for (int signal_number : signals) {
    absl::Status status = platform::OnSignal(signal_number, [&channel](int signo) {
      channel.TrySend(int{signo}).IgnoreError();  // Full or closed: dropped, as in Go.
    });
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

absl::Status EnableFiberDumpOnSignal(int signal_number) {
  return platform::OnSignal(signal_number, [](int) {
    std::string dump = DumpAllFibers();
    std::fprintf(stderr, "netpoll: fiber dump\n%s", dump.c_str());
    std::fflush(stderr);
  });
}

}  // namespace netpoll
