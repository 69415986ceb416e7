#include "uthread/channel.h"

#include <mutex>

namespace netpoll::channel_internal {

using sync_internal::WaitList;
using sync_internal::WaitNode;

ChannelCore::~ChannelCore() {
  std::lock_guard<platform::FutexMutex> lock(mu_);
  NETPOLL_CHECK(receivers_.empty() && senders_.empty(),
                "netpoll::Channel destroyed while user threads are blocked on it");
}

WaitNode* ChannelCore::ClaimWaiter(WaitList* queue) {
  while (WaitNode* node = queue->PopFront()) {
    poller::Waiter* to_ready = nullptr;
    // A failed claim means the node's deadline won: that user thread reports a timeout, and
    // needs nothing from us (it takes mu_ before it returns, so its node outlives our look).
    if (!sync_internal::TryWake(node, sync_internal::kResultSignaled, &to_ready)) continue;
    // Every queued node was linked under mu_ and published kParked before its commit released
    // mu_, and we hold mu_: it is parked.
    NETPOLL_CHECK(to_ready != nullptr, "netpoll::Channel: claimed a waiter that had not parked");
    return node;
  }
  return nullptr;
}

uint32_t ChannelCore::Block(WaitList* queue, WaitNode* node, int64_t deadline, const char* what) {
  node->waiter = poller::CurrentWaiter();
  queue->PushBack(node);
  // mu_ stays held until we are suspended (ParkOnNode releases it in the commit), so every
  // claimer finds us parked, and moves a value in or out of our slot while we cannot run.
  uint32_t result = sync_internal::ParkOnNode(node, deadline, &mu_, what);
  if (result == sync_internal::kResultTimedOut) {
    // Only our deadline can have woken us without mu_, so we may still be linked; and a claimer
    // that popped us and lost may still be looking at the node: taking mu_ waits it out.
    std::lock_guard<platform::FutexMutex> lock(mu_);
    queue->Remove(node);
  }
  // Otherwise a claimer holding mu_ unlinked us, did all it had to with the node, and readied us
  // only after releasing mu_.
  return result;
}

absl::Status ChannelCore::Close() {
  poller::ReadyList ready;
  {
    std::lock_guard<platform::FutexMutex> lock(mu_);
    if (closed_) return absl::FailedPreconditionError("close of closed channel");
    closed_ = true;
    for (WaitList* queue : {&receivers_, &senders_}) {
      while (WaitNode* node = queue->PopFront()) {
        poller::Waiter* to_ready = nullptr;
        if (sync_internal::TryWake(node, sync_internal::kResultClosed, &to_ready) &&
            to_ready != nullptr) {
          ready.Push(to_ready);
        }
      }
    }
  }
  // Readied only after mu_ is released, so they do not wake up just to wait for it.
  while (poller::Waiter* w = ready.Pop()) w->Ready();
  return absl::OkStatus();
}

absl::Status ChannelCore::SendOnClosedError() {
  return absl::FailedPreconditionError("send on closed channel");
}

absl::Status ChannelCore::ReceiveOnClosedError() {
  return absl::OutOfRangeError("receive from closed channel");
}

absl::Status ChannelCore::SendTimeoutError() {
  return absl::DeadlineExceededError("channel send: deadline exceeded");
}

absl::Status ChannelCore::ReceiveTimeoutError() {
  return absl::DeadlineExceededError("channel receive: deadline exceeded");
}

absl::Status ChannelCore::SendWouldBlockError() const {
  return absl::UnavailableError(capacity_ == 0 ? "channel send would block: no receiver is waiting"
                                               : "channel send would block: the buffer is full");
}

absl::Status ChannelCore::ReceiveWouldBlockError() {
  return absl::UnavailableError("channel receive would block: nothing to receive");
}

}  // namespace netpoll::channel_internal
