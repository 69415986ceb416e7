// The race catalogue (reference/go-netpoll-semantics.md, section 6) for the poller layer.
//
// Each R-test forces its interleaving with a test hook (poller/test_hooks.h) or by driving the
// "other side" of the race from the test thread at a point the waiter is known to have reached;
// none of them hopes for timing. Each has a stress variant (PollDescStress.*) that repeats the race
// unforced across threads, for ThreadSanitizer.
#include "poller/poll_desc.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "platform/clock.h"
#include "platform/socket.h"
#include "poller/poll_desc_test_peer.h"
#include "poller/poller.h"
#include "poller/test_hooks.h"
#include "tests/util/sync.h"

namespace netpoll::poller {
namespace {

using platform::MonotonicNanos;
using State = PollDescTestPeer::SemaState;
using testing::BoundedThread;
using testing::WaitUntil;

constexpr int64_t kMs = 1'000'000;
constexpr int64_t kHour = 3600'000 * kMs;

// Installs a hook for the scope. The poller's background thread outlives every test and may be
// inside a hook while the next test installs its own, so hooks are published through an atomic
// pointer and never destroyed (kept reachable in `all`, so leak checkers stay quiet).
class ScopedHook {
 public:
  using Fn = std::function<void(HookPoint, PollDesc*)>;
  explicit ScopedHook(Fn fn) {
    static std::mutex mutex;
    static std::vector<std::unique_ptr<Fn>>* all = new std::vector<std::unique_ptr<Fn>>();
    Fn* published;
    {
      std::lock_guard<std::mutex> lock(mutex);
      all->push_back(std::make_unique<Fn>(std::move(fn)));
      published = all->back().get();
    }
    // release: the trampoline's acquire load sees a fully built function.
    current().store(published, std::memory_order_release);
    SetTestHook(&Trampoline);
  }
  ~ScopedHook() {
    SetTestHook(nullptr);
    current().store(nullptr, std::memory_order_release);
  }

 private:
  static std::atomic<Fn*>& current() {
    static std::atomic<Fn*> fn{nullptr};
    return fn;
  }
  static void Trampoline(HookPoint point, PollDesc* pd) {
    // acquire: see the constructor.
    if (Fn* fn = current().load(std::memory_order_acquire)) (*fn)(point, pd);
  }
};

void Inject(PollDesc* pd, uint32_t modes, bool error_only = false) {
  ReadyList ready;
  Poller::Get().InjectEvent(pd->token(), modes, error_only, &ready);
  Poller::Get().ReadyAll(ready);
}

class PollDescTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pair = platform::CreateSocketPair(platform::SocketType::kStream);
    ASSERT_TRUE(pair.ok());
    local_ = pair.value.first;
    peer_ = pair.value.second;
    pd_ = Open(local_);
  }
  void TearDown() override {
    CloseDesc(pd_);
    close(local_);
    close(peer_);
  }
  static PollDesc* Open(int fd) {
    absl::StatusOr<PollDesc*> pd = Poller::Get().Open(fd);
    EXPECT_TRUE(pd.ok()) << pd.status();
    return *pd;
  }
  void CloseDesc(PollDesc*& pd) {
    if (pd == nullptr) return;
    if (pd->CheckError(kRead) != PollError::kClosing) pd->Evict();
    EXPECT_TRUE(Poller::Get().Close(pd).ok());
    pd = nullptr;
  }
  // Starts a thread that waits for `mode` on pd_ and stores the result.
  std::unique_ptr<BoundedThread> StartWaiter(Mode mode, std::atomic<PollError>* result) {
    PollDesc* pd = pd_;
    return std::make_unique<BoundedThread>([pd, mode, result] { *result = pd->Wait(mode); });
  }
  bool Parked(Mode mode) {
    return WaitUntil([&] { return PollDescTestPeer::State(pd_, mode) == State::kParked; });
  }

  int local_ = -1;
  int peer_ = -1;
  PollDesc* pd_ = nullptr;
};

// R1: readiness between EAGAIN and the park: the waiter does not park.
TEST_F(PollDescTest, R1_ReadyBetweenEagainAndPark) {
  ASSERT_EQ(pd_->Prepare(kRead), PollError::kNone);
  char buffer[8];
  ASSERT_LT(read(local_, buffer, sizeof buffer), 0);  // EAGAIN
  Inject(pd_, kRead);
  EXPECT_EQ(PollDescTestPeer::State(pd_, kRead), State::kReady);
  int64_t waiters = Poller::Get().waiters();
  EXPECT_EQ(pd_->Wait(kRead), PollError::kNone);  // On this thread: it would hang if it parked.
  EXPECT_EQ(Poller::Get().waiters(), waiters);
  EXPECT_EQ(PollDescTestPeer::State(pd_, kRead), State::kNil);
}

