// Channel<T>, run on every kind of user thread (test_spawner.h).
//
// Every blocking call is bounded (a deadline or a bounded join), so a lost wake-up fails a test
// instead of hanging it. Nothing sleeps to make a race come out one way: tests that need a user
// thread to be blocked first wait until the channel reports it queued (TestPeer).
#include "uthread/channel.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "uthread/test_spawner.h"

namespace netpoll {
namespace channel_internal {

// Counts the user threads queued on a channel.
class TestPeer {
 public:
  template <typename T>
  static size_t BlockedReceivers(const Channel<T>& ch) {
    std::lock_guard<platform::FutexMutex> lock(ch.core_.mu_);
    return ch.core_.receivers_.size();
  }
  template <typename T>
  static size_t BlockedSenders(const Channel<T>& ch) {
    std::lock_guard<platform::FutexMutex> lock(ch.core_.mu_);
    return ch.core_.senders_.size();
  }
};

}  // namespace channel_internal

namespace {

using channel_internal::TestPeer;
using testing::Spawner;
using testing::SpawnerKind;

constexpr absl::Duration kBound = absl::Seconds(20);

class ChannelTest : public ::testing::TestWithParam<SpawnerKind> {
 protected:
  Spawner& spawner() { return *spawner_; }

  // Waits until `n` user threads are blocked receiving (or sending) on `ch`.
  template <typename T>
  bool WaitForReceivers(const Channel<T>& ch, size_t n) {
    return spawner().PollUntil([&] { return TestPeer::BlockedReceivers(ch) >= n; });
  }
  template <typename T>
  bool WaitForSenders(const Channel<T>& ch, size_t n) {
    return spawner().PollUntil([&] { return TestPeer::BlockedSenders(ch) >= n; });
  }

