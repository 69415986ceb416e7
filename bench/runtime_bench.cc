// Micro-benchmarks of the fiber runtime (uthread/) on the user-thread interface.
//
//   ./bazelw run --config=opt //bench:runtime_bench -- --benchmark_min_time=2
//
// Each benchmark runs a batch of operations inside fibers and reports manual time per batch; the
// per-operation figure is the `ns_per_op` counter. Pin with `taskset -c 1` for steady numbers.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>

#include "benchmark/benchmark.h"
#include "platform/clock.h"
#include "poller/waiter.h"
#include "uthread/runtime.h"

namespace netpoll {
namespace {

std::unique_ptr<Runtime> OneWorker() {
  absl::StatusOr<std::unique_ptr<Runtime>> runtime = Runtime::Start({.workers = 1});
  if (!runtime.ok()) std::abort();
  return std::move(*runtime);
}

// Runs `body` on a fiber and waits for it; returns the fiber's own measurement in ns.
int64_t TimeOnFiber(Runtime& runtime, const std::function<int64_t()>& body) {
  std::mutex mutex;
  std::condition_variable cv;
  bool done = false;
  int64_t ns = 0;
  if (!runtime.Go([&] {
        int64_t r = body();
        std::lock_guard<std::mutex> lock(mutex);
        ns = r;
        done = true;
        cv.notify_all();
      }).ok()) {
    std::abort();
  }
  std::unique_lock<std::mutex> lock(mutex);
  cv.wait(lock, [&] { return done; });
  return ns;
}

// Accumulates batches; Finish() publishes ns per operation over all of them.
class Batches {
 public:
  explicit Batches(benchmark::State& state) : state_(state) {}
  void Add(int64_t ns, int64_t ops) {
    state_.SetIterationTime(static_cast<double>(ns) / 1e9);
    ns_ += ns;
    ops_ += ops;
  }
  ~Batches() {
    if (ops_ > 0) state_.counters["ns_per_op"] = static_cast<double>(ns_) / static_cast<double>(ops_);
  }

