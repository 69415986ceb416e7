#include "platform/stack.h"

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "platform/context.h"
#include "platform/os.h"

namespace netpoll::platform {
namespace {

using ::testing::HasSubstr;

size_t PageSize() { return static_cast<size_t>(sysconf(_SC_PAGESIZE)); }

// How many pages of [begin, begin + size) are resident in memory.
size_t ResidentPages(const void* begin, size_t size) {
  std::vector<unsigned char> residency(size / PageSize());
#if defined(NETPOLL_OS_LINUX)
  EXPECT_EQ(mincore(const_cast<void*>(begin), size, residency.data()), 0) << strerror(errno);
#else
  EXPECT_EQ(mincore(const_cast<void*>(begin), size, reinterpret_cast<char*>(residency.data())), 0);
#endif
  size_t resident = 0;
  for (unsigned char page : residency) resident += page & 1;
  return resident;
}

// Writes non-zero bytes to the top `bytes` of the stack, as a fiber using that much would.
void UseTopOfStack(const StackRegion& region, size_t bytes) {
  memset(static_cast<char*>(region.highest()) - bytes, 0xa5, bytes);
}

TEST(StackTest, RejectsZeroSize) {
  absl::StatusOr<Stack> stack = Stack::Allocate(0);
  ASSERT_FALSE(stack.ok());
  EXPECT_EQ(stack.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(stack.status().message()), HasSubstr("must be positive"));
}

TEST(StackTest, RejectsAbsurdlyLargeSizes) {
  for (size_t size : {kMaxStackSize + 1, std::numeric_limits<size_t>::max()}) {
    absl::StatusOr<Stack> stack = Stack::Allocate(size);
    ASSERT_FALSE(stack.ok()) << size;
    EXPECT_EQ(stack.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(stack.status().message()), HasSubstr("exceeds the maximum"));
  }
}

TEST(StackTest, LayoutIsGuardPageBelowUsablePages) {
  absl::StatusOr<Stack> stack = Stack::Allocate(10'000);  // not a page multiple
  ASSERT_TRUE(stack.ok()) << stack.status();
  const StackRegion region = stack->region();
  EXPECT_EQ(region.size % PageSize(), 0u);
  EXPECT_GE(region.size, 10'000u);
  EXPECT_LT(region.size, 10'000u + PageSize());
  EXPECT_EQ(stack->guard_size(), PageSize());
  EXPECT_EQ(static_cast<const char*>(stack->guard_lowest()) + stack->guard_size(),
            static_cast<char*>(region.lowest));
  // The whole usable range is writable.
  static_cast<volatile char*>(region.lowest)[0] = 1;
  static_cast<volatile char*>(region.highest())[-1] = 1;
  // The registry knows the guard page, and only the guard page.
  EXPECT_TRUE(IsInStackGuard(stack->guard_lowest()));
  EXPECT_TRUE(IsInStackGuard(static_cast<char*>(region.lowest) - 1));
  EXPECT_FALSE(IsInStackGuard(region.lowest));
  EXPECT_FALSE(IsInStackGuard(static_cast<const char*>(stack->guard_lowest()) - 1));
  const void* guard = stack->guard_lowest();
  *stack = Stack();  // unmaps
  EXPECT_FALSE(IsInStackGuard(guard));
}

int MappingCount() {
  std::ifstream maps("/proc/self/maps");
  int lines = 0;
  for (std::string line; std::getline(maps, line);) ++lines;
  return lines;
}

// With guard regions (Linux 6.13+) a stack is one mapping at most (neighbours merge), so live
// fibers are not capped at half of vm.max_map_count; with PROT_NONE guards each costs two.
TEST(StackTest, GuardRegionsKeepAStackToOneMapping) {
  absl::StatusOr<Stack> probe = Stack::Allocate(PageSize());
  ASSERT_TRUE(probe.ok()) << probe.status();
  if (GuardPagesSplitMappings()) GTEST_SKIP() << "this kernel has no guard regions (MADV_GUARD_INSTALL)";
  constexpr int kStacks = 2000;
  const int before = MappingCount();
  std::vector<Stack> stacks;
  for (int i = 0; i < kStacks; ++i) {
    absl::StatusOr<Stack> stack = Stack::Allocate(4 * PageSize());
    ASSERT_TRUE(stack.ok()) << stack.status();
    static_cast<volatile char*>(stack->region().highest())[-1] = 1;  // Touched, as a fiber would.
    stacks.push_back(*std::move(stack));
  }
  EXPECT_LE(MappingCount() - before, kStacks);
  for (const Stack& stack : stacks) EXPECT_TRUE(IsInStackGuard(stack.guard_lowest()));
}

TEST(StackTest, DefaultSizeIsDocumentedSize) {
  absl::StatusOr<Stack> stack = Stack::Allocate();
  ASSERT_TRUE(stack.ok()) << stack.status();
  EXPECT_EQ(stack->region().size, kDefaultStackSize);
}

TEST(StackTest, MemoryIsCommittedOnlyWhenTouched) {
  absl::StatusOr<Stack> stack = Stack::Allocate(1024 * 1024);
  ASSERT_TRUE(stack.ok()) << stack.status();
  const StackRegion region = stack->region();
  EXPECT_EQ(ResidentPages(region.lowest, region.size), 0u);
  UseTopOfStack(region, 3 * PageSize());
  EXPECT_EQ(ResidentPages(region.lowest, region.size), 3u);
}

TEST(StackTest, MoveTransfersOwnership) {
  absl::StatusOr<Stack> allocated = Stack::Allocate(16 * 1024);
  ASSERT_TRUE(allocated.ok()) << allocated.status();
  Stack first = *std::move(allocated);
  const StackRegion region = first.region();
  Stack second = std::move(first);
  EXPECT_TRUE(first.empty());  // NOLINT(bugprone-use-after-move): documented state
  EXPECT_EQ(first.region().lowest, nullptr);
  EXPECT_EQ(second.region().lowest, region.lowest);
  EXPECT_TRUE(IsInStackGuard(second.guard_lowest()));
}

// More stacks than one chunk of the guard registry holds (4096), so the registry must grow, and
// every guard must still be found.
TEST(StackTest, RegistryTracksManyStacks) {
  constexpr int kStacks = 5000;
  std::vector<Stack> stacks;
  stacks.reserve(kStacks);
  for (int i = 0; i < kStacks; ++i) {
    absl::StatusOr<Stack> stack = Stack::Allocate(PageSize());
    ASSERT_TRUE(stack.ok()) << stack.status();
    stacks.push_back(*std::move(stack));
  }
  for (const Stack& stack : stacks) ASSERT_TRUE(IsInStackGuard(stack.guard_lowest()));
  std::vector<const void*> guards;
  for (const Stack& stack : stacks) guards.push_back(stack.guard_lowest());
  stacks.clear();
  int still_registered = 0;
  for (const void* guard : guards) still_registered += IsInStackGuard(guard);
  // An address may have been mapped again by another test's stack meanwhile; none is here.
  EXPECT_EQ(still_registered, 0);
}

TEST(StackTest, ConcurrentAllocationKeepsRegistryConsistent) {
  constexpr int kThreads = 4;
  constexpr int kRounds = 2000;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kRounds; ++i) {
        absl::StatusOr<Stack> stack = Stack::Allocate(PageSize());
        // Relaxed: a counter read after join(), which orders it.
        if (!stack.ok() || !IsInStackGuard(stack->guard_lowest()) ||
            IsInStackGuard(stack->region().lowest)) {
          failures.fetch_add(1, std::memory_order_relaxed);
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  // Relaxed: join() ordered every increment before this load.
  EXPECT_EQ(failures.load(std::memory_order_relaxed), 0);
}

TEST(StackPoolTest, RejectsBadStackSizes) {
  for (size_t size : {size_t{0}, kMaxStackSize + 1, std::numeric_limits<size_t>::max()}) {
    absl::StatusOr<std::unique_ptr<StackPool>> pool = StackPool::Create({.stack_size = size});
    ASSERT_FALSE(pool.ok()) << size;
    EXPECT_EQ(pool.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(pool.status().message()), HasSubstr("stack_size"));
  }
}

TEST(StackPoolTest, ReusesTheMostRecentlyReleasedStack) {
  absl::StatusOr<std::unique_ptr<StackPool>> pool = StackPool::Create();
  ASSERT_TRUE(pool.ok()) << pool.status();
  absl::StatusOr<Stack> a = (*pool)->Acquire();
  absl::StatusOr<Stack> b = (*pool)->Acquire();
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->region().size, kDefaultStackSize);
  void* const b_lowest = b->region().lowest;
  (*pool)->Release(*std::move(a));
  (*pool)->Release(*std::move(b));
  absl::StatusOr<Stack> again = (*pool)->Acquire();
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->region().lowest, b_lowest);
  const StackPool::Stats stats = (*pool)->stats();
  EXPECT_EQ(stats.mapped, 2u);
  EXPECT_EQ(stats.reused, 1u);
  EXPECT_EQ(stats.unmapped, 0u);
  EXPECT_EQ(stats.cached, 1u);
}

TEST(StackPoolTest, KeepsAtMostMaxCachedStacks) {
  absl::StatusOr<std::unique_ptr<StackPool>> pool =
      StackPool::Create({.stack_size = 16 * 1024, .max_cached_stacks = 2});
  ASSERT_TRUE(pool.ok()) << pool.status();
  std::vector<Stack> stacks;
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<Stack> stack = (*pool)->Acquire();
    ASSERT_TRUE(stack.ok());
    stacks.push_back(*std::move(stack));
  }
  const void* last_guard = stacks.back().guard_lowest();
  for (Stack& stack : stacks) (*pool)->Release(std::move(stack));
  const StackPool::Stats stats = (*pool)->stats();
  EXPECT_EQ(stats.cached, 2u);
  EXPECT_EQ(stats.unmapped, 1u);
  EXPECT_FALSE(IsInStackGuard(last_guard));  // the third was really unmapped
}

TEST(StackPoolTest, UnmapsStacksOfAnotherSize) {
  absl::StatusOr<std::unique_ptr<StackPool>> pool = StackPool::Create({.stack_size = 16 * 1024});
  ASSERT_TRUE(pool.ok()) << pool.status();
  absl::StatusOr<Stack> foreign = Stack::Allocate(32 * 1024);
  ASSERT_TRUE(foreign.ok());
  (*pool)->Release(*std::move(foreign));
  (*pool)->Release(Stack());  // empty: ignored
  const StackPool::Stats stats = (*pool)->stats();
  EXPECT_EQ(stats.cached, 0u);
  EXPECT_EQ(stats.unmapped, 1u);
}

// The documented policy: a stack used below trim_depth gives back everything below trim_depth;
// a shallow stack keeps its (warm) pages and costs no syscall.
TEST(StackPoolTest, TrimsOnlyStacksThatGrewDeep) {
  const size_t page = PageSize();
  absl::StatusOr<std::unique_ptr<StackPool>> pool =
      StackPool::Create({.stack_size = 256 * 1024, .trim_depth = 64 * 1024});
  ASSERT_TRUE(pool.ok()) << pool.status();

  absl::StatusOr<Stack> stack = (*pool)->Acquire();
  ASSERT_TRUE(stack.ok());
  const StackRegion region = stack->region();
  UseTopOfStack(region, 3 * page);
  (*pool)->Release(*std::move(stack));
  EXPECT_EQ((*pool)->stats().trimmed, 0u);
  const char* const top_pages = static_cast<char*>(region.highest()) - 3 * page;
  EXPECT_EQ(ResidentPages(top_pages, 3 * page), 3u) << "a shallow stack lost its warm pages";
  // Reading the probe page mapped the shared zero page there, which mincore reports as resident
  // although it costs no memory; nothing else below the used pages is.
  EXPECT_LE(ResidentPages(region.lowest, region.size - 3 * page), 1u);

  stack = (*pool)->Acquire();
  ASSERT_TRUE(stack.ok());
  ASSERT_EQ(stack->region().lowest, region.lowest);
  UseTopOfStack(region, 200 * 1024);
  EXPECT_EQ(ResidentPages(region.lowest, region.size), 200 * 1024 / page);
  (*pool)->Release(*std::move(stack));
  EXPECT_EQ((*pool)->stats().trimmed, 1u);
  EXPECT_EQ(ResidentPages(region.lowest, region.size), 64 * 1024 / page)
      << "only the top trim_depth bytes stay committed";

  // The probe page reads as zero again, so a shallow next use is not mistaken for a deep one.
  stack = (*pool)->Acquire();
  ASSERT_TRUE(stack.ok());
  UseTopOfStack(region, 2 * page);
  (*pool)->Release(*std::move(stack));
  EXPECT_EQ((*pool)->stats().trimmed, 1u);
}

TEST(StackPoolTest, TrimDepthAtLeastStackSizeDisablesTrimming) {
  absl::StatusOr<std::unique_ptr<StackPool>> pool =
      StackPool::Create({.stack_size = 64 * 1024, .trim_depth = 64 * 1024});
  ASSERT_TRUE(pool.ok()) << pool.status();
  absl::StatusOr<Stack> stack = (*pool)->Acquire();
  ASSERT_TRUE(stack.ok());
  const StackRegion region = stack->region();
  UseTopOfStack(region, region.size);
  (*pool)->Release(*std::move(stack));
  EXPECT_EQ((*pool)->stats().trimmed, 0u);
  EXPECT_EQ(ResidentPages(region.lowest, region.size), region.size / PageSize());
}

TEST(StackPoolTest, ConcurrentAcquireAndRelease) {
  absl::StatusOr<std::unique_ptr<StackPool>> pool = StackPool::Create({.stack_size = 16 * 1024});
  ASSERT_TRUE(pool.ok()) << pool.status();
  constexpr int kThreads = 4;
  constexpr int kRounds = 5000;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kRounds; ++i) {
        absl::StatusOr<Stack> stack = (*pool)->Acquire();
        if (!stack.ok()) {
          // Relaxed: a counter read after join().
          failures.fetch_add(1, std::memory_order_relaxed);
          continue;
        }
        // Each user writes its own mark; a stack handed to two threads at once would show it.
        volatile int* top = reinterpret_cast<volatile int*>(stack->region().highest()) - 1;
        *top = t;
        std::this_thread::yield();
        // Relaxed: as above.
        if (*top != t) failures.fetch_add(1, std::memory_order_relaxed);
        (*pool)->Release(*std::move(stack));
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  // Relaxed: join() ordered every increment before this load.
  EXPECT_EQ(failures.load(std::memory_order_relaxed), 0);
  const StackPool::Stats stats = (*pool)->stats();
  EXPECT_EQ(stats.mapped + stats.reused, static_cast<uint64_t>(kThreads * kRounds));
  EXPECT_LE(stats.mapped, static_cast<uint64_t>(kThreads));
  EXPECT_EQ(stats.cached, stats.mapped);
}

// ---------------------------------------------------------------------------------------------
// Overflow reporting
// ---------------------------------------------------------------------------------------------

TEST(StackOverflowHandlerTest, GivesTheThreadAnAlternateSignalStack) {
  auto check_this_thread = [] {
    ASSERT_TRUE(InstallStackOverflowHandlerForThisThread().ok());
    ASSERT_TRUE(InstallStackOverflowHandlerForThisThread().ok());  // idempotent
    stack_t current;
    ASSERT_EQ(sigaltstack(nullptr, &current), 0);
    EXPECT_EQ(current.ss_flags & SS_DISABLE, 0);
    EXPECT_GE(current.ss_size, 16u * 1024);
    struct sigaction action;
    ASSERT_EQ(sigaction(SIGSEGV, nullptr, &action), 0);
    EXPECT_NE(action.sa_flags & SA_ONSTACK, 0);
  };
  check_this_thread();
  std::thread(check_this_thread).join();
}

// Recursion without end; the depth limit only keeps the compiler from proving it infinite.
volatile int g_recursion_limit = std::numeric_limits<int>::max();
__attribute__((noinline)) int RecurseForever(int depth) {
  volatile char frame[256];
  frame[0] = static_cast<char>(depth);
  if (depth >= g_recursion_limit) return frame[0];
  return RecurseForever(depth + 1) + frame[0];
}

struct OverflowFiber {
  MachineContext thread_context;
  MachineContext* fiber = nullptr;
};

void OverflowOnAFiber() {
  if (!InstallStackOverflowHandlerForThisThread().ok()) std::abort();
  absl::StatusOr<Stack> stack = Stack::Allocate(64 * 1024);
  if (!stack.ok()) std::abort();
  OverflowFiber state;
  MachineContext fiber(
      stack->region(),
      [](void* arg, void*) {
        RecurseForever(0);
        OverflowFiber* s = static_cast<OverflowFiber*>(arg);
        ExitContext(s->fiber, &s->thread_context, nullptr);
      },
      &state);
  state.fiber = &fiber;
  SwitchContext(&state.thread_context, &fiber, nullptr);
}

constexpr char kOverflowMessage[] =
    "netpoll: fiber stack overflow \\(guard page hit at 0x[0-9a-f]+, "
    "stack 0x[0-9a-f]+-0x[0-9a-f]+\\)";

TEST(StackOverflowDeathTest, TouchingTheGuardPageNamesTheOverflow) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        if (!InstallStackOverflowHandlerForThisThread().ok()) std::abort();
        absl::StatusOr<Stack> stack = Stack::Allocate(64 * 1024);
        if (!stack.ok()) std::abort();
        static_cast<volatile char*>(const_cast<void*>(stack->guard_lowest()))[100] = 1;
      },
      kOverflowMessage);
}

