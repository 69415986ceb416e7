#include "uthread/wait_node.h"

#include "platform/check.h"
#include "platform/clock.h"
#include "poller/poll_desc.h"
#include "poller/timer.h"

namespace netpoll::sync_internal {
namespace {

struct ParkContext {
  WaitNode* node;
  platform::FutexMutex* unlock;
};

// Runs once the waiter is safely suspended. Publishes kParked; if a winner got there first, the
// waiter must not sleep (nobody will Ready it), so returns false.
bool CommitPark(poller::Waiter* /*self*/, void* arg) {
  // Read everything from the context first: once kParked is published and the lock is released,
  // a winner may Ready the waiter, which may return and end the frame holding `ctx` and `node`.
  auto* ctx = static_cast<ParkContext*>(arg);
  WaitNode* node = ctx->node;
  platform::FutexMutex* unlock = ctx->unlock;
  // acq_rel: release publishes "parked" to the winner's CAS (which then knows it must Ready us);
  // acquire makes a winner that came first visible to the waiter when it does not sleep.
  uint32_t old = node->state.fetch_or(kParked, std::memory_order_acq_rel);
  // After this, touch neither `node` nor `ctx`. The lock object itself outlives the wait: a
  // waker holding it cannot have woken us (it was ours until now), and a timer wake-up makes the
  // waiter take this lock again before it returns.
  if (unlock != nullptr) unlock->unlock();
  return (old & kWoken) == 0;
}

// The deadline timer: one more would-be winner. Runs without any lock of ours.
void OnDeadline(void* arg, uintptr_t /*seq*/, poller::ReadyList* ready) {
  auto* node = static_cast<WaitNode*>(arg);
  poller::Waiter* to_ready = nullptr;
  if (TryWake(node, kResultTimedOut, &to_ready) && to_ready != nullptr) ready->Push(to_ready);
}

}  // namespace

int64_t MonotonicDeadline(absl::Time deadline) {
  if (deadline == absl::InfiniteFuture()) return 0;
  if (deadline == absl::InfinitePast()) return -1;
  // Saturates instead of overflowing; DeadlineAfter maps <= 0 to "expired" and overflow to kNever.
  int64_t ns = absl::ToInt64Nanoseconds(deadline - absl::Now());
  int64_t d = poller::DeadlineAfter(ns, platform::MonotonicNanos());
  return d == poller::kNever ? 0 : d;
}

int64_t MonotonicDeadlineAfter(absl::Duration timeout) {
  if (timeout == absl::InfiniteDuration()) return 0;
  int64_t d = poller::DeadlineAfter(absl::ToInt64Nanoseconds(timeout), platform::MonotonicNanos());
  return d == poller::kNever ? 0 : d;
}

bool DeadlinePassed(int64_t deadline) {
  if (deadline == 0) return false;
  return deadline < 0 || deadline <= platform::MonotonicNanos();
}

void WaitList::PushBack(WaitNode* node) {
  node->next = nullptr;
  node->prev = tail_;
  if (tail_ == nullptr) {
    head_ = node;
  } else {
    tail_->next = node;
  }
  tail_ = node;
  node->queued = true;
  ++size_;
}

WaitNode* WaitList::PopFront() {
  WaitNode* node = head_;
  if (node != nullptr) Remove(node);
  return node;
}

void WaitList::Remove(WaitNode* node) {
  if (!node->queued) return;
  if (node->prev == nullptr) {
    head_ = node->next;
  } else {
    node->prev->next = node->next;
  }
  if (node->next == nullptr) {
    tail_ = node->prev;
  } else {
    node->next->prev = node->prev;
  }
  node->prev = node->next = nullptr;
  node->queued = false;
  --size_;
}

bool TryWake(WaitNode* node, uint32_t result, poller::Waiter** to_ready) {
  // Read before claiming: after a successful claim the waiter may return (if it had not parked)
  // and end the node's lifetime.
  poller::Waiter* waiter = node->waiter;
  uint32_t old = node->state.load(std::memory_order_relaxed);
  do {
    if ((old & kWoken) != 0) return false;  // Somebody else won; leave the node alone.
    // acq_rel: see the file comment of wait_node.h. relaxed on failure: we only retry or give up.
  } while (!node->state.compare_exchange_weak(old, old | kWoken | result, std::memory_order_acq_rel,
                                              std::memory_order_relaxed));
  *to_ready = (old & kParked) != 0 ? waiter : nullptr;
  return true;
}

uint32_t ParkOnNode(WaitNode* node, int64_t deadline, platform::FutexMutex* unlock_in_commit,
                    const char* what) {
  poller::Timer timer;
  const bool timed = deadline != 0;
  // A deadline already in the past becomes "fire at the next timer run" (1 is the earliest
  // monotonic time); callers normally catch that case before parking.
  if (timed) poller::ArmTimer(&timer, deadline < 0 ? 1 : deadline, &OnDeadline, node, 0);
  ParkContext ctx{node, unlock_in_commit};
  poller::WaitReason reason;
  reason.what = what;
  reason.deadline = timed ? deadline : 0;
  poller::Park(&CommitPark, &ctx, reason);
  // We are running again: either a winner readied us, or our commit saw that one had already
  // claimed the wait. Make sure the timer callback is not running and never will (it reads
  // `node`, and `timer` lives in this frame).
  if (timed && !poller::StopTimer(&timer)) poller::WaitForCallback(&timer);
  // acquire: pairs with the winner's acq_rel CAS (Ready also orders it, but not when our commit
  // returned false on a thread other than ours).
  uint32_t state = node->state.load(std::memory_order_acquire);
  // Resuming without a claim would mean a Ready() that nobody owed us: a broken waiter.
  NETPOLL_CHECK((state & kWoken) != 0, "netpoll: user thread resumed from a wait nobody woke");
  return state & kResultMask;
}

}  // namespace netpoll::sync_internal
