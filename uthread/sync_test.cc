// Mutex, CondVar and WaitGroup, run on every kind of user thread (test_spawner.h).
//
// Every wait is bounded: a lost wake-up fails a bounded CondVar wait or aborts a bounded join,
// instead of hanging the suite. Nothing sleeps to make a race come out one way.
#include "uthread/sync.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <mutex>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "uthread/runtime.h"
#include "uthread/test_spawner.h"

namespace netpoll {
namespace {

using testing::Spawner;
using testing::SpawnerKind;

// A bound for waits that should end in microseconds; reaching it means a lost wake-up.
constexpr absl::Duration kBound = absl::Seconds(20);

class SyncTest : public ::testing::TestWithParam<SpawnerKind> {
 protected:
  Spawner& spawner() { return *spawner_; }

 private:
  std::unique_ptr<Spawner> spawner_ = GetParam().make();
};

// Busy work that keeps the CPU (and a lock, if held) for about `d`, without sleeping.
void Spin(absl::Duration d) {
  absl::Time end = absl::Now() + d;
  while (absl::Now() < end) {
  }
}

// ---------------------------------------------------------------------------------------------
// Mutex

// A plain (non-atomic) counter guarded by the Mutex: a broken lock loses increments, and
// ThreadSanitizer reports the race.
TEST_P(SyncTest, MutexExcludesUnderContention) {
  Mutex mu;
  int64_t counter = 0;
  bool inside = false;
  int overlaps = 0;  // guarded by mu, so only a broken lock can make it non-zero
  constexpr int kThreads = 8;
  constexpr int kIterations = 20000;
  for (int t = 0; t < kThreads; ++t) {
    spawner().Spawn([&, t] {
      for (int i = 0; i < kIterations; ++i) {
        // Mix the three ways to take it.
        if (i % 3 == 0) {
          std::lock_guard<Mutex> lock(mu);
          if (inside) ++overlaps;
          inside = true;
          ++counter;
          inside = false;
        } else if (i % 3 == 1) {
          std::unique_lock<Mutex> lock(mu);
          if (inside) ++overlaps;
          inside = true;
          ++counter;
          inside = false;
        } else {
          while (!mu.try_lock()) {
            if ((i + t) % 2 == 0) {
              mu.lock();
              break;
            }
            // Cooperative fibers: a hand-off owner waiting in a run queue needs a free worker
            // (without this, spinners on both workers hung the test under TSan).
            Yield();
          }
          if (inside) ++overlaps;
          inside = true;
          ++counter;
          inside = false;
          mu.unlock();
        }
      }
    });
  }
  spawner().JoinAll();
  EXPECT_EQ(counter, int64_t{kThreads} * kIterations);
  EXPECT_EQ(overlaps, 0);
}

TEST_P(SyncTest, MutexTryLockFailsWhileHeld) {
  Mutex mu;
  mu.lock();
  std::atomic<int> result{-1};
  spawner().Spawn([&] { result = mu.try_lock() ? 1 : 0; });
  spawner().JoinAll();
  EXPECT_EQ(result.load(), 0);
  mu.unlock();
  spawner().Spawn([&] {
    result = mu.try_lock() ? 1 : 0;
    if (result == 1) mu.unlock();
  });
  spawner().JoinAll();
  EXPECT_EQ(result.load(), 1);
}

// One user thread holds the lock while others queue; every unlock must wake (or hand to) a
// waiter. Long critical sections make every locker park, thousands of times.
TEST_P(SyncTest, MutexParkedWaitersAreAllWoken) {
  Mutex mu;
  int64_t counter = 0;
  constexpr int kThreads = 6;
  constexpr int kIterations = 1500;
  for (int t = 0; t < kThreads; ++t) {
    spawner().Spawn([&] {
      for (int i = 0; i < kIterations; ++i) {
        std::lock_guard<Mutex> lock(mu);
        ++counter;
        if (i % 100 == 0) Spin(absl::Microseconds(200));  // long enough that the others park
      }
    });
  }
  spawner().JoinAll();
  EXPECT_EQ(counter, int64_t{kThreads} * kIterations);
}

// A hog that takes the lock again as soon as it drops it must not keep the other user threads
// out for ever. (The hog yields between rounds, so that this also holds for cooperative fibers
// sharing one worker, where nobody else could run otherwise.)
TEST_P(SyncTest, MutexWaitersGetThroughAHog) {
  Mutex mu;
  std::atomic<int> served{0};
  std::atomic<bool> hog_gave_up{false};
  constexpr int kWaiters = 3;
  constexpr int kRoundsPerWaiter = 20;
  spawner().Spawn([&] {
    absl::Time give_up = absl::Now() + kBound;
    while (served.load() < kWaiters * kRoundsPerWaiter) {
      if (absl::Now() > give_up) {
        hog_gave_up = true;
        break;
      }
      mu.lock();
      Spin(absl::Microseconds(100));
      mu.unlock();
      spawner().Yield();
    }
  });
  for (int w = 0; w < kWaiters; ++w) {
    spawner().Spawn([&] {
      for (int i = 0; i < kRoundsPerWaiter; ++i) {
        mu.lock();
        served.fetch_add(1);
        mu.unlock();
      }
    });
  }
  spawner().JoinAll();
  EXPECT_FALSE(hog_gave_up.load());
  EXPECT_EQ(served.load(), kWaiters * kRoundsPerWaiter);
}

// Hand-off (starvation) mode, on preemptive OS threads. Every thread holds the lock for longer
// than the 1 ms starvation threshold and takes it again right after dropping it, so each waiter
// has waited > 1 ms by the time it is woken, and it loses whenever the thread that just unlocked
// (which need not wake up first) gets the lock back before it. After such a loss unlock must
// hand the lock to the queue. Whether a given round has a loss depends on the OS scheduler, so
// the threads run until the first hand-off (or a generous bound); nothing else is timed.
// (OS threads only: the point is preemption, which fibers sharing one worker do not have.)
TEST(MutexHandoffTest, StarvingWaitersAreHandedTheLock) {
  Mutex mu;
  const uint64_t handoffs_before = sync_internal::MutexHandoffs();
  int64_t counter = 0;  // guarded by mu
  std::atomic<bool> stop{false};
  constexpr int kThreads = 3;
  testing::OsThreadSpawner threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.Spawn([&] {
      absl::Time give_up = absl::Now() + kBound;
      while (!stop.load() && absl::Now() < give_up) {
        mu.lock();
        ++counter;
        Spin(absl::Microseconds(1200));
        mu.unlock();
        if (sync_internal::MutexHandoffs() > handoffs_before) stop = true;
      }
    });
  }
  threads.JoinAll();
  EXPECT_GT(sync_internal::MutexHandoffs(), handoffs_before);
  EXPECT_GT(counter, 0);
}

// The "last reference" pattern: lock, decrement, unlock, delete. unlock() must not touch the
// Mutex once another user thread can take (and then free) it; AddressSanitizer checks.
TEST_P(SyncTest, MutexMayBeDestroyedRightAfterTheLastUnlock) {
  struct Shared {
    Mutex mu;
    int refs;
  };
  constexpr int kThreads = 4;
  constexpr int kObjects = 3000;
  std::vector<Shared*> objects;
  for (int i = 0; i < kObjects; ++i) objects.push_back(new Shared{{}, kThreads});
  for (int t = 0; t < kThreads; ++t) {
    spawner().Spawn([&] {
      for (Shared* s : objects) {
        s->mu.lock();
        bool last = --s->refs == 0;
        s->mu.unlock();
        if (last) delete s;
      }
    });
  }
  spawner().JoinAll();
}

using SyncDeathTest = SyncTest;

TEST_P(SyncDeathTest, MutexUnlockOfUnlockedIsFatal) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        Mutex mu;
        mu.unlock();
      },
      "unlock of an unlocked mutex");
}

