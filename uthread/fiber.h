// Fiber: one user thread of the M:N runtime (internal to uthread/).
//
// A Fiber is a poller::Waiter, so the poller, netfd and the sync primitives park and ready it
// without knowing it is a fiber. Its control block lives at the top of its own stack mapping
// (which comes from the runtime's StackPool), so spawning a fiber allocates nothing: the stack,
// the context and the bookkeeping are one pooled piece of memory, and an idle connection's fiber
// costs the pages it touched.
//
// Parking: Park records the commit function and switches to the worker's scheduler context; the
// scheduler runs the commit there, after the fiber's registers are saved, so a concurrent Ready
// can never resume a fiber that is still running (R2 with the real scheduler).
#ifndef NETPOLL_UTHREAD_FIBER_H_
#define NETPOLL_UTHREAD_FIBER_H_

#include <atomic>
#include <cstdint>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "platform/context.h"
#include "platform/stack.h"
#include "poller/waiter.h"

namespace netpoll::uthread_internal {

class RuntimeImpl;
class Worker;

class Fiber final : public poller::Waiter {
 public:
  // What the fiber asked the scheduler for when it switched away.
  enum class Request : uint8_t { kNone, kPark, kYield, kExit };
  // For dumps only.
  enum class State : uint32_t { kRunnable, kRunning, kParked, kDone };

  // Builds a fiber at the top of `stack` (which it then owns) that will run `fn`.
  static Fiber* Create(RuntimeImpl* runtime, platform::Stack stack, absl::AnyInvocable<void()> fn,
                       const char* file, int line);
  // Destroys the fiber and returns its stack (for the pool). The fiber must have exited.
  static platform::Stack Destroy(Fiber* fiber);

  void Park(CommitFn commit, void* arg, const poller::WaitReason& reason) override;
  void Ready() override;
  bool IsFiber() const override { return true; }

  RuntimeImpl* runtime() const { return runtime_; }
  uint64_t id() const { return id_; }

  // Scheduler state. Touched only by the worker running or switching the fiber, or under the
  // queue that holds it.
  platform::MachineContext context;
  Fiber* run_next = nullptr;           // Link in the global run queue and in spill chains.
  Request request = Request::kNone;
  CommitFn commit = nullptr;
  void* commit_arg = nullptr;
  // Why it is parked, for dumps read from other threads. relaxed: a best-effort snapshot.
  std::atomic<const char*> wait_what{"parked"};
  std::atomic<int64_t> wait_fd{-1};
  std::atomic<int64_t> wait_deadline{0};
  absl::AnyInvocable<void()> fn;
  // Dumps read these from another thread. relaxed: a dump is a best-effort snapshot.
  std::atomic<State> state{State::kRunnable};
  std::atomic<int> worker_index{-1};  // The worker that last ran it.
  const char* file;
  int line;

  // The runtime's registry of live fibers (guarded by its registry mutex).
  Fiber* registry_prev = nullptr;
  Fiber* registry_next = nullptr;

  // Fiber-local values, indexed by FiberLocal key; owned through the key's destructor.
  std::vector<void*> locals;

 private:
  Fiber(RuntimeImpl* runtime, platform::Stack stack, platform::StackRegion region,
        absl::AnyInvocable<void()> fn, const char* file, int line, uint64_t id);
  ~Fiber() = default;

  static void Main(void* fiber, void* transfer);

  RuntimeImpl* const runtime_;
  platform::Stack stack_;
  const uint64_t id_;
};

// The worker running on this OS thread, or null. Reads the thread-local afresh at every call
// (out of line), so fiber code that moved to another worker after a switch gets the right one.
Worker* CurrentWorker();
// The fiber running on this OS thread, or null.
Fiber* CurrentFiber();

}  // namespace netpoll::uthread_internal

#endif  // NETPOLL_UTHREAD_FIBER_H_
