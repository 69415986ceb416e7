#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "platform/error.h"
#include "platform/signal.h"

namespace netpoll::platform {
namespace {

// The write end of the self-pipe, read by the handler. relaxed: set once before any handler that
// uses it is installed (sigaction orders it).
std::atomic<int> pipe_write_fd{-1};

void Handler(int signal_number) {
  int saved_errno = errno;  // A handler must not change errno under the interrupted code.
  unsigned char byte = static_cast<unsigned char>(signal_number);
  // A full pipe drops the signal, like a pending signal that is raised again.
  (void)!write(pipe_write_fd.load(std::memory_order_relaxed), &byte, 1);
  errno = saved_errno;
}

struct Registry {
  std::mutex mutex;
  int read_fd = -1;
  std::map<int, std::vector<absl::AnyInvocable<void(int)>>> callbacks;

  void Loop() {
    for (;;) {
      unsigned char byte;
      ssize_t n = read(read_fd, &byte, 1);
      if (n < 0 && errno == EINTR) continue;
      if (n != 1) return;
      std::lock_guard<std::mutex> lock(mutex);
      for (auto& callback : callbacks[byte]) callback(byte);
    }
  }
};

Registry& GetRegistry() {
  static Registry* registry = new Registry();  // Never destroyed: its thread runs until exit.
  return *registry;
}

}  // namespace

absl::Status OnSignal(int signal_number, absl::AnyInvocable<void(int)> callback) {
  if (signal_number <= 0 || signal_number >= 256 || signal_number == SIGKILL || signal_number == SIGSTOP) {
    return absl::InvalidArgumentError(absl::StrCat("signal ", signal_number, " cannot be caught"));
  }
  Registry& registry = GetRegistry();
  std::lock_guard<std::mutex> lock(registry.mutex);
  if (registry.read_fd < 0) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return ErrorToStatus(errno, "pipe2");
    // Non-blocking write end: the handler must never block.
    fcntl(fds[1], F_SETFL, fcntl(fds[1], F_GETFL) | O_NONBLOCK);
    registry.read_fd = fds[0];
    pipe_write_fd.store(fds[1], std::memory_order_relaxed);
    std::thread([&registry] { registry.Loop(); }).detach();
  }
  bool first_for_signal = registry.callbacks[signal_number].empty();
  registry.callbacks[signal_number].push_back(std::move(callback));
  if (first_for_signal) {
    struct sigaction action {};
    action.sa_handler = &Handler;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    if (sigaction(signal_number, &action, nullptr) != 0) {
      registry.callbacks[signal_number].pop_back();
      return ErrorToStatus(errno, absl::StrCat("sigaction(", signal_number, ")"));
    }
  }
  return absl::OkStatus();
}

}  // namespace netpoll::platform
