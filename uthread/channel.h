// Channel<T>: Go's channels for user threads (fibers or OS threads, in any mix).
//
// A Channel carries values of type T from senders to receivers in FIFO order. It is either
// unbuffered (capacity 0: every Send is a rendezvous that completes only once a receiver has
// taken the value) or buffered with a fixed capacity N (Send completes once the value is in the
// buffer, blocking only while the buffer is full). Blocking parks the calling user thread through
// the user-thread interface (poller/waiter.h): a fiber blocked here costs no OS thread.
//
//   netpoll::Channel<Request> requests(16);
//   // producer                                  // consumer
//   if (!requests.Send(std::move(r)).ok()) ...   while (std::optional<Request> r = requests.Receive()) {
//   requests.Close();                              Handle(*r);
//                                                }   // nullopt: closed and drained
//
// Operations and results
// ----------------------
//   Send(v)                OK once delivered (unbuffered: taken by a receiver; buffered: in the
//                          buffer), or FailedPrecondition "send on closed channel".
//   SendUntil(v, t)        as Send, or DeadlineExceeded if it could not complete by `t`.
//   TrySend(v)             never blocks: OK, FailedPrecondition (closed), or Unavailable (the
//                          buffer is full, or, unbuffered, no receiver is waiting).
//   Receive()              the next value, or std::nullopt once the channel is closed *and*
//                          drained (values sent before Close are still received).
//   ReceiveUntil(t)        the next value, OutOfRange "receive from closed channel" (closed and
//                          drained), or DeadlineExceeded.
//   TryReceive()           never blocks: a value, OutOfRange (closed and drained), or Unavailable
//                          (nothing to receive now).
//   Close()                OK, or FailedPrecondition "close of closed channel". Wakes every
//                          blocked receiver (they get nullopt / OutOfRange) and every blocked
//                          sender (FailedPrecondition; their values are destroyed, not buffered).
//
// Differences from Go, on purpose: sending on a closed channel and closing a closed channel are
// panics in Go; here they return FailedPrecondition and leave the channel as it was, because a
// library must not crash its caller's process. Timeouts are part of the operation (Go needs a
// select with a timer). So callers tell the outcomes apart by code, never by message:
// absl::IsDeadlineExceeded (timeout), absl::IsOutOfRange (receive: closed and drained),
// absl::IsFailedPrecondition (send or close: already closed), absl::IsUnavailable (Try*: would
// block).
//
// Deadlines: `t` is absolute; absl::InfiniteFuture() means none. An operation that can complete
// at once does so even if `t` has passed; otherwise a passed deadline fails it at once. Deadlines
// are measured on the monotonic clock from the call, never fire early, and exactly one of
// "completed" and "timed out" happens: a value handed to a receiver just before its deadline is
// received, never lost (see uthread/wait_node.h for the protocol).
//
// Values: T must be move-constructible (move-only types such as std::unique_ptr work) and its
// move constructor should not throw. Send and SendUntil take the value by value: if they fail, the
// value is destroyed. TrySend takes an rvalue reference and moves from it only when it returns OK,
// so a caller can keep a value that did not fit. Values still buffered when the Channel is
// destroyed are destroyed with it.
//
// Cost: no allocation per operation once constructed (the buffer is a ring allocated once;
// blocked user threads queue intrusively through records on their own stacks; error statuses may
// allocate their message). One short internal lock (platform::FutexMutex) per operation.
//
// Thread-safety: all methods are thread-safe, from any number of user threads. Lifetime: destroy
// only when no user thread is blocked in an operation on it (checked: destroying a Channel with
// blocked user threads is a fatal error).
//
// Memory ordering: everything a sender wrote before Send is visible to the receiver once Receive
// returns that value; Close happens before a receive that reports the channel closed.
#ifndef NETPOLL_UTHREAD_CHANNEL_H_
#define NETPOLL_UTHREAD_CHANNEL_H_

#include <concepts>
#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "platform/check.h"
#include "platform/futex_mutex.h"
#include "poller/waiter.h"
#include "uthread/wait_node.h"

namespace netpoll {

namespace channel_internal {

class TestPeer;  // For tests: counts blocked user threads.

// What the receive paths report before they are turned into a public result.
enum class ReceiveOutcome { kValue, kClosed, kTimedOut, kWouldBlock };

enum class Mode { kBlock, kTry };

// The part of a channel that does not depend on T: its lock, the queues of blocked senders and
// receivers, the closed flag, and the blocking, claiming and closing protocol.
class ChannelCore {
 public:
  explicit ChannelCore(size_t capacity) : capacity_(capacity) {}
  ChannelCore(const ChannelCore&) = delete;
  ChannelCore& operator=(const ChannelCore&) = delete;
  ~ChannelCore();

  // Pops blocked user threads off `queue` until one can be claimed for a hand-over, and returns
  // it: parked, claimed (its deadline can no longer fire), and still ours until Ready(). Skips
  // those whose deadline claimed them first. nullptr if none is left. Requires mu_.
  sync_internal::WaitNode* ClaimWaiter(sync_internal::WaitList* queue);