// R2: readiness after the waiter published kWait but before its park commit: the commit fails
// and the waiter resumes at once without sleeping.
TEST_F(PollDescTest, R2_ReadyBetweenWaitAndCommit) {
  std::atomic<bool> injected{false};
  PollDesc* pd = pd_;
  ScopedHook hook([&](HookPoint point, PollDesc*) {
    if (point == HookPoint::kBlockBeforeCommit && !injected.exchange(true)) {
      EXPECT_EQ(PollDescTestPeer::State(pd, kRead), State::kWait);
      Inject(pd, kRead);  // T7: kWait -> kReady, no waiter to ready.
    }
  });
  int64_t waiters = Poller::Get().waiters();
  ASSERT_EQ(pd_->Prepare(kRead), PollError::kNone);
  EXPECT_EQ(pd_->Wait(kRead), PollError::kNone);
  EXPECT_TRUE(injected.load());
  EXPECT_EQ(Poller::Get().waiters(), waiters);  // Never counted as parked.
}

// R3: a notification left from an earlier operation does not satisfy a later wait: Prepare drops
// it before the syscall, and the waiter parks until a new event.
TEST_F(PollDescTest, R3_PrepareDropsStaleReadinessBeforeTheSyscall) {
  Inject(pd_, kRead);  // Readiness nobody consumed.
  ASSERT_EQ(pd_->Prepare(kRead), PollError::kNone);
  EXPECT_EQ(PollDescTestPeer::State(pd_, kRead), State::kNil);
  char buffer[8];
  ASSERT_LT(read(local_, buffer, sizeof buffer), 0);  // The syscall decides: EAGAIN.
  std::atomic<PollError> result{PollError::kClosing};
  auto waiter = StartWaiter(kRead, &result);
  ASSERT_TRUE(Parked(kRead)) << "the stale notification satisfied the wait";
  ASSERT_EQ(write(peer_, "x", 1), 1);  // A real, new edge from the kernel.
  waiter->Join();
  EXPECT_EQ(result.load(), PollError::kNone);
}

// R3, the wrong order, to document why the reset must come before the syscall: with the reset
// after the syscall, an event that lands between the EAGAIN and the reset is thrown away, and an
// edge-triggered descriptor never reports it again. The waiter sleeps with data in the buffer.
TEST_F(PollDescTest, R3_ResetAfterTheSyscallLosesTheWakeup) {
  ASSERT_EQ(pd_->Prepare(kRead), PollError::kNone);
  char buffer[8];
  ASSERT_LT(read(local_, buffer, sizeof buffer), 0);  // EAGAIN
  ASSERT_EQ(write(peer_, "x", 1), 1);                 // Data and its edge arrive now...
  ASSERT_TRUE(WaitUntil([&] { return PollDescTestPeer::State(pd_, kRead) == State::kReady; }));
  PollDescTestPeer::ResetSemaphore(pd_, kRead);       // ...and the misplaced reset drops it.
  std::atomic<PollError> result{PollError::kNone};
  auto waiter = StartWaiter(kRead, &result);
  ASSERT_TRUE(Parked(kRead));
  // Make the poller go round its loop: no new edge exists, so nothing wakes the reader...
  Poller::Get().Wakeup();
  ASSERT_TRUE(WaitUntil([&] { return !Poller::Get().poll_owned() || Poller::Get().poll_until() != 0; }));
  EXPECT_EQ(PollDescTestPeer::State(pd_, kRead), State::kParked);
  // ...although the data is there to be read: the wake-up was lost.
  EXPECT_EQ(recv(local_, buffer, sizeof buffer, MSG_PEEK), 1);
  pd_->Evict();  // Release the stranded reader.
  waiter->Join();
  EXPECT_EQ(result.load(), PollError::kClosing);
}

// R4: Close between the waiter's error check and its kWait: the waiter re-checks after publishing
// kWait, sees closing, and does not park.
TEST_F(PollDescTest, R4_CloseBetweenCheckAndWait) {
  std::atomic<bool> evicted{false};
  ScopedHook hook([&](HookPoint point, PollDesc* pd) {
    if (point == HookPoint::kBlockAfterPublishWait && pd == pd_ && !evicted.exchange(true)) {
      pd->Evict();  // T11 (or T10): kWait -> kNil, no waiter to ready.
    }
  });
  int64_t waiters = Poller::Get().waiters();
  EXPECT_EQ(pd_->Wait(kRead), PollError::kClosing);  // On this thread: it would hang if it parked.
  EXPECT_TRUE(evicted.load());
  EXPECT_EQ(Poller::Get().waiters(), waiters);
}

// R5: the same with a deadline moved into the past.
TEST_F(PollDescTest, R5_PastDeadlineBetweenCheckAndWait) {
  std::atomic<bool> expired{false};
  ScopedHook hook([&](HookPoint point, PollDesc* pd) {
    if (point == HookPoint::kBlockAfterPublishWait && pd == pd_ && !expired.exchange(true)) {
      pd->SetDeadline(-1, kRead);
    }
  });
  EXPECT_EQ(pd_->Wait(kRead), PollError::kTimeout);
  EXPECT_TRUE(expired.load());
}

