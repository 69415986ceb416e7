// The scheduler's internals: workers, the runtime object, and the wake-up protocol.
//
// Idle workers and lost wake-ups. A worker that finds no work registers itself as idle and only
// then checks every queue once more; whoever makes work runnable first publishes it and only then
// looks for an idle worker to wake (WakeOne). Both sides use seq_cst, so either the worker's
// re-check sees the new work, or the waker sees the idle worker (Dekker). The same pairing covers a
// worker about to block in the poller (`polling_`): a waker that finds no idle worker breaks the
// poll instead.
//
// Spinning. A woken worker counts as "spinning" until it finds work or gives up; WakeOne does not
// wake a second worker while one is spinning (it will find the work), and a spinner that finds work
// wakes the next one if more work is waiting, so wake-ups spread load without a futex call per
// Ready (Go's nmspinning).
//
// Who polls. When a worker runs dry and there is I/O to wait for (parked I/O waiters or pending
// timers) and nobody blocks in the poller, it blocks there itself, with the earliest timer as its
// timeout; the others sleep on their futex. Busy workers poll without blocking every
// kPollEveryTicks rounds and whenever their queues are empty.
#ifndef NETPOLL_UTHREAD_RUNTIME_IMPL_H_
#define NETPOLL_UTHREAD_RUNTIME_IMPL_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "platform/context.h"
#include "platform/stack.h"
#include "poller/timer.h"
#include "uthread/fiber.h"
#include "uthread/run_queue.h"
#include "uthread/runtime.h"

namespace netpoll::uthread_internal {

class RuntimeImpl;

class Worker {
 public:
  // Scheduling rounds between looks at the global queue (fairness) and between non-blocking polls.
  static constexpr uint64_t kGlobalQueueEveryTicks = 61;
  static constexpr uint64_t kPollEveryTicks = 32;

  Worker(RuntimeImpl* runtime, int index);
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  absl::Status Start();
  void Join();

  // From this worker's own thread only.
  void PushLocal(Fiber* fiber, bool run_next);
  // From this worker's own thread: a fiber readied as part of a batch (a poll's events, due
  // timers) goes behind everything already waiting, locally or globally, so that under load
  // every connection is served in turn (FIFO) and none starves behind newer arrivals.
  void PushFair(Fiber* fiber);

  // Work of this worker that others may steal: its queue, and its runnext slot while it runs a
  // fiber (otherwise it is between fibers, awake, and takes runnext next itself: counting that
  // would make an idle worker spin on work it may not take).
  bool HasStealableWork() const;

  // True while this worker readies a batch (see PushFair), and how many it readied; Fiber::Ready
  // reads and counts them.
  bool dispatching_batch = false;
  int batch_size = 0;
  // Takes the runnext fiber of this worker if it is busy running another fiber (so it is not stolen
  // from under a worker about to run it).
  Fiber* StealRunNext();

  RuntimeImpl* const runtime;
  const int index;
  LocalRunQueue queue;
  poller::TimerHeap timers;
  // Futex word: set to 1 by WakeOne to end an idle park.
  std::atomic<uint32_t> wake{0};
  // The fiber being run (null between fibers). Read by stealers and dumps. relaxed: advisory.
  std::atomic<Fiber*> current{nullptr};

  // The worker thread's own context, which fibers switch back to.
  platform::MachineContext scheduler_context;

  // Counters (relaxed: statistics).
  std::atomic<uint64_t> switches{0}, steals{0}, poller_waits{0}, poller_polls{0}, timers_fired{0};

 private:
  // The fibers of the current batch bound for the global queue, linked through run_next, in
  // order (see PushFair).
  struct SpillChain {
    Fiber* head = nullptr;
    Fiber* tail = nullptr;
    uint32_t count = 0;
  };
  SpillChain batch_spill_;

  void Loop();
  Fiber* FindRunnable();
  Fiber* Steal();
  // Idle path: block in the poller or sleep on the futex. Returns after something may have changed.
  void Idle();
  void Execute(Fiber* fiber);
  void RunReady(poller::ReadyList& ready);
  void StopSpinning();
  bool RemoveFromIdle();

  std::thread thread_;
  std::atomic<Fiber*> run_next_{nullptr};
  uint64_t tick_ = 0;
  uint32_t random_;
  bool spinning_ = false;
  friend class RuntimeImpl;
};

class RuntimeImpl {
 public:
  explicit RuntimeImpl(RuntimeOptions options);
  ~RuntimeImpl();

  absl::Status Start();
  absl::Status Spawn(absl::AnyInvocable<void()> fn, const char* file, int line);
  absl::Status Shutdown(absl::Time deadline);

  // Makes `fiber` runnable from outside this runtime's workers.
  void PushGlobal(Fiber* fiber);
  // Wakes an idle worker, or breaks a worker's blocking poll, so new work gets a thread.
  void WakeOne();
  // Called after local work was added: wakes a worker only if one is idle and none is spinning.
  void MaybeWakeForLocalWork() {
    // seq_cst: the waker's half of the idle handshake (see the file comment).
    if (idle_count_.load(std::memory_order_seq_cst) > 0 && spinning_.load(std::memory_order_seq_cst) == 0) {
      WakeOne();
    }
  }
  // Work some idle worker could take: the global queue or any worker's stealable work.
  bool AnyQueuedWork() const;
  // The fiber has returned: free it and account for it.
  void FiberExited(Fiber* fiber);

  RuntimeStats stats() const;
  std::string DumpFibers() const;
  int worker_count() const { return static_cast<int>(workers_.size()); }

  const RuntimeOptions options;
  std::unique_ptr<platform::StackPool> stacks;
  GlobalRunQueue global;
  std::vector<std::unique_ptr<Worker>> workers_;

  // Idle workers (parked on their futex). idle_count_ mirrors idle_.size() for lock-free checks.
  std::mutex idle_mutex_;
  std::vector<Worker*> idle_;
  std::atomic<int> idle_count_{0};
  std::atomic<int> spinning_{0};
  // Workers blocked, or about to block, in the poller.
  std::atomic<int> polling_{0};
  // Set when the last fiber finished and Shutdown committed: workers exit.
  std::atomic<bool> exiting_{false};
  std::atomic<uint64_t> poller_wakeups_{0};
  std::atomic<uint64_t> worker_wakeups_{0};
  // Threads inside PushGlobal. The fiber they push may run and finish before they return, so
  // Shutdown waits for them too before the runtime can be destroyed.
  std::atomic<int> pushes_in_flight_{0};

 private:
  // Live fibers; Spawn and Shutdown handshake on it with stopped_ (seq_cst both).
  std::atomic<uint64_t> live_{0};
  std::atomic<bool> stopped_{false};
  std::atomic<uint64_t> created_{0};
  std::mutex done_mutex_;
  std::condition_variable done_cv_;

  // Registry of live fibers, for dumps.
  mutable std::mutex registry_mutex_;
  Fiber* registry_head_ = nullptr;
  bool started_ = false;
  bool shut_down_ = false;
};

// Every running runtime (for the no-poller hook, dumps and the default runtime).
void RegisterRuntime(RuntimeImpl* runtime);
void UnregisterRuntime(RuntimeImpl* runtime);

}  // namespace netpoll::uthread_internal

#endif  // NETPOLL_UTHREAD_RUNTIME_IMPL_H_
