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

#include <chrono>
#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "tests/util/sync.h"

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

// One OS thread per user thread.
class OsThreadSpawner final : public Spawner {
 public:
  ~OsThreadSpawner() override { JoinAll(); }
  void Spawn(std::function<void()> body) override {
    threads_.push_back(std::make_unique<BoundedThread>(std::move(body)));
  }
  void JoinAll() override {
    for (auto& t : threads_) t->Join();
    threads_.clear();
  }
  void Yield() override { std::this_thread::yield(); }

 private:
  std::vector<std::unique_ptr<BoundedThread>> threads_;
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
  };
}

}  // namespace netpoll::testing

#endif  // NETPOLL_UTHREAD_TEST_SPAWNER_H_