// R5: the same with the deadline timer firing in that window.
TEST_F(PollDescTest, R5_TimerFiresBetweenCheckAndWait) {
  std::atomic<bool> fired{false};
  ScopedHook hook([&](HookPoint point, PollDesc* pd) {
    if (point == HookPoint::kBlockAfterPublishWait && pd == pd_ && !fired.load()) {
      // Hold the waiter here until the poller's timer has expired the deadline.
      EXPECT_TRUE(WaitUntil([&] { return pd->CheckError(kRead) == PollError::kTimeout; }));
      fired = true;
    }
  });
  pd_->SetDeadline(MonotonicNanos() + 2 * kMs, kRead);
  Poller::Get().EnsurePolling();  // The background poller runs the shared timers.
  EXPECT_EQ(pd_->Wait(kRead), PollError::kTimeout);
  EXPECT_TRUE(fired.load());
}

// R15: the timer fires, its callback waits for the lock, and meanwhile the deadline is extended:
// the callback finds its seq stale and the parked waiter stays parked.
TEST_F(PollDescTest, R15_StaleTimerAfterExtension) {
  std::atomic<int> callbacks{0};
  ScopedHook hook([&](HookPoint point, PollDesc* pd) {
    if (point == HookPoint::kDeadlineTimerBeforeLock && pd == pd_ && callbacks.fetch_add(1) == 0) {
      pd->SetDeadline(MonotonicNanos() + kHour, kRead);  // D2 wins the lock first.
    }
  });
  std::atomic<PollError> result{PollError::kNone};
  auto waiter = StartWaiter(kRead, &result);
  ASSERT_TRUE(Parked(kRead));
  uint64_t fired_before = Poller::Get().stats().timers_fired;
  uintptr_t seq_before = PollDescTestPeer::Rseq(pd_);
  pd_->SetDeadline(MonotonicNanos() + 2 * kMs, kRead);  // D1
  ASSERT_TRUE(WaitUntil([&] { return Poller::Get().stats().timers_fired > fired_before; }));
  EXPECT_EQ(callbacks.load(), 1);
  EXPECT_GT(PollDescTestPeer::Rseq(pd_), seq_before);
  EXPECT_EQ(pd_->CheckError(kRead), PollError::kNone);
  EXPECT_EQ(PollDescTestPeer::State(pd_, kRead), State::kParked);  // No timeout at 2 ms.
  EXPECT_TRUE(PollDescTestPeer::ReadTimerPending(pd_));             // The 1 h timer.
  pd_->Evict();
  waiter->Join();
  EXPECT_EQ(result.load(), PollError::kClosing);
}

// R16: the timer fired and woke the waiter, then the deadline was extended before the waiter
// ran: the waiter finds no error and parks again instead of reporting a timeout.
TEST_F(PollDescTest, R16_ExtendedAfterTimerWokeTheWaiter) {
  std::atomic<bool> extended{false};
  ScopedHook hook([&](HookPoint point, PollDesc* pd) {
    if (point == HookPoint::kBlockAfterWake && pd == pd_ && !extended.load() &&
        pd->CheckError(kRead) == PollError::kTimeout) {
      pd->SetDeadline(MonotonicNanos() + kHour, kRead);
      extended = true;
    }
  });
  std::atomic<PollError> result{PollError::kClosing};
  auto waiter = StartWaiter(kRead, &result);
  ASSERT_TRUE(Parked(kRead));
  pd_->SetDeadline(MonotonicNanos() + 2 * kMs, kRead);
  ASSERT_TRUE(WaitUntil([&] { return extended.load(); })) << "the timer never woke the waiter";
  ASSERT_TRUE(Parked(kRead)) << "the waiter did not park again after the extension";
  EXPECT_FALSE(waiter->Finished());
  Inject(pd_, kRead);
  waiter->Join();
  EXPECT_EQ(result.load(), PollError::kNone);  // Completed on data, not a timeout.
}

// R17: a deadline moved into the past wakes a parked waiter at once, with no timer.
TEST_F(PollDescTest, R17_PastDeadlineWakesParkedWaiterSynchronously) {
  const int64_t now = MonotonicNanos();
  for (int64_t past : {int64_t{-1}, -now /* "a long time ago" */, DeadlineAfter(0, now)}) {
    ASSERT_LT(past, 0);
    pd_->SetDeadline(0, kRead);
    std::atomic<PollError> result{PollError::kNone};
    auto waiter = StartWaiter(kRead, &result);
    ASSERT_TRUE(Parked(kRead));
    uint64_t timers = Poller::Get().stats().timers_fired;
    int64_t start = MonotonicNanos();
    pd_->SetDeadline(past, kRead);
    // Readied inside SetDeadline: the thread finishes without any timer running.
    waiter->Join();
    EXPECT_EQ(result.load(), PollError::kTimeout);
    EXPECT_EQ(Poller::Get().stats().timers_fired, timers);
    EXPECT_LT(MonotonicNanos() - start, 1000 * kMs);
  }
}

// R18 at this layer: an expired deadline is reported by Prepare before any syscall.
TEST_F(PollDescTest, ExpiredDeadlineFailsPrepare) {
  pd_->SetDeadline(-1, kRead);
  EXPECT_EQ(pd_->Prepare(kRead), PollError::kTimeout);
  EXPECT_EQ(pd_->Prepare(kWrite), PollError::kNone);
  pd_->SetDeadline(0, kRead);
  EXPECT_EQ(pd_->Prepare(kRead), PollError::kNone);
}

