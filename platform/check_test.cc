#include "platform/check.h"

#include "gtest/gtest.h"

namespace {

TEST(CheckDeathTest, FailedCheckAbortsWithTheMessage) {
  EXPECT_DEATH(NETPOLL_CHECK(1 + 1 == 3, "arithmetic is broken"),
               "netpoll: fatal error: arithmetic is broken \\(.*check_test.cc:[0-9]+\\)");
}

TEST(CheckDeathTest, PassingCheckDoesNothing) {
  int evaluated = 0;
  NETPOLL_CHECK(++evaluated == 1, "unreachable");
  EXPECT_EQ(evaluated, 1);  // The condition is evaluated exactly once.
}

TEST(CheckDeathTest, FatalAlwaysAborts) { EXPECT_DEATH(NETPOLL_FATAL("double wait"), "double wait"); }

}  // namespace
