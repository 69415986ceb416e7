// The fiber runtime: M:N user threads with work stealing, integrated with the poller.
//
// This is what makes netpoll feel like Go. `Go(fn)` starts a fiber (a user thread with its own
// stack) that may call blocking netpoll operations (Conn::Read, Listener::Accept, SleepFor,
// Mutex::lock, Channel::Receive, ...); a blocked fiber parks and its worker OS thread runs other
// fibers meanwhile. Workers (by default one per CPU) each keep a local run queue and steal from
// each other when they run dry; one idle worker at a time blocks in the poller with the earliest
// timer as its timeout, and busy workers still poll without blocking every few scheduling rounds,
// so I/O is never starved by runnable fibers.
//
//   auto runtime = netpoll::Runtime::Start({.workers = 2});
//   (*runtime)->Go([] { ... blocking code ... });
//   (*runtime)->Shutdown();          // waits for every fiber to finish
//
// or, for a program whose main logic is a fiber (like Go's main):
//   int main() { return netpoll::Run([] { ...; return 0; }); }
//
// Fibers are cooperative: one that computes for a long time without blocking or calling Yield()
// delays the fibers queued behind it on its worker (other workers steal them). Fiber stacks are
// fixed-size (RuntimeOptions::stack_size, default 256 KiB, lazily committed) with a guard page:
// overflowing one stops the process with "netpoll: fiber stack overflow".
//
// Blocking work that is not netpoll's (a file read, a C library call) should go through
// poller::RunBlocking (poller/blocking.h), which runs it on a helper thread while the fiber parks.
#ifndef NETPOLL_UTHREAD_RUNTIME_H_
#define NETPOLL_UTHREAD_RUNTIME_H_

#include <cstdint>
#include <memory>
#include <source_location>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "platform/stack.h"

namespace netpoll {

namespace uthread_internal {
class RuntimeImpl;
}

struct RuntimeOptions {
  // Worker OS threads; 0 means one per CPU the process may run on.
  int workers = 0;
  // Usable stack bytes per fiber (rounded up to pages; lazily committed, plus a guard page).
  size_t stack_size = platform::kDefaultStackSize;
  // Released stacks kept for reuse; beyond this they are unmapped.
  size_t max_cached_stacks = 4096;
};

// Counters since the runtime started (relaxed snapshots).
struct RuntimeStats {
  uint64_t fibers_created = 0;
  uint64_t fibers_live = 0;
  uint64_t context_switches = 0;   // switches into fibers
  uint64_t steals = 0;             // successful steals from another worker's queue
  uint64_t poller_waits = 0;       // blocking polls made by workers
  uint64_t poller_polls = 0;       // non-blocking polls made by workers
  uint64_t poller_wakeups = 0;     // poller wake-ups the scheduler asked for
  uint64_t worker_wakeups = 0;     // idle workers woken from their futex
  uint64_t timers_fired = 0;       // timers run by workers (deadlines and sleeps)
};

class Runtime {
 public:
  // Starts the workers. Errors: InvalidArgument for a bad stack size, the OS error if a worker
  // thread cannot start.
  static absl::StatusOr<std::unique_ptr<Runtime>> Start(RuntimeOptions options = {});

  // Shutdown(): waits for every fiber to finish, then joins the workers.
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  // Starts a fiber running `fn` (any move-only callable). Callable from any thread, including
  // fibers of this or another runtime. `where` records the caller for DumpFibers.
  // Errors: FailedPrecondition once Shutdown has completed; ResourceExhausted if no stack can be
  // mapped.
  absl::Status Go(absl::AnyInvocable<void()> fn,
                  std::source_location where = std::source_location::current());

  // Waits until every fiber of this runtime has finished, then stops and joins the workers. If
  // fibers remain at `deadline`, returns DeadlineExceeded with a dump of them and leaves the
  // runtime running (call again, or end the process). Fibers may spawn fibers while it waits.
  // Must not be called from a fiber of this runtime. Idempotent once it succeeded.
  absl::Status Shutdown(absl::Time deadline = absl::InfiniteFuture());

  int workers() const;
  RuntimeStats stats() const;

  // One line per live fiber: id, state, what it waits for ("IO wait read fd 7, deadline in
  // 1.2s"), how long, the worker it last ran on, and where it was created.
  std::string DumpFibers() const;

 private:
  friend int Run(absl::AnyInvocable<int()> main, RuntimeOptions options);
  explicit Runtime(std::unique_ptr<uthread_internal::RuntimeImpl> impl);
  std::unique_ptr<uthread_internal::RuntimeImpl> impl_;
};

// Starts a fiber on the calling fiber's runtime, or, from a plain thread, on the default runtime
// (the one Run started, else the first started and still running). Errors: as Runtime::Go, and
// FailedPrecondition when there is no runtime to run it on.
absl::Status Spawn(absl::AnyInvocable<void()> fn, std::source_location where = std::source_location::current());

// Go's `go fn()`: Spawn, and a fatal error (with the reason) if the fiber cannot be started, as
// when Go's runtime cannot allocate a goroutine. Code that must survive running out of stacks
// (vm.max_map_count, memory) uses Spawn and handles the error.
void Go(absl::AnyInvocable<void()> fn, std::source_location where = std::source_location::current());

// Go-like program entry: starts a runtime, runs `main` in a fiber and returns its result when it
// returns. Like Go, it does not wait for other fibers: they stay with the runtime, which is left
// running (deliberately never destroyed) so nothing they hold dangles until the process exits.
int Run(absl::AnyInvocable<int()> main, RuntimeOptions options = {});

// Lets other fibers run (a fiber goes to the back of its worker's queue). On a plain thread, a
// std::this_thread::yield().
void Yield();

// Sleep the calling fiber (or plain thread) on the poller's timers. Never returns early (the
// clock is monotonic); a duration <= 0 returns at once. Call it qualified, netpoll::SleepFor: an
// unqualified SleepFor(absl::Duration) also finds absl::SleepFor by argument-dependent lookup,
// which would block the whole worker thread.
void SleepFor(absl::Duration duration);
void SleepUntil(absl::Time deadline);

// Whether the caller is a fiber, and its id (0 on a plain thread). Ids are unique in the process.
bool InFiber();
uint64_t CurrentFiberId();

// DumpFibers() of every running runtime.
std::string DumpAllFibers();

}  // namespace netpoll

#endif  // NETPOLL_UTHREAD_RUNTIME_H_