 private:
  std::unique_ptr<Spawner> spawner_ = GetParam().make();
};

// One producer, one consumer: values arrive in the order they were sent, for every capacity.
TEST_P(ChannelTest, DeliversInFifoOrder) {
  for (size_t capacity : {0, 1, 7, 64}) {
    Channel<int> ch(capacity);
    EXPECT_EQ(ch.capacity(), capacity);
    constexpr int kValues = 5000;
    std::vector<int> received;
    std::atomic<int> send_errors{0};
    spawner().Spawn([&] {
      for (int i = 0; i < kValues; ++i) {
        if (!ch.SendFor(i, kBound).ok()) send_errors.fetch_add(1);
      }
      EXPECT_TRUE(ch.Close().ok());
    });
    spawner().Spawn([&] {
      for (;;) {
        absl::StatusOr<int> v = ch.ReceiveFor(kBound);
        if (!v.ok()) {
          EXPECT_TRUE(absl::IsOutOfRange(v.status())) << v.status();
          return;
        }
        received.push_back(*v);
      }
    });
    spawner().JoinAll();
    EXPECT_EQ(send_errors.load(), 0);
    ASSERT_EQ(received.size(), static_cast<size_t>(kValues)) << "capacity " << capacity;
    for (int i = 0; i < kValues; ++i) ASSERT_EQ(received[i], i) << "capacity " << capacity;
  }
}

TEST_P(ChannelTest, BufferedChannelFillsToCapacity) {
  Channel<int> ch(3);
  EXPECT_EQ(ch.size(), 0u);
  EXPECT_TRUE(ch.TrySend(1).ok());
  EXPECT_TRUE(ch.TrySend(2).ok());
  EXPECT_TRUE(ch.Send(3).ok());  // fits: does not block
  EXPECT_EQ(ch.size(), 3u);
  absl::Status full = ch.TrySend(4);
  EXPECT_TRUE(absl::IsUnavailable(full)) << full;
  EXPECT_EQ(ch.size(), 3u);
  absl::StatusOr<int> v = ch.TryReceive();
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, 1);
  EXPECT_EQ(ch.size(), 2u);
  EXPECT_TRUE(ch.TrySend(4).ok());
  for (int want : {2, 3, 4}) {
    std::optional<int> got = ch.Receive();
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(*got, want);
  }
  EXPECT_TRUE(absl::IsUnavailable(ch.TryReceive().status()));
}

TEST_P(ChannelTest, UnbufferedTryOperationsNeedAPartner) {
  Channel<int> ch;
  EXPECT_EQ(ch.capacity(), 0u);
  absl::Status s = ch.TrySend(1);
  EXPECT_TRUE(absl::IsUnavailable(s)) << s;
  EXPECT_TRUE(absl::IsUnavailable(ch.TryReceive().status()));
  // A send that timed out left nothing behind.
  s = ch.SendFor(2, absl::Milliseconds(10));
  EXPECT_TRUE(absl::IsDeadlineExceeded(s)) << s;
  EXPECT_TRUE(absl::IsUnavailable(ch.TryReceive().status()));
  EXPECT_EQ(ch.size(), 0u);
}

// A send on an unbuffered channel completes only once a receiver has taken the value: the
// sender's "done" flag cannot be set before the TryReceive that takes the value returns.
TEST_P(ChannelTest, UnbufferedSendIsARendezvous) {
  Channel<int> ch;
  std::atomic<bool> send_returned{false};
  std::atomic<int> premature{0};
  std::atomic<int> got{-1};
  spawner().Spawn([&] {
    EXPECT_TRUE(ch.SendFor(42, kBound).ok());
    send_returned = true;
  });
  spawner().Spawn([&] {
    ASSERT_TRUE(WaitForSenders(ch, 1));
    bool taken = false;
    ASSERT_TRUE(spawner().PollUntil([&] {
      if (send_returned.load()) premature.fetch_add(1);
      absl::StatusOr<int> v = ch.TryReceive();
      if (v.ok()) {
        got = *v;
        taken = true;
      }
      return taken;
    }));
  });
  spawner().JoinAll();
  EXPECT_EQ(premature.load(), 0);
  EXPECT_EQ(got.load(), 42);
  EXPECT_TRUE(send_returned.load());
}

// A blocked receiver is handed the value directly by TrySend (unbuffered) and by a buffered send.
TEST_P(ChannelTest, SendHandsToABlockedReceiver) {
  for (size_t capacity : {0, 2}) {
    Channel<std::string> ch(capacity);
    std::optional<std::string> got;
    spawner().Spawn([&] {
      absl::StatusOr<std::string> v = ch.ReceiveFor(kBound);
      if (v.ok()) got = *v;
    });
    spawner().Spawn([&] {
      ASSERT_TRUE(WaitForReceivers(ch, 1));
      EXPECT_TRUE(ch.TrySend(std::string("hello")).ok());
    });
    spawner().JoinAll();
    EXPECT_EQ(got, std::optional<std::string>("hello")) << "capacity " << capacity;
    EXPECT_EQ(ch.size(), 0u);
  }
}

// A receive on a full buffer lets the longest-blocked sender's value in, keeping FIFO order.
TEST_P(ChannelTest, ReceiveOnAFullBufferAdmitsABlockedSender) {
  Channel<int> ch(1);
  ASSERT_TRUE(ch.TrySend(1).ok());
  std::atomic<int> sent{0};
  spawner().Spawn([&] {
    if (ch.SendFor(2, kBound).ok()) sent.fetch_add(1);
  });
  spawner().Spawn([&] {
    ASSERT_TRUE(WaitForSenders(ch, 1));
    absl::StatusOr<int> a = ch.TryReceive();
    ASSERT_TRUE(a.ok());
    EXPECT_EQ(*a, 1);
  });
  spawner().JoinAll();
  EXPECT_EQ(sent.load(), 1);
  EXPECT_EQ(ch.size(), 1u);
  absl::StatusOr<int> b = ch.TryReceive();
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(*b, 2);
}

TEST_P(ChannelTest, CloseLetsReceiversDrainThenReportsClosed) {
  Channel<int> ch(4);
  ASSERT_TRUE(ch.Send(1).ok());
  ASSERT_TRUE(ch.Send(2).ok());
  ASSERT_TRUE(ch.Close().ok());

  absl::Status again = ch.Close();
  EXPECT_TRUE(absl::IsFailedPrecondition(again)) << again;
  EXPECT_EQ(again.message(), "close of closed channel");
  absl::Status send = ch.Send(3);
  EXPECT_TRUE(absl::IsFailedPrecondition(send)) << send;
  EXPECT_EQ(send.message(), "send on closed channel");
  EXPECT_TRUE(absl::IsFailedPrecondition(ch.TrySend(3)));
  EXPECT_TRUE(absl::IsFailedPrecondition(ch.SendFor(3, absl::Seconds(1))));
  EXPECT_EQ(ch.size(), 2u);  // the failed sends changed nothing

  EXPECT_EQ(ch.Receive(), std::optional<int>(1));
  absl::StatusOr<int> v = ch.ReceiveUntil(absl::InfinitePast());  // ready: the deadline is moot
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(*v, 2);
  EXPECT_EQ(ch.Receive(), std::nullopt);
  EXPECT_EQ(ch.Receive(), std::nullopt);
  EXPECT_TRUE(absl::IsOutOfRange(ch.TryReceive().status()));
  EXPECT_TRUE(absl::IsOutOfRange(ch.ReceiveFor(absl::Seconds(1)).status()));
  EXPECT_TRUE(absl::IsOutOfRange(ch.ReceiveUntil(absl::InfinitePast()).status()));
}

TEST_P(ChannelTest, CloseWakesEveryBlockedReceiver) {
  Channel<int> ch;
  constexpr int kReceivers = 5;
  std::atomic<int> closed_seen{0};
  for (int i = 0; i < kReceivers; ++i) {
    spawner().Spawn([&, i] {
      if (i % 2 == 0) {
        if (!ch.Receive().has_value()) closed_seen.fetch_add(1);
      } else {
        absl::StatusOr<int> v = ch.ReceiveFor(kBound);
        if (absl::IsOutOfRange(v.status())) closed_seen.fetch_add(1);
      }
    });
  }
  spawner().Spawn([&] {
    ASSERT_TRUE(WaitForReceivers(ch, kReceivers));
    EXPECT_TRUE(ch.Close().ok());
  });
  spawner().JoinAll();
  EXPECT_EQ(closed_seen.load(), kReceivers);
  EXPECT_EQ(TestPeer::BlockedReceivers(ch), 0u);
}

TEST_P(ChannelTest, CloseWakesEveryBlockedSender) {
  for (size_t capacity : {0, 1}) {
    Channel<int> ch(capacity);
    if (capacity == 1) {
      ASSERT_TRUE(ch.TrySend(100).ok());
    }
    constexpr int kSenders = 4;
    std::atomic<int> closed_seen{0};
    for (int i = 0; i < kSenders; ++i) {
      spawner().Spawn([&, i] {
        absl::Status s = i % 2 == 0 ? ch.Send(i) : ch.SendFor(i, kBound);
        if (absl::IsFailedPrecondition(s)) closed_seen.fetch_add(1);
      });
    }
    spawner().Spawn([&] {
      ASSERT_TRUE(WaitForSenders(ch, kSenders));
      EXPECT_TRUE(ch.Close().ok());
    });
    spawner().JoinAll();
    EXPECT_EQ(closed_seen.load(), kSenders) << "capacity " << capacity;
    // What was buffered before the Close is still there; the blocked senders' values are not.
    if (capacity == 1) {
      EXPECT_EQ(ch.Receive(), std::optional<int>(100));
    }
    EXPECT_EQ(ch.Receive(), std::nullopt);
  }
}

TEST_P(ChannelTest, ReceiveDeadlineFiresNotEarly) {
  Channel<int> ch(1);
  absl::Time deadline;
  absl::Time returned;
  absl::Status status;
  spawner().Spawn([&] {
    deadline = absl::Now() + absl::Milliseconds(50);
    status = ch.ReceiveUntil(deadline).status();
    returned = absl::Now();
  });
  spawner().JoinAll();
  EXPECT_TRUE(absl::IsDeadlineExceeded(status)) << status;
  EXPECT_GE(returned, deadline);
  EXPECT_LT(returned, deadline + kBound);
  EXPECT_EQ(TestPeer::BlockedReceivers(ch), 0u);  // the timed-out receiver unlinked itself
}

TEST_P(ChannelTest, SendDeadlineFiresNotEarly) {
  for (size_t capacity : {0, 1}) {
    Channel<int> ch(capacity);
    if (capacity == 1) {
      ASSERT_TRUE(ch.TrySend(1).ok());
    }
    absl::Time deadline;
    absl::Time returned;
    absl::Status status;
    spawner().Spawn([&] {
      deadline = absl::Now() + absl::Milliseconds(50);
      status = ch.SendUntil(2, deadline);
      returned = absl::Now();
    });
    spawner().JoinAll();
    EXPECT_TRUE(absl::IsDeadlineExceeded(status)) << status;
    EXPECT_GE(returned, deadline);
    EXPECT_LT(returned, deadline + kBound);
    EXPECT_EQ(TestPeer::BlockedSenders(ch), 0u);
    EXPECT_EQ(ch.size(), capacity);  // the timed-out value was not buffered
  }
}

TEST_P(ChannelTest, ExpiredDeadlinesFailAtOnceWhenTheyWouldBlock) {
  Channel<int> ch(1);
  EXPECT_TRUE(absl::IsDeadlineExceeded(ch.ReceiveUntil(absl::Now() - absl::Seconds(1)).status()));
  EXPECT_TRUE(absl::IsDeadlineExceeded(ch.ReceiveFor(absl::ZeroDuration()).status()));
  EXPECT_TRUE(ch.SendUntil(1, absl::InfinitePast()).ok());  // room: completes regardless
  EXPECT_TRUE(absl::IsDeadlineExceeded(ch.SendUntil(2, absl::InfinitePast())));
  EXPECT_TRUE(absl::IsDeadlineExceeded(ch.SendFor(2, -absl::Seconds(1))));
  absl::StatusOr<int> v = ch.ReceiveFor(absl::ZeroDuration());  // ready: completes regardless
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, 1);
}

