#include "uthread/runtime.h"

#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "gtest/gtest.h"
#include "platform/clock.h"
#include "platform/socket.h"
#include "poller/blocking.h"
#include "poller/poller.h"
#include "poller/semaphore.h"
#include "poller/test_hooks.h"
#include "tests/util/sync.h"
#include "uthread/fiber_local.h"
#include "uthread/runtime_impl.h"

namespace netpoll {
namespace {

using platform::MonotonicNanos;
using testing::Event;
using testing::WaitUntil;

std::unique_ptr<Runtime> StartRuntime(int workers) {
  absl::StatusOr<std::unique_ptr<Runtime>> runtime = Runtime::Start({.workers = workers});
  EXPECT_TRUE(runtime.ok()) << runtime.status();
  return std::move(*runtime);
}

int CurrentWorkerIndex() {
  uthread_internal::Worker* worker = uthread_internal::CurrentWorker();
  return worker != nullptr ? worker->index : -1;
}

TEST(Runtime, RunsFibersAndShutsDownAfterTheyFinish) {
  auto runtime = StartRuntime(2);
  EXPECT_EQ(runtime->workers(), 2);
  std::atomic<int> ran{0};
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(runtime->Go([&] {
      EXPECT_TRUE(InFiber());
      EXPECT_NE(CurrentFiberId(), 0u);
      ran.fetch_add(1);
    }).ok());
  }
  ASSERT_TRUE(runtime->Shutdown().ok());
  EXPECT_EQ(ran.load(), 100);
  EXPECT_FALSE(InFiber());
  EXPECT_EQ(CurrentFiberId(), 0u);
  EXPECT_EQ(runtime->Go([] {}).code(), absl::StatusCode::kFailedPrecondition);
}

// 100,000 fibers, half spawned from a plain thread and half from a fiber (the two spawn paths), in
// waves of 5,000: on kernels before 6.13 each live fiber holds two memory mappings (stack and
// PROT_NONE guard), and the default limit of 65,530 mappings caps how many can be alive at once
// (see platform/stack.h); the waves also bound the test's memory.
TEST(Runtime, AHundredThousandFibers) {
  auto runtime = StartRuntime(2);
  constexpr int kFibers = 100'000;
  constexpr int kWave = 5'000;
  std::atomic<int> finished_inside{0}, finished_outside{0};
  std::atomic<int> spawn_errors{0};
  ASSERT_TRUE(runtime->Go([&] {
    for (int wave = 0; wave < kFibers / 2 / kWave; ++wave) {
      for (int i = 0; i < kWave; ++i) {
        if (!Spawn([&] { finished_inside.fetch_add(1); }).ok()) spawn_errors.fetch_add(1);
      }
      while (finished_inside.load() < (wave + 1) * kWave && spawn_errors.load() == 0) Yield();
    }
  }).ok());
  for (int wave = 0; wave < kFibers / 2 / kWave; ++wave) {
    for (int i = 0; i < kWave; ++i) ASSERT_TRUE(runtime->Go([&] { finished_outside.fetch_add(1); }).ok());
    ASSERT_TRUE(WaitUntil([&] { return finished_outside.load() >= (wave + 1) * kWave; }));
  }
  ASSERT_TRUE(runtime->Shutdown().ok());
  EXPECT_EQ(spawn_errors.load(), 0);
  EXPECT_EQ(finished_inside.load() + finished_outside.load(), kFibers);
  RuntimeStats stats = runtime->stats();
  EXPECT_EQ(stats.fibers_created, static_cast<uint64_t>(kFibers + 1));
  EXPECT_EQ(stats.fibers_live, 0u);
  EXPECT_GE(stats.context_switches, static_cast<uint64_t>(kFibers + 1));
}

TEST(Runtime, ParkAndReadyBetweenFibersAndFromAPlainThread) {
  auto runtime = StartRuntime(2);
  poller::WaiterSemaphore to_fiber, to_thread;
  std::atomic<int> rounds{0};
  ASSERT_TRUE(runtime->Go([&] {
    for (int i = 0; i < 2000; ++i) {
      to_fiber.Acquire();
      rounds.fetch_add(1);
      to_thread.Release();
    }
  }).ok());
  for (int i = 0; i < 2000; ++i) {
    to_fiber.Release();  // Readies the fiber from a plain thread.
    to_thread.Acquire();
  }
  ASSERT_TRUE(runtime->Shutdown().ok());
  EXPECT_EQ(rounds.load(), 2000);
}

// No lost wake-ups: many fibers park and are readied from several plain threads at once.
TEST(Runtime, NoLostWakeupsUnderCrossThreadReady) {
  auto runtime = StartRuntime(2);
  constexpr int kFibers = 64;
  constexpr int kRounds = 300;
  std::vector<std::unique_ptr<poller::WaiterSemaphore>> sems;
  for (int i = 0; i < kFibers; ++i) sems.push_back(std::make_unique<poller::WaiterSemaphore>());
  std::atomic<int> done{0};
  for (int i = 0; i < kFibers; ++i) {
    ASSERT_TRUE(runtime->Go([&, i] {
      for (int r = 0; r < kRounds; ++r) sems[i]->Acquire();
      done.fetch_add(1);
    }).ok());
  }
  std::vector<std::thread> wakers;
  for (int t = 0; t < 4; ++t) {
    wakers.emplace_back([&, t] {
      for (int r = 0; r < kRounds; ++r) {
        for (int i = t; i < kFibers; i += 4) sems[i]->Release();
      }
    });
  }
  for (std::thread& w : wakers) w.join();
  ASSERT_TRUE(runtime->Shutdown(absl::Now() + absl::Seconds(60)).ok()) << "a wake-up was lost";
  EXPECT_EQ(done.load(), kFibers);
}

// Two fibers queued on one worker: the first spins until the second has run. Only another worker
// stealing the second can end the spin, so the test times out without work stealing.
TEST(Runtime, WorkStealingRunsQueuedFibersOfABusyWorker) {
  auto runtime = StartRuntime(2);
  std::atomic<bool> second_ran{false};
  std::atomic<bool> timed_out{false};
  std::atomic<int> spinner_worker{-1}, second_worker{-1};
  ASSERT_TRUE(runtime->Go([&] {
    // Both go onto this worker's local queue.
    ASSERT_TRUE(Spawn([&] {
      spinner_worker = CurrentWorkerIndex();
      int64_t deadline = MonotonicNanos() + 30'000'000'000;
      while (!second_ran.load()) {
        if (MonotonicNanos() > deadline) {
          timed_out = true;
          return;
        }
      }
    }).ok());
    ASSERT_TRUE(Spawn([&] {
      second_worker = CurrentWorkerIndex();
      second_ran = true;
    }).ok());
  }).ok());
  ASSERT_TRUE(runtime->Shutdown().ok());
  EXPECT_FALSE(timed_out.load()) << "the queued fiber was never stolen";
  EXPECT_NE(spinner_worker.load(), second_worker.load());
  EXPECT_GE(runtime->stats().steals, 1u);
}

// The fiber parks; two hogs then occupy both workers; the fiber is readied and only the hog on the
// *other* worker is released, so the fiber must resume there, and its fiber-local value must come
// along. (Readying never picks a worker on purpose; busy workers leave no choice.)
TEST(Runtime, FiberLocalsFollowTheFiberAcrossWorkers) {
  static FiberLocal<std::string> name;
  auto runtime = StartRuntime(2);
  poller::WaiterSemaphore sem;
  std::atomic<int> before{-1}, after{-1};
  std::atomic<bool> hog_running[2] = {false, false};
  std::atomic<bool> hog_stop[2] = {false, false};
  std::atomic<bool> hog_timed_out{false};
  std::string value_after;
  ASSERT_TRUE(runtime->Go([&] {
    name.get() = "fiber-one";
    before = CurrentWorkerIndex();
    sem.Acquire();
    after = CurrentWorkerIndex();
    value_after = name.get();
  }).ok());
  ASSERT_TRUE(WaitUntil([&] { return before.load() >= 0; }));
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(runtime->Go([&] {
      int me = CurrentWorkerIndex();
      hog_running[me] = true;
      int64_t deadline = MonotonicNanos() + 30'000'000'000;
      while (!hog_stop[me].load()) {
        if (MonotonicNanos() > deadline) {
          hog_timed_out = true;
          return;
        }
      }
    }).ok());
  }
  // Both workers busy means the fiber is parked and nobody can take it yet.
  ASSERT_TRUE(WaitUntil([&] { return hog_running[0].load() && hog_running[1].load(); }));
  sem.Release();
  hog_stop[1 - before.load()] = true;
  ASSERT_TRUE(WaitUntil([&] { return after.load() >= 0; }));
  hog_stop[before.load()] = true;
  ASSERT_TRUE(runtime->Shutdown().ok());
  EXPECT_FALSE(hog_timed_out.load());
  EXPECT_EQ(after.load(), 1 - before.load()) << "the fiber did not move to the other worker";
  EXPECT_EQ(value_after, "fiber-one");
  name.get() = "main-thread";  // Plain threads have their own values.
  EXPECT_EQ(name.get(), "main-thread");
}

