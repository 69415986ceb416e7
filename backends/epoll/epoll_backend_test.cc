#include "backends/epoll/epoll_backend.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "platform/clock.h"
#include "platform/socket.h"
#include "tests/util/sync.h"

namespace netpoll::backends {
namespace {

using platform::MonotonicNanos;

constexpr int64_t kMs = 1'000'000;

class EpollBackendTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(backend_.Init().ok()); }

  // Collects the events of one non-blocking Wait.
  std::vector<BackendEvent> PollNow() { return WaitFor(0); }
  std::vector<BackendEvent> WaitFor(int64_t timeout_ns) {
    BackendEvent events[16];
    int n = backend_.Wait(timeout_ns, absl::MakeSpan(events));
    return std::vector<BackendEvent>(events, events + n);
  }
  // The merged modes reported for `token` in `events`.
  static uint32_t ModesFor(const std::vector<BackendEvent>& events, uint64_t token) {
    uint32_t modes = 0;
    for (const BackendEvent& e : events) {
      if (e.token == token) modes |= e.modes;
    }
    return modes;
  }

  EpollBackend backend_;
};

std::pair<int, int> SocketPair() {
  auto pair = platform::CreateSocketPair(platform::SocketType::kStream);
  EXPECT_TRUE(pair.ok());
  return pair.value;
}

TEST_F(EpollBackendTest, NewSocketIsWritableNotReadable) {
  auto [a, b] = SocketPair();
  ASSERT_TRUE(backend_.Open(a, 7).ok());
  uint32_t modes = ModesFor(PollNow(), 7);
  EXPECT_EQ(modes, kEventWrite);
  // Edge-triggered: without a new edge, the next poll reports nothing.
  EXPECT_EQ(ModesFor(PollNow(), 7), 0u);
  close(a);
  close(b);
}

TEST_F(EpollBackendTest, ReadReadinessIsAnEdge) {
  auto [a, b] = SocketPair();
  ASSERT_TRUE(backend_.Open(a, 7).ok());
  PollNow();  // Consume the initial writability edge.
  ASSERT_EQ(write(b, "x", 1), 1);
  EXPECT_EQ(ModesFor(WaitFor(1000 * kMs), 7) & kEventRead, kEventRead);
  EXPECT_EQ(ModesFor(PollNow(), 7), 0u);  // Same data, no new edge.
  ASSERT_EQ(write(b, "y", 1), 1);         // New data, new edge.
  EXPECT_EQ(ModesFor(WaitFor(1000 * kMs), 7) & kEventRead, kEventRead);
  close(a);
  close(b);
}

TEST_F(EpollBackendTest, WriteReadinessAfterTheBufferDrains) {
  auto [a, b] = SocketPair();
  ASSERT_TRUE(backend_.Open(a, 9).ok());
  PollNow();
  char chunk[4096] = {};
  while (write(a, chunk, sizeof chunk) > 0) {
  }
  ASSERT_EQ(errno, EAGAIN);
  EXPECT_EQ(ModesFor(PollNow(), 9) & kEventWrite, 0u);
  while (read(b, chunk, sizeof chunk) > 0) {
  }
  EXPECT_EQ(ModesFor(WaitFor(1000 * kMs), 9) & kEventWrite, kEventWrite);
  close(a);
  close(b);
}

TEST_F(EpollBackendTest, PeerCloseWakesReadersAndWriters) {
  auto [a, b] = SocketPair();
  ASSERT_TRUE(backend_.Open(a, 3).ok());
  PollNow();
  close(b);  // EPOLLIN|EPOLLRDHUP|EPOLLHUP: readers see EOF, writers get EPIPE.
  std::vector<BackendEvent> events = WaitFor(1000 * kMs);
  EXPECT_EQ(ModesFor(events, 3), kEventRead | kEventWrite);
  for (const BackendEvent& e : events) EXPECT_FALSE(e.error_only);
  close(a);
}

TEST_F(EpollBackendTest, HalfClosedPeerWakesReader) {
  auto [a, b] = SocketPair();
  ASSERT_TRUE(backend_.Open(a, 3).ok());
  PollNow();
  ASSERT_EQ(shutdown(b, SHUT_WR), 0);  // EPOLLRDHUP alone.
  EXPECT_EQ(ModesFor(WaitFor(1000 * kMs), 3) & kEventRead, kEventRead);
  close(a);
  close(b);
}