  // Queues `node` (with its slot set) on `queue` and parks the caller until it is claimed by a
  // hand-over (kResultSignaled), by Close (kResultClosed) or by `deadline` (kResultTimedOut;
  // 0 = none). Requires mu_, which is released while parked and not held on return.
  uint32_t Block(sync_internal::WaitList* queue, sync_internal::WaitNode* node, int64_t deadline,
                 const char* what);

  absl::Status Close();

  static absl::Status SendOnClosedError();
  static absl::Status ReceiveOnClosedError();
  static absl::Status SendTimeoutError();
  static absl::Status ReceiveTimeoutError();
  absl::Status SendWouldBlockError() const;
  static absl::Status ReceiveWouldBlockError();

  mutable platform::FutexMutex mu_;
  sync_internal::WaitList receivers_;  // guarded by mu_
  sync_internal::WaitList senders_;    // guarded by mu_
  bool closed_ = false;                // guarded by mu_
  const size_t capacity_;
};

}  // namespace channel_internal

template <typename T>
class Channel {
  static_assert(std::is_move_constructible_v<T>, "Channel<T> needs a move-constructible T");
  static_assert(!std::is_reference_v<T>, "Channel<T> carries values, not references");

 public:
  // An unbuffered channel (capacity 0) or one that buffers up to `capacity` values.
  explicit Channel(size_t capacity = 0)
      : core_(capacity),
        ring_(capacity > 0 ? std::make_unique<std::optional<T>[]>(capacity) : nullptr) {}
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  // Sends `value`, blocking while it cannot be delivered. See the file comment for results.
  absl::Status Send(T value) { return SendImpl(value, 0, channel_internal::Mode::kBlock); }

  // Send with a deadline: DeadlineExceeded if `value` could not be delivered by `deadline`.
  absl::Status SendUntil(T value, absl::Time deadline) {
    return SendImpl(value, sync_internal::MonotonicDeadline(deadline), channel_internal::Mode::kBlock);
  }
  absl::Status SendFor(T value, absl::Duration timeout) {
    return SendImpl(value, sync_internal::MonotonicDeadlineAfter(timeout),
                    channel_internal::Mode::kBlock);
  }

  // Sends `value` only if that needs no waiting; moves from it only when it returns OK.
  absl::Status TrySend(T&& value) { return SendImpl(value, 0, channel_internal::Mode::kTry); }
  absl::Status TrySend(const T& value)
    requires std::copy_constructible<T>
  {
    T copy(value);
    return SendImpl(copy, 0, channel_internal::Mode::kTry);
  }

  // Receives the next value, blocking until there is one; std::nullopt once the channel is
  // closed and every value sent before the Close has been received.
  std::optional<T> Receive() {
    std::optional<T> out;
    ReceiveImpl(&out, 0, channel_internal::Mode::kBlock);
    return out;
  }

  // Receive with a deadline: DeadlineExceeded if nothing arrived by `deadline`, OutOfRange once
  // the channel is closed and drained.
  absl::StatusOr<T> ReceiveUntil(absl::Time deadline) {
    return ReceiveResult(sync_internal::MonotonicDeadline(deadline), channel_internal::Mode::kBlock);
  }
  absl::StatusOr<T> ReceiveFor(absl::Duration timeout) {
    return ReceiveResult(sync_internal::MonotonicDeadlineAfter(timeout),
                         channel_internal::Mode::kBlock);
  }

  // Receives a value only if that needs no waiting: Unavailable if none is ready, OutOfRange if
  // the channel is closed and drained.
  absl::StatusOr<T> TryReceive() { return ReceiveResult(0, channel_internal::Mode::kTry); }

  // Closes the channel: no more sends; receivers drain what is buffered, then see "closed".
  absl::Status Close() { return core_.Close(); }

  // How many values are buffered now (always 0 for an unbuffered channel).
  size_t size() const {
    std::lock_guard<platform::FutexMutex> lock(core_.mu_);
    return count_;
  }
  size_t capacity() const { return core_.capacity_; }

 private:
  friend class channel_internal::TestPeer;

  // Moves from `value` only when the send succeeds (also when it blocks and is then taken).
  absl::Status SendImpl(T& value, int64_t deadline, channel_internal::Mode mode);
  channel_internal::ReceiveOutcome ReceiveImpl(std::optional<T>* out, int64_t deadline,
                                               channel_internal::Mode mode);
  absl::StatusOr<T> ReceiveResult(int64_t deadline, channel_internal::Mode mode);

  // The ring buffer, all guarded by core_.mu_. Slots outside [head_, head_ + count_) are empty.
  std::optional<T>& Slot(size_t i) {
    size_t index = head_ + i;
    if (index >= core_.capacity_) index -= core_.capacity_;
    return ring_[index];
  }
  void PushBack(T&& value) {
    Slot(count_).emplace(std::move(value));
    ++count_;
  }
  void PopFront(std::optional<T>* out) {
    std::optional<T>& slot = Slot(0);
    out->emplace(std::move(*slot));
    slot.reset();
    head_ = head_ + 1 == core_.capacity_ ? 0 : head_ + 1;
    --count_;
  }