// A value that reaches a blocked receiver just before its deadline is received; one that comes
// after it is not taken by that receiver and is not lost. Each round times a TrySend to land
// within a few hundred microseconds either side of the receiver's deadline; exactly one of
// "the send succeeded and the receiver got the value" and "the receiver timed out and the value
// is still with the sender (unbuffered) or in the buffer" must hold.
TEST_P(ChannelTest, ValueAndDeadlineRaceResolvesExactlyOnce) {
  constexpr int kRounds = 200;
  int received_count = 0;
  int timed_out_count = 0;
  for (int round = 0; round < kRounds; ++round) {
    const size_t capacity = round % 2;
    Channel<int> ch(capacity);
    std::atomic<int64_t> deadline_ns{0};  // absl::ToUnixNanos of the receiver's deadline
    absl::StatusOr<int> received = absl::UnknownError("not run");
    absl::Time returned;
    absl::Status send_status = absl::UnknownError("not run");
    spawner().Spawn([&] {
      absl::Time deadline = absl::Now() + absl::Milliseconds(2);
      deadline_ns = absl::ToUnixNanos(deadline);
      received = ch.ReceiveUntil(deadline);
      returned = absl::Now();
      if (!received.ok()) {
        EXPECT_GE(returned, deadline) << "round " << round << ": the deadline fired early";
      }
    });
    spawner().Spawn([&, round] {
      ASSERT_TRUE(spawner().PollUntil([&] { return deadline_ns.load() != 0; }));
      absl::Time at = absl::FromUnixNanos(deadline_ns.load()) +
                      absl::Microseconds((round / 2 % 9) * 100 - 400);
      while (absl::Now() < at) spawner().Yield();
      send_status = ch.TrySend(7);
    });
    spawner().JoinAll();
    ASSERT_TRUE(received.ok() || absl::IsDeadlineExceeded(received.status())) << received.status();
    if (received.ok()) {
      ++received_count;
      EXPECT_EQ(*received, 7);
      EXPECT_TRUE(send_status.ok()) << "round " << round << ": received a value never sent";
      EXPECT_EQ(ch.size(), 0u);
    } else {
      ++timed_out_count;
      absl::StatusOr<int> left = ch.TryReceive();
      if (capacity == 0) {
        // Unbuffered: the send can only have succeeded by handing to a waiting receiver.
        EXPECT_TRUE(absl::IsUnavailable(send_status))
            << "round " << round << ": a value was handed to a receiver that timed out: "
            << send_status;
        EXPECT_FALSE(left.ok());
      } else {
        // Buffered: the value went into the buffer, where it still is.
        EXPECT_TRUE(send_status.ok()) << send_status;
        ASSERT_TRUE(left.ok()) << "round " << round << ": the value was lost";
        EXPECT_EQ(*left, 7);
      }
    }
  }
  std::printf("value/deadline race: received %d, timed out %d\n", received_count, timed_out_count);
}