// R19 (a): I/O readies the waiter, then the timeout fires before it runs: readiness wins.
TEST_F(PollDescTest, R19a_IoThenTimeoutBeforeWaiterRuns) {
  std::atomic<bool> timed_out{false};
  ScopedHook hook([&](HookPoint point, PollDesc* pd) {
    if (point == HookPoint::kBlockAfterWake && pd == pd_ && !timed_out.exchange(true)) {
      pd->SetDeadline(-1, kRead);  // T13: kReady stays kReady.
    }
  });
  std::atomic<PollError> result{PollError::kClosing};
  auto waiter = StartWaiter(kRead, &result);
  ASSERT_TRUE(Parked(kRead));
  Inject(pd_, kRead);  // T8
  waiter->Join();
  EXPECT_TRUE(timed_out.load());
  EXPECT_EQ(result.load(), PollError::kNone);          // The read proceeds...
  EXPECT_EQ(pd_->Prepare(kRead), PollError::kTimeout);  // ...and the next one times out.
}

// R19 (b): the timeout readies the waiter, then I/O arrives before it runs: readiness wins.
TEST_F(PollDescTest, R19b_TimeoutThenIoBeforeWaiterRuns) {
  std::atomic<bool> io{false};
  ScopedHook hook([&](HookPoint point, PollDesc* pd) {
    if (point == HookPoint::kBlockAfterWake && pd == pd_ && !io.exchange(true)) {
      Inject(pd, kRead);  // kNil -> kReady
    }
  });
  std::atomic<PollError> result{PollError::kClosing};
  auto waiter = StartWaiter(kRead, &result);
  ASSERT_TRUE(Parked(kRead));
  pd_->SetDeadline(-1, kRead);  // T12
  waiter->Join();
  EXPECT_TRUE(io.load());
  EXPECT_EQ(result.load(), PollError::kNone);
}

// R19 (c): the timeout fires and no I/O arrives: a timeout.
TEST_F(PollDescTest, R19c_TimeoutAlone) {
  std::atomic<PollError> result{PollError::kNone};
  auto waiter = StartWaiter(kRead, &result);
  ASSERT_TRUE(Parked(kRead));
  pd_->SetDeadline(MonotonicNanos() + 1 * kMs, kRead);
  waiter->Join();
  EXPECT_EQ(result.load(), PollError::kTimeout);
}

// R20: SetDeadline(t) uses one timer for both directions; a later SetWriteDeadline(t2) splits it
// (the read timer is re-armed with a new seq, the write timer is armed), and each direction then
// expires at its own time.
TEST_F(PollDescTest, R20_CombinedTimerSplit) {
  const int64_t t = MonotonicNanos() + 60 * kMs;
  const int64_t t2 = t + 120 * kMs;
  pd_->SetDeadline(t, kReadWrite);
  EXPECT_TRUE(PollDescTestPeer::ReadTimerPending(pd_));
  EXPECT_FALSE(PollDescTestPeer::WriteTimerPending(pd_));  // One shared timer.
  uintptr_t rseq = PollDescTestPeer::Rseq(pd_);
  pd_->SetDeadline(t2, kWrite);
  EXPECT_GT(PollDescTestPeer::Rseq(pd_), rseq);  // The combined callback is now stale.
  EXPECT_TRUE(PollDescTestPeer::ReadTimerPending(pd_));
  EXPECT_TRUE(PollDescTestPeer::WriteTimerPending(pd_));
  Poller::Get().EnsurePolling();
  ASSERT_TRUE(WaitUntil([&] { return pd_->CheckError(kRead) == PollError::kTimeout; }));
  int64_t read_expired_at = MonotonicNanos();
  EXPECT_GE(read_expired_at, t);
  if (MonotonicNanos() < t2) {
    EXPECT_EQ(pd_->CheckError(kWrite), PollError::kNone);
  }
  ASSERT_TRUE(WaitUntil([&] { return pd_->CheckError(kWrite) == PollError::kTimeout; }));
  EXPECT_GE(MonotonicNanos(), t2);
}

// R20, forced: the combined callback is already running when the split happens; it must not
// expire the write direction.
TEST_F(PollDescTest, R20_InFlightCombinedCallbackIsStaleAfterSplit) {
  std::atomic<int> calls{0};
  ScopedHook hook([&](HookPoint point, PollDesc* pd) {
    if (point == HookPoint::kDeadlineTimerBeforeLock && pd == pd_ && calls.fetch_add(1) == 0) {
      pd->SetDeadline(MonotonicNanos() + kHour, kWrite);
    }
  });
  pd_->SetDeadline(MonotonicNanos() + 2 * kMs, kReadWrite);
  Poller::Get().EnsurePolling();
  // The re-armed read-only timer expires the read side (its deadline has passed)...
  ASSERT_TRUE(WaitUntil([&] { return pd_->CheckError(kRead) == PollError::kTimeout; }));
  // ...and the write side, whose deadline moved, is untouched by the stale combined callback.
  EXPECT_GE(calls.load(), 2);
  EXPECT_EQ(pd_->CheckError(kWrite), PollError::kNone);
}