// ---------------------------------------------------------------------------------------------
// CondVar

// Two user threads pass a baton back and forth thousands of times; each pass is one Signal that
// must reach the one parked waiter. A lost one fails the bounded wait.
TEST_P(SyncTest, CondVarPingPongLosesNoSignal) {
  Mutex mu;
  CondVar cv[2];
  int turn = 0;  // guarded by mu
  int passes = 0;
  std::atomic<int> timeouts{0};
  constexpr int kPasses = 5000;
  for (int me = 0; me < 2; ++me) {
    spawner().Spawn([&, me] {
      for (;;) {
        std::unique_lock<Mutex> lock(mu);
        while (turn != me && passes < kPasses) {
          if (!cv[me].WaitFor(mu, kBound)) {
            timeouts.fetch_add(1);
            return;
          }
        }
        if (passes >= kPasses) {
          cv[1 - me].Signal();
          return;
        }
        ++passes;
        turn = 1 - me;
        lock.unlock();
        cv[1 - me].Signal();
      }
    });
  }
  spawner().JoinAll();
  EXPECT_EQ(timeouts.load(), 0);
  EXPECT_EQ(passes, kPasses);
}

TEST_P(SyncTest, CondVarSignalWakesExactlyOneInFifoOrder) {
  Mutex mu;
  CondVar cv;
  constexpr int kWaiters = 4;
  int queued = 0;          // guarded by mu
  std::vector<int> woken;  // guarded by mu, in wake-up order
  std::atomic<int> timeouts{0};
  std::atomic<int> extra_wakeups{0};
  for (int i = 0; i < kWaiters; ++i) {
    spawner().Spawn([&, i] {
      std::unique_lock<Mutex> lock(mu);
      // Take turns: waiter i queues only once i others have (a waiter is queued before it
      // releases mu, so seeing `queued` under mu proves it).
      while (queued != i) {
        lock.unlock();
        spawner().Yield();
        lock.lock();
      }
      ++queued;
      if (cv.WaitFor(mu, kBound)) {
        woken.push_back(i);
      } else {
        timeouts.fetch_add(1);
      }
    });
  }
  spawner().Spawn([&] {
    ASSERT_TRUE(spawner().PollUntil([&] {
      std::lock_guard<Mutex> lock(mu);
      return queued == kWaiters;
    }));
    for (int s = 1; s <= kWaiters; ++s) {
      cv.Signal();
      ASSERT_TRUE(spawner().PollUntil([&] {
        std::lock_guard<Mutex> lock(mu);
        return static_cast<int>(woken.size()) >= s;
      }));
      std::lock_guard<Mutex> lock(mu);
      if (static_cast<int>(woken.size()) != s) extra_wakeups.fetch_add(1);
    }
  });
  spawner().JoinAll();
  EXPECT_EQ(timeouts.load(), 0);
  EXPECT_EQ(extra_wakeups.load(), 0) << "one Signal woke more than one waiter";
  EXPECT_EQ(woken, (std::vector<int>{0, 1, 2, 3}));
}

