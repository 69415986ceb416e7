#include "poller/poll_desc.h"

#include <mutex>

#include "platform/check.h"
#include "poller/poller.h"
#include "poller/test_hooks.h"

namespace netpoll::poller {

namespace internal {
std::atomic<HookFn> test_hook{nullptr};
}  // namespace internal

HookFn SetTestHook(HookFn hook) {
  // seq_cst: installation is rare and tests rely on it being visible to threads they start.
  return internal::test_hook.exchange(hook, std::memory_order_seq_cst);
}

const char* PollErrorName(PollError error) {
  switch (error) {
    case PollError::kNone:
      return "none";
    case PollError::kClosing:
      return "closing";
    case PollError::kTimeout:
      return "timeout";
    case PollError::kNotPollable:
      return "not pollable";
  }
  return "invalid";
}

int64_t DeadlineAfter(int64_t duration_ns, int64_t now_ns) {
  if (duration_ns <= 0) return duration_ns < 0 ? duration_ns : -1;
  int64_t deadline;
  if (__builtin_add_overflow(now_ns, duration_ns, &deadline)) return kNever;
  return deadline;
}

uint64_t PollDesc::token() const {
  // seq_cst: read by Open after it published the new generation; any order would do there, but
  // this is not a hot path.
  return (static_cast<uint64_t>(generation_.load(std::memory_order_seq_cst)) << 32) | index_;
}

PollError PollDesc::CheckError(Mode mode) const {
  // seq_cst: the "load" half of the Dekker handshake with PublishInfoLocked + Unblock (R4, R5).
  uint64_t info = info_.load(std::memory_order_seq_cst);
  if (info & kInfoClosing) return PollError::kClosing;
  if ((mode == kRead && (info & kInfoReadExpired)) || (mode == kWrite && (info & kInfoWriteExpired))) {
    return PollError::kTimeout;
  }
  if (mode == kRead && (info & kInfoEventError)) return PollError::kNotPollable;
  return PollError::kNone;
}

void PollDesc::PublishInfoLocked() {
  read_deadline_for_dumps_.store(rd_, std::memory_order_relaxed);
  write_deadline_for_dumps_.store(wd_, std::memory_order_relaxed);
  uint64_t info = static_cast<uint64_t>(generation_.load(std::memory_order_relaxed)) << 32;
  if (closing_) info |= kInfoClosing;
  if (rd_ < 0) info |= kInfoReadExpired;
  if (wd_ < 0) info |= kInfoWriteExpired;
  // seq_cst: the "store" half of the Dekker handshake; it must precede any Unblock the caller
  // does next. The CAS keeps an event-error bit that the poller may set concurrently.
  uint64_t old = info_.load(std::memory_order_seq_cst);
  while (!info_.compare_exchange_weak(old, info | (old & kInfoEventError), std::memory_order_seq_cst)) {
  }
}

void PollDesc::SetEventError(bool error, uint32_t generation) {
  // seq_cst: readers decide "not pollable" from this word with a seq_cst load.
  uint64_t old = info_.load(std::memory_order_seq_cst);
  for (;;) {
    // Re-checked in every iteration: the slot may be freed and reopened between the poller's token
    // check and this CAS, and the new descriptor must not inherit the old one's error (R25).
    if (generation != 0 && static_cast<uint32_t>(old >> 32) != generation) return;
    uint64_t next = error ? (old | kInfoEventError) : (old & ~kInfoEventError);
    if (next == old) return;
    if (info_.compare_exchange_weak(old, next, std::memory_order_seq_cst)) return;
  }
}

PollError PollDesc::Prepare(Mode mode) {
  PollError error = CheckError(mode);
  if (error != PollError::kNone) return error;
  // seq_cst store (T14): no waiter can exist for this direction now (netfd's lock), so a plain
  // store is enough to drop a stale notification; it must come before the syscall (R3).
  Semaphore(mode).store(kNil, std::memory_order_seq_cst);
  return PollError::kNone;
}

PollError PollDesc::Wait(Mode mode) {
  PollError error = CheckError(mode);
  if (error != PollError::kNone) return error;
  while (!Block(mode, /*wait_io=*/false)) {
    error = CheckError(mode);
    if (error != PollError::kNone) return error;
    // No error: a deadline fired and was extended before we ran (R16), or a spurious wake-up.
    // Park again.
  }
  return PollError::kNone;
}

void PollDesc::WaitCanceled(Mode mode) {
  while (!Block(mode, /*wait_io=*/true)) {
  }
}

bool PollDesc::CommitPark(Waiter* self, void* semaphore) {
  auto* sema = static_cast<std::atomic<uintptr_t>*>(semaphore);
  NETPOLL_TEST_HOOK(HookPoint::kBlockBeforeCommit, nullptr);
  uintptr_t expected = kWait;
  // seq_cst (T3): publishes the waiter; an I/O event, timeout or close that got here first moved
  // the state off kWait and this fails, so the waiter resumes at once (T4, R2).
  if (!sema->compare_exchange_strong(expected, reinterpret_cast<uintptr_t>(self),
                                     std::memory_order_seq_cst)) {
    return false;
  }
  Poller::Get().AdjustWaiters(+1);
  return true;
}

bool PollDesc::Block(Mode mode, bool wait_io) {
  std::atomic<uintptr_t>& sema = Semaphore(mode);
  for (;;) {
    uintptr_t state = kReady;
    // seq_cst on both CASes: they order against Unblock's CAS on the same word.
    if (sema.compare_exchange_strong(state, kNil, std::memory_order_seq_cst)) return true;  // T1
    if (state == kNil) {
      if (sema.compare_exchange_strong(state, kWait, std::memory_order_seq_cst)) break;  // T2
    }
    if (state != kNil && state != kReady) {
      NETPOLL_FATAL("double wait: two waiters on one PollDesc direction (is the fd mutex held?)");
    }
  }
  NETPOLL_TEST_HOOK(HookPoint::kBlockAfterPublishWait, this);
  // Re-check errors after publishing kWait (the waiter's half of the Dekker handshake): a close or
  // deadline that happened before our kWait was visible to it would otherwise be missed (R4, R5).
  if (wait_io || CheckError(mode) == PollError::kNone) {
    Poller& poller = Poller::Get();
    if (!CurrentWaiter()->IsFiber()) poller.EnsurePolling();
    WaitReason reason;
    reason.what = mode == kRead ? "IO wait read" : "IO wait write";
    reason.fd = fd_;
    reason.deadline = (mode == kRead ? read_deadline_for_dumps_ : write_deadline_for_dumps_)
                          .load(std::memory_order_relaxed);
    Park(&PollDesc::CommitPark, &sema, reason);
  }
  NETPOLL_TEST_HOOK(HookPoint::kBlockAfterWake, this);
  // seq_cst (T5): takes whatever happened while we were parked (or aborting).
  uintptr_t old = sema.exchange(kNil, std::memory_order_seq_cst);
  if (old > kWait) NETPOLL_FATAL("corrupted state: PollDesc semaphore holds a waiter after wake-up");
  return old == kReady;
}

Waiter* PollDesc::Unblock(Mode mode, bool io_ready, int* waiter_delta) {
  std::atomic<uintptr_t>& sema = Semaphore(mode);
  // seq_cst: pairs with Block's CASes and exchange, and (for timeouts and close) comes after the
  // seq_cst PublishInfoLocked of the caller (R4, R5).
  uintptr_t old = sema.load(std::memory_order_seq_cst);
  for (;;) {
    if (old == kReady) return nullptr;                // T9, T13
    if (old == kNil && !io_ready) return nullptr;     // T10
    uintptr_t next = io_ready ? kReady : kNil;        // T6, T7, T8 / T11, T12
    if (sema.compare_exchange_weak(old, next, std::memory_order_seq_cst)) {
      if (old == kNil || old == kWait) return nullptr;
      --*waiter_delta;
      return reinterpret_cast<Waiter*>(old);
    }
  }
}

bool PollDesc::DeliverEvent(uint32_t generation, uint32_t modes, bool error_only, ReadyList* ready) {
  // seq_cst: compared with the generation that Poller::Close bumps under the lock.
  if (generation_.load(std::memory_order_seq_cst) != generation) return false;  // Stale (R24).
  NETPOLL_TEST_HOOK(HookPoint::kEventAfterTokenCheck, this);
  SetEventError(error_only, generation);
  if (modes & kRead) {
    if (Waiter* w = Unblock(kRead, /*io_ready=*/true, &ready->waiter_delta)) ready->Push(w);
  }
  if (modes & kWrite) {
    if (Waiter* w = Unblock(kWrite, /*io_ready=*/true, &ready->waiter_delta)) ready->Push(w);
  }
  return true;
}

void PollDesc::SetDeadline(int64_t deadline, Mode mode) {
  ReadyList ready;
  {
    std::lock_guard<platform::FutexMutex> lock(lock_);
    if (closing_) return;  // R13: Close already started; no timer may be armed now.
    const int64_t rd0 = rd_;
    const int64_t wd0 = wd_;
    const bool combo0 = rd0 > 0 && rd0 == wd0;
    if (mode & kRead) rd_ = deadline;
    if (mode & kWrite) wd_ = deadline;
    PublishInfoLocked();  // Before any wake-up below.
    const bool combo = rd_ > 0 && rd_ == wd_;
    Timer::Callback read_callback = combo ? &PollDesc::FireBoth : &PollDesc::FireRead;

    if (!read_timer_armed_) {
      if (rd_ > 0) {
        ArmTimer(&read_timer_, rd_, read_callback, this, rseq_);
        read_timer_armed_ = true;
      }
    } else if (rd_ != rd0 || combo != combo0) {
      ++rseq_;  // Any callback of the old arming that is already in flight is now stale (R15).
      if (rd_ > 0) {
        ArmTimer(&read_timer_, rd_, read_callback, this, rseq_);
      } else {
        StopTimer(&read_timer_);
        read_timer_armed_ = false;
      }
    }
    if (!write_timer_armed_) {
      if (wd_ > 0 && !combo) {
        ArmTimer(&write_timer_, wd_, &PollDesc::FireWrite, this, wseq_);
        write_timer_armed_ = true;
      }
    } else if (wd_ != wd0 || combo != combo0) {
      ++wseq_;
      if (wd_ > 0 && !combo) {
        ArmTimer(&write_timer_, wd_, &PollDesc::FireWrite, this, wseq_);
      } else {
        StopTimer(&write_timer_);
        write_timer_armed_ = false;
      }
    }
    // A deadline already in the past wakes current waiters now, without a timer (R17).
    if (rd_ < 0) {
      if (Waiter* w = Unblock(kRead, /*io_ready=*/false, &ready.waiter_delta)) ready.Push(w);
    }
    if (wd_ < 0) {
      if (Waiter* w = Unblock(kWrite, /*io_ready=*/false, &ready.waiter_delta)) ready.Push(w);
    }
  }
  Poller::Get().ReadyAll(ready);
}

void PollDesc::FireRead(void* pd, uintptr_t seq, ReadyList* ready) {
  static_cast<PollDesc*>(pd)->DeadlineExpired(seq, true, false, ready);
}

void PollDesc::FireWrite(void* pd, uintptr_t seq, ReadyList* ready) {
  static_cast<PollDesc*>(pd)->DeadlineExpired(seq, false, true, ready);
}

void PollDesc::FireBoth(void* pd, uintptr_t seq, ReadyList* ready) {
  static_cast<PollDesc*>(pd)->DeadlineExpired(seq, true, true, ready);
}

void PollDesc::DeadlineExpired(uintptr_t seq, bool read, bool write, ReadyList* ready) {
  NETPOLL_TEST_HOOK(HookPoint::kDeadlineTimerBeforeLock, this);
  std::lock_guard<platform::FutexMutex> lock(lock_);
  // A combo callback carries the read sequence.
  uintptr_t current = read ? rseq_ : wseq_;
  if (seq != current) return;  // Stale: the deadline changed, or the descriptor closed (R15, R21).
  if (read) {
    NETPOLL_CHECK(rd_ > 0 && read_timer_armed_, "inconsistent read deadline in a timer callback");
    rd_ = -1;
    PublishInfoLocked();
    if (Waiter* w = Unblock(kRead, /*io_ready=*/false, &ready->waiter_delta)) ready->Push(w);
  }
  if (write) {
    NETPOLL_CHECK(wd_ > 0 && (write_timer_armed_ || read),
                  "inconsistent write deadline in a timer callback");
    wd_ = -1;
    PublishInfoLocked();
    if (Waiter* w = Unblock(kWrite, /*io_ready=*/false, &ready->waiter_delta)) ready->Push(w);
  }
  // The timer stays marked armed: a later SetDeadline takes the "modify" path with a new seq.
}

void PollDesc::Evict() {
  ReadyList ready;
  {
    std::lock_guard<platform::FutexMutex> lock(lock_);
    NETPOLL_CHECK(!closing_, "PollDesc evicted twice (unblock on a closing descriptor)");
    closing_ = true;
    ++rseq_;
    ++wseq_;
    PublishInfoLocked();
    if (Waiter* w = Unblock(kRead, /*io_ready=*/false, &ready.waiter_delta)) ready.Push(w);
    if (Waiter* w = Unblock(kWrite, /*io_ready=*/false, &ready.waiter_delta)) ready.Push(w);
    if (read_timer_armed_) {
      StopTimer(&read_timer_);
      read_timer_armed_ = false;
    }
    if (write_timer_armed_) {
      StopTimer(&write_timer_);
      write_timer_armed_ = false;
    }
  }
  Poller::Get().ReadyAll(ready);
}

}  // namespace netpoll::poller
