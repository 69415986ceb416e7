// Test support: a way to run "user threads" that the uthread/ suites are written against, so the
// same test bodies run on plain OS threads today and on fibers once the runtime exists.
//
// A test body takes a Spawner, starts its user threads with Spawn() and ends them with JoinAll()
// before it asserts on what they recorded. Suites are parameterised over AllSpawners(); adding a
// kind of user thread is one more entry there.
//
// Every join is bounded: a user thread that does not finish within kWaitBound (a lost wake-up, a
// deadlock) aborts the test binary with a message instead of hanging the suite.
#ifndef NETPOLL_UTHREAD_TEST_SPAWNER_H_
#define NETPOLL_UTHREAD_TEST_SPAWNER_H_

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <mutex>
#include <ostream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "tests/util/sync.h"
#include "uthread/runtime.h"

namespace netpoll::testing {

class Spawner {
 public:
  virtual ~Spawner() = default;
  // Starts `body` on a new user thread.
  virtual void Spawn(std::function<void()> body) = 0;
  // Waits for every user thread spawned so far to finish (bounded; see the file comment).
  // Spawn may be called again afterwards.
  virtual void JoinAll() = 0;
  // Lets other user threads run, from inside a user thread that busy-waits (a fiber must yield
  // to its scheduler, not to the OS).
  virtual void Yield() = 0;

  // Busy-waits (yielding) until `condition` holds or `bound` passes; returns whether it held.
  // For conditions nothing signals; never a substitute for a real wait in the code under test.
  bool PollUntil(const std::function<bool()>& condition,
                 std::chrono::nanoseconds bound = kWaitBound) {
    auto deadline = std::chrono::steady_clock::now() + bound;
    while (!condition()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      Yield();
    }
    return true;
  }
};

// One OS thread per user thread. Spawn may be called from user threads too (a server spawning a
// handler per connection); JoinAll also waits for threads spawned while it joins.
class OsThreadSpawner final : public Spawner {
 public:
  ~OsThreadSpawner() override { JoinAll(); }
  void Spawn(std::function<void()> body) override {
    auto thread = std::make_unique<BoundedThread>(std::move(body));
    std::lock_guard<std::mutex> lock(mutex_);
    threads_.push_back(std::move(thread));
  }
  void JoinAll() override {
    for (;;) {
      std::vector<std::unique_ptr<BoundedThread>> batch;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        batch.swap(threads_);
      }
      if (batch.empty()) return;
      for (auto& t : batch) t->Join();
    }
  }
  void Yield() override { std::this_thread::yield(); }

 private:
  std::mutex mutex_;
  std::vector<std::unique_ptr<BoundedThread>> threads_;
};

// One fiber per user thread, on a runtime of two workers (so fibers really run in parallel and
// migrate). JoinAll must be called from a plain thread (the test's own).
class FiberSpawner final : public Spawner {
 public:
  FiberSpawner() {
    absl::StatusOr<std::unique_ptr<Runtime>> runtime = Runtime::Start({.workers = 2});
    if (!runtime.ok()) {
      std::fprintf(stderr, "FiberSpawner: %s\n", std::string(runtime.status().message()).c_str());
      std::abort();
    }
    runtime_ = std::move(*runtime);
  }
  ~FiberSpawner() override {
    JoinAll();
    if (!runtime_->Shutdown(absl::Now() + absl::Seconds(30)).ok()) {
      std::fprintf(stderr, "FiberSpawner: fibers still running at shutdown:\n%s", runtime_->DumpFibers().c_str());
      std::abort();
    }
  }
  void Spawn(std::function<void()> body) override {
    // seq_cst: JoinAll's load must not see 0 while a spawned body is still to run.
    running_.fetch_add(1, std::memory_order_seq_cst);
    absl::Status status = runtime_->Go([this, body = std::move(body)] {
      body();
      running_.fetch_sub(1, std::memory_order_seq_cst);
    });
    if (!status.ok()) {
      std::fprintf(stderr, "FiberSpawner: Go failed: %s\n", std::string(status.message()).c_str());
      std::abort();
    }
  }
  void JoinAll() override {
    if (!WaitUntil([this] { return running_.load(std::memory_order_seq_cst) == 0; })) {
      std::fprintf(stderr, "netpoll test: fibers did not finish within the bound (a hang):\n%s",
                   runtime_->DumpFibers().c_str());
      std::abort();
    }
  }
  void Yield() override { netpoll::Yield(); }

 private:
  std::unique_ptr<Runtime> runtime_;
  std::atomic<int> running_{0};
};

struct SpawnerKind {
  std::string name;  // a valid gtest parameter name
  std::function<std::unique_ptr<Spawner>()> make;
};

// gtest prints parameters with this (instead of a byte dump).
inline void PrintTo(const SpawnerKind& kind, std::ostream* os) { *os << kind.name; }

// Every kind of user thread the suites run on.
inline std::vector<SpawnerKind> AllSpawners() {
  return {
      {"OsThreads", [] { return std::unique_ptr<Spawner>(new OsThreadSpawner()); }},
      {"Fibers", [] { return std::unique_ptr<Spawner>(new FiberSpawner()); }},
  };
}

}  // namespace netpoll::testing

#endif  // NETPOLL_UTHREAD_TEST_SPAWNER_H_
