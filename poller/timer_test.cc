#include "poller/timer.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <new>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "platform/clock.h"
#include "poller/poller.h"
#include "tests/util/sync.h"

// Counts heap allocations, to check that modifying a timer never allocates.
static std::atomic<long> allocations{0};
void* operator new(size_t size) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace netpoll::poller {
namespace {

// Records each firing: which timer (by arg) with which seq.
struct Firing {
  int id;
  uintptr_t seq;
};
std::vector<Firing>* firings = nullptr;

void Record(void* arg, uintptr_t seq, ReadyList*) {
  firings->push_back({static_cast<int>(reinterpret_cast<intptr_t>(arg)), seq});
}
void* Id(int id) { return reinterpret_cast<void*>(static_cast<intptr_t>(id)); }

bool NoPollerNeeded() { return true; }

class TimerHeapTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // These tests run the heap by hand: keep the poller's background thread out of it.
    Poller::Get().SetNoPollerHook(&NoPollerNeeded);
    SetCurrentTimerHeap(&heap_);
    firings = &fired_;
  }
  void TearDown() override {
    SetCurrentTimerHeap(nullptr);
    firings = nullptr;
  }
  int Run(int64_t now) {
    ReadyList ready;
    return heap_.RunDue(now, &ready);
  }

  TimerHeap heap_;
  std::vector<Firing> fired_;
};

TEST_F(TimerHeapTest, FiresInOrderOfWhen) {
  Timer timers[5];
  int64_t whens[5] = {50, 10, 40, 20, 30};
  for (int i = 0; i < 5; ++i) ArmTimer(&timers[i], whens[i], &Record, Id(i), 0);
  EXPECT_EQ(heap_.size(), 5u);
  EXPECT_EQ(heap_.next_when(), 10);
  EXPECT_EQ(Run(35), 3);
  ASSERT_EQ(fired_.size(), 3u);
  EXPECT_EQ(fired_[0].id, 1);
  EXPECT_EQ(fired_[1].id, 3);
  EXPECT_EQ(fired_[2].id, 4);
  EXPECT_EQ(heap_.next_when(), 40);
  EXPECT_FALSE(timers[1].pending());
  EXPECT_TRUE(timers[0].pending());
  EXPECT_EQ(Run(100), 2);
  EXPECT_EQ(heap_.next_when(), kNever);
}

TEST_F(TimerHeapTest, NothingFiresEarly) {
  Timer t;
  ArmTimer(&t, 1000, &Record, Id(1), 0);
  EXPECT_EQ(Run(999), 0);
  EXPECT_TRUE(fired_.empty());
  EXPECT_EQ(Run(1000), 1);
}

TEST_F(TimerHeapTest, ModifyEarlierAndLater) {
  Timer a, b;
  ArmTimer(&a, 100, &Record, Id(1), 1);
  ArmTimer(&b, 200, &Record, Id(2), 1);
  ArmTimer(&b, 50, &Record, Id(2), 2);  // Earlier: now first.
  EXPECT_EQ(heap_.next_when(), 50);
  ArmTimer(&a, 300, &Record, Id(1), 3);  // Later.
  EXPECT_EQ(heap_.size(), 2u);            // Modified in place, not added twice.
  EXPECT_EQ(Run(299), 1);
  ASSERT_EQ(fired_.size(), 1u);
  EXPECT_EQ(fired_[0].id, 2);
  EXPECT_EQ(fired_[0].seq, 2u);  // The latest arming's seq.
  EXPECT_EQ(Run(300), 1);
  EXPECT_EQ(fired_[1].id, 1);
  EXPECT_EQ(fired_[1].seq, 3u);
}

TEST_F(TimerHeapTest, StopRemovesAndReportsWhetherPending) {
  Timer a, b, c;
  ArmTimer(&a, 10, &Record, Id(1), 0);
  ArmTimer(&b, 20, &Record, Id(2), 0);
  ArmTimer(&c, 30, &Record, Id(3), 0);
  EXPECT_TRUE(StopTimer(&a));  // The earliest.
  EXPECT_EQ(heap_.next_when(), 20);
  EXPECT_FALSE(StopTimer(&a));  // Not pending any more.
  EXPECT_TRUE(StopTimer(&c));
  EXPECT_EQ(Run(100), 1);
  EXPECT_EQ(fired_[0].id, 2);
  EXPECT_FALSE(StopTimer(&b));  // Already fired.
  Timer never_armed;
  EXPECT_FALSE(StopTimer(&never_armed));
}

TEST_F(TimerHeapTest, ReArmAfterFiring) {
  Timer t;
  ArmTimer(&t, 10, &Record, Id(1), 1);
  EXPECT_EQ(Run(10), 1);
  ArmTimer(&t, 20, &Record, Id(1), 2);
  EXPECT_TRUE(t.pending());
  EXPECT_EQ(Run(20), 1);
  EXPECT_EQ(fired_[1].seq, 2u);
}

