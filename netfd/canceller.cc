#include "netfd/canceller.h"

#include <utility>
#include <vector>

namespace netpoll {

void Canceller::Cancel() {
  std::vector<std::function<void()>> to_run;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (cancelled_) return;
    cancelled_ = true;
    for (auto& [id, callback] : callbacks_) to_run.push_back(std::move(callback));
    callbacks_.clear();
    running_ += static_cast<int>(to_run.size());
  }
  for (auto& callback : to_run) {
    callback();
    std::lock_guard<std::mutex> lock(mutex_);
    --running_;
    idle_.notify_all();
  }
}

bool Canceller::cancelled() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return cancelled_;
}

uint64_t Canceller::Register(std::function<void()> callback) {
  std::unique_lock<std::mutex> lock(mutex_);
  uint64_t id = next_id_++;
  if (!cancelled_) {
    callbacks_.emplace(id, std::move(callback));
    return id;
  }
  lock.unlock();
  callback();
  return id;
}

bool Canceller::Unregister(uint64_t id) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (callbacks_.erase(id) > 0) return true;
  // Ran already, or is running on the cancelling thread: wait for it to finish, so the caller can
  // rely on its effects (the past deadline) being in place.
  idle_.wait(lock, [this] { return running_ == 0; });
  return false;
}

}  // namespace netpoll
