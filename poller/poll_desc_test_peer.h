// Test-only access to PollDesc internals, to assert on states the public API cannot show (a
// waiter is parked; a sequence number moved; a timer is armed).
#ifndef NETPOLL_POLLER_POLL_DESC_TEST_PEER_H_
#define NETPOLL_POLLER_POLL_DESC_TEST_PEER_H_

#include <mutex>

#include "poller/poll_desc.h"

namespace netpoll::poller {

class PollDescTestPeer {
 public:
  enum class SemaState { kNil, kReady, kWait, kParked };

  static SemaState State(PollDesc* pd, Mode mode) {
    uintptr_t v = pd->Semaphore(mode).load(std::memory_order_seq_cst);
    if (v == PollDesc::kNil) return SemaState::kNil;
    if (v == PollDesc::kReady) return SemaState::kReady;
    if (v == PollDesc::kWait) return SemaState::kWait;
    return SemaState::kParked;
  }
  static uintptr_t Rseq(PollDesc* pd) {
    std::lock_guard<platform::FutexMutex> lock(pd->lock_);
    return pd->rseq_;
  }
  static uintptr_t Wseq(PollDesc* pd) {
    std::lock_guard<platform::FutexMutex> lock(pd->lock_);
    return pd->wseq_;
  }
  static int64_t ReadDeadline(PollDesc* pd) {
    std::lock_guard<platform::FutexMutex> lock(pd->lock_);
    return pd->rd_;
  }
  static bool ReadTimerPending(PollDesc* pd) {
    std::lock_guard<platform::FutexMutex> lock(pd->lock_);
    return pd->read_timer_.pending();
  }
  static bool WriteTimerPending(PollDesc* pd) {
    std::lock_guard<platform::FutexMutex> lock(pd->lock_);
    return pd->write_timer_.pending();
  }
  static uint32_t Generation(PollDesc* pd) { return pd->generation_.load(std::memory_order_seq_cst); }
  // Simulates the poller setting the event-error bit after its token check (R25).
  static void SetEventError(PollDesc* pd, bool error, uint32_t generation) {
    pd->SetEventError(error, generation);
  }
  // Overwrites a semaphore word, to simulate corruption.
  static void StoreRaw(PollDesc* pd, Mode mode, uintptr_t value) {
    pd->Semaphore(mode).store(value, std::memory_order_seq_cst);
  }
  // The "reset after the syscall" mistake of R3, for the test that shows why it is wrong.
  static void ResetSemaphore(PollDesc* pd, Mode mode) {
    pd->Semaphore(mode).store(PollDesc::kNil, std::memory_order_seq_cst);
  }
};

}  // namespace netpoll::poller

#endif  // NETPOLL_POLLER_POLL_DESC_TEST_PEER_H_