TEST_F(TimerHeapTest, NeverTimerStaysAndNeverFires) {
  Timer t;
  ArmTimer(&t, kNever, &Record, Id(1), 0);
  EXPECT_TRUE(t.pending());
  EXPECT_EQ(heap_.next_when(), kNever);
  EXPECT_EQ(Run(kNever - 1), 0);
  EXPECT_TRUE(StopTimer(&t));
}

TEST_F(TimerHeapTest, RandomisedAgainstASortedModel) {
  constexpr int kTimers = 2000;
  std::vector<Timer> timers(kTimers);
  std::vector<int64_t> model(kTimers, -1);  // -1 = not pending
  std::mt19937_64 rng(42);
  for (int step = 0; step < 20000; ++step) {
    int i = static_cast<int>(rng() % kTimers);
    switch (rng() % 3) {
      case 0:
      case 1: {
        int64_t when = 1 + static_cast<int64_t>(rng() % 1'000'000);
        ArmTimer(&timers[i], when, &Record, Id(i), 0);
        model[i] = when;
        break;
      }
      case 2:
        EXPECT_EQ(StopTimer(&timers[i]), model[i] >= 0);
        model[i] = -1;
        break;
    }
  }
  int64_t expected_next = kNever;
  for (int64_t w : model) {
    if (w >= 0) expected_next = std::min(expected_next, w);
  }
  EXPECT_EQ(heap_.next_when(), expected_next);
  Run(kNever - 1);
  std::vector<int64_t> fired_whens;
  for (const Firing& f : fired_) fired_whens.push_back(model[f.id]);
  EXPECT_TRUE(std::is_sorted(fired_whens.begin(), fired_whens.end()));
  EXPECT_EQ(fired_.size(), static_cast<size_t>(std::count_if(model.begin(), model.end(),
                                                             [](int64_t w) { return w >= 0; })));
}

TEST_F(TimerHeapTest, AMillionTimersAndModifyNeverAllocates) {
  constexpr int kTimers = 1'000'000;
  std::vector<Timer> timers(kTimers);
  std::mt19937_64 rng(7);
  for (int i = 0; i < kTimers; ++i) {
    ArmTimer(&timers[i], 1 + static_cast<int64_t>(rng() % 1'000'000'000), &Record, Id(i), 0);
  }
  EXPECT_EQ(heap_.size(), static_cast<size_t>(kTimers));
  long before = allocations.load();
  for (int i = 0; i < kTimers; ++i) {
    ArmTimer(&timers[i], 1 + static_cast<int64_t>(rng() % 1'000'000'000), &Record, Id(i), 1);
  }
  EXPECT_EQ(allocations.load() - before, 0) << "modifying a pending timer allocated";
  for (int i = 0; i < kTimers; i += 2) ASSERT_TRUE(StopTimer(&timers[i]));
  EXPECT_EQ(heap_.size(), static_cast<size_t>(kTimers / 2));
  fired_.reserve(kTimers);
  EXPECT_EQ(Run(kNever - 1), kTimers / 2);
  for (const Firing& f : fired_) EXPECT_EQ(f.id % 2, 1);
}

TEST_F(TimerHeapTest, CallbackMayReArmItsOwnTimer) {
  struct Periodic {
    Timer timer;
    int count = 0;
    static void Fire(void* arg, uintptr_t, ReadyList*) {
      auto* self = static_cast<Periodic*>(arg);
      if (++self->count < 3) ArmTimer(&self->timer, 10 * (self->count + 1), &Fire, self, 0);
    }
  } periodic;
  ArmTimer(&periodic.timer, 10, &Periodic::Fire, &periodic, 0);
  Run(100);
  EXPECT_EQ(periodic.count, 3);
}

// A timer on the poller's shared heap, driven by the real poller: fires, never early, and within
// a generous bound.
TEST(SharedTimers, FireOnTimeThroughThePoller) {
  Poller::Get().SetNoPollerHook(nullptr);  // Let the poller start its thread for the shared heap.
  SetCurrentTimerHeap(nullptr);
  struct Probe {
    Timer timer;
    std::atomic<int64_t> fired_at{0};
    testing::Event done;
    static void Fire(void* arg, uintptr_t, ReadyList*) {
      auto* self = static_cast<Probe*>(arg);
      self->fired_at = platform::MonotonicNanos();
      self->done.Notify();
    }
  };
  for (int64_t delay : {int64_t{1'000'000}, int64_t{20'000'000}, int64_t{100'000}}) {
    Probe probe;
    int64_t armed_at = platform::MonotonicNanos();
    int64_t when = armed_at + delay;
    ArmTimer(&probe.timer, when, &Probe::Fire, &probe, 0);
    ASSERT_TRUE(probe.done.WaitFor()) << "timer did not fire";
    WaitForCallback(&probe.timer);
    EXPECT_GE(probe.fired_at.load(), when) << "fired early";
    EXPECT_LT(probe.fired_at.load() - when, 2'000'000'000) << "fired very late";
  }
}

}  // namespace
}  // namespace netpoll::poller