TEST(StackOverflowDeathTest, UnboundedRecursionOnAFiberHitsTheGuardPage) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(OverflowOnAFiber(), kOverflowMessage);
}

TEST(StackOverflowDeathTest, OverflowOnAWorkerThreadIsReportedToo) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(std::thread(OverflowOnAFiber).join(), kOverflowMessage);
}

// Any other fault must look exactly as it would without netpoll: the previous handler (a
// sanitizer's) or the default action (death by SIGSEGV, not our SIGABRT) takes it.
TEST(StackOverflowDeathTest, OtherFaultsReachThePreviousHandler) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  auto fault_outside_any_stack = [] {
    if (!InstallStackOverflowHandlerForThisThread().ok()) std::abort();
    void* page = mmap(nullptr, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) std::abort();
    static_cast<volatile char*>(page)[0] = 1;
  };
#if defined(NETPOLL_ASAN)
  EXPECT_DEATH(fault_outside_any_stack(), "AddressSanitizer: SEGV on unknown address");
#elif defined(NETPOLL_TSAN)
  EXPECT_DEATH(fault_outside_any_stack(), "ThreadSanitizer: SEGV on unknown address");
#else
  EXPECT_EXIT(fault_outside_any_stack(), ::testing::KilledBySignal(SIGSEGV), "");
#endif
}

// A SIGSEGV sent with raise()/kill() has no faulting instruction to re-run; it must still reach
// the previous handler or the default action.
TEST(StackOverflowDeathTest, SignalSentWithKillReachesThePreviousHandler) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  auto raise_segv = [] {
    if (!InstallStackOverflowHandlerForThisThread().ok()) std::abort();
    raise(SIGSEGV);
  };
#if defined(NETPOLL_ASAN)
  EXPECT_DEATH(raise_segv(), "AddressSanitizer: SEGV on unknown address");
#elif defined(NETPOLL_TSAN)
  EXPECT_DEATH(raise_segv(), "ThreadSanitizer: SEGV on unknown address");
#else
  EXPECT_EXIT(raise_segv(), ::testing::KilledBySignal(SIGSEGV), "");
#endif
}

}  // namespace
}  // namespace netpoll::platform