// The sending side of the same race: a blocked sender with a deadline and a TryReceive timed to
// meet it. Either the receiver got the value and the send reports OK, or the send reports a
// timeout and nobody got the value.
TEST_P(ChannelTest, SendDeadlineAndReceiveRaceResolvesExactlyOnce) {
  constexpr int kRounds = 200;
  for (int round = 0; round < kRounds; ++round) {
    Channel<int> ch;
    std::atomic<int64_t> deadline_ns{0};
    absl::Status send_status = absl::UnknownError("not run");
    absl::StatusOr<int> received = absl::UnknownError("not run");
    spawner().Spawn([&] {
      absl::Time deadline = absl::Now() + absl::Milliseconds(2);
      deadline_ns = absl::ToUnixNanos(deadline);
      send_status = ch.SendUntil(9, deadline);
    });
    spawner().Spawn([&, round] {
      ASSERT_TRUE(spawner().PollUntil([&] { return deadline_ns.load() != 0; }));
      absl::Time at = absl::FromUnixNanos(deadline_ns.load()) +
                      absl::Microseconds((round % 9) * 100 - 400);
      while (absl::Now() < at) spawner().Yield();
      received = ch.TryReceive();
    });
    spawner().JoinAll();
    if (send_status.ok()) {
      ASSERT_TRUE(received.ok()) << "round " << round << ": send succeeded, nobody received";
      EXPECT_EQ(*received, 9);
    } else {
      EXPECT_TRUE(absl::IsDeadlineExceeded(send_status)) << send_status;
      EXPECT_TRUE(absl::IsUnavailable(received.status()))
          << "round " << round << ": received a value whose send timed out";
    }
  }
}