// R21: a deadline timer of a closed descriptor runs late, after its slot was reused: the new
// descriptor is untouched.
TEST_F(PollDescTest, R21_LateTimerAfterCloseAndReuse) {
  testing::Event reused;
  std::atomic<bool> in_callback{false};
  PollDesc* old_pd = pd_;
  ScopedHook hook([&](HookPoint point, PollDesc* pd) {
    if (point == HookPoint::kDeadlineTimerBeforeLock && pd == old_pd && !in_callback.exchange(true)) {
      EXPECT_TRUE(reused.WaitFor());  // Hold the callback until the slot has a new owner.
    }
  });
  uint64_t fired_before = Poller::Get().stats().timers_fired;
  pd_->SetDeadline(MonotonicNanos() + 1 * kMs, kRead);
  Poller::Get().EnsurePolling();
  ASSERT_TRUE(WaitUntil([&] { return in_callback.load(); }));
  CloseDesc(pd_);
  pd_ = Open(local_);
  ASSERT_EQ(pd_, old_pd) << "the free list did not hand back the same slot";
  std::atomic<PollError> result{PollError::kNone};
  auto waiter = StartWaiter(kRead, &result);
  ASSERT_TRUE(Parked(kRead));
  reused.Notify();
  ASSERT_TRUE(WaitUntil([&] { return Poller::Get().stats().timers_fired > fired_before; }));
  EXPECT_EQ(pd_->CheckError(kRead), PollError::kNone);
  EXPECT_EQ(PollDescTestPeer::State(pd_, kRead), State::kParked);
  pd_->Evict();
  waiter->Join();
  EXPECT_EQ(result.load(), PollError::kClosing);
}

// R22: setting the same absolute deadline again changes nothing and it expires exactly once.
TEST_F(PollDescTest, R22_SameDeadlineAgain) {
  const int64_t t = MonotonicNanos() + 20 * kMs;
  pd_->SetDeadline(t, kRead);
  uintptr_t rseq = PollDescTestPeer::Rseq(pd_);
  pd_->SetDeadline(t, kRead);
  EXPECT_EQ(PollDescTestPeer::Rseq(pd_), rseq);
  std::atomic<PollError> result{PollError::kNone};
  auto waiter = StartWaiter(kRead, &result);
  waiter->Join();
  EXPECT_EQ(result.load(), PollError::kTimeout);
  EXPECT_GE(MonotonicNanos(), t);
  EXPECT_EQ(PollDescTestPeer::ReadDeadline(pd_), -1);
  EXPECT_FALSE(PollDescTestPeer::ReadTimerPending(pd_));
}

// R23: now + a huge duration overflows; it is clamped to "never", not wrapped into the past.
TEST_F(PollDescTest, R23_HugeDeadlineClampsToNever) {
  const int64_t now = MonotonicNanos();
  EXPECT_EQ(DeadlineAfter(std::numeric_limits<int64_t>::max(), now), kNever);
  EXPECT_EQ(DeadlineAfter(std::numeric_limits<int64_t>::max() - now + 1, now), kNever);
  EXPECT_EQ(DeadlineAfter(5, now), now + 5);
  EXPECT_EQ(DeadlineAfter(0, now), -1);
  EXPECT_EQ(DeadlineAfter(-7, now), -7);
  pd_->SetDeadline(DeadlineAfter(std::numeric_limits<int64_t>::max(), now), kRead);
  EXPECT_EQ(pd_->CheckError(kRead), PollError::kNone);
  EXPECT_EQ(pd_->Prepare(kRead), PollError::kNone);
  std::atomic<PollError> result{PollError::kNone};
  auto waiter = StartWaiter(kRead, &result);
  ASSERT_TRUE(Parked(kRead));
  Poller::Get().Wakeup();  // Let the poller recompute its timeout with this timer in the heap.
  EXPECT_EQ(pd_->CheckError(kRead), PollError::kNone);
  pd_->Evict();
  waiter->Join();
  EXPECT_EQ(result.load(), PollError::kClosing);
}

// R24: an event for a previous registration of the slot is ignored.
TEST_F(PollDescTest, R24_StaleEventAfterCloseAndReuse) {
  uint64_t old_token = pd_->token();
  PollDesc* old_pd = pd_;
  CloseDesc(pd_);
  pd_ = Open(local_);
  ASSERT_EQ(pd_, old_pd);
  EXPECT_NE(pd_->token(), old_token);
  ASSERT_EQ(pd_->Prepare(kRead), PollError::kNone);
  uint64_t stale = Poller::Get().stats().stale_events;
  ReadyList ready;
  Poller::Get().InjectEvent(old_token, kRead | kWrite, /*error_only=*/true, &ready);
  EXPECT_TRUE(ready.empty());
  EXPECT_EQ(Poller::Get().stats().stale_events, stale + 1);
  EXPECT_EQ(PollDescTestPeer::State(pd_, kRead), State::kNil);
  EXPECT_EQ(pd_->CheckError(kRead), PollError::kNone);  // No error bit from the stale event.
}