TEST_P(SyncTest, CondVarSignalAllWakesEveryWaiter) {
  Mutex mu;
  CondVar cv;
  constexpr int kWaiters = 8;
  int queued = 0;  // guarded by mu
  bool go = false;
  std::atomic<int> released{0};
  for (int i = 0; i < kWaiters; ++i) {
    spawner().Spawn([&] {
      std::lock_guard<Mutex> lock(mu);
      ++queued;
      while (!go) {
        if (!cv.WaitFor(mu, kBound)) return;
      }
      released.fetch_add(1);
    });
  }
  spawner().Spawn([&] {
    ASSERT_TRUE(spawner().PollUntil([&] {
      std::lock_guard<Mutex> lock(mu);
      return queued == kWaiters;
    }));
    {
      std::lock_guard<Mutex> lock(mu);
      go = true;
    }
    cv.SignalAll();
  });
  spawner().JoinAll();
  EXPECT_EQ(released.load(), kWaiters);
}

// A Signal with nobody waiting is not banked: a later wait still times out.
TEST_P(SyncTest, CondVarSignalWithoutWaitersIsLost) {
  Mutex mu;
  CondVar cv;
  cv.Signal();
  cv.SignalAll();
  std::atomic<int> result{-1};
  spawner().Spawn([&] {
    std::lock_guard<Mutex> lock(mu);
    result = cv.WaitFor(mu, absl::Milliseconds(20)) ? 1 : 0;
  });
  spawner().JoinAll();
  EXPECT_EQ(result.load(), 0);
}