// Many producers and consumers: every value is received exactly once, and each consumer sees
// each producer's values in the order they were sent.
TEST_P(ChannelTest, ManyProducersAndConsumersDeliverEachValueOnce) {
  for (size_t capacity : {0, 1, 16}) {
    Channel<int> ch(capacity);
    constexpr int kProducers = 4;
    constexpr int kConsumers = 4;
    constexpr int kPerProducer = 3000;
    std::vector<std::vector<int>> got(kConsumers);
    std::atomic<int> producers_left{kProducers};
    std::atomic<int> errors{0};
    for (int p = 0; p < kProducers; ++p) {
      spawner().Spawn([&, p] {
        for (int i = 0; i < kPerProducer; ++i) {
          if (!ch.SendFor(p * kPerProducer + i, kBound).ok()) errors.fetch_add(1);
        }
        if (producers_left.fetch_sub(1) == 1) {
          EXPECT_TRUE(ch.Close().ok());
        }
      });
    }
    for (int c = 0; c < kConsumers; ++c) {
      spawner().Spawn([&, c] {
        for (;;) {
          absl::StatusOr<int> v = ch.ReceiveFor(kBound);
          if (!v.ok()) {
            if (!absl::IsOutOfRange(v.status())) errors.fetch_add(1);
            return;
          }
          got[c].push_back(*v);
        }
      });
    }
    spawner().JoinAll();
    EXPECT_EQ(errors.load(), 0);
    std::vector<int> all;
    for (const std::vector<int>& values : got) {
      int last[kProducers];
      std::fill(std::begin(last), std::end(last), -1);
      for (int v : values) {
        int p = v / kPerProducer;
        EXPECT_GT(v, last[p]) << "out of order from producer " << p;
        last[p] = v;
      }
      all.insert(all.end(), values.begin(), values.end());
    }
    std::sort(all.begin(), all.end());
    ASSERT_EQ(all.size(), static_cast<size_t>(kProducers * kPerProducer)) << "capacity " << capacity;
    for (int i = 0; i < kProducers * kPerProducer; ++i) ASSERT_EQ(all[i], i);
  }
}

