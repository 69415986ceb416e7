// Micro-benchmarks of the poller and NetFD: timers at scale, SetReadDeadline, NetFD overhead over
// the raw syscalls, and the poller's wake-up latency.
//
//   ./bazelw run --config=opt //bench:poller_bench -- --benchmark_min_time=1
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "benchmark/benchmark.h"
#include "netfd/net.h"
#include "netfd/netfd.h"
#include "platform/clock.h"
#include "platform/socket.h"
#include "poller/poller.h"
#include "poller/timer.h"

namespace netpoll {
namespace {

bool NoPoller() { return true; }

void NoOp(void*, uintptr_t, poller::ReadyList*) {}

// A heap of `n` live timers with far-away deadlines, installed as this thread's timer heap.
struct LiveTimers {
  explicit LiveTimers(int64_t n) : timers(n) {
    poller::Poller::Get().SetNoPollerHook(&NoPoller);
    poller::SetCurrentTimerHeap(&heap);
    std::mt19937_64 rng(1);
    int64_t base = platform::MonotonicNanos() + 3'600'000'000'000;
    for (auto& t : timers) poller::ArmTimer(&t, base + static_cast<int64_t>(rng() % 1'000'000'000'000), &NoOp, nullptr, 0);
  }
  ~LiveTimers() {
    for (auto& t : timers) poller::StopTimer(&t);
    poller::SetCurrentTimerHeap(nullptr);
  }
  poller::TimerHeap heap;
  std::vector<poller::Timer> timers;
};

// Re-arms random live timers at `base_ahead_ns` from now plus `step * (random % spread_ns)`.
void ModifyRandomTimers(benchmark::State& state, uint64_t seed, int64_t base_ahead_ns, int step,
                        uint64_t spread_ns) {
  LiveTimers live(state.range(0));
  std::mt19937_64 rng(seed);
  int64_t base = platform::MonotonicNanos() + base_ahead_ns;
  for (auto _ : state) {
    poller::Timer& t = live.timers[rng() % live.timers.size()];
    poller::ArmTimer(&t, base + step * static_cast<int64_t>(rng() % spread_ns), &NoOp, nullptr, 1);
  }
}

// Later: the timer moves behind every live one (LiveTimers sit 1 h to 1 h 17 min ahead): it sinks.
void BM_TimerModifyLater(benchmark::State& state) {
  ModifyRandomTimers(state, 2, 7'200'000'000'000, +1, 1'000'000'000'000);
}
BENCHMARK(BM_TimerModifyLater)->Arg(1'000)->Arg(100'000)->Arg(1'000'000);

// Earlier: the timer moves ahead of every live one: it rises to the top.
void BM_TimerModifyEarlier(benchmark::State& state) {
  ModifyRandomTimers(state, 3, 3'600'000'000'000, -1, 1'000'000'000);
}
BENCHMARK(BM_TimerModifyEarlier)->Arg(1'000)->Arg(100'000)->Arg(1'000'000);

void BM_TimerAddDelete(benchmark::State& state) {
  LiveTimers live(state.range(0));
  std::mt19937_64 rng(4);
  poller::Timer extra;
  int64_t base = platform::MonotonicNanos() + 3'600'000'000'000;
  for (auto _ : state) {
    poller::ArmTimer(&extra, base + static_cast<int64_t>(rng() % 1'000'000'000'000), &NoOp, nullptr, 0);
    poller::StopTimer(&extra);
  }
}
BENCHMARK(BM_TimerAddDelete)->Arg(1'000)->Arg(100'000)->Arg(1'000'000);

// SetReadDeadline on a Conn (a socketpair) with `range(0)` other live timers, each call a new
// deadline (the common idle-timeout idiom: extend after every read).
void BM_SetReadDeadline(benchmark::State& state) {
  LiveTimers live(state.range(0));
  auto pair = platform::CreateSocketPair(platform::SocketType::kStream);
  auto fd = netfd::NetFD::New(pair.value.first, platform::SocketType::kStream, "unix", true);
  if (!fd.ok()) std::abort();
  absl::Time base = absl::Now() + absl::Hours(1);
  int64_t i = 0;
  for (auto _ : state) {
    (*fd)->SetReadDeadline(base + absl::Nanoseconds(++i * 1000)).IgnoreError();
  }
  (*fd)->Close().IgnoreError();
  close(pair.value.second);
}
BENCHMARK(BM_SetReadDeadline)->Arg(0)->Arg(1'000'000);

// One byte written and read back over a socketpair: raw syscalls, then the same through NetFD.
void BM_RawWriteRead(benchmark::State& state) {
  auto pair = platform::CreateSocketPair(platform::SocketType::kStream);
  char b = 'x';
  for (auto _ : state) {
    benchmark::DoNotOptimize(write(pair.value.first, &b, 1));
    benchmark::DoNotOptimize(read(pair.value.second, &b, 1));
  }
  close(pair.value.first);
  close(pair.value.second);
}
BENCHMARK(BM_RawWriteRead);

// The same raw syscalls on sockets registered (edge-triggered) in an epoll set, as every
// epoll-based server's are: the kernel then also runs the epoll callback on each write. This is
// the fair baseline for NetFD's overhead.
void BM_RawWriteReadEpollRegistered(benchmark::State& state) {
  auto pair = platform::CreateSocketPair(platform::SocketType::kStream);
  int epfd = epoll_create1(EPOLL_CLOEXEC);
  for (int fd : {pair.value.first, pair.value.second}) {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.fd = fd;
    epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
  }
  char b = 'x';
  for (auto _ : state) {
    benchmark::DoNotOptimize(send(pair.value.first, &b, 1, MSG_NOSIGNAL));
    benchmark::DoNotOptimize(read(pair.value.second, &b, 1));
  }
  close(pair.value.first);
  close(pair.value.second);
  close(epfd);
}
BENCHMARK(BM_RawWriteReadEpollRegistered);

void BM_NetFDWriteRead(benchmark::State& state) {
  auto pair = platform::CreateSocketPair(platform::SocketType::kStream);
  auto a = netfd::NetFD::New(pair.value.first, platform::SocketType::kStream, "unix", true);
  auto b = netfd::NetFD::New(pair.value.second, platform::SocketType::kStream, "unix", true);
  char byte = 'x';
  for (auto _ : state) {
    benchmark::DoNotOptimize((*a)->Write(absl::MakeConstSpan(&byte, 1)).written);
    benchmark::DoNotOptimize((*b)->Read(absl::MakeSpan(&byte, 1)));
  }
}
BENCHMARK(BM_NetFDWriteRead);

// A thread blocks in the poller; how long from Wakeup() until it is back (the eventfd round trip).
void BM_PollerWakeupLatency(benchmark::State& state) {
  std::atomic<int64_t> woken_at{0};
  std::atomic<bool> stop{false};
  std::atomic<int64_t> returns{0};
  std::thread poller_thread([&] {
    while (!stop.load()) {
      poller::ReadyList ready;
      poller::Poller::Get().Poll(10'000'000'000, &ready);
      woken_at.store(platform::MonotonicNanos(), std::memory_order_release);
      returns.fetch_add(1, std::memory_order_release);
    }
  });
  int64_t total = 0, rounds = 0;
  for (auto _ : state) {
    // Wait until the poller is blocked again.
    while (!poller::Poller::Get().poll_owned()) std::this_thread::yield();
    int64_t before = returns.load(std::memory_order_acquire);
    int64_t start = platform::MonotonicNanos();
    poller::Poller::Get().Wakeup();
    while (returns.load(std::memory_order_acquire) == before) {
    }
    total += woken_at.load(std::memory_order_acquire) - start;
    ++rounds;
  }
  stop = true;
  poller::Poller::Get().Wakeup();
  poller_thread.join();
  state.counters["wake_ns"] = benchmark::Counter(static_cast<double>(total) / static_cast<double>(rounds));
}
BENCHMARK(BM_PollerWakeupLatency)->Iterations(20'000);

}  // namespace
}  // namespace netpoll

BENCHMARK_MAIN();
