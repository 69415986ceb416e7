// The Linux epoll backend (see backends/contract.h for the contract).
//
// Descriptors are registered once, EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLET, with the PollDesc token
// as user data. The wake-up channel is a non-blocking eventfd registered level-triggered (no
// EPOLLET): only a blocking Wait drains it, so a non-blocking Wait that sees it leaves it for the
// blocked poller (R29), and one flag coalesces concurrent Wakeup calls into one write (R28).
// Timeouts have nanosecond resolution through epoll_pwait2 where the kernel has it; otherwise
// they are rounded up to whole milliseconds, never down (a short deadline must not busy-loop).
#ifndef NETPOLL_BACKENDS_EPOLL_EPOLL_BACKEND_H_
#define NETPOLL_BACKENDS_EPOLL_EPOLL_BACKEND_H_

#include <atomic>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "backends/contract.h"
#include "platform/socket.h"

namespace netpoll::backends {

class EpollBackend {
 public:
  static constexpr const char* kName = "epoll";
  // Events taken per Wait call. Go takes 128; so do we (the poller loops while it gets a full batch).
  static constexpr int kMaxEvents = 128;

  EpollBackend() = default;
  EpollBackend(const EpollBackend&) = delete;
  EpollBackend& operator=(const EpollBackend&) = delete;
  // Closes the epoll fd and the eventfd. Only for tests; the process-wide poller is never destroyed.
  ~EpollBackend();

  // Errors: the failing epoll_create1/eventfd/epoll_ctl as an OS error status.
  absl::Status Init();
  // Errors: epoll_ctl(ADD) failures, e.g. EPERM for a regular file, EEXIST for a second Open.
  absl::Status Open(platform::SocketHandle fd, uint64_t token);
  // Errors: epoll_ctl(DEL) failures (ENOENT if fd was not registered, EBADF if already closed).
  absl::Status Close(platform::SocketHandle fd);
  int Wait(int64_t timeout_ns, absl::Span<BackendEvent> events);
  void Wakeup();
  bool IsPollDescriptor(platform::SocketHandle fd) const;

  // For tests and counters: eventfd writes actually made (after coalescing), and whether the
  // kernel offers epoll_pwait2.
  uint64_t wake_writes() const { return wake_writes_.load(std::memory_order_relaxed); }
  bool has_nanosecond_timeouts() const { return has_pwait2_; }

 private:
  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  bool has_pwait2_ = false;
  // 1 while a wake-up is written and not yet drained by a blocking Wait (Go's netpollWakeSig).
  std::atomic<uint32_t> wake_pending_{0};
  std::atomic<uint64_t> wake_writes_{0};
};

}  // namespace netpoll::backends

#endif  // NETPOLL_BACKENDS_EPOLL_EPOLL_BACKEND_H_
