// Deadline timers: a min-heap per scheduler, driven by whoever polls.
//
// A Timer fires its callback once, at or after its `when` (monotonic ns), unless it is re-armed or
// stopped first. TimerHeap is a 4-ary min-heap of Timer pointers in which every timer knows its
// own slot, so add, modify and delete are O(log n) with no allocation after the heap's array has
// grown (modify never allocates). It holds 1,000,000+ live timers comfortably.
//
// Where timers live: ArmTimer() puts a timer that is not pending into the calling thread's heap
// (CurrentTimerHeap(): the worker's own heap under the fiber runtime) or else the poller's shared
// heap. A pending timer is modified in place in whatever heap holds it. Any thread may run any
// heap's due timers (RunDue); each heap has its own lock, so that is safe.
//
// Waking the poller: when arming makes a timer the earliest of its heap, the poller is told
// (Poller::NotifyTimerArmed), which breaks a blocked poll that would otherwise sleep past it (R30).
//
// Thread-safety and ownership: the heaps are thread-safe. A given Timer must be armed and stopped
// by one owner at a time (PollDesc does it under its lock). The callback runs on the thread that
// runs the heap, without the heap lock, after the timer has left the heap; it may therefore run
// concurrently with the owner re-arming or stopping the timer. Owners make that harmless with a
// sequence number (`seq`, checked by the callback under the owner's lock), and must keep the
// Timer's memory valid until any running callback returns (WaitForCallback).
#ifndef NETPOLL_POLLER_TIMER_H_
#define NETPOLL_POLLER_TIMER_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "platform/futex_mutex.h"
#include "poller/waiter.h"

namespace netpoll::poller {

// "No timer": the latest possible time.
inline constexpr int64_t kNever = std::numeric_limits<int64_t>::max();

class TimerHeap;

class Timer {
 public:
  // Runs when the timer fires. `seq` is the value given to ArmTimer; waiters to wake go into
  // `ready` (they are readied after the callback returns, with no lock held).
  using Callback = void (*)(void* arg, uintptr_t seq, ReadyList* ready);

  Timer() = default;
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  // Whether the timer is in a heap, waiting to fire. Only meaningful to the owner.
  bool pending() const { return heap_.load(std::memory_order_acquire) != nullptr; }

 private:
  friend class TimerHeap;
  friend void ArmTimer(Timer*, int64_t, Callback, void*, uintptr_t);
  friend bool StopTimer(Timer*);
  friend void WaitForCallback(const Timer*);

  int64_t when_ = 0;
  Callback callback_ = nullptr;
  void* arg_ = nullptr;
  uintptr_t seq_ = 0;
  int32_t index_ = -1;  // Slot in heap_'s array; guarded by that heap's lock.
  // The heap holding this timer, or nullptr. Written under that heap's lock; read by the owner
  // without it (acquire) to find which lock to take, then re-checked under the lock.
  std::atomic<TimerHeap*> heap_{nullptr};
  // 1 while a heap runs this timer's callback (see WaitForCallback).
  std::atomic<uint32_t> running_{0};
};

// Arms `timer` to call callback(arg, seq, ...) at `when` (monotonic ns; a timer at kNever stays
// in its heap and never fires). A pending timer is moved in place; otherwise it joins
// CurrentTimerHeap() or the shared heap.
void ArmTimer(Timer* timer, int64_t when, Timer::Callback callback, void* arg, uintptr_t seq);

// Removes `timer` from its heap. Returns true if it was pending (so its callback will not run for
// this arming), false if it was not pending: never armed, already stopped, or already fired, in
// which case its callback may be running right now.
bool StopTimer(Timer* timer);

// Waits until no callback of `timer` is running. For owners whose Timer lives in memory that is
// about to be reused (a fiber's stack); call after StopTimer returned false. Must not be called
// while holding a lock that the callback takes.
void WaitForCallback(const Timer* timer);

class TimerHeap {
 public:
  TimerHeap() = default;
  TimerHeap(const TimerHeap&) = delete;
  TimerHeap& operator=(const TimerHeap&) = delete;
  ~TimerHeap();

  // The earliest `when` in the heap, or kNever. Lock-free; may be stale by the time it is used,
  // which callers tolerate by re-checking after they wake.
  int64_t next_when() const { return next_when_.load(std::memory_order_seq_cst); }

  // Pops every timer whose `when` <= now, in order, and runs its callback (without the lock).
  // Returns how many ran.
  int RunDue(int64_t now, ReadyList* ready);

  size_t size() const;

 private:
  friend void ArmTimer(Timer*, int64_t, Timer::Callback, void*, uintptr_t);
  friend bool StopTimer(Timer*);

  // All of these require mutex_.
  void AddLocked(Timer* timer);
  void RemoveLocked(Timer* timer);
  void FixLocked(int32_t index);  // Restores the heap order around `index`.
  void SiftUpLocked(int32_t index);
  void SiftDownLocked(int32_t index);
  void Place(Timer* timer, int32_t index) {
    heap_[index] = timer;
    timer->index_ = index;
  }
  void PublishNextLocked();

  mutable platform::FutexMutex mutex_;
  std::vector<Timer*> heap_;
  // Mirrors heap_[0]->when_ (kNever when empty) for lock-free readers: the poller computing its
  // timeout. seq_cst: part of the "publish timer, then check poller owner" handshake (R30), whose
  // other half is the poll owner's seq_cst claim and read of next_when.
  std::atomic<int64_t> next_when_{kNever};
};

}  // namespace netpoll::poller

#endif  // NETPOLL_POLLER_TIMER_H_