struct Counted {
  static std::atomic<int> live;
  Counted() { live.fetch_add(1); }
  ~Counted() { live.fetch_sub(1); }
};
std::atomic<int> Counted::live{0};

TEST(Runtime, FiberLocalValuesAreDestroyedWithTheirFiber) {
  static FiberLocal<Counted> counted;
  auto runtime = StartRuntime(1);
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(runtime->Go([] { counted.get(); }).ok());
  ASSERT_TRUE(runtime->Shutdown().ok());
  EXPECT_EQ(Counted::live.load(), 0);
}

TEST(Runtime, SleepNeverReturnsEarly) {
  auto runtime = StartRuntime(2);
  std::atomic<int> early{0}, slept{0};
  for (int i = 0; i < 200; ++i) {
    absl::Duration d = absl::Microseconds(50 * (i % 40 + 1));
    ASSERT_TRUE(runtime->Go([&, d] {
      int64_t start = MonotonicNanos();
      netpoll::SleepFor(d);
      if (MonotonicNanos() - start < absl::ToInt64Nanoseconds(d)) early.fetch_add(1);
      slept.fetch_add(1);
    }).ok());
  }
  ASSERT_TRUE(runtime->Shutdown(absl::Now() + absl::Seconds(60)).ok());
  EXPECT_EQ(slept.load(), 200);
  EXPECT_EQ(early.load(), 0);
  EXPECT_GE(runtime->stats().timers_fired + poller::Poller::Get().stats().timers_fired, 1u);
}

