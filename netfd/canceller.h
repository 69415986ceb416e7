// Canceller: lets one user thread cancel another's blocking dial (Go's context cancellation, for
// the one place the net API needs it).
//
// A dial registers a callback with Register(); Cancel() runs every registered callback once, on
// the cancelling thread (for a dial: it moves the write deadline into the past, which wakes the
// dialer at once, R17). Unregister() tells the dialer whether its callback already ran or is
// running, so a dial that completed at the same moment as the cancel is still reported as
// cancelled and its socket closed, never handed out with a deadline in the past (R38).
//
// Thread-safety: all methods are thread-safe. Lifetime: must outlive every dial that uses it.
#ifndef NETPOLL_NETFD_CANCELLER_H_
#define NETPOLL_NETFD_CANCELLER_H_

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>

namespace netpoll {

class Canceller {
 public:
  Canceller() = default;
  Canceller(const Canceller&) = delete;
  Canceller& operator=(const Canceller&) = delete;

  // Cancels: runs every registered callback (once each). Later Registers run at once.
  void Cancel();
  bool cancelled() const;

  // Registers `callback` to run on Cancel (immediately if already cancelled). Returns an id for
  // Unregister.
  uint64_t Register(std::function<void()> callback);
  // Removes the callback. Returns true if it had not run and now never will; false if it ran or
  // is running (Unregister waits until a running callback has returned).
  bool Unregister(uint64_t id);

 private:
  mutable std::mutex mutex_;
  std::condition_variable_any idle_;
  bool cancelled_ = false;
  int running_ = 0;
  uint64_t next_id_ = 1;
  std::map<uint64_t, std::function<void()>> callbacks_;
};

}  // namespace netpoll

#endif  // NETPOLL_NETFD_CANCELLER_H_
