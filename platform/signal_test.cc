#include "platform/signal.h"

#include <signal.h>

#include <atomic>
#include <vector>

#include "gtest/gtest.h"
#include "tests/util/sync.h"

namespace netpoll::platform {
namespace {

TEST(OnSignal, CallbacksRunOnTheSignalThread) {
  std::atomic<int> first{0}, second{0};
  testing::Event done;
  ASSERT_TRUE(OnSignal(SIGUSR2, [&](int signo) {
    EXPECT_EQ(signo, SIGUSR2);
    first.fetch_add(1);
  }).ok());
  ASSERT_TRUE(OnSignal(SIGUSR2, [&](int) {
    if (second.fetch_add(1) == 2) done.Notify();
  }).ok());
  for (int i = 0; i < 3; ++i) {
    int before = second.load();
    ASSERT_EQ(raise(SIGUSR2), 0);
    ASSERT_TRUE(testing::WaitUntil([&] { return second.load() > before; }));
  }
  ASSERT_TRUE(done.WaitFor());
  EXPECT_EQ(first.load(), 3);
}

TEST(OnSignal, UncatchableSignalsAreRejected) {
  EXPECT_EQ(OnSignal(SIGKILL, [](int) {}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(OnSignal(SIGSTOP, [](int) {}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(OnSignal(0, [](int) {}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(OnSignal(1000, [](int) {}).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace netpoll::platform