TEST(Runtime, SleepOnAPlainThreadToo) {
  int64_t start = MonotonicNanos();
  netpoll::SleepFor(absl::Milliseconds(5));
  EXPECT_GE(MonotonicNanos() - start, 5'000'000);
  netpoll::SleepFor(absl::ZeroDuration());
  netpoll::SleepUntil(absl::Now() - absl::Seconds(1));
}

TEST(Runtime, YieldLetsOthersRun) {
  auto runtime = StartRuntime(1);
  std::atomic<int> turn{0};
  std::atomic<bool> stuck{false};
  auto player = [&](int me) {
    for (int i = 0; i < 100; ++i) {
      int64_t deadline = MonotonicNanos() + 10'000'000'000;
      while (turn.load() % 2 != me) {
        if (MonotonicNanos() > deadline) {
          stuck = true;
          return;
        }
        Yield();  // On one worker, only a yield lets the other player move.
      }
      turn.fetch_add(1);
    }
  };
  ASSERT_TRUE(runtime->Go([&] { player(0); }).ok());
  ASSERT_TRUE(runtime->Go([&] { player(1); }).ok());
  ASSERT_TRUE(runtime->Shutdown().ok());
  EXPECT_FALSE(stuck.load());
  EXPECT_EQ(turn.load(), 200);
}

