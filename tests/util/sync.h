// Test-side synchronisation with bounded waits: every wait in a test ends, by success or by a loud
// failure, within its timeout. Built on std::mutex/std::condition_variable, which ThreadSanitizer
// understands (the system Abseil's Mutex is invisible to it).
#ifndef NETPOLL_TESTS_UTIL_SYNC_H_
#define NETPOLL_TESTS_UTIL_SYNC_H_

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

namespace netpoll::testing {

// The default bound for waits that should finish in microseconds: long enough for a loaded CI
// machine under TSan, short enough that a hang fails the test instead of timing out the suite.
inline constexpr std::chrono::seconds kWaitBound{30};

// A one-shot event: Notify once, WaitFor as often as needed.
class Event {
 public:
  void Notify() {
    std::lock_guard<std::mutex> lock(mutex_);
    notified_ = true;
    cv_.notify_all();
  }
  // True if notified within `timeout`.
  bool WaitFor(std::chrono::nanoseconds timeout = kWaitBound) {
    std::unique_lock<std::mutex> lock(mutex_);
    return cv_.wait_for(lock, timeout, [this] { return notified_; });
  }
  bool IsNotified() {
    std::lock_guard<std::mutex> lock(mutex_);
    return notified_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool notified_ = false;
};

// Polls `condition` until it holds or `timeout` passes; returns whether it held. For conditions
// that no event signals (a thread reaching a state inside the library), checked with backoff.
inline bool WaitUntil(const std::function<bool()>& condition,
                      std::chrono::nanoseconds timeout = kWaitBound) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::yield();
  }
  return true;
}

// A thread that runs `body` and that the test joins with a bound: a body that hangs fails the test
// (and aborts, since a hung thread cannot be joined safely).
class BoundedThread {
 public:
  explicit BoundedThread(std::function<void()> body)
      : thread_([this, body = std::move(body)] {
          body();
          done_.Notify();
        }) {}
  ~BoundedThread() {
    if (thread_.joinable()) Join();
  }
  // Joins, aborting the process with a message if the body has not finished within `timeout`.
  void Join(std::chrono::nanoseconds timeout = kWaitBound);
  bool Finished() { return done_.IsNotified(); }
  bool WaitFinished(std::chrono::nanoseconds timeout) { return done_.WaitFor(timeout); }

 private:
  Event done_;
  std::thread thread_;
};

}  // namespace netpoll::testing

#endif  // NETPOLL_TESTS_UTIL_SYNC_H_