TEST_P(SyncTest, CondVarWaitUntilTimesOutNotEarlyAndRelocks) {
  Mutex mu;
  CondVar cv;
  std::atomic<bool> result{true};
  std::atomic<bool> relocked{false};
  absl::Time deadline;
  absl::Time returned;
  spawner().Spawn([&] {
    mu.lock();
    deadline = absl::Now() + absl::Milliseconds(50);
    result = cv.WaitUntil(mu, deadline);
    returned = absl::Now();
    relocked = !mu.try_lock();  // fails only because we hold it again
    mu.unlock();
  });
  spawner().JoinAll();
  EXPECT_FALSE(result.load());
  EXPECT_TRUE(relocked.load());
  EXPECT_GE(returned, deadline);
  EXPECT_LT(returned, deadline + kBound);
}

TEST_P(SyncTest, CondVarExpiredDeadlinesReturnAtOnce) {
  Mutex mu;
  CondVar cv;
  std::atomic<int> results{0};
  spawner().Spawn([&] {
    std::lock_guard<Mutex> lock(mu);
    if (!cv.WaitFor(mu, absl::ZeroDuration())) results.fetch_add(1);
    if (!cv.WaitFor(mu, -absl::Seconds(1))) results.fetch_add(1);
    if (!cv.WaitUntil(mu, absl::Now() - absl::Seconds(1))) results.fetch_add(1);
    if (!cv.WaitUntil(mu, absl::InfinitePast())) results.fetch_add(1);
    if (!mu.try_lock()) results.fetch_add(1);  // still held throughout
  });
  spawner().JoinAll();
  EXPECT_EQ(results.load(), 5);
}

TEST_P(SyncTest, CondVarInfiniteDeadlineWaitsForSignal) {
  Mutex mu;
  CondVar cv;
  bool waiting = false;  // guarded by mu
  std::atomic<int> result{-1};
  spawner().Spawn([&] {
    std::lock_guard<Mutex> lock(mu);
    waiting = true;
    result = cv.WaitUntil(mu, absl::InfiniteFuture()) ? 1 : 0;
  });
  spawner().Spawn([&] {
    ASSERT_TRUE(spawner().PollUntil([&] {
      std::lock_guard<Mutex> lock(mu);
      return waiting;
    }));
    cv.Signal();
  });
  spawner().JoinAll();
  EXPECT_EQ(result.load(), 1);
}