TEST_F(EpollBackendTest, RefusedConnectIsReportedToBothDirections) {
  // Find a closed port.
  auto probe = platform::CreateSocket(platform::AddressFamily::kIPv4, platform::SocketType::kStream);
  ASSERT_TRUE(probe.ok());
  ASSERT_EQ(platform::Bind(probe.value, platform::SocketAddress::FromIP(platform::IPAddress::V4Loopback(), 0)), 0);
  platform::SocketAddress closed = platform::GetLocalAddress(probe.value).value;
  close(probe.value);

  auto s = platform::CreateSocket(platform::AddressFamily::kIPv4, platform::SocketType::kStream);
  ASSERT_TRUE(s.ok());
  platform::ErrorCode e = platform::Connect(s.value, closed);
  ASSERT_EQ(platform::ClassifyError(e), platform::ErrorKind::kInProgress);
  ASSERT_TRUE(backend_.Open(s.value, 11).ok());
  // EPOLLERR|EPOLLHUP (+ maybe EPOLLOUT): both directions wake; not "error only" (Go #30624).
  int64_t deadline = MonotonicNanos() + 10'000 * kMs;
  uint32_t modes = 0;
  while (modes != (kEventRead | kEventWrite) && MonotonicNanos() < deadline) {
    modes |= ModesFor(WaitFor(100 * kMs), 11);
  }
  EXPECT_EQ(modes, kEventRead | kEventWrite);
  close(s.value);
}

