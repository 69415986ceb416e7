#include "platform/clock.h"

#include <chrono>
#include <thread>

#include "gtest/gtest.h"

namespace netpoll::platform {
namespace {

TEST(MonotonicNanos, IsPositiveAndNeverDecreases) {
  int64_t previous = MonotonicNanos();
  EXPECT_GT(previous, 0);
  for (int i = 0; i < 100000; ++i) {
    int64_t now = MonotonicNanos();
    ASSERT_GE(now, previous);
    previous = now;
  }
}

TEST(MonotonicNanos, AdvancesWithRealTime) {
  int64_t start = MonotonicNanos();
  auto wall_start = std::chrono::steady_clock::now();
  // Waiting for time to pass is the behaviour under test here, not a race "fix".
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  int64_t elapsed = MonotonicNanos() - start;
  auto wall_elapsed = std::chrono::duration_cast<std::chrono::nanoseconds>(
                          std::chrono::steady_clock::now() - wall_start)
                          .count();
  EXPECT_GE(elapsed, 20'000'000);
  // Both clocks measure the same interval; allow generous scheduling noise.
  EXPECT_LT(elapsed, wall_elapsed + 5'000'000);
}

}  // namespace
}  // namespace netpoll::platform
