#include "platform/futex.h"

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "platform/clock.h"

namespace netpoll::platform {
namespace {

struct Impl {
  const char* name;
  FutexWaitResult (*wait)(std::atomic<uint32_t>*, uint32_t, int64_t);
  int (*wake)(std::atomic<uint32_t>*, int);
};

class FutexTest : public ::testing::TestWithParam<Impl> {};

TEST_P(FutexTest, MismatchReturnsAtOnce) {
  std::atomic<uint32_t> word{1};
  EXPECT_EQ(GetParam().wait(&word, 0, -1), FutexWaitResult::kValueMismatch);
}

TEST_P(FutexTest, TimeoutIsNotEarly) {
  std::atomic<uint32_t> word{0};
  int64_t start = MonotonicNanos();
  FutexWaitResult r;
  // A spurious wake-up is allowed; loop until the deadline like every real caller does.
  do {
    int64_t left = start + 20'000'000 - MonotonicNanos();
    if (left <= 0) break;
    r = GetParam().wait(&word, 0, left);
  } while (r != FutexWaitResult::kTimedOut);
  EXPECT_GE(MonotonicNanos() - start, 20'000'000);
}

TEST_P(FutexTest, WakeWithNoWaiterWakesNobody) {
  std::atomic<uint32_t> word{0};
  EXPECT_EQ(GetParam().wake(&word, 1), 0);
}

// Each round: the waiter parks while word == round; the waker publishes round+1, then wakes. A lost
// wake-up would hang the waiter, which the bounded wait turns into a test failure.
TEST_P(FutexTest, NoLostWakeUps) {
  const Impl impl = GetParam();
  std::atomic<uint32_t> word{0};
  constexpr uint32_t kRounds = 20000;
  std::atomic<bool> stuck{false};
  std::thread waiter([&] {
    for (uint32_t round = 0; round < kRounds; ++round) {
      int64_t deadline = MonotonicNanos() + 10'000'000'000;
      while (word.load(std::memory_order_seq_cst) == round * 2) {
        if (MonotonicNanos() > deadline) {
          stuck = true;
          return;
        }
        impl.wait(&word, round * 2, 1'000'000'000);
      }
      // Acknowledge, so the waker's next round starts from a known state.
      word.store(round * 2 + 2, std::memory_order_seq_cst);
      impl.wake(&word, 1);
    }
  });
  for (uint32_t round = 0; round < kRounds && !stuck; ++round) {
    word.store(round * 2 + 1, std::memory_order_seq_cst);
    impl.wake(&word, 1);
    int64_t deadline = MonotonicNanos() + 10'000'000'000;
    while (word.load(std::memory_order_seq_cst) == round * 2 + 1) {
      if (MonotonicNanos() > deadline) {
        stuck = true;
        break;
      }
      impl.wait(&word, round * 2 + 1, 1'000'000'000);
    }
  }
  waiter.join();
  EXPECT_FALSE(stuck) << "a wake-up was lost";
  EXPECT_EQ(word.load(), kRounds * 2);
}

TEST_P(FutexTest, WakeCountIsRespected) {
  const Impl impl = GetParam();
  std::atomic<uint32_t> word{0};
  std::atomic<int> returned{0};
  std::vector<std::thread> waiters;
  for (int i = 0; i < 4; ++i) {
    waiters.emplace_back([&] {
      while (word.load() == 0) impl.wait(&word, 0, 5'000'000'000);
      returned.fetch_add(1);
    });
  }
  word.store(1);
  int64_t deadline = MonotonicNanos() + 10'000'000'000;
  int woken = 0;
  while (returned.load() < 4 && MonotonicNanos() < deadline) woken += impl.wake(&word, 1);
  for (std::thread& t : waiters) t.join();
  EXPECT_EQ(returned.load(), 4);
  EXPECT_LE(woken, 4);
}

INSTANTIATE_TEST_SUITE_P(
    Implementations, FutexTest,
    ::testing::Values(Impl{"native", &FutexWait, &FutexWake},
                      Impl{"portable", &portable::FutexWait, &portable::FutexWake}),
    [](const ::testing::TestParamInfo<Impl>& info) { return std::string(info.param.name); });

TEST(FutexWakeAll, WakesEveryWaiter) {
  std::atomic<uint32_t> word{0};
  std::atomic<int> returned{0};
  std::vector<std::thread> waiters;
  for (int i = 0; i < 8; ++i) {
    waiters.emplace_back([&] {
      while (word.load() == 0) FutexWait(&word, 0, 5'000'000'000);
      returned.fetch_add(1);
    });
  }
  word.store(1);
  FutexWakeAll(&word);
  for (std::thread& t : waiters) t.join();
  EXPECT_EQ(returned.load(), 8);
}

}  // namespace
}  // namespace netpoll::platform