// R25: the poller checked the token, then the slot was freed and reopened, then the poller sets
// the error bit with the old generation: the new descriptor does not get it.
TEST_F(PollDescTest, R25_ErrorBitSetLateIsIgnored) {
  PollDesc* pd = pd_;
  std::atomic<bool> reopened{false};
  ScopedHook hook([&](HookPoint point, PollDesc* hooked) {
    if (point == HookPoint::kEventAfterTokenCheck && hooked == pd && !reopened.exchange(true)) {
      CloseDesc(pd_);
      pd_ = Open(local_);
      EXPECT_EQ(pd_, pd);
    }
  });
  Inject(pd_, kRead, /*error_only=*/true);
  EXPECT_TRUE(reopened.load());
  EXPECT_EQ(pd_->CheckError(kRead), PollError::kNone);
}

TEST_F(PollDescTest, EventErrorIsForReadersOnlyAndGenerationChecked) {
  uint32_t generation = PollDescTestPeer::Generation(pd_);
  PollDescTestPeer::SetEventError(pd_, true, generation + 1);  // Someone else's generation.
  EXPECT_EQ(pd_->CheckError(kRead), PollError::kNone);
  Inject(pd_, kRead | kWrite, /*error_only=*/true);
  EXPECT_EQ(pd_->CheckError(kRead), PollError::kNotPollable);
  EXPECT_EQ(pd_->CheckError(kWrite), PollError::kNone);  // Writers retry and get the real errno.
  Inject(pd_, kRead, /*error_only=*/false);             // Any other event clears it.
  EXPECT_EQ(pd_->CheckError(kRead), PollError::kNone);
}

// R26 at this layer: a spurious readiness notification returns kNone; callers retry the syscall.
TEST_F(PollDescTest, R26_SpuriousReadinessIsJustAReturn) {
  std::atomic<PollError> result{PollError::kClosing};
  auto waiter = StartWaiter(kRead, &result);
  ASSERT_TRUE(Parked(kRead));
  Inject(pd_, kRead);  // No data behind it.
  waiter->Join();
  EXPECT_EQ(result.load(), PollError::kNone);
  char buffer[4];
  EXPECT_LT(read(local_, buffer, sizeof buffer), 0);  // The retry gets EAGAIN and waits again.
}

// R32: the count of parked waiters drops only after the readied waiter is runnable.
TEST_F(PollDescTest, R32_WaiterCountDropsOnlyAfterReady) {
  int64_t base = Poller::Get().waiters();
  std::atomic<PollError> result{PollError::kClosing};
  auto waiter = StartWaiter(kRead, &result);
  ASSERT_TRUE(Parked(kRead));
  EXPECT_EQ(Poller::Get().waiters(), base + 1);
  ReadyList ready;
  Poller::Get().InjectEvent(pd_->token(), kRead, false, &ready);
  ASSERT_EQ(ready.size(), 1);
  EXPECT_EQ(ready.waiter_delta, -1);
  // Taken out of the descriptor but not yet runnable: still counted, so no scheduler can conclude
  // that nobody waits (Go's false "all goroutines are asleep").
  EXPECT_EQ(Poller::Get().waiters(), base + 1);
  Poller::Get().ReadyAll(ready);
  EXPECT_EQ(Poller::Get().waiters(), base);
  waiter->Join();
  EXPECT_EQ(result.load(), PollError::kNone);
}

TEST_F(PollDescTest, EvictWakesBothDirections) {
  std::atomic<PollError> read_result{PollError::kNone}, write_result{PollError::kNone};
  auto reader = StartWaiter(kRead, &read_result);
  // The socket starts writable; clear that so the writer parks.
  ASSERT_TRUE(WaitUntil([&] { return PollDescTestPeer::State(pd_, kWrite) == State::kReady; }));
  ASSERT_EQ(pd_->Prepare(kWrite), PollError::kNone);
  auto writer = StartWaiter(kWrite, &write_result);
  ASSERT_TRUE(Parked(kRead));
  ASSERT_TRUE(Parked(kWrite));
  pd_->Evict();
  reader->Join();
  writer->Join();
  EXPECT_EQ(read_result.load(), PollError::kClosing);
  EXPECT_EQ(write_result.load(), PollError::kClosing);
  // R13 at this layer: a deadline set after Evict arms nothing.
  pd_->SetDeadline(MonotonicNanos() + kMs, kReadWrite);
  EXPECT_FALSE(PollDescTestPeer::ReadTimerPending(pd_));
  EXPECT_FALSE(PollDescTestPeer::WriteTimerPending(pd_));
  EXPECT_EQ(pd_->Prepare(kRead), PollError::kClosing);
}

TEST_F(PollDescTest, OpenFailsCleanlyForAnUnpollableDescriptor) {
  int file = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(file, 0);
  absl::StatusOr<PollDesc*> pd = Poller::Get().Open(file);
  EXPECT_EQ(pd.status().code(), absl::StatusCode::kPermissionDenied) << pd.status();
  close(file);
}