  channel_internal::ChannelCore core_;
  const std::unique_ptr<std::optional<T>[]> ring_;
  size_t head_ = 0;
  size_t count_ = 0;
};

template <typename T>
absl::Status Channel<T>::SendImpl(T& value, int64_t deadline, channel_internal::Mode mode) {
  core_.mu_.lock();
  if (core_.closed_) {
    core_.mu_.unlock();
    return channel_internal::ChannelCore::SendOnClosedError();
  }
  // A blocked receiver means the buffer is empty: hand the value straight to it.
  if (sync_internal::WaitNode* receiver = core_.ClaimWaiter(&core_.receivers_)) {
    poller::Waiter* waiter = receiver->waiter;
    static_cast<std::optional<T>*>(receiver->slot)->emplace(std::move(value));
    core_.mu_.unlock();
    waiter->Ready();
    return absl::OkStatus();
  }
  if (count_ < core_.capacity_) {
    PushBack(std::move(value));
    core_.mu_.unlock();
    return absl::OkStatus();
  }
  if (mode == channel_internal::Mode::kTry) {
    core_.mu_.unlock();
    return core_.SendWouldBlockError();
  }
  if (sync_internal::DeadlinePassed(deadline)) {
    core_.mu_.unlock();
    return channel_internal::ChannelCore::SendTimeoutError();
  }
  sync_internal::WaitNode node;
  node.slot = &value;  // A receiver (or Receive refilling the buffer) moves from it.
  uint32_t result = core_.Block(&core_.senders_, &node, deadline, "chan send");
  if (result == sync_internal::kResultSignaled) return absl::OkStatus();
  if (result == sync_internal::kResultClosed) return channel_internal::ChannelCore::SendOnClosedError();
  return channel_internal::ChannelCore::SendTimeoutError();
}

template <typename T>
channel_internal::ReceiveOutcome Channel<T>::ReceiveImpl(std::optional<T>* out, int64_t deadline,
                                                         channel_internal::Mode mode) {
  using channel_internal::ReceiveOutcome;
  core_.mu_.lock();
  if (count_ > 0) {
    PopFront(out);
    // The buffer has room now: move the longest-blocked sender's value into it.
    poller::Waiter* waiter = nullptr;
    if (sync_internal::WaitNode* sender = core_.ClaimWaiter(&core_.senders_)) {
      waiter = sender->waiter;
      PushBack(std::move(*static_cast<T*>(sender->slot)));
    }
    core_.mu_.unlock();
    if (waiter != nullptr) waiter->Ready();
    return ReceiveOutcome::kValue;
  }
  // Empty buffer: only an unbuffered channel can have blocked senders here.
  if (sync_internal::WaitNode* sender = core_.ClaimWaiter(&core_.senders_)) {
    poller::Waiter* waiter = sender->waiter;
    out->emplace(std::move(*static_cast<T*>(sender->slot)));
    core_.mu_.unlock();
    waiter->Ready();
    return ReceiveOutcome::kValue;
  }
  if (core_.closed_) {
    core_.mu_.unlock();
    return ReceiveOutcome::kClosed;
  }
  if (mode == channel_internal::Mode::kTry) {
    core_.mu_.unlock();
    return ReceiveOutcome::kWouldBlock;
  }
  if (sync_internal::DeadlinePassed(deadline)) {
    core_.mu_.unlock();
    return ReceiveOutcome::kTimedOut;
  }
  sync_internal::WaitNode node;
  node.slot = out;  // A sender emplaces the value here before readying us.
  uint32_t result = core_.Block(&core_.receivers_, &node, deadline, "chan receive");
  if (result == sync_internal::kResultSignaled) return ReceiveOutcome::kValue;
  if (result == sync_internal::kResultClosed) return ReceiveOutcome::kClosed;
  return ReceiveOutcome::kTimedOut;
}

template <typename T>
absl::StatusOr<T> Channel<T>::ReceiveResult(int64_t deadline, channel_internal::Mode mode) {
  using channel_internal::ReceiveOutcome;
  std::optional<T> out;
  switch (ReceiveImpl(&out, deadline, mode)) {
    case ReceiveOutcome::kValue:
      return std::move(*out);
    case ReceiveOutcome::kClosed:
      return channel_internal::ChannelCore::ReceiveOnClosedError();
    case ReceiveOutcome::kTimedOut:
      return channel_internal::ChannelCore::ReceiveTimeoutError();
    case ReceiveOutcome::kWouldBlock:
      break;
  }
  return channel_internal::ChannelCore::ReceiveWouldBlockError();
}

}  // namespace netpoll

#endif  // NETPOLL_UTHREAD_CHANNEL_H_
