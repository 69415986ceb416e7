#include "poller/blocking.h"

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "poller/waiter.h"

namespace netpoll::poller {
namespace {

struct Job {
  absl::FunctionRef<void()>* work;
  Waiter* waiter;
};

// Never destroyed: helper threads may outlive main().
class BlockingPool {
 public:
  static BlockingPool& Get() {
    static BlockingPool* pool = new BlockingPool();
    return *pool;
  }

  void Submit(Job job) {
    std::unique_lock<std::mutex> lock(mutex_);
    jobs_.push_back(job);
    if (idle_ > 0) {
      cv_.notify_one();
    } else if (threads_ < kMaxBlockingThreads) {
      ++threads_;
      std::thread([this] { Loop(); }).detach();
    }
    // Else: every helper is busy and the pool is full; the job waits its turn.
  }

  int threads() {
    std::lock_guard<std::mutex> lock(mutex_);
    return threads_;
  }

 private:
  void Loop() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      while (jobs_.empty()) {
        ++idle_;
        cv_.wait(lock);
        --idle_;
      }
      Job job = jobs_.front();
      jobs_.pop_front();
      lock.unlock();
      (*job.work)();
      job.waiter->Ready();
      lock.lock();
    }
  }

  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Job> jobs_;
  int threads_ = 0;
  int idle_ = 0;
};

bool CommitSubmit(Waiter* self, void* work) {
  // The fiber is suspended now, so the helper may Ready it as soon as the work is done.
  BlockingPool::Get().Submit(Job{static_cast<absl::FunctionRef<void()>*>(work), self});
  return true;
}

}  // namespace

void RunBlocking(absl::FunctionRef<void()> work) {
  Waiter* self = CurrentWaiter();
  if (!self->IsFiber()) {
    work();
    return;
  }
  WaitReason reason;
  reason.what = "blocking call";
  self->Park(&CommitSubmit, &work, reason);
}

int BlockingThreadCount() { return BlockingPool::Get().threads(); }

}  // namespace netpoll::poller