TEST(PollErrorName, NamesEveryError) {
  EXPECT_STREQ(PollErrorName(PollError::kNone), "none");
  EXPECT_STREQ(PollErrorName(PollError::kClosing), "closing");
  EXPECT_STREQ(PollErrorName(PollError::kTimeout), "timeout");
  EXPECT_STREQ(PollErrorName(PollError::kNotPollable), "not pollable");
}

using PollDescDeathTest = PollDescTest;

TEST_F(PollDescDeathTest, DoubleWaitIsFatal) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        std::thread first([this] { pd_->Wait(kRead); });
        WaitUntil([&] { return PollDescTestPeer::State(pd_, kRead) == State::kParked; });
        pd_->Wait(kRead);
      },
      "double wait");
}

TEST_F(PollDescDeathTest, CorruptedStateIsFatal) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        ScopedHook hook([](HookPoint point, PollDesc* pd) {
          if (point == HookPoint::kBlockAfterPublishWait) {
            // Somebody parked a second waiter behind our back: the word holds a foreign pointer.
            PollDescTestPeer::StoreRaw(pd, kRead, 0x1000);
          }
        });
        pd_->Wait(kRead);
      },
      "corrupted state");
}

TEST_F(PollDescDeathTest, EvictTwiceAndCloseWithoutEvictAreFatal) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH((void)Poller::Get().Close(pd_), "without Evict");
  pd_->Evict();
  EXPECT_DEATH(pd_->Evict(), "evicted twice");
}

// ---------------------------------------------------------------------------------------------
// Stress variants: the same races, unforced, many times across threads (for TSan).

class PollDescStress : public PollDescTest {
 protected:
  static constexpr int kRounds = 300;
  // Re-registers the socket, so every round starts from a fresh descriptor.
  void Fresh() {
    CloseDesc(pd_);
    pd_ = Open(local_);
  }
};

// R1/R2/R19: readiness racing the waiter at every point of its park.
TEST_F(PollDescStress, R1_R2_ReadinessRacesThePark) {
  for (int round = 0; round < kRounds; ++round) {
    Fresh();
    ASSERT_EQ(pd_->Prepare(kRead), PollError::kNone);
    std::atomic<PollError> result{PollError::kClosing};
    auto waiter = StartWaiter(kRead, &result);
    Inject(pd_, kRead);
    waiter->Join();
    ASSERT_EQ(result.load(), PollError::kNone) << "round " << round;
  }
}

// R4/R6: Close racing the waiter.
TEST_F(PollDescStress, R4_CloseRacesThePark) {
  for (int round = 0; round < kRounds; ++round) {
    Fresh();
    std::atomic<PollError> result{PollError::kNone};
    auto waiter = StartWaiter(kRead, &result);
    pd_->Evict();
    waiter->Join();
    ASSERT_EQ(result.load(), PollError::kClosing) << "round " << round;
  }
}

// R5/R17: a past deadline racing the waiter.
TEST_F(PollDescStress, R5_R17_PastDeadlineRacesThePark) {
  for (int round = 0; round < kRounds; ++round) {
    Fresh();
    std::atomic<PollError> result{PollError::kNone};
    auto waiter = StartWaiter(kRead, &result);
    pd_->SetDeadline(-1, kRead);
    waiter->Join();
    ASSERT_EQ(result.load(), PollError::kTimeout) << "round " << round;
  }
}

