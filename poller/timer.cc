#include "poller/timer.h"

#include <mutex>

#include "platform/check.h"
#include "poller/poller.h"

namespace netpoll::poller {
namespace {

// A 4-ary heap is shallower than a binary one (half the levels) and its four children share a
// cache line of the pointer array, which makes sift-down cheaper at 1M timers.
constexpr int32_t kArity = 4;

int32_t Parent(int32_t i) { return (i - 1) / kArity; }
int32_t FirstChild(int32_t i) { return i * kArity + 1; }

TimerHeap* HeapForNewTimer() {
  TimerHeap* heap = CurrentTimerHeap();
  return heap != nullptr ? heap : &Poller::Get().shared_timers();
}

}  // namespace

TimerHeap::~TimerHeap() {
  std::lock_guard<platform::FutexMutex> lock(mutex_);
  for (Timer* t : heap_) {
    t->index_ = -1;
    t->heap_.store(nullptr, std::memory_order_release);
  }
}

size_t TimerHeap::size() const {
  std::lock_guard<platform::FutexMutex> lock(mutex_);
  return heap_.size();
}

void TimerHeap::SiftUpLocked(int32_t i) {
  Timer* t = heap_[i];
  while (i > 0) {
    int32_t p = Parent(i);
    if (heap_[p]->when_ <= t->when_) break;
    Place(heap_[p], i);
    i = p;
  }
  Place(t, i);
}

void TimerHeap::SiftDownLocked(int32_t i) {
  Timer* t = heap_[i];
  const int32_t n = static_cast<int32_t>(heap_.size());
  for (;;) {
    int32_t c = FirstChild(i);
    if (c >= n) break;
    int32_t best = c;
    int32_t end = c + kArity < n ? c + kArity : n;
    for (int32_t k = c + 1; k < end; ++k) {
      if (heap_[k]->when_ < heap_[best]->when_) best = k;
    }
    if (t->when_ <= heap_[best]->when_) break;
    Place(heap_[best], i);
    i = best;
  }
  Place(t, i);
}

void TimerHeap::FixLocked(int32_t i) {
  if (i > 0 && heap_[Parent(i)]->when_ > heap_[i]->when_) {
    SiftUpLocked(i);
  } else {
    SiftDownLocked(i);
  }
}

void TimerHeap::AddLocked(Timer* timer) {
  heap_.push_back(timer);
  timer->index_ = static_cast<int32_t>(heap_.size() - 1);
  // release: pairs with the owner's acquire load in pending()/ArmTimer/StopTimer.
  timer->heap_.store(this, std::memory_order_release);
  SiftUpLocked(timer->index_);
}

void TimerHeap::RemoveLocked(Timer* timer) {
  int32_t i = timer->index_;
  NETPOLL_CHECK(i >= 0 && i < static_cast<int32_t>(heap_.size()) && heap_[i] == timer,
                "timer heap corrupted: a timer's slot does not hold it");
  Timer* last = heap_.back();
  heap_.pop_back();
  if (last != timer) {
    Place(last, i);
    FixLocked(i);
  }
  timer->index_ = -1;
  // release: see AddLocked.
  timer->heap_.store(nullptr, std::memory_order_release);
}

void TimerHeap::PublishNextLocked() {
  next_when_.store(heap_.empty() ? kNever : heap_[0]->when_, std::memory_order_seq_cst);
}

void ArmTimer(Timer* timer, int64_t when, Timer::Callback callback, void* arg, uintptr_t seq) {
  bool new_earliest = false;
  for (;;) {
    // acquire: pairs with the heap's release store, so the heap we lock is fully set up.
    TimerHeap* heap = timer->heap_.load(std::memory_order_acquire);
    if (heap == nullptr) heap = HeapForNewTimer();
    std::lock_guard<platform::FutexMutex> lock(heap->mutex_);
    TimerHeap* now_in = timer->heap_.load(std::memory_order_acquire);
    if (now_in != nullptr && now_in != heap) continue;  // Moved under us; only a runner does that.
    timer->callback_ = callback;
    timer->arg_ = arg;
    timer->seq_ = seq;
    timer->when_ = when;
    if (now_in == heap) {
      heap->FixLocked(timer->index_);
    } else {
      heap->AddLocked(timer);
    }
    // relaxed: only ever written under mutex_, which we hold.
    int64_t previous_next = heap->next_when_.load(std::memory_order_relaxed);
    if (heap->heap_[0]->when_ != previous_next) heap->PublishNextLocked();
    new_earliest = heap->heap_[0] == timer && when < previous_next;
    break;
  }
  if (new_earliest) Poller::Get().NotifyTimerArmed(when);
}

bool StopTimer(Timer* timer) {
  for (;;) {
    // acquire: see ArmTimer.
    TimerHeap* heap = timer->heap_.load(std::memory_order_acquire);
    if (heap == nullptr) return false;
    std::lock_guard<platform::FutexMutex> lock(heap->mutex_);
    if (timer->heap_.load(std::memory_order_acquire) != heap) continue;  // A runner popped it.
    bool was_first = heap->heap_[0] == timer;
    heap->RemoveLocked(timer);
    // A later earliest needs no wake-up: the poller waking early just recomputes.
    if (was_first) heap->PublishNextLocked();
    return true;
  }
}

void WaitForCallback(const Timer* timer) {
  // acquire: pairs with the runner's release after the callback, so the callback's effects are
  // visible and it no longer touches the timer.
  while (timer->running_.load(std::memory_order_acquire) != 0) {
#if defined(__x86_64__)
    __builtin_ia32_pause();
#endif
  }
}

int TimerHeap::RunDue(int64_t now, ReadyList* ready) {
  // Cheap exit without the lock for the common "nothing due" case.
  if (next_when() > now) return 0;
  int ran = 0;
  for (;;) {
    Timer::Callback callback;
    void* arg;
    uintptr_t seq;
    Timer* timer;
    {
      std::lock_guard<platform::FutexMutex> lock(mutex_);
      if (heap_.empty() || heap_[0]->when_ > now) {
        PublishNextLocked();
        return ran;
      }
      timer = heap_[0];
      callback = timer->callback_;
      arg = timer->arg_;
      seq = timer->seq_;
      // relaxed: the heap lock orders this with WaitForCallback's owner, who cannot have the
      // timer back before it leaves the heap below; the release store after the callback is the
      // one that matters.
      timer->running_.store(1, std::memory_order_relaxed);
      RemoveLocked(timer);
      PublishNextLocked();
    }
    callback(arg, seq, ready);
    // release: see WaitForCallback.
    timer->running_.store(0, std::memory_order_release);
    ++ran;
  }
}

}  // namespace netpoll::poller