TEST(Runtime, RunBlockingDoesNotStallTheWorker) {
  auto runtime = StartRuntime(1);
  std::atomic<bool> other_ran{false};
  std::atomic<bool> saw_other{false};
  std::atomic<bool> off_worker{false};
  ASSERT_TRUE(runtime->Go([&] {
    poller::RunBlocking([&] {
      off_worker = uthread_internal::CurrentWorker() == nullptr;
      // Blocks this helper thread until the other fiber ran on the (only) worker.
      saw_other = WaitUntil([&] { return other_ran.load(); });
    });
  }).ok());
  ASSERT_TRUE(runtime->Go([&] { other_ran = true; }).ok());
  ASSERT_TRUE(runtime->Shutdown().ok());
  EXPECT_TRUE(off_worker.load());
  EXPECT_TRUE(saw_other.load()) << "the blocking call stalled the worker";
}

TEST(Runtime, ShutdownDeadlineReportsWhatIsStillRunning) {
  auto runtime = StartRuntime(1);
  poller::WaiterSemaphore sem;
  ASSERT_TRUE(runtime->Go([&] { sem.Acquire("test semaphore"); }).ok());
  ASSERT_TRUE(WaitUntil([&] { return runtime->DumpFibers().find("parked") != std::string::npos; }));
  absl::Status early = runtime->Shutdown(absl::Now() + absl::Milliseconds(20));
  EXPECT_EQ(early.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_NE(early.message().find("parked: test semaphore"), absl::string_view::npos) << early;
  EXPECT_NE(early.message().find("runtime_test.cc"), absl::string_view::npos) << early;
  EXPECT_TRUE(runtime->Go([] {}).ok());  // Still running after a missed deadline.
  sem.Release();
  EXPECT_TRUE(runtime->Shutdown().ok());
  EXPECT_TRUE(runtime->Shutdown().ok());  // Idempotent.
}

TEST(Runtime, ShutdownFromItsOwnFiberIsRefused) {
  std::unique_ptr<Runtime> runtime = StartRuntime(1);
  absl::Status inside;
  Runtime* raw = runtime.get();
  ASSERT_TRUE(runtime->Go([&] { inside = raw->Shutdown(); }).ok());
  ASSERT_TRUE(runtime->Shutdown().ok());
  EXPECT_EQ(inside.code(), absl::StatusCode::kFailedPrecondition);
}

TEST(Runtime, DumpShowsIoWaitWithFdAndDeadline) {
  auto runtime = StartRuntime(1);
  auto pair = platform::CreateSocketPair(platform::SocketType::kStream);
  ASSERT_TRUE(pair.ok());
  absl::StatusOr<poller::PollDesc*> pd = poller::Poller::Get().Open(pair.value.first);
  ASSERT_TRUE(pd.ok());
  (*pd)->SetDeadline(poller::DeadlineAfter(3'600'000'000'000, MonotonicNanos()), poller::kRead);
  std::atomic<bool> returned{false};
  ASSERT_TRUE(runtime->Go([&] {
    (*pd)->Prepare(poller::kRead);
    (*pd)->Wait(poller::kRead);
    returned = true;
  }).ok());
  std::string dump;
  ASSERT_TRUE(WaitUntil([&] {
    dump = runtime->DumpFibers();
    return dump.find("IO wait read fd") != std::string::npos;
  })) << dump;
  EXPECT_NE(dump.find("fd " + std::to_string(pair.value.first)), std::string::npos) << dump;
  EXPECT_NE(dump.find("deadline in 59m"), std::string::npos) << dump;
  EXPECT_NE(DumpAllFibers().find("IO wait read"), std::string::npos);
  (*pd)->Evict();
  ASSERT_TRUE(runtime->Shutdown().ok());
  EXPECT_TRUE(returned.load());
  ASSERT_TRUE(poller::Poller::Get().Close(*pd).ok());
  close(pair.value.first);
  close(pair.value.second);
}

// The setting of R30 and R31 with the real scheduler: one worker, one fiber parked in a read wait
// whose deadline is 60 s away, and the poll owner blocked in the backend planning to wake then.
class RuntimeParkedReader : public ::testing::Test {
 protected:
  void SetUp() override {
    runtime_ = StartRuntime(1);
    auto pair = platform::CreateSocketPair(platform::SocketType::kStream);
    ASSERT_TRUE(pair.ok());
    pair_ = pair.value;
    absl::StatusOr<poller::PollDesc*> pd = poller::Poller::Get().Open(pair_.first);
    ASSERT_TRUE(pd.ok());
    pd_ = *pd;
    pd_->SetDeadline(poller::DeadlineAfter(60'000'000'000, MonotonicNanos()), poller::kRead);
    ASSERT_TRUE(runtime_->Go([this] {
      pd_->Prepare(poller::kRead);
      result_ = static_cast<int>(pd_->Wait(poller::kRead));
    }).ok());
    ASSERT_TRUE(WaitUntil([] {
      return poller::Poller::Get().poll_owned() && poller::Poller::Get().poll_until() > MonotonicNanos() + 30'000'000'000;
    }));
  }

  void TearDown() override {
    if (pd_ != nullptr) {
      pd_->Evict();
      EXPECT_TRUE(poller::Poller::Get().Close(pd_).ok());
    }
    if (pair_.first >= 0) close(pair_.first);
    if (pair_.second >= 0) close(pair_.second);
  }

  // Moves the parked fiber's deadline to 1 ms from now; returns when that was.
  int64_t MoveDeadlineEarlier() {
    int64_t now = MonotonicNanos();
    pd_->SetDeadline(poller::DeadlineAfter(1'000'000, now), poller::kRead);
    return now;
  }

  // The fiber must time out promptly after `moved_at` (not at the old 60 s plan).
  void ExpectPromptTimeout(int64_t moved_at) {
    ASSERT_TRUE(runtime_->Shutdown(absl::Now() + absl::Seconds(20)).ok()) << runtime_->DumpFibers();
    EXPECT_EQ(result_.load(), static_cast<int>(poller::PollError::kTimeout));
    EXPECT_LT(MonotonicNanos() - moved_at, 5'000'000'000);
  }

  std::unique_ptr<Runtime> runtime_;
  std::pair<int, int> pair_{-1, -1};
  poller::PollDesc* pd_ = nullptr;
  std::atomic<int> result_{-1};
};

// R30: a plain thread sets an earlier deadline while the poll owner blocks; it must wake for it.
TEST_F(RuntimeParkedReader, R30_EarlierDeadlineWakesTheWorkerInThePoller) {
  ExpectPromptTimeout(MoveDeadlineEarlier());
}

// R31 forced. The poll owner has just returned from the backend: it still holds the owner token
// but has cleared its planned wake time. A plain thread now moves the deadline earlier. The waker
// must read "owner, no plan" and break the poll (one wake-up), and the next poll must honour the
// new deadline. The owner is the only worker, or the process's background poll thread if an
// earlier test started it (then the worker parks and relies on that thread to ready its fiber,
// which is the same race).
std::atomic<bool> r31_hold{false};
Event* r31_in_window = nullptr;
Event* r31_armed = nullptr;

void HoldOwnerInPollReleaseWindow(poller::HookPoint point, poller::PollDesc*) {
  if (point != poller::HookPoint::kPollBeforeRelease) return;
  if (!r31_hold.exchange(false)) return;  // Only the first poll after the test asked.
  r31_in_window->Notify();
  EXPECT_TRUE(r31_armed->WaitFor()) << "the test thread never armed its deadline";
}

TEST_F(RuntimeParkedReader, R31_DeadlineSetWhileTheOwnerReturnsFromThePoller) {
  Event in_window, armed;
  r31_in_window = &in_window;
  r31_armed = &armed;
  r31_hold = true;
  poller::SetTestHook(&HoldOwnerInPollReleaseWindow);
  absl::Cleanup remove_hook = [&] {
    armed.Notify();  // Never leave the owner held if an assertion below returns early.
    poller::SetTestHook(nullptr);
  };
  poller::Poller::Get().Wakeup();  // The owner returns from the backend into the window.
  ASSERT_TRUE(in_window.WaitFor());
  EXPECT_TRUE(poller::Poller::Get().poll_owned());
  EXPECT_EQ(poller::Poller::Get().poll_until(), 0);
  uint64_t wakeups = poller::Poller::Get().stats().wakeups;
  int64_t moved_at = MoveDeadlineEarlier();
  EXPECT_EQ(poller::Poller::Get().stats().wakeups, wakeups + 1);  // Saw "owner, no plan": broke the poll.
  armed.Notify();
  ExpectPromptTimeout(moved_at);
}

// R29/R31/R32 unforced with the real scheduler: fibers spawned from plain threads while workers
// block in and return from the poller must all run; I/O waiters must all be woken.
TEST(RuntimeStress, SpawnsAndIoWhileWorkersPoll) {
  auto runtime = StartRuntime(2);
  constexpr int kPairs = 32;
  std::vector<std::pair<int, int>> pairs;
  std::vector<poller::PollDesc*> pds;
  for (int i = 0; i < kPairs; ++i) {
    auto pair = platform::CreateSocketPair(platform::SocketType::kStream);
    ASSERT_TRUE(pair.ok());
    pairs.push_back(pair.value);
    pds.push_back(*poller::Poller::Get().Open(pair.value.first));
  }
  std::atomic<int> reads{0}, spawned_ran{0};
  for (int i = 0; i < kPairs; ++i) {
    ASSERT_TRUE(runtime->Go([&, i] {
      char b[8];
      int received = 0;
      while (received < 50) {
        pds[i]->Prepare(poller::kRead);
        ssize_t n = read(pairs[i].first, b, sizeof b);
        if (n > 0) {
          received += static_cast<int>(n);
          reads.fetch_add(static_cast<int>(n));
          continue;
        }
        pds[i]->Wait(poller::kRead);
      }
    }).ok());
  }
  std::thread writer([&] {
    for (int r = 0; r < 50; ++r) {
      for (auto& p : pairs) EXPECT_EQ(write(p.second, "x", 1), 1);
      EXPECT_TRUE(Spawn([&] { spawned_ran.fetch_add(1); }).ok());
      std::this_thread::yield();
    }
  });
  writer.join();
  ASSERT_TRUE(runtime->Shutdown(absl::Now() + absl::Seconds(60)).ok()) << runtime->DumpFibers();
  EXPECT_EQ(reads.load(), kPairs * 50);
  EXPECT_EQ(spawned_ran.load(), 50);
  for (int i = 0; i < kPairs; ++i) {
    pds[i]->Evict();
    ASSERT_TRUE(poller::Poller::Get().Close(pds[i]).ok());
    close(pairs[i].first);
    close(pairs[i].second);
  }
}

TEST(RunTest, ReturnsMainsResult) {
  EXPECT_EQ(netpoll::Run([] {
              EXPECT_TRUE(InFiber());
              std::atomic<bool> child{false};
              EXPECT_TRUE(Spawn([&] { child = true; }).ok());
              while (!child.load()) Yield();
              return 7;
            },
            {.workers = 1}),
            7);
}

void Recurse(volatile char* previous, int depth) {
  volatile char frame[512];
  frame[0] = previous != nullptr ? previous[0] : 1;
  if (depth > 0) Recurse(frame, depth + 1);
}

TEST(RuntimeDeathTest, StackOverflowHitsTheGuardPage) {
#if defined(NETPOLL_ASAN) || defined(NETPOLL_TSAN)
  GTEST_SKIP() << "the sanitizers' own stack handling reports this overflow differently";
#endif
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        auto runtime = StartRuntime(1);
        runtime->Go([] { Recurse(nullptr, 1); }).IgnoreError();
        runtime->Shutdown().IgnoreError();
      },
      "fiber stack overflow");
}

}  // namespace
}  // namespace netpoll