// The same with short deadlines everywhere: timeouts and hand-overs collide constantly, and a
// value must never be both delivered and reported as timed out (nor neither).
TEST_P(ChannelTest, ValuesSurviveCollidingDeadlines) {
  for (size_t capacity : {0, 4}) {
    Channel<int> ch(capacity);
    constexpr int kProducers = 3;
    constexpr int kConsumers = 3;
    constexpr int kPerProducer = 1500;
    std::vector<std::vector<int>> got(kConsumers);
    std::atomic<int> producers_left{kProducers};
    std::atomic<int> errors{0};
    for (int p = 0; p < kProducers; ++p) {
      spawner().Spawn([&, p] {
        absl::Time give_up = absl::Now() + kBound;
        // The timeout varies per attempt (not per value), so a zero timeout that fails is
        // followed by one that parks: a fiber retrying with zero timeouts would never yield.
        for (int i = 0, attempt = 0; i < kPerProducer && absl::Now() < give_up; ++attempt) {
          absl::Status s = ch.SendFor(p * kPerProducer + i, absl::Microseconds((attempt % 4) * 40));
          if (s.ok()) {
            ++i;
          } else if (!absl::IsDeadlineExceeded(s)) {
            errors.fetch_add(1);
            return;
          }
        }
        if (producers_left.fetch_sub(1) == 1) {
          EXPECT_TRUE(ch.Close().ok());
        }
      });
    }
    for (int c = 0; c < kConsumers; ++c) {
      spawner().Spawn([&, c] {
        absl::Time give_up = absl::Now() + kBound;
        for (int i = 0; absl::Now() < give_up; ++i) {
          absl::StatusOr<int> v = ch.ReceiveFor(absl::Microseconds((i % 5) * 30));
          if (v.ok()) {
            got[c].push_back(*v);
          } else if (absl::IsOutOfRange(v.status())) {
            return;
          } else if (!absl::IsDeadlineExceeded(v.status())) {
            errors.fetch_add(1);
            return;
          }
        }
      });
    }
    spawner().JoinAll();
    EXPECT_EQ(errors.load(), 0);
    std::vector<int> all;
    for (const std::vector<int>& values : got) all.insert(all.end(), values.begin(), values.end());
    std::sort(all.begin(), all.end());
    ASSERT_EQ(all.size(), static_cast<size_t>(kProducers * kPerProducer)) << "capacity " << capacity;
    for (int i = 0; i < kProducers * kPerProducer; ++i) ASSERT_EQ(all[i], i);
  }
}