// The race the CondVar is built around: a deadline that fires just as a Signal arrives.
//
// Each round, waiter A waits with a deadline, waiter B (queued behind A) waits with a long bound,
// and a signaller calls Signal once, timed to land within a few hundred microseconds either side
// of A's deadline. Exactly one of these must happen:
//   * A is signalled (returns true) and B is still waiting (a second Signal then releases B);
//   * A times out (returns false, not before its deadline) and the Signal went to B.
// A signal spent on a waiter that then reports a timeout would leave B waiting out its bound.
TEST_P(SyncTest, CondVarTimeoutAndSignalRaceWakesExactlyOnce) {
  constexpr int kRounds = 300;
  int a_signalled = 0;
  int a_timed_out = 0;
  for (int round = 0; round < kRounds; ++round) {
    Mutex mu;
    CondVar cv;
    // All guarded by mu.
    bool a_waiting = false;
    bool b_waiting = false;
    int a_result = -1;
    int b_result = -1;
    int b_result_before_second_signal = -1;
    absl::Time a_deadline;
    absl::Time a_returned;
    spawner().Spawn([&] {
      std::lock_guard<Mutex> lock(mu);
      a_deadline = absl::Now() + absl::Milliseconds(2);
      a_waiting = true;
      bool r = cv.WaitUntil(mu, a_deadline);
      a_returned = absl::Now();
      a_result = r ? 1 : 0;
    });
    spawner().Spawn([&] {
      std::unique_lock<Mutex> lock(mu);
      while (!a_waiting) {  // queue behind A
        lock.unlock();
        spawner().Yield();
        lock.lock();
      }
      b_waiting = true;
      // Bounded more tightly than kBound (still generous for a wake-up that is due at once), so
      // that a broken build fails in seconds per round rather than minutes.
      b_result = cv.WaitFor(mu, absl::Seconds(5)) ? 1 : 0;
    });
    spawner().Spawn([&, round] {
      absl::Time deadline;
      ASSERT_TRUE(spawner().PollUntil([&] {
        std::lock_guard<Mutex> lock(mu);
        deadline = a_deadline;
        return b_waiting;
      }));
      // From 400us before to 400us after A's deadline.
      absl::Time at = deadline + absl::Microseconds((round % 9) * 100 - 400);
      while (absl::Now() < at) spawner().Yield();
      cv.Signal();
      int a = -1;
      ASSERT_TRUE(spawner().PollUntil([&] {
        std::lock_guard<Mutex> lock(mu);
        a = a_result;
        return a != -1;
      }));
      if (a == 1) {
        {
          std::lock_guard<Mutex> lock(mu);
          b_result_before_second_signal = b_result;
        }
        cv.Signal();  // for B
      }
    });
    spawner().JoinAll();
    ASSERT_NE(a_result, -1);
    EXPECT_EQ(b_result, 1) << "round " << round << ": a Signal was lost (A returned " << a_result
                           << ")";
    if (a_result == 0) {
      ++a_timed_out;
      EXPECT_GE(a_returned, a_deadline) << "round " << round << ": the deadline fired early";
    } else {
      ++a_signalled;
      EXPECT_EQ(b_result_before_second_signal, -1)
          << "round " << round << ": one Signal woke both waiters";
    }
  }
  std::printf("timeout/signal race: A signalled %d times, timed out %d times\n", a_signalled,
              a_timed_out);
}

// Many waiters with short deadlines and a signaller: deadlines and signals collide constantly.
// Tokens make the outcome checkable: every token is taken exactly once.
TEST_P(SyncTest, CondVarTokensSurviveTimeoutsAndSignals) {
  Mutex mu;
  CondVar cv;
  int tokens = 0;  // guarded by mu
  int taken = 0;   // guarded by mu
  bool done = false;
  constexpr int kConsumers = 6;
  constexpr int kTokens = 6000;
  for (int c = 0; c < kConsumers; ++c) {
    spawner().Spawn([&, c] {
      int i = 0;
      std::unique_lock<Mutex> lock(mu);
      absl::Time give_up = absl::Now() + kBound;
      while (!done && absl::Now() < give_up) {
        if (tokens > 0) {
          --tokens;
          if (++taken == kTokens) done = true;
          continue;
        }
        cv.WaitFor(mu, absl::Microseconds(((c + i++) % 5) * 50));  // 0 to 200us
      }
    });
  }
  spawner().Spawn([&] {
    for (int t = 0; t < kTokens; ++t) {
      {
        std::lock_guard<Mutex> lock(mu);
        ++tokens;
      }
      if (t % 2 == 0) {
        cv.Signal();
      } else {
        cv.SignalAll();
      }
    }
  });
  spawner().JoinAll();
  EXPECT_EQ(taken, kTokens);
  EXPECT_EQ(tokens, 0);
  EXPECT_TRUE(done);
}

// ---------------------------------------------------------------------------------------------
// WaitGroup

