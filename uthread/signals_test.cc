#include "uthread/signals.h"

#include <signal.h>

#include <string>

#include "gtest/gtest.h"
#include "tests/util/sync.h"
#include "uthread/runtime.h"

namespace netpoll {
namespace {

TEST(NotifySignals, DeliversToAFiberThroughAChannel) {
  Channel<int> signals(4);
  ASSERT_TRUE(NotifySignals(signals, {SIGUSR1, SIGUSR2}).ok());
  auto runtime = Runtime::Start({.workers = 1});
  ASSERT_TRUE(runtime.ok());
  int received[2] = {0, 0};
  ASSERT_TRUE((*runtime)->Go([&] {
    received[0] = signals.Receive().value_or(-1);
    received[1] = signals.Receive().value_or(-1);
  }).ok());
  ASSERT_EQ(raise(SIGUSR2), 0);
  ASSERT_EQ(raise(SIGUSR1), 0);
  ASSERT_TRUE((*runtime)->Shutdown(absl::Now() + absl::Seconds(30)).ok());
  EXPECT_EQ(received[0], SIGUSR2);
  EXPECT_EQ(received[1], SIGUSR1);
  EXPECT_EQ(NotifySignals(signals, {SIGKILL}).code(), absl::StatusCode::kInvalidArgument);
}

TEST(EnableFiberDumpOnSignalDeathTest, PrintsTheDump) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        ASSERT_TRUE(EnableFiberDumpOnSignal(SIGWINCH).ok());
        auto runtime = Runtime::Start({.workers = 1});
        Channel<int> never;
        (*runtime)->Go([&] { never.Receive(); }).IgnoreError();
        // Raise only once the fiber is parked, so the dump has something to say about it.
        ASSERT_TRUE(testing::WaitUntil(
            [&] { return (*runtime)->DumpFibers().find("parked") != std::string::npos; }));
        raise(SIGWINCH);
        // Give the signal thread time to print, bounded, then die so the output is checked.
        netpoll::SleepFor(absl::Seconds(2));
        std::abort();
      },
      "netpoll: fiber dump(.|\n)*fiber [0-9]+ \\[parked(.|\n)*signals_test.cc");
}

}  // namespace
}  // namespace netpoll
