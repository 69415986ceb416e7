// Micro-benchmarks of the fiber runtime's lowest layer (platform/context.h, platform/stack.h).
//
//   bazel run --config=opt //bench:context_switch_bench -- --benchmark_min_time=3
//
// Pin it to one CPU (taskset -c 1) for steady numbers. BUILDING.md warns that some switch
// implementations are fast for the first million round trips and slow afterwards, so judge the
// steady state: --benchmark_min_time of a few seconds runs tens of millions of round trips, and
// --benchmark_repetitions shows whether the figure drifts.
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <utility>

#include "benchmark/benchmark.h"
#include "platform/context.h"
#include "platform/stack.h"

namespace netpoll::platform {
namespace {

template <typename T>
T OrDie(absl::StatusOr<T> value) {
  if (!value.ok()) std::abort();
  return *std::move(value);
}

// One round trip = two switches: thread -> fiber, fiber -> thread.
void BM_SwitchRoundTrip(benchmark::State& state) {
  Stack stack = OrDie(Stack::Allocate(64 * 1024));
  struct Pair {
    MachineContext thread_context;
    MachineContext* fiber = nullptr;
  } pair;
  MachineContext fiber(
      stack.region(),
      [](void* arg, void* transfer) {
        Pair* p = static_cast<Pair*>(arg);
        for (;;) transfer = SwitchContext(p->fiber, &p->thread_context, transfer);
      },
      &pair);
  pair.fiber = &fiber;
  uintptr_t value = 0;
  for (auto _ : state) {
    value = reinterpret_cast<uintptr_t>(
        SwitchContext(&pair.thread_context, &fiber, reinterpret_cast<void*>(value + 1)));
  }
  benchmark::DoNotOptimize(value);
  state.SetItemsProcessed(state.iterations());
  // The fiber stays suspended in its loop; destroying its context abandons it (documented).
}
BENCHMARK(BM_SwitchRoundTrip);

// Taking a stack from a warm pool and giving it back: what a spawn pays for its stack.
void BM_StackAcquireRelease(benchmark::State& state) {
  std::unique_ptr<StackPool> pool = OrDie(StackPool::Create());
  pool->Release(OrDie(pool->Acquire()));  // warm: one stack cached
  for (auto _ : state) {
    Stack stack = OrDie(pool->Acquire());
    benchmark::DoNotOptimize(stack.region().lowest);
    pool->Release(std::move(stack));
  }
  if (pool->stats().mapped != 1) state.SkipWithError("the pool mapped more than one stack");
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_StackAcquireRelease);

// A proxy for spawning a fiber that runs briefly and ends: stack from the pool, new context,
// switch in, the entry ends with ExitContext, context destroyed, stack back to the pool.
void BM_CreateRunRelease(benchmark::State& state) {
  std::unique_ptr<StackPool> pool = OrDie(StackPool::Create());
  pool->Release(OrDie(pool->Acquire()));
  struct Run {
    MachineContext thread_context;
    MachineContext* fiber = nullptr;
    uint64_t ran = 0;
  } run;
  for (auto _ : state) {
    Stack stack = OrDie(pool->Acquire());
    {
      MachineContext fiber(
          stack.region(),
          [](void* arg, void*) {
            Run* r = static_cast<Run*>(arg);
            ++r->ran;
            ExitContext(r->fiber, &r->thread_context, nullptr);
          },
          &run);
      run.fiber = &fiber;
      SwitchContext(&run.thread_context, &fiber, nullptr);
    }
    pool->Release(std::move(stack));
  }
  if (run.ran != static_cast<uint64_t>(state.iterations())) state.SkipWithError("a fiber did not run");
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_CreateRunRelease);

}  // namespace
}  // namespace netpoll::platform
