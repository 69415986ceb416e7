#include "platform/futex_mutex.h"

#include <mutex>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace netpoll::platform {
namespace {

TEST(FutexMutex, TryLockFailsWhileHeld) {
  FutexMutex mu;
  ASSERT_TRUE(mu.try_lock());
  EXPECT_FALSE(mu.try_lock());
  mu.unlock();
  EXPECT_TRUE(mu.try_lock());
  mu.unlock();
}

TEST(FutexMutex, MutualExclusionUnderContention) {
  FutexMutex mu;
  long counter = 0;  // Deliberately not atomic: the mutex is what protects it (TSan checks).
  constexpr int kThreads = 4;
  constexpr int kIterations = 200000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kIterations; ++i) {
        std::lock_guard<FutexMutex> lock(mu);
        ++counter;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(counter, static_cast<long>(kThreads) * kIterations);
}

TEST(FutexMutex, IsSmall) { EXPECT_EQ(sizeof(FutexMutex), 4u); }

}  // namespace
}  // namespace netpoll::platform