// R15/R16/R19: timers that fire while deadlines move and readiness arrives; the waiter must end
// with data (kNone) or a timeout, never hang, and never time out while the deadline is far.
TEST_F(PollDescStress, R16_DeadlinesMoveWhileTimersFire) {
  std::mt19937 rng(1);
  for (int round = 0; round < kRounds; ++round) {
    Fresh();
    std::atomic<PollError> result{PollError::kClosing};
    auto waiter = StartWaiter(kRead, &result);
    for (int i = 0; i < 5; ++i) {
      pd_->SetDeadline(MonotonicNanos() + static_cast<int64_t>(rng() % 200'000), kRead);
    }
    pd_->SetDeadline(MonotonicNanos() + kHour, kRead);  // Final: far away.
    Inject(pd_, kRead);
    waiter->Join();
    // Either the data won, or an early deadline fired and was observed before the extension.
    PollError r = result.load();
    ASSERT_TRUE(r == PollError::kNone || r == PollError::kTimeout) << PollErrorName(r);
  }
}

// R21/R24/R25: descriptors closed and reopened while stale events and timers chase them.
TEST_F(PollDescStress, R24_ReuseWhileStaleEventsArrive) {
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> token{pd_->token()};
  std::thread injector([&] {
    while (!stop.load()) {
      ReadyList ready;
      Poller::Get().InjectEvent(token.load(), kRead | kWrite, /*error_only=*/true, &ready);
      Poller::Get().ReadyAll(ready);
    }
  });
  for (int round = 0; round < kRounds * 3; ++round) {
    uint64_t old = pd_->token();
    pd_->SetDeadline(MonotonicNanos() + 50'000, kReadWrite);
    Fresh();
    token = old;  // Keep injecting the previous registration's token.
    // The error bit of the new registration is untouched by the stale events.
    ASSERT_NE(pd_->CheckError(kRead), PollError::kNotPollable) << "round " << round;
    ASSERT_NE(pd_->CheckError(kRead), PollError::kTimeout) << "round " << round;
  }
  stop = true;
  injector.join();
}

// R3: the real protocol (Prepare, syscall, wait on EAGAIN) against a writer producing one byte at
// a time with real kernel edges. With the reset in the wrong place a round would hang.
TEST_F(PollDescStress, R3_PrepareSyscallWaitAgainstRealEdges) {
  constexpr int kBytes = 3000;
  std::atomic<int> received{0};
  BoundedThread reader([&] {
    char b[64];
    while (received.load() < kBytes) {
      ASSERT_EQ(pd_->Prepare(kRead), PollError::kNone);
      ssize_t n = read(local_, b, sizeof b);
      if (n > 0) {
        received.fetch_add(static_cast<int>(n));
        continue;
      }
      ASSERT_EQ(pd_->Wait(kRead), PollError::kNone);
    }
  });
  for (int i = 0; i < kBytes; ++i) {
    // The socket is non-blocking: if a slow reader (a sanitizer build) lets the buffer fill up,
    // wait for it to drain some, bounded.
    ASSERT_TRUE(WaitUntil([&] { return write(peer_, "x", 1) == 1; })) << "byte " << i;
    if (i % 7 == 0) std::this_thread::yield();
  }
  reader.Join();
  EXPECT_EQ(received.load(), kBytes);
}

// R20: combined and split deadlines churn while timers fire; the final state is always right.
TEST_F(PollDescStress, R20_CombinedAndSplitDeadlinesChurn) {
  std::mt19937 rng(3);
  for (int round = 0; round < kRounds; ++round) {
    Fresh();
    for (int i = 0; i < 6; ++i) {
      int64_t t = MonotonicNanos() + static_cast<int64_t>(rng() % 300'000);
      pd_->SetDeadline(t, kReadWrite);
      pd_->SetDeadline(t + static_cast<int64_t>(rng() % 300'000), kWrite);
    }
    const int64_t far = MonotonicNanos() + kHour;
    pd_->SetDeadline(far, kReadWrite);  // Combined again, far away: neither direction expires.
    ASSERT_EQ(pd_->CheckError(kRead), PollError::kNone) << "round " << round;
    ASSERT_EQ(pd_->CheckError(kWrite), PollError::kNone) << "round " << round;
    EXPECT_TRUE(PollDescTestPeer::ReadTimerPending(pd_));
    EXPECT_FALSE(PollDescTestPeer::WriteTimerPending(pd_));
  }
}

// R22: the same absolute deadline set again and again from two threads: it expires exactly once,
// at that time.
TEST_F(PollDescStress, R22_SameDeadlineFromTwoThreads) {
  std::atomic<int> callbacks{0};
  std::atomic<PollDesc*> watched{nullptr};
  ScopedHook hook([&](HookPoint point, PollDesc* pd) {
    if (point == HookPoint::kDeadlineTimerBeforeLock && pd == watched.load()) callbacks.fetch_add(1);
  });
  for (int round = 0; round < 10; ++round) {
    Fresh();
    watched = pd_;
    callbacks = 0;
    // Far enough that every SetDeadline below lands before it, even under a sanitizer (setting it
    // again after it expired legitimately arms it again).
    const int64_t t = MonotonicNanos() + 200 * kMs;
    std::thread other([&] {
      for (int i = 0; i < 50; ++i) pd_->SetDeadline(t, kRead);
    });
    for (int i = 0; i < 50; ++i) pd_->SetDeadline(t, kRead);
    other.join();
    ASSERT_LT(MonotonicNanos(), t) << "the machine is too slow for this round's premise";
    Poller::Get().EnsurePolling();
    ASSERT_TRUE(WaitUntil([&] { return pd_->CheckError(kRead) == PollError::kTimeout; }));
    EXPECT_GE(MonotonicNanos(), t);
    EXPECT_EQ(callbacks.load(), 1) << "round " << round;  // One timer, one expiry.
    EXPECT_FALSE(PollDescTestPeer::ReadTimerPending(pd_));
  }
  watched = nullptr;
}

// R23: huge deadlines from several threads never turn into an immediate timeout.
TEST_F(PollDescStress, R23_HugeDeadlinesNeverExpire) {
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 1000; ++i) {
        int64_t huge = std::numeric_limits<int64_t>::max() - i - t;
        pd_->SetDeadline(DeadlineAfter(huge, MonotonicNanos()), t % 2 == 0 ? kRead : kReadWrite);
        ASSERT_NE(pd_->CheckError(kRead), PollError::kTimeout);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(pd_->CheckError(kRead), PollError::kNone);
  EXPECT_EQ(pd_->CheckError(kWrite), PollError::kNone);
}

}  // namespace
}  // namespace netpoll::poller