 private:
  benchmark::State& state_;
  int64_t ns_ = 0;
  int64_t ops_ = 0;
};

// Two fibers on one worker pass a token: each hop is one park (of the fiber handing over) and one
// ready (of the fiber taking over), through the user-thread interface (Park with a commit, Ready).
void BM_ParkReadyHop(benchmark::State& state) {
  auto runtime = OneWorker();
  constexpr int64_t kHops = 200'000;
  Batches batches(state);
  for (auto _ : state) {
    struct Shared {
      std::atomic<poller::Waiter*> parked{nullptr};
    } shared;
    // The commit runs once the handing-over fiber is suspended: it parks itself in the slot and
    // readies whoever was there.
    auto hand_over = [](poller::Waiter* self, void* arg) {
      auto* s = static_cast<Shared*>(arg);
      // acq_rel: takes the other fiber and publishes this one.
      if (poller::Waiter* other = s->parked.exchange(self, std::memory_order_acq_rel)) other->Ready();
      return true;
    };
    std::atomic<int> finished{0};
    int64_t start = 0, end = 0;
    int64_t ns = TimeOnFiber(*runtime, [&] {
      // The partner parks first, then the two take turns.
      runtime->Go([&] {
        for (int64_t i = 0; i < kHops / 2; ++i) poller::Park(hand_over, &shared, poller::WaitReason{});
        finished.fetch_add(1);
        // Wake the last parked fiber so both can end.
        if (poller::Waiter* other = shared.parked.exchange(nullptr, std::memory_order_acq_rel)) other->Ready();
      }).IgnoreError();
      netpoll::Yield();  // Let the partner park in the slot.
      start = platform::MonotonicNanos();
      for (int64_t i = 0; i < kHops / 2; ++i) poller::Park(hand_over, &shared, poller::WaitReason{});
      end = platform::MonotonicNanos();
      while (finished.load() == 0) netpoll::Yield();
      return end - start;
    });
    batches.Add(ns, kHops);
  }
}
BENCHMARK(BM_ParkReadyHop)->UseManualTime()->Unit(benchmark::kMillisecond);

// From a fiber: spawns `count` fibers that only count themselves done, then yields until all have
// run. relaxed: the counter publishes nothing but itself.
void SpawnAndAwait(Runtime& runtime, int64_t count) {
  std::atomic<int64_t> done{0};
  for (int64_t i = 0; i < count; ++i) {
    runtime.Go([&] { done.fetch_add(1, std::memory_order_relaxed); }).IgnoreError();
  }
  while (done.load(std::memory_order_relaxed) < count) netpoll::Yield();
}

// Spawn to finish in the steady state: a fiber spawns waves of 100 fibers that do nothing and
// waits for each wave, so stacks come warm from the pool (as for connections that come and go).
void BM_SpawnToFinish(benchmark::State& state) {
  auto runtime = OneWorker();
  constexpr int64_t kWave = 100;
  constexpr int64_t kWaves = 200;
  Batches batches(state);
  for (auto _ : state) {
    int64_t ns = TimeOnFiber(*runtime, [&] {
      int64_t start = platform::MonotonicNanos();
      for (int64_t wave = 0; wave < kWaves; ++wave) SpawnAndAwait(*runtime, kWave);
      return platform::MonotonicNanos() - start;
    });
    batches.Add(ns, kWave * kWaves);
  }
}
BENCHMARK(BM_SpawnToFinish)->UseManualTime()->Unit(benchmark::kMillisecond);

// A burst: 20,000 fibers spawned before any runs, so most stacks are freshly mapped (page faults,
// mmap and the guard page): the cold cost, for comparison with the steady state above.
void BM_SpawnBurst(benchmark::State& state) {
  auto runtime = OneWorker();
  constexpr int64_t kFibers = 20'000;
  Batches batches(state);
  for (auto _ : state) {
    int64_t ns = TimeOnFiber(*runtime, [&] {
      int64_t start = platform::MonotonicNanos();
      SpawnAndAwait(*runtime, kFibers);
      return platform::MonotonicNanos() - start;
    });
    batches.Add(ns, kFibers);
  }
}
BENCHMARK(BM_SpawnBurst)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(3);

// Latency of Ready from a plain OS thread to a parked fiber until that fiber runs (the worker is
// idle and asleep in between, so this includes waking it).
void BM_ReadyFromOsThreadLatency(benchmark::State& state) {
  auto runtime = OneWorker();
  constexpr int kRounds = 2000;
  Batches batches(state);
  for (auto _ : state) {
    std::atomic<poller::Waiter*> parked{nullptr};
    std::atomic<int64_t> readied_at{0};
    std::atomic<int64_t> total{0};
    std::atomic<bool> fiber_done{false};
    runtime->Go([&] {
      for (int i = 0; i < kRounds; ++i) {
        poller::Park(
            [](poller::Waiter* self, void* arg) {
              static_cast<std::atomic<poller::Waiter*>*>(arg)->store(self, std::memory_order_release);
              return true;
            },
            &parked, poller::WaitReason{});
        total.fetch_add(platform::MonotonicNanos() - readied_at.load(std::memory_order_acquire));
      }
      fiber_done = true;
    }).IgnoreError();
    for (int i = 0; i < kRounds; ++i) {
      poller::Waiter* w;
      while ((w = parked.exchange(nullptr, std::memory_order_acq_rel)) == nullptr) std::this_thread::yield();
      // Let the worker fall asleep, so the figure is the wake-up path, not a spinning worker.
      std::this_thread::sleep_for(std::chrono::microseconds(50));
      readied_at.store(platform::MonotonicNanos(), std::memory_order_release);
      w->Ready();
    }
    while (!fiber_done.load()) std::this_thread::yield();
    batches.Add(total.load(), kRounds);
  }
}
BENCHMARK(BM_ReadyFromOsThreadLatency)->UseManualTime()->Unit(benchmark::kMillisecond);

// Yield between two fibers on one worker (a context switch through the scheduler each way).
void BM_YieldPingPong(benchmark::State& state) {
  auto runtime = OneWorker();
  constexpr int64_t kYields = 200'000;
  Batches batches(state);
  for (auto _ : state) {
    int64_t ns = TimeOnFiber(*runtime, [&] {
      std::atomic<bool> stop{false};
      runtime->Go([&] {
        while (!stop.load(std::memory_order_relaxed)) netpoll::Yield();
      }).IgnoreError();
      int64_t start = platform::MonotonicNanos();
      for (int64_t i = 0; i < kYields; ++i) netpoll::Yield();
      int64_t ns = platform::MonotonicNanos() - start;
      stop = true;
      return ns;
    });
    // Each of our yields runs the other fiber once: two switches in and two out.
    batches.Add(ns, kYields);
  }
}
BENCHMARK(BM_YieldPingPong)->UseManualTime()->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace netpoll

BENCHMARK_MAIN();
