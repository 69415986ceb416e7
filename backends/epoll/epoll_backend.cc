#include "backends/epoll/epoll_backend.h"

#include <errno.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <climits>
#include <cstdint>

#include "platform/check.h"
#include "platform/error.h"

namespace netpoll::backends {
namespace {

#if defined(SYS_epoll_pwait2)
constexpr long kEpollPwait2 = SYS_epoll_pwait2;
#else
constexpr long kEpollPwait2 = 441;  // x86-64 and AArch64 share it (added in Linux 5.11).
#endif

int EpollPwait2(int epfd, epoll_event* events, int max, const struct timespec* timeout) {
  return static_cast<int>(syscall(kEpollPwait2, epfd, events, max, timeout, nullptr, 0));
}

// epoll_wait's timeout in ms: rounded up, so a sub-millisecond wait does not become a busy poll;
// capped where an int overflows (about 24 days; the caller just waits again).
int TimeoutMillis(int64_t timeout_ns) {
  if (timeout_ns < 0) return -1;
  if (timeout_ns == 0) return 0;
  int64_t ms = timeout_ns / 1'000'000 + (timeout_ns % 1'000'000 != 0 ? 1 : 0);
  return ms > INT_MAX ? INT_MAX : static_cast<int>(ms);
}

uint32_t ModesOf(uint32_t events) {
  uint32_t modes = 0;
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) modes |= kEventRead;
  if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) modes |= kEventWrite;
  return modes;
}

}  // namespace

EpollBackend::~EpollBackend() {
  if (wake_fd_ >= 0) close(wake_fd_);
  if (epoll_fd_ >= 0) close(epoll_fd_);
}

absl::Status EpollBackend::Init() {
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) return platform::ErrorToStatus(errno, "epoll_create1");
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) return platform::ErrorToStatus(errno, "eventfd");
  epoll_event ev{};
  ev.events = EPOLLIN;  // Level-triggered on purpose: see the header.
  ev.data.u64 = kWakeToken;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev) != 0) {
    return platform::ErrorToStatus(errno, "epoll_ctl(ADD eventfd)");
  }
  // Probe epoll_pwait2 once with a zero timeout: ENOSYS means an older kernel.
  struct timespec zero = {0, 0};
  epoll_event probe;
  has_pwait2_ = EpollPwait2(epoll_fd_, &probe, 1, &zero) >= 0 || errno != ENOSYS;
  return absl::OkStatus();
}

absl::Status EpollBackend::Open(platform::SocketHandle fd, uint64_t token) {
  NETPOLL_CHECK(token != kWakeToken, "epoll: a descriptor was given the reserved wake-up token");
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  ev.data.u64 = token;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
    return platform::ErrorToStatus(errno, "epoll_ctl(ADD)");
  }
  return absl::OkStatus();
}

absl::Status EpollBackend::Close(platform::SocketHandle fd) {
  epoll_event unused{};  // Kernels before 2.6.9 required a non-null pointer.
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, &unused) != 0) {
    return platform::ErrorToStatus(errno, "epoll_ctl(DEL)");
  }
  return absl::OkStatus();
}

int EpollBackend::Wait(int64_t timeout_ns, absl::Span<BackendEvent> out) {
  epoll_event events[kMaxEvents];
  int max = out.size() < static_cast<size_t>(kMaxEvents) ? static_cast<int>(out.size()) : kMaxEvents;
  int n;
  for (;;) {
    if (has_pwait2_ && timeout_ns > 0) {
      struct timespec ts;
      ts.tv_sec = static_cast<time_t>(timeout_ns / 1'000'000'000);
      ts.tv_nsec = static_cast<long>(timeout_ns % 1'000'000'000);
      n = EpollPwait2(epoll_fd_, events, max, &ts);
    } else {
      n = epoll_wait(epoll_fd_, events, max, TimeoutMillis(timeout_ns));
    }
    if (n >= 0) break;
    int error = errno;
    NETPOLL_CHECK(error == EINTR, "epoll_wait failed with an error other than EINTR");
    // A timed wait returns early and empty so the caller recomputes its timeout from the clock
    // (R33); an infinite or zero wait just retries.
    if (timeout_ns > 0) return 0;
  }
  int count = 0;
  for (int i = 0; i < n; ++i) {
    const epoll_event& ev = events[i];
    if (ev.events == 0) continue;
    if (ev.data.u64 == kWakeToken) {
      // Only a blocking poll consumes the wake-up; a non-blocking one leaves the level-triggered
      // eventfd readable for the poller that is (or will be) blocked (R29). Unexpected bits on
      // the eventfd (Go #72900 saw EPOLLHUP on one board) are treated as a wake-up, not a crash.
      if (timeout_ns != 0) {
        uint64_t value;
        while (read(wake_fd_, &value, sizeof value) < 0 && errno == EINTR) {
        }
        // seq_cst: a Wakeup that runs after this store writes the eventfd again, which a later
        // blocking Wait sees; one that ran before it had its write drained by the read above.
        wake_pending_.store(0, std::memory_order_seq_cst);
      }
      continue;
    }
    uint32_t modes = ModesOf(ev.events);
    if (modes == 0) continue;
    out[count++] = BackendEvent{ev.data.u64, modes, ev.events == EPOLLERR};
  }
  return count;
}

void EpollBackend::Wakeup() {
  uint32_t expected = 0;
  // seq_cst: the coalescing flag of R28; see the drain in Wait.
  if (!wake_pending_.compare_exchange_strong(expected, 1, std::memory_order_seq_cst)) return;
  uint64_t one = 1;
  for (;;) {
    ssize_t n = write(wake_fd_, &one, sizeof one);
    if (n == sizeof one) break;
    if (n < 0 && errno == EINTR) continue;
    // EAGAIN: the counter is saturated, so a wake-up is pending anyway.
    NETPOLL_CHECK(n < 0 && errno == EAGAIN, "eventfd write for a poller wake-up failed");
    break;
  }
  // relaxed: a statistic.
  wake_writes_.fetch_add(1, std::memory_order_relaxed);
}

bool EpollBackend::IsPollDescriptor(platform::SocketHandle fd) const {
  return fd >= 0 && (fd == epoll_fd_ || fd == wake_fd_);
}

}  // namespace netpoll::backends
