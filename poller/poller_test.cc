// The poller loop: ownership of the blocking poll, wake-ups and timers (R28-R31).
//
// No OS thread parks on I/O in this binary and a no-poller hook is installed, so the background
// poll thread never starts: the test threads are the only ones polling, and each race below is
// forced by waiting until the poller is in the state the race needs.
#include "poller/poller.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "platform/clock.h"
#include "platform/socket.h"
#include "poller/poll_desc_test_peer.h"
#include "poller/test_hooks.h"
#include "tests/util/sync.h"

namespace netpoll::poller {
namespace {

using platform::MonotonicNanos;
using testing::BoundedThread;
using testing::WaitUntil;

constexpr int64_t kMs = 1'000'000;
constexpr int64_t kTenSeconds = 10'000 * kMs;

std::atomic<int> no_poller_calls{0};
bool CountNoPoller() {
  no_poller_calls.fetch_add(1);
  return true;
}

class PollerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Poller::Get().SetNoPollerHook(&CountNoPoller);
    SetCurrentTimerHeap(nullptr);
    // Drain any wake-up left by an earlier test, so each test starts quiet.
    Poller::Get().Wakeup();
    ReadyList ready;
    Poller::Get().Poll(kTenSeconds, &ready);
  }

  // A timer that records when it fired.
  struct Probe {
    Timer timer;
    std::atomic<int64_t> fired_at{0};
    static void Fire(void* arg, uintptr_t, ReadyList*) {
      static_cast<Probe*>(arg)->fired_at = MonotonicNanos();
    }
  };

  // Blocks in Poll as the owner, repeatedly, until `done` holds.
  static void PollUntil(const std::function<bool()>& done) {
    while (!done()) {
      ReadyList ready;
      Poller::Get().Poll(kTenSeconds, &ready);
      Poller::Get().ReadyAll(ready);
    }
  }
  static bool OwnerBlocked() {
    return WaitUntil([] { return Poller::Get().poll_owned() && Poller::Get().poll_until() != 0; });
  }
};

