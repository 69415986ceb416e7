#include "poller/semaphore.h"

#include <atomic>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "poller/blocking.h"
#include "tests/util/sync.h"

namespace netpoll::poller {
namespace {

TEST(WaiterSemaphore, BankedUnitsAreTakenWithoutParking) {
  WaiterSemaphore sem(2);
  EXPECT_TRUE(sem.TryAcquire());
  sem.Acquire();  // Would hang if it parked.
  EXPECT_FALSE(sem.TryAcquire());
  sem.Release();
  EXPECT_TRUE(sem.TryAcquire());
}

TEST(WaiterSemaphore, ReleaseWakesAParkedWaiter) {
  WaiterSemaphore sem;
  std::atomic<bool> acquired{false};
  testing::BoundedThread waiter([&] {
    sem.Acquire();
    acquired = true;
  });
  EXPECT_FALSE(acquired.load());
  sem.Release();
  waiter.Join();
  EXPECT_TRUE(acquired.load());
  EXPECT_FALSE(sem.TryAcquire());  // The unit went to the waiter, not the bank.
}

// Every Release is matched by exactly one Acquire returning: no lost and no duplicated units.
TEST(WaiterSemaphore, NoLostWakeupsUnderContention) {
  WaiterSemaphore sem;
  constexpr int kThreads = 8;
  constexpr int kPerThread = 2000;
  std::atomic<int> acquired{0};
  std::vector<std::unique_ptr<testing::BoundedThread>> consumers;
  for (int i = 0; i < kThreads; ++i) {
    consumers.push_back(std::make_unique<testing::BoundedThread>([&] {
      for (int j = 0; j < kPerThread; ++j) {
        sem.Acquire();
        acquired.fetch_add(1);
      }
    }));
  }
  std::vector<std::thread> producers;
  for (int i = 0; i < 4; ++i) {
    producers.emplace_back([&] {
      for (int j = 0; j < kThreads * kPerThread / 4; ++j) sem.Release();
    });
  }
  for (std::thread& t : producers) t.join();
  for (auto& c : consumers) c->Join();
  EXPECT_EQ(acquired.load(), kThreads * kPerThread);
  EXPECT_FALSE(sem.TryAcquire());
}

TEST(RunBlocking, RunsInlineOnAnOsThread) {
  std::thread::id ran_on;
  RunBlocking([&] { ran_on = std::this_thread::get_id(); });
  EXPECT_EQ(ran_on, std::this_thread::get_id());
  EXPECT_EQ(BlockingThreadCount(), 0);  // No helper thread was needed.
}

}  // namespace
}  // namespace netpoll::poller