TEST_P(SyncTest, WaitGroupWaitSeesAllWorkDone) {
  constexpr int kWorkers = 8;
  constexpr int kWaiters = 3;
  WaitGroup wg;
  int results[kWorkers] = {};  // plain ints: visibility must come from Done -> Wait
  std::atomic<int> waiters_ok{0};
  wg.Add(kWorkers);
  for (int w = 0; w < kWaiters; ++w) {
    spawner().Spawn([&] {
      wg.Wait();
      int sum = 0;
      for (int r : results) sum += r;
      if (sum == kWorkers * (kWorkers + 1) / 2) waiters_ok.fetch_add(1);
    });
  }
  for (int i = 0; i < kWorkers; ++i) {
    spawner().Spawn([&, i] {
      results[i] = i + 1;
      wg.Done();
    });
  }
  spawner().JoinAll();
  EXPECT_EQ(waiters_ok.load(), kWaiters);
}

TEST_P(SyncTest, WaitGroupAtZeroDoesNotBlock) {
  WaitGroup wg;
  std::atomic<bool> returned{false};
  spawner().Spawn([&] {
    wg.Wait();
    wg.Add(2);
    wg.Done();
    wg.Add(-1);
    wg.Wait();
    returned = true;
  });
  spawner().JoinAll();
  EXPECT_TRUE(returned.load());
}

// Rounds on one WaitGroup: each round's Add happens before its Wait and before the round's
// workers start, and the round's Wait returns before the next round's Add.
TEST_P(SyncTest, WaitGroupIsReusable) {
  constexpr int kRounds = 200;
  constexpr int kWorkers = 3;
  WaitGroup wg;
  std::atomic<int> round{0};
  int finished[kWorkers] = {};  // plain ints: each written by its worker, read after Wait
  std::atomic<int> mismatches{0};
  spawner().Spawn([&] {
    for (int r = 1; r <= kRounds; ++r) {
      wg.Add(kWorkers);
      round.store(r);
      wg.Wait();
      for (int f : finished) {
        if (f != r) mismatches.fetch_add(1);
      }
    }
  });
  for (int w = 0; w < kWorkers; ++w) {
    spawner().Spawn([&, w] {
      for (int r = 1; r <= kRounds; ++r) {
        if (!spawner().PollUntil([&] { return round.load() >= r; })) return;
        finished[w] = r;
        wg.Done();
      }
    });
  }
  spawner().JoinAll();
  EXPECT_EQ(mismatches.load(), 0);
  for (int f : finished) EXPECT_EQ(f, kRounds);
}

// A WaitGroup on the heap, deleted by its waiter as soon as Wait returns, while the final Done
// may still be on its way out: AddressSanitizer checks that Done no longer touches it.
TEST_P(SyncTest, WaitGroupMayBeDestroyedWhenWaitReturns) {
  constexpr int kRounds = 300;
  std::atomic<int> deleted{0};
  for (int r = 0; r < kRounds; ++r) {
    auto* wg = new WaitGroup();
    wg->Add(1);
    spawner().Spawn([&, wg] {
      wg->Wait();
      delete wg;
      deleted.fetch_add(1);
    });
    spawner().Spawn([wg] { wg->Done(); });
    spawner().JoinAll();
  }
  EXPECT_EQ(deleted.load(), kRounds);
}

TEST_P(SyncDeathTest, WaitGroupNegativeCounterIsFatal) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        WaitGroup wg;
        wg.Done();
      },
      "netpoll::WaitGroup: negative counter");
  EXPECT_DEATH(
      {
        WaitGroup wg;
        wg.Add(1);
        wg.Add(-2);
      },
      "netpoll::WaitGroup: negative counter");
}

INSTANTIATE_TEST_SUITE_P(AllUserThreads, SyncTest, ::testing::ValuesIn(testing::AllSpawners()),
                         [](const ::testing::TestParamInfo<SpawnerKind>& info) { return info.param.name; });
INSTANTIATE_TEST_SUITE_P(AllUserThreads, SyncDeathTest, ::testing::ValuesIn(testing::AllSpawners()),
                         [](const ::testing::TestParamInfo<SpawnerKind>& info) { return info.param.name; });

}  // namespace
}  // namespace netpoll