TEST_P(ChannelTest, MoveOnlyValues) {
  for (size_t capacity : {0, 2}) {
    Channel<std::unique_ptr<int>> ch(capacity);
    std::vector<int> got;
    spawner().Spawn([&] {
      for (int i = 0; i < 100; ++i) EXPECT_TRUE(ch.SendFor(std::make_unique<int>(i), kBound).ok());
      EXPECT_TRUE(ch.Close().ok());
    });
    spawner().Spawn([&] {
      while (std::optional<std::unique_ptr<int>> v = ch.Receive()) {
        ASSERT_NE(*v, nullptr);
        got.push_back(**v);
      }
    });
    spawner().JoinAll();
    ASSERT_EQ(got.size(), 100u);
    for (int i = 0; i < 100; ++i) EXPECT_EQ(got[i], i);
  }
}

TEST_P(ChannelTest, FailedTrySendKeepsTheValue) {
  Channel<std::unique_ptr<int>> ch(1);
  auto first = std::make_unique<int>(1);
  ASSERT_TRUE(ch.TrySend(std::move(first)).ok());
  EXPECT_EQ(first, nullptr);  // moved in
  auto second = std::make_unique<int>(2);
  EXPECT_TRUE(absl::IsUnavailable(ch.TrySend(std::move(second))));
  ASSERT_NE(second, nullptr);  // still ours
  EXPECT_EQ(*second, 2);
  ASSERT_TRUE(ch.Close().ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(ch.TrySend(std::move(second))));
  ASSERT_NE(second, nullptr);
  absl::StatusOr<std::unique_ptr<int>> v = ch.TryReceive();
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(**v, 1);
}

// A type with no default constructor and no copy, counting its live instances: buffered values
// are destroyed with the channel, and nothing leaks or is destroyed twice.
class Token {
 public:
  explicit Token(int id, std::atomic<int>* live) : id_(id), live_(live) { live_->fetch_add(1); }
  Token(Token&& other) noexcept : id_(other.id_), live_(other.live_) { live_->fetch_add(1); }
  Token(const Token&) = delete;
  Token& operator=(const Token&) = delete;
  ~Token() { live_->fetch_sub(1); }
  int id() const { return id_; }

 private:
  int id_;
  std::atomic<int>* live_;
};

TEST_P(ChannelTest, BufferedValuesAreDestroyedWithTheChannel) {
  std::atomic<int> live{0};
  {
    Channel<Token> ch(4);
    ASSERT_TRUE(ch.Send(Token(1, &live)).ok());
    ASSERT_TRUE(ch.Send(Token(2, &live)).ok());
    ASSERT_TRUE(ch.Send(Token(3, &live)).ok());
    EXPECT_EQ(live.load(), 3);
    std::optional<Token> t = ch.Receive();
    ASSERT_TRUE(t.has_value());
    EXPECT_EQ(t->id(), 1);
    EXPECT_EQ(live.load(), 3);  // two buffered, one here
  }
  EXPECT_EQ(live.load(), 0);
}

TEST_P(ChannelTest, FailedSendsDestroyTheirValues) {
  std::atomic<int> live{0};
  Channel<Token> ch;
  EXPECT_TRUE(absl::IsDeadlineExceeded(ch.SendFor(Token(1, &live), absl::Milliseconds(5))));
  ASSERT_TRUE(ch.Close().ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(ch.Send(Token(2, &live))));
  EXPECT_EQ(live.load(), 0);
}

INSTANTIATE_TEST_SUITE_P(AllUserThreads, ChannelTest, ::testing::ValuesIn(testing::AllSpawners()),
                         [](const ::testing::TestParamInfo<SpawnerKind>& info) { return info.param.name; });

}  // namespace
}  // namespace netpoll