TEST_F(EpollBackendTest, PipesWork) {
  int fds[2];
  ASSERT_EQ(pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
  ASSERT_TRUE(backend_.Open(fds[0], 21).ok());
  ASSERT_TRUE(backend_.Open(fds[1], 22).ok());
  EXPECT_EQ(ModesFor(PollNow(), 22), kEventWrite);
  ASSERT_EQ(write(fds[1], "p", 1), 1);
  EXPECT_EQ(ModesFor(WaitFor(1000 * kMs), 21), kEventRead);
  close(fds[1]);  // Writer gone: the reader sees EPOLLHUP.
  EXPECT_NE(ModesFor(WaitFor(1000 * kMs), 21) & kEventRead, 0u);
  close(fds[0]);
}

TEST_F(EpollBackendTest, ClosedRegistrationStopsEventsAndReusedNumberGetsNewToken) {
  auto [a, b] = SocketPair();
  ASSERT_TRUE(backend_.Open(a, 100).ok());
  PollNow();
  ASSERT_TRUE(backend_.Close(a).ok());
  ASSERT_EQ(write(b, "x", 1), 1);
  EXPECT_EQ(ModesFor(PollNow(), 100), 0u);
  close(a);
  close(b);
  // The kernel reuses the lowest free number: the new socket gets `a` again.
  auto [c, d] = SocketPair();
  ASSERT_EQ(c, a);
  ASSERT_TRUE(backend_.Open(c, 200).ok());
  ASSERT_EQ(write(d, "y", 1), 1);
  std::vector<BackendEvent> events = WaitFor(1000 * kMs);
  EXPECT_EQ(ModesFor(events, 100), 0u);
  EXPECT_NE(ModesFor(events, 200) & kEventRead, 0u);
  close(c);
  close(d);
}

TEST_F(EpollBackendTest, BadRegistrationsAreErrorsNotCrashes) {
  auto [a, b] = SocketPair();
  ASSERT_TRUE(backend_.Open(a, 1).ok());
  absl::Status twice = backend_.Open(a, 2);
  EXPECT_FALSE(twice.ok());
  EXPECT_NE(twice.message().find("EEXIST"), absl::string_view::npos) << twice;
  EXPECT_FALSE(backend_.Close(b).ok());  // Never registered: ENOENT.
  int file = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(file, 0);
  absl::Status regular = backend_.Open(file, 3);  // epoll refuses regular files with EPERM.
  EXPECT_EQ(regular.code(), absl::StatusCode::kPermissionDenied) << regular;
  close(file);
  EXPECT_FALSE(backend_.Open(1 << 20, 4).ok());  // Not a descriptor: EBADF.
  close(a);
  close(b);
}

TEST_F(EpollBackendTest, ReservedWakeTokenIsRefusedFatally) {
  auto [a, b] = SocketPair();
  EXPECT_DEATH((void)backend_.Open(a, kWakeToken), "reserved wake-up token");
  close(a);
  close(b);
}

TEST_F(EpollBackendTest, IsPollDescriptorKnowsOnlyItsOwn) {
  auto [a, b] = SocketPair();
  EXPECT_FALSE(backend_.IsPollDescriptor(a));
  EXPECT_FALSE(backend_.IsPollDescriptor(-1));
  int owned = 0;
  for (int fd = 0; fd < 1024; ++fd) owned += backend_.IsPollDescriptor(fd) ? 1 : 0;
  EXPECT_EQ(owned, 2);  // The epoll fd and the eventfd.
  close(a);
  close(b);
}

TEST_F(EpollBackendTest, WakeupBreaksABlockedWait) {
  std::atomic<int> result{-1};
  testing::BoundedThread waiter([&] {
    BackendEvent events[4];
    result = backend_.Wait(-1, absl::MakeSpan(events));
  });
  // Whether the wake-up lands before or during the wait does not matter: it is level-triggered.
  backend_.Wakeup();
  waiter.Join();
  EXPECT_EQ(result.load(), 0);  // The wake-up itself is not reported as an event.
}

// R28: many concurrent Wakeup calls make one eventfd write while one is pending.
TEST_F(EpollBackendTest, R28_ConcurrentWakeupsAreCoalesced) {
  std::vector<std::thread> threads;
  std::atomic<bool> go{false};
  for (int i = 0; i < 64; ++i) {
    threads.emplace_back([&] {
      while (!go.load()) std::this_thread::yield();
      for (int j = 0; j < 16; ++j) backend_.Wakeup();
    });
  }
  go = true;
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(backend_.wake_writes(), 1u);
  // A blocking wait consumes it; the next Wakeup writes again.
  WaitFor(1000 * kMs);
  backend_.Wakeup();
  EXPECT_EQ(backend_.wake_writes(), 2u);
}

// R29: a non-blocking Wait that sees the wake-up leaves it for the blocking one.
TEST_F(EpollBackendTest, R29_NonBlockingWaitDoesNotSwallowWakeup) {
  backend_.Wakeup();
  EXPECT_TRUE(PollNow().empty());
  EXPECT_TRUE(PollNow().empty());
  int64_t start = MonotonicNanos();
  WaitFor(10'000 * kMs);  // Must return at once, not after 10 s.
  EXPECT_LT(MonotonicNanos() - start, 5'000 * kMs);
  // Consumed now: a blocking wait sleeps its full (short) timeout.
  start = MonotonicNanos();
  WaitFor(20 * kMs);
  EXPECT_GE(MonotonicNanos() - start, 20 * kMs);
}

std::atomic<int> signals_handled{0};
void CountSignal(int) { signals_handled.fetch_add(1); }

class SignalHandler {
 public:
  SignalHandler() {
    struct sigaction sa {};
    sa.sa_handler = CountSignal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // No SA_RESTART (epoll_wait is never restarted anyway).
    sigaction(SIGUSR1, &sa, &old_);
  }
  ~SignalHandler() { sigaction(SIGUSR1, &old_, nullptr); }

 private:
  struct sigaction old_;
};

// R33: EINTR in a timed wait returns early and empty, so the caller recomputes its timeout.
TEST_F(EpollBackendTest, R33_EintrInTimedWaitReturnsEarly) {
  SignalHandler handler;
  std::atomic<pthread_t> thread{};
  std::atomic<bool> returned{false};
  std::atomic<int> result{-1};
  int64_t start = MonotonicNanos();
  testing::BoundedThread waiter([&] {
    thread = pthread_self();
    BackendEvent events[4];
    result = backend_.Wait(20'000 * kMs, absl::MakeSpan(events));
    returned = true;
  });
  ASSERT_TRUE(testing::WaitUntil([&] { return thread.load() != pthread_t{}; }));
  // Signals sent before the thread enters epoll_wait are handled and ignored; keep sending until
  // one interrupts the wait.
  ASSERT_TRUE(testing::WaitUntil([&] {
    if (!returned) pthread_kill(thread.load(), SIGUSR1);
    return returned.load();
  }));
  waiter.Join();
  EXPECT_EQ(result.load(), 0);
  EXPECT_LT(MonotonicNanos() - start, 10'000 * kMs);
}

// R33, other half: an infinite wait is retried after EINTR, not returned.
TEST_F(EpollBackendTest, R33_EintrInInfiniteWaitIsRetried) {
  SignalHandler handler;
  signals_handled = 0;
  std::atomic<pthread_t> thread{};
  std::atomic<bool> returned{false};
  testing::BoundedThread waiter([&] {
    thread = pthread_self();
    BackendEvent events[4];
    backend_.Wait(-1, absl::MakeSpan(events));
    returned = true;
  });
  ASSERT_TRUE(testing::WaitUntil([&] { return thread.load() != pthread_t{}; }));
  for (int i = 0; i < 20; ++i) {
    int before = signals_handled.load();
    pthread_kill(thread.load(), SIGUSR1);
    ASSERT_TRUE(testing::WaitUntil([&] { return signals_handled.load() > before; }));
  }
  EXPECT_FALSE(returned.load()) << "an infinite wait returned on EINTR";
  backend_.Wakeup();
  waiter.Join();
  EXPECT_TRUE(returned.load());
}

TEST_F(EpollBackendTest, SubMillisecondTimeoutIsNeitherBusyNorRoundedToZero) {
  for (int64_t timeout : {int64_t{1}, int64_t{300000}, int64_t{1500000}}) {  // 1 ns, 0.3 ms, 1.5 ms
    int64_t start = MonotonicNanos();
    WaitFor(timeout);
    int64_t elapsed = MonotonicNanos() - start;
    EXPECT_GE(elapsed, timeout) << "returned before its timeout";
    // Generous upper bound: rounding up adds at most 1 ms; scheduling noise the rest.
    EXPECT_LT(elapsed, timeout + 200 * kMs);
  }
}

}  // namespace
}  // namespace netpoll::backends
