// Internal to uthread/: the per-wait record that CondVar, WaitGroup and Channel park on, and the
// protocol that makes exactly one waker (a signaller, a completer, a closer or a deadline timer)
// wake it, exactly once.
//
// A WaitNode lives on the waiting user thread's stack for the duration of one wait. Its owner (a
// CondVar, a Channel, ...) links it into a WaitList under the owner's lock; wakers find it there.
//
// The state word
// --------------
// One atomic word per wait, updated only with read-modify-writes, so every party sees one total
// order of what happened to it:
//
//   bit        set by                 meaning
//   kParked    the waiter's commit    the waiter is suspended: whoever wakes it must Ready() it
//   kWoken     the one winner         somebody has claimed this wait; everybody else backs off
//   result     the winner, with kWoken  why: kResultSignaled, kResultClosed or kResultTimedOut
//
// Transitions (each is one RMW; nothing is ever cleared during a wait):
//
//   0 --commit--> kParked --winner--> kParked|kWoken|result      winner calls Ready()
//   0 --winner--> kWoken|result --commit--> ...|kParked          commit returns false: the waiter
//                                                                never sleeps, nobody Readies it
//
// TryWake() is the winner's CAS: it fails if kWoken is already set, and the loser does nothing at
// all (in particular it does not touch the node again). The commit's fetch_or tells the two
// orders apart. So for every wait there is exactly one winner, and Ready() is called exactly once
// if and only if the waiter committed to sleeping: the Waiter contract (poller/waiter.h).
//
// Deadlines: ParkOnNode arms a poller timer whose callback is just another would-be winner (it
// pushes the waiter into the poller's ReadyList instead of calling Ready). Before ParkOnNode
// returns, the timer is stopped and, if it already fired, WaitForCallback waits until the
// callback has returned, so the stack-allocated Timer and WaitNode are never touched after the
// wait ends.
//
// Memory ordering: every RMW on `state` is acq_rel. The release half publishes what the winner
// wrote before claiming (a Channel completer moves the value in *after* claiming, but then the
// waiter is parked and only runs after Ready(), which orders it); the acquire half lets the
// commit that loses the race see the winner's writes when the waiter does not sleep.
#ifndef NETPOLL_UTHREAD_WAIT_NODE_H_
#define NETPOLL_UTHREAD_WAIT_NODE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "absl/time/time.h"
#include "platform/futex_mutex.h"
#include "poller/waiter.h"

namespace netpoll::sync_internal {

inline constexpr uint32_t kParked = 1u << 0;
inline constexpr uint32_t kWoken = 1u << 1;
inline constexpr uint32_t kResultSignaled = 1u << 2;  // CondVar Signal, WaitGroup zero, Channel hand-over
inline constexpr uint32_t kResultClosed = 1u << 3;    // Channel Close
inline constexpr uint32_t kResultTimedOut = 1u << 4;  // the deadline timer
inline constexpr uint32_t kResultMask = kResultSignaled | kResultClosed | kResultTimedOut;

struct WaitNode {
  WaitNode() = default;
  WaitNode(const WaitNode&) = delete;
  WaitNode& operator=(const WaitNode&) = delete;

  poller::Waiter* waiter = nullptr;  // Set before the node is linked; constant afterwards.
  void* slot = nullptr;              // Owner-specific: a Channel's value in or out.
  // List links and membership, guarded by the owner's lock.
  WaitNode* prev = nullptr;
  WaitNode* next = nullptr;
  bool queued = false;
  // See the file comment.
  std::atomic<uint32_t> state{0};
};

// FIFO of WaitNodes, doubly linked so that a node whose wait timed out can unlink itself from the
// middle. Not thread-safe: its owner guards it with a lock.
class WaitList {
 public:
  WaitList() = default;
  WaitList(const WaitList&) = delete;
  WaitList& operator=(const WaitList&) = delete;

  bool empty() const { return head_ == nullptr; }
  size_t size() const { return size_; }
  void PushBack(WaitNode* node);
  // Removes and returns the first node, or nullptr.
  WaitNode* PopFront();
  // Unlinks `node` if it is still queued; a no-op otherwise.
  void Remove(WaitNode* node);

 private:
  WaitNode* head_ = nullptr;
  WaitNode* tail_ = nullptr;
  size_t size_ = 0;
};

// Converts an absl::Time deadline into the form ParkOnNode takes: 0 for none
// (absl::InfiniteFuture(), or so far away that it would overflow), a negative value for one that
// has already passed, absolute monotonic ns otherwise. Measured on the monotonic clock from now,
// so a later step of the wall clock does not move it (as in netfd).
int64_t MonotonicDeadline(absl::Time deadline);
// The same for a timeout measured from now; absl::InfiniteDuration() means none.
int64_t MonotonicDeadlineAfter(absl::Duration timeout);
// Whether a deadline from the functions above has passed (never for 0).
bool DeadlinePassed(int64_t deadline);

// Tries to claim `node` with `result` (one of the kResult* bits). Returns false if another party
// has already claimed it; the caller must then leave the node alone. On success, sets *to_ready
// to the waiter that the caller must Ready() (after dropping its own locks), or nullptr when the
// waiter has not parked yet (its commit will see the claim and not sleep).
bool TryWake(WaitNode* node, uint32_t result, poller::Waiter** to_ready);

// Parks the calling user thread on `node`, which its caller has already linked into a list, and
// returns the result bit that ended the wait (kResult*).
//
// `deadline` is absolute monotonic ns (platform::MonotonicNanos); 0 means none. A deadline that
// has already passed fires at the next timer run; callers that can cheaply see it has passed
// should not park at all.
//
// `unlock_in_commit`, if not null, is a lock the caller holds; it is released once the caller is
// safely suspended (and after kParked is published), so that a waker, which needs that lock to
// find the node, always finds it parked. Whatever ended the wait, the lock is not held on return.
//
// On return no timer callback runs or will run for this wait, so `node` may go out of scope once
// its owner has unlinked it (a timed-out node may still be linked: the caller removes it under
// its lock).
uint32_t ParkOnNode(WaitNode* node, int64_t deadline, platform::FutexMutex* unlock_in_commit,
                    const char* what);

}  // namespace netpoll::sync_internal

#endif  // NETPOLL_UTHREAD_WAIT_NODE_H_