// R28: many concurrent Wakeups while nobody drains make one kernel write, and the next blocking
// poll returns at once.
TEST_F(PollerTest, R28_CoalescedBreaks) {
  uint64_t writes = Poller::Get().backend().wake_writes();
  std::vector<std::thread> threads;
  std::atomic<bool> go{false};
  for (int i = 0; i < 100; ++i) {
    threads.emplace_back([&] {
      while (!go.load()) std::this_thread::yield();
      for (int j = 0; j < 10; ++j) Poller::Get().Wakeup();
    });
  }
  go = true;
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(Poller::Get().backend().wake_writes(), writes + 1);
  int64_t start = MonotonicNanos();
  ReadyList ready;
  Poller::Get().Poll(kTenSeconds, &ready);
  EXPECT_LT(MonotonicNanos() - start, 5'000 * kMs);
}

// R28 with a blocked owner: concurrent breaks wake it.
TEST_F(PollerTest, R28_ConcurrentBreaksWakeTheBlockedPoller) {
  BoundedThread poller([] {
    ReadyList ready;
    Poller::Get().Poll(kTenSeconds * 6, &ready);
  });
  ASSERT_TRUE(OwnerBlocked());
  std::vector<std::thread> threads;
  for (int i = 0; i < 32; ++i) threads.emplace_back([] { Poller::Get().Wakeup(); });
  for (std::thread& t : threads) t.join();
  poller.Join();
}

// R29: a non-blocking poll that sees the wake-up leaves it for the blocking one.
TEST_F(PollerTest, R29_BreakSurvivesANonBlockingPoll) {
  Poller::Get().Wakeup();
  {
    ReadyList ready;
    Poller::Get().Poll(0, &ready);  // M2: not the owner, does not consume it.
  }
  int64_t start = MonotonicNanos();
  BoundedThread m1([] {
    ReadyList ready;
    Poller::Get().Poll(kTenSeconds * 6, &ready);
  });
  m1.Join();
  EXPECT_LT(MonotonicNanos() - start, 5'000 * kMs);
}

// R30: a timer earlier than the blocked poll's plan breaks the poll, and fires on time.
TEST_F(PollerTest, R30_EarlierTimerWakesTheBlockedPoller) {
  Probe probe;
  BoundedThread m1([&] { PollUntil([&] { return probe.fired_at.load() != 0; }); });
  ASSERT_TRUE(OwnerBlocked());
  // Planned to sleep its whole 10 s: no timer exists.
  EXPECT_GT(Poller::Get().poll_until(), MonotonicNanos() + 5'000 * kMs);
  uint64_t wakeups = Poller::Get().stats().wakeups;
  int64_t when = MonotonicNanos() + 1 * kMs;
  ArmTimer(&probe.timer, when, &Probe::Fire, &probe, 0);
  EXPECT_EQ(Poller::Get().stats().wakeups, wakeups + 1);  // NotifyTimerArmed broke the poll.
  m1.Join();
  EXPECT_GE(probe.fired_at.load(), when);
  EXPECT_LT(probe.fired_at.load() - when, 2'000 * kMs);
}

// R30, other half: a later timer does not break the poll (its plan is earlier anyway).
TEST_F(PollerTest, R30_LaterTimerDoesNotBreakThePoll) {
  Probe early, late;
  ArmTimer(&early.timer, MonotonicNanos() + 300 * kMs, &Probe::Fire, &early, 0);
  BoundedThread m1([&] { PollUntil([&] { return early.fired_at.load() != 0; }); });
  ASSERT_TRUE(OwnerBlocked());
  uint64_t wakeups = Poller::Get().stats().wakeups;
  ArmTimer(&late.timer, MonotonicNanos() + kTenSeconds, &Probe::Fire, &late, 0);
  EXPECT_EQ(Poller::Get().stats().wakeups, wakeups);
  m1.Join();
  EXPECT_TRUE(StopTimer(&late.timer));
}

// R30: with nobody in the poll, arming a timer asks the runtime for a poller instead.
TEST_F(PollerTest, R30_NoPollerAsksTheRuntime) {
  ASSERT_FALSE(Poller::Get().poll_owned());
  int calls = no_poller_calls.load();
  Probe probe;
  ArmTimer(&probe.timer, MonotonicNanos() + kTenSeconds, &Probe::Fire, &probe, 0);
  EXPECT_EQ(no_poller_calls.load(), calls + 1);
  EXPECT_TRUE(StopTimer(&probe.timer));
}

// R31: the owner has cleared its plan but not yet released the token when a timer is armed: the
// waker breaks the (next) poll, at worst spuriously, and never misses the timer.
std::atomic<bool> r31_in_window{false};
testing::Event* r31_armed = nullptr;

void HoldOwnerInReleaseWindow(HookPoint point, PollDesc*) {
  if (point != HookPoint::kPollBeforeRelease || r31_in_window.exchange(true)) return;
  // Park the owner inside the window until the test has armed its timer.
  EXPECT_TRUE(r31_armed->WaitFor());
}

TEST_F(PollerTest, R31_WakerChecksWhileThePollerReturns) {
  Probe probe;
  testing::Event armed;
  r31_armed = &armed;
  r31_in_window = false;
  BoundedThread m1([&] { PollUntil([&] { return probe.fired_at.load() != 0; }); });
  ASSERT_TRUE(OwnerBlocked());
  SetTestHook(&HoldOwnerInReleaseWindow);
  Poller::Get().Wakeup();  // Make the owner return into the window.
  ASSERT_TRUE(WaitUntil([&] { return r31_in_window.load(); }));
  EXPECT_TRUE(Poller::Get().poll_owned());
  EXPECT_EQ(Poller::Get().poll_until(), 0);
  uint64_t wakeups = Poller::Get().stats().wakeups;
  int64_t when = MonotonicNanos() + 50 * kMs;
  ArmTimer(&probe.timer, when, &Probe::Fire, &probe, 0);
  EXPECT_EQ(Poller::Get().stats().wakeups, wakeups + 1);  // Saw "owner, plan 0": broke the poll.
  armed.Notify();
  m1.Join();
  SetTestHook(nullptr);
  EXPECT_GE(probe.fired_at.load(), when);
}

// Only one thread blocks: a second caller polls without blocking while the owner sleeps.
TEST_F(PollerTest, OnlyOneThreadBlocks) {
  BoundedThread m1([] {
    ReadyList ready;
    Poller::Get().Poll(kTenSeconds * 6, &ready);
  });
  ASSERT_TRUE(OwnerBlocked());
  int64_t start = MonotonicNanos();
  ReadyList ready;
  Poller::Get().Poll(kTenSeconds, &ready);
  EXPECT_LT(MonotonicNanos() - start, 5'000 * kMs);
  EXPECT_TRUE(Poller::Get().poll_owned());
  Poller::Get().Wakeup();
  m1.Join();
}

// A poll takes every ready event, not just one batch of the backend.
TEST_F(PollerTest, TakesEverythingReadyInOnePoll) {
  constexpr int kSockets = 3 * backends::NativeBackend::kMaxEvents + 7;
  std::vector<std::pair<int, int>> pairs;
  std::vector<PollDesc*> pds;
  for (int i = 0; i < kSockets; ++i) {
    auto pair = platform::CreateSocketPair(platform::SocketType::kStream);
    ASSERT_TRUE(pair.ok());
    pairs.push_back(pair.value);
    absl::StatusOr<PollDesc*> pd = Poller::Get().Open(pair.value.first);
    ASSERT_TRUE(pd.ok());
    pds.push_back(*pd);
  }
  {
    ReadyList ready;
    Poller::Get().Poll(0, &ready);  // Consume the initial writability edges.
  }
  for (PollDesc* pd : pds) ASSERT_EQ(pd->Prepare(kRead), PollError::kNone);
  for (auto& [a, b] : pairs) ASSERT_EQ(write(b, "x", 1), 1);
  ReadyList ready;
  Poller::Get().Poll(0, &ready);
  int ready_count = 0;
  for (PollDesc* pd : pds) {
    ready_count += PollDescTestPeer::State(pd, kRead) == PollDescTestPeer::SemaState::kReady;
  }
  EXPECT_EQ(ready_count, kSockets);
  for (size_t i = 0; i < pds.size(); ++i) {
    pds[i]->Evict();
    EXPECT_TRUE(Poller::Get().Close(pds[i]).ok());
    close(pairs[i].first);
    close(pairs[i].second);
  }
}

TEST_F(PollerTest, WorkerTimerHeapsAreScannedAndRun) {
  TimerHeap worker_heap;
  Poller::Get().RegisterTimerHeap(&worker_heap);
  SetCurrentTimerHeap(&worker_heap);
  Probe probe;
  int64_t when = MonotonicNanos() + 2 * kMs;
  ArmTimer(&probe.timer, when, &Probe::Fire, &probe, 0);
  SetCurrentTimerHeap(nullptr);
  EXPECT_EQ(Poller::Get().EarliestTimer(), when);
  PollUntil([&] { return probe.fired_at.load() != 0; });
  EXPECT_GE(probe.fired_at.load(), when);
  Poller::Get().UnregisterTimerHeap(&worker_heap);
  EXPECT_EQ(Poller::Get().EarliestTimer(), kNever);
}

// R29/R30/R31 unforced: one thread polls in a loop while others arm timers at random short
// delays (each one possibly earlier than the poll's plan) and break the poll; every timer fires,
// not early, within a generous bound.
TEST_F(PollerTest, R29_R30_R31_TimersArmedWhileThePollerLoops) {
  constexpr int kThreads = 4;
  constexpr int kTimersPerThread = 200;
  struct Armed {
    Timer timer;
    int64_t when = 0;
    std::atomic<int64_t> fired_at{0};
    static void Fire(void* arg, uintptr_t, ReadyList*) {
      static_cast<Armed*>(arg)->fired_at = MonotonicNanos();
    }
  };
  std::vector<std::unique_ptr<Armed>> all;
  for (int i = 0; i < kThreads * kTimersPerThread; ++i) all.push_back(std::make_unique<Armed>());
  std::atomic<int> armed{0};
  BoundedThread poller_thread([&] {
    PollUntil([&] {
      if (armed.load() < kThreads * kTimersPerThread) return false;
      for (auto& a : all) {
        if (a->fired_at.load() == 0) return false;
      }
      return true;
    });
  });
  std::vector<std::thread> armers;
  for (int t = 0; t < kThreads; ++t) {
    armers.emplace_back([&, t] {
      std::mt19937 rng(t);
      for (int i = 0; i < kTimersPerThread; ++i) {
        Armed* a = all[t * kTimersPerThread + i].get();
        a->when = MonotonicNanos() + static_cast<int64_t>(rng() % 2'000'000);
        ArmTimer(&a->timer, a->when, &Armed::Fire, a, 0);
        armed.fetch_add(1);
        if (i % 16 == 0) Poller::Get().Wakeup();
      }
    });
  }
  for (std::thread& t : armers) t.join();
  Poller::Get().Wakeup();  // The last arming may have happened after the poller's last check.
  poller_thread.Join();
  for (auto& a : all) {
    EXPECT_GE(a->fired_at.load(), a->when);
    EXPECT_LT(a->fired_at.load() - a->when, 5'000 * kMs);
  }
}

// R28 with the poller loop: wake-up storms from many threads while it polls; it never wedges.
TEST_F(PollerTest, R28_WakeupStormWhileLooping) {
  std::atomic<bool> stop{false};
  std::atomic<int> polls{0};
  BoundedThread poller_thread([&] {
    while (!stop.load()) {
      ReadyList ready;
      Poller::Get().Poll(kTenSeconds, &ready);
      polls.fetch_add(1);
    }
  });
  std::vector<std::thread> wakers;
  for (int t = 0; t < 8; ++t) {
    wakers.emplace_back([&] {
      for (int i = 0; i < 2000; ++i) Poller::Get().Wakeup();
    });
  }
  for (std::thread& t : wakers) t.join();
  int before = polls.load();
  Poller::Get().Wakeup();  // A poller stuck in a 10 s wait would not come round within the bound.
  ASSERT_TRUE(WaitUntil([&] { return polls.load() > before; }, std::chrono::seconds(5)));
  stop = true;
  Poller::Get().Wakeup();
  poller_thread.Join();
}

void IgnoreSignal(int) {}

// R33 under load: signals keep interrupting the blocked poll; each interruption returns early and
// the loop recomputes its timeout from the clock, so the timer still fires on time, not late.
TEST_F(PollerTest, R33_SignalStormDoesNotDelayTimers) {
  struct sigaction action {}, old {};
  action.sa_handler = &IgnoreSignal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGUSR1, &action, &old);
  for (int round = 0; round < 10; ++round) {
    Probe probe;
    std::atomic<pthread_t> polling_thread{};
    std::atomic<bool> done{false};
    int64_t when = MonotonicNanos() + 20 * kMs;
    ArmTimer(&probe.timer, when, &Probe::Fire, &probe, 0);
    BoundedThread m1([&] {
      polling_thread = pthread_self();
      PollUntil([&] { return probe.fired_at.load() != 0; });
      done = true;
    });
    ASSERT_TRUE(WaitUntil([&] { return polling_thread.load() != pthread_t{}; }));
    while (!done.load()) {
      pthread_kill(polling_thread.load(), SIGUSR1);
      std::this_thread::yield();
    }
    m1.Join();
    EXPECT_GE(probe.fired_at.load(), when);
    EXPECT_LT(probe.fired_at.load() - when, 2'000 * kMs);
  }
  sigaction(SIGUSR1, &old, nullptr);
}

TEST(PollerIdentity, BackendAndItsDescriptors) {
  EXPECT_STREQ(Poller::Get().backend_name(), "epoll");
  int owned = 0;
  for (int fd = 0; fd < 1024; ++fd) owned += Poller::Get().IsPollDescriptor(fd) ? 1 : 0;
  EXPECT_EQ(owned, 2);
}

}  // namespace
}  // namespace netpoll::poller
