#include "uthread/runtime.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <new>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "platform/check.h"
#include "platform/clock.h"
#include "platform/futex.h"
#include "poller/poller.h"
#include "uthread/fiber_local.h"
#include "uthread/runtime_impl.h"

namespace netpoll {
namespace uthread_internal {
namespace {

thread_local Worker* tls_worker = nullptr;

std::atomic<uint64_t> next_fiber_id{1};

// Every running runtime, for the poller's no-poller hook and for dumps.
std::mutex& RuntimesMutex() {
  static std::mutex* mutex = new std::mutex();
  return *mutex;
}
std::vector<RuntimeImpl*>& Runtimes() {
  static std::vector<RuntimeImpl*>* runtimes = new std::vector<RuntimeImpl*>();
  return *runtimes;
}
// The runtime plain threads' Go() uses. acquire/release: published after the runtime started.
std::atomic<RuntimeImpl*> default_runtime{nullptr};

// The poller asks for a poller when a timer is armed and nobody blocks in it: wake a worker of
// every runtime (a woken worker with timers pending becomes the poller).
bool WakeForTimers() {
  std::lock_guard<std::mutex> lock(RuntimesMutex());
  for (RuntimeImpl* runtime : Runtimes()) runtime->WakeOne();
  return !Runtimes().empty();
}

uint32_t NextRandom(uint32_t& state) {
  // xorshift32: cheap victim selection for stealing.
  state ^= state << 13;
  state ^= state >> 17;
  state ^= state << 5;
  return state;
}

}  // namespace

__attribute__((noipa)) Worker* CurrentWorker() { return tls_worker; }

Fiber* CurrentFiber() {
  Worker* worker = CurrentWorker();
  return worker != nullptr ? worker->current.load(std::memory_order_relaxed) : nullptr;
}

void RegisterRuntime(RuntimeImpl* runtime) {
  std::lock_guard<std::mutex> lock(RuntimesMutex());
  Runtimes().push_back(runtime);
  RuntimeImpl* expected = nullptr;
  default_runtime.compare_exchange_strong(expected, runtime, std::memory_order_acq_rel);
  poller::Poller::Get().SetNoPollerHook(&WakeForTimers);
}

void UnregisterRuntime(RuntimeImpl* runtime) {
  std::lock_guard<std::mutex> lock(RuntimesMutex());
  auto& all = Runtimes();
  all.erase(std::remove(all.begin(), all.end(), runtime), all.end());
  RuntimeImpl* expected = runtime;
  default_runtime.compare_exchange_strong(expected, all.empty() ? nullptr : all.front(),
                                          std::memory_order_acq_rel);
}

// ---------------------------------------------------------------------------------------------
// Fiber

Fiber::Fiber(RuntimeImpl* runtime, platform::Stack stack, platform::StackRegion region,
             absl::AnyInvocable<void()> body, const char* file_name, int line_number, uint64_t id)
    : context(region, &Fiber::Main, this),
      fn(std::move(body)),
      file(file_name),
      line(line_number),
      runtime_(runtime),
      stack_(std::move(stack)),
      id_(id) {}

Fiber* Fiber::Create(RuntimeImpl* runtime, platform::Stack stack, absl::AnyInvocable<void()> fn,
                     const char* file, int line) {
  // The control block sits at the top of the stack; the context runs below it.
  platform::StackRegion region = stack.region();
  uintptr_t top = reinterpret_cast<uintptr_t>(region.highest());
  uintptr_t block = (top - sizeof(Fiber)) & ~(uintptr_t{alignof(Fiber)} - 1) & ~uintptr_t{63};
  platform::StackRegion usable{region.lowest, block - reinterpret_cast<uintptr_t>(region.lowest)};
  return new (reinterpret_cast<void*>(block))
      Fiber(runtime, std::move(stack), usable, std::move(fn), file, line,
            next_fiber_id.fetch_add(1, std::memory_order_relaxed));
}

platform::Stack Fiber::Destroy(Fiber* fiber) {
  platform::Stack stack = std::move(fiber->stack_);
  fiber->~Fiber();
  return stack;
}

void Fiber::Main(void* arg, void*) {
  Fiber* self = static_cast<Fiber*>(arg);
  self->fn();
  // Destroy the callable (and whatever it captured) while still on the fiber.
  self->fn = nullptr;
  RunFiberLocalDestructors(self->locals);
  self->request = Request::kExit;
  platform::ExitContext(&self->context, &CurrentWorker()->scheduler_context, nullptr);
}

void Fiber::Park(CommitFn commit_fn, void* arg, const poller::WaitReason& why) {
  commit = commit_fn;
  commit_arg = arg;
  wait_what.store(why.what, std::memory_order_relaxed);
  wait_fd.store(why.fd, std::memory_order_relaxed);
  wait_deadline.store(why.deadline, std::memory_order_relaxed);
  request = Request::kPark;
  // The scheduler runs the commit once our registers are saved (see Worker::Execute).
  platform::SwitchContext(&context, &CurrentWorker()->scheduler_context, nullptr);
}

void Fiber::Ready() {
  state.store(State::kRunnable, std::memory_order_relaxed);
  // Read what we need from the fiber first: once it is on a queue another worker may run it to
  // completion and reuse its stack (where this object lives) before this function returns.
  RuntimeImpl* runtime = runtime_;
  Worker* worker = CurrentWorker();
  if (worker != nullptr && worker->runtime == runtime) {
    if (worker->dispatching_batch) {
      // Part of a poll's or a timer run's batch: queued in order; RunReady wakes a helper once.
      worker->PushFair(this);
      ++worker->batch_size;
      return;
    }
    worker->PushLocal(this, /*run_next=*/true);
    // Readied by a running fiber, it waits until that fiber parks: an idle worker may take it
    // sooner (Go's wakep). Readied from scheduler code (a park's commit), this worker runs it
    // next, so waking anyone would only cost a futex call.
    if (worker->current.load(std::memory_order_relaxed) != nullptr) runtime->MaybeWakeForLocalWork();
  } else {
    runtime->PushGlobal(this);
  }
}

// ---------------------------------------------------------------------------------------------
// Worker

Worker::Worker(RuntimeImpl* rt, int worker_index)
    : runtime(rt), index(worker_index), random_(0x9E3779B9u * static_cast<uint32_t>(worker_index + 1)) {}

absl::Status Worker::Start() {
  poller::Poller::Get().RegisterTimerHeap(&timers);
  thread_ = std::thread([this] { Loop(); });
  return absl::OkStatus();
}

void Worker::Join() {
  if (thread_.joinable()) thread_.join();
  poller::Poller::Get().UnregisterTimerHeap(&timers);
}

void Worker::PushLocal(Fiber* fiber, bool run_next) {
  if (run_next) {
    // A fiber readied by a running one runs next: its data is hot (Go's runnext).
    // seq_cst: publishes `fiber` (and takes the previous occupant) before the caller looks for an
    // idle worker to wake, against an idle worker that registers and then looks here.
    fiber = run_next_.exchange(fiber, std::memory_order_seq_cst);
    if (fiber == nullptr) return;
  }
  if (queue.Push(fiber)) return;
  uint32_t count;
  Fiber* tail;
  Fiber* chain = queue.SpillHalf(fiber, &count, &tail);
  runtime->global.PushChain(chain, tail, count);
}

void Worker::PushFair(Fiber* fiber) {
  // Behind the global queue if it holds anything (it is older than what we are readying now), or
  // if our queue is full, or if an earlier fiber of this batch went there; never spill older
  // local work behind newer. What goes global is chained here and pushed once the batch ends
  // (RunReady): one lock and one counter update per batch, not per fiber.
  if (batch_spill_.count == 0 && runtime->global.empty() && queue.Push(fiber)) return;
  fiber->run_next = nullptr;
  if (batch_spill_.head == nullptr) {
    batch_spill_.head = fiber;
  } else {
    batch_spill_.tail->run_next = fiber;
  }
  batch_spill_.tail = fiber;
  ++batch_spill_.count;
}

bool Worker::HasStealableWork() const {
  // seq_cst: the idle worker's half of the handshake with PushLocal's exchange (see the header).
  // runnext first: seeing a fiber there (acquire) also shows the `current` set before it.
  if (!queue.empty()) return true;
  return run_next_.load(std::memory_order_seq_cst) != nullptr &&
         current.load(std::memory_order_seq_cst) != nullptr;
}

Fiber* Worker::StealRunNext() {
  if (current.load(std::memory_order_relaxed) == nullptr) return nullptr;
  return run_next_.exchange(nullptr, std::memory_order_acq_rel);
}

void Worker::Loop() {
  tls_worker = this;
  if (absl::Status status = platform::InstallStackOverflowHandlerForThisThread(); !status.ok()) {
    std::fprintf(stderr, "netpoll: worker %d: no stack overflow reporting: %s\n", index,
                 std::string(status.message()).c_str());
  }
  poller::SetCurrentTimerHeap(&timers);
  while (Fiber* fiber = FindRunnable()) Execute(fiber);
  poller::SetCurrentTimerHeap(nullptr);
  tls_worker = nullptr;
}

void Worker::Execute(Fiber* fiber) {
  if (spinning_) StopSpinning();
  current.store(fiber, std::memory_order_relaxed);
  fiber->state.store(Fiber::State::kRunning, std::memory_order_relaxed);
  fiber->worker_index.store(index, std::memory_order_relaxed);
  poller::SetCurrentFiberWaiter(fiber);
  switches.fetch_add(1, std::memory_order_relaxed);
  platform::SwitchContext(&scheduler_context, &fiber->context, nullptr);
  // Back on the worker's own stack; the fiber's registers are saved.
  poller::SetCurrentFiberWaiter(nullptr);
  current.store(nullptr, std::memory_order_relaxed);
  switch (fiber->request) {
    case Fiber::Request::kPark:
      fiber->request = Fiber::Request::kNone;
      fiber->state.store(Fiber::State::kParked, std::memory_order_relaxed);
      // Once the commit returns true, another thread may already be running the fiber: do not
      // touch it again.
      if (!fiber->commit(fiber, fiber->commit_arg)) {
        fiber->state.store(Fiber::State::kRunnable, std::memory_order_relaxed);
        PushLocal(fiber, /*run_next=*/true);
      }
      break;
    case Fiber::Request::kYield:
      fiber->request = Fiber::Request::kNone;
      fiber->state.store(Fiber::State::kRunnable, std::memory_order_relaxed);
      PushLocal(fiber, /*run_next=*/false);
      break;
    case Fiber::Request::kExit:
      runtime->FiberExited(fiber);
      break;
    case Fiber::Request::kNone:
      NETPOLL_FATAL("a fiber switched to its scheduler without saying why");
  }
}

void Worker::RunReady(poller::ReadyList& ready) {
  if (ready.empty()) return;
  // A batch (a poll's events, due timers) is queued in order behind older work (PushFair).
  dispatching_batch = true;
  batch_size = 0;
  poller::Poller::Get().ReadyAll(ready);
  dispatching_batch = false;
  if (batch_spill_.count != 0) {
    runtime->global.PushChain(batch_spill_.head, batch_spill_.tail, batch_spill_.count);
    batch_spill_ = {};
  }
  // This worker takes the first; more than that is work for an idle worker.
  if (batch_size > 1) runtime->MaybeWakeForLocalWork();
}

void Worker::StopSpinning() {
  spinning_ = false;
  // seq_cst: part of the spinning handshake with MaybeWakeForLocalWork/WakeOne.
  runtime->spinning_.fetch_sub(1, std::memory_order_seq_cst);
  // We found work; if more is waiting and somebody is idle, hand the search on (Go's wakep after
  // resetspinning), so a burst of work spreads over the workers.
  if (runtime->AnyQueuedWork()) runtime->MaybeWakeForLocalWork();
}

Fiber* Worker::Steal() {
  const int n = runtime->worker_count();
  if (n <= 1) return nullptr;
  int start = static_cast<int>(NextRandom(random_) % static_cast<uint32_t>(n));
  for (int i = 0; i < n; ++i) {
    Worker* victim = runtime->workers_[(start + i) % n].get();
    if (victim == this) continue;
    Fiber* fiber = victim->queue.StealHalfInto(queue);
    if (fiber == nullptr) fiber = victim->StealRunNext();
    if (fiber != nullptr) {
      steals.fetch_add(1, std::memory_order_relaxed);
      return fiber;
    }
  }
  return nullptr;
}

Fiber* Worker::FindRunnable() {
  poller::Poller& poller = poller::Poller::Get();
  for (;;) {
    ++tick_;
    if (runtime->exiting_.load(std::memory_order_seq_cst)) return nullptr;

    // Deadlines and sleeps on this worker's heap.
    if (timers.next_when() != poller::kNever) {
      int64_t now = platform::MonotonicNanos();
      if (timers.next_when() <= now) {
        poller::ReadyList ready;
        timers_fired.fetch_add(timers.RunDue(now, &ready), std::memory_order_relaxed);
        RunReady(ready);
      }
    }
    // Fairness: now and then the global queue goes first, so it cannot starve.
    if (tick_ % kGlobalQueueEveryTicks == 0) {
      if (Fiber* fiber = runtime->global.Pop()) return fiber;
    }
    // A busy worker still looks at I/O every few rounds.
    if (tick_ % kPollEveryTicks == 0 && poller.waiters() > 0) {
      poller::ReadyList ready;
      poller.Poll(0, &ready);
      poller_polls.fetch_add(1, std::memory_order_relaxed);
      RunReady(ready);
    }
    if (Fiber* fiber = run_next_.exchange(nullptr, std::memory_order_acq_rel)) return fiber;
    if (Fiber* fiber = queue.Pop()) return fiber;
    if (Fiber* fiber = runtime->global.PopBatch(queue, LocalRunQueue::kCapacity / 2)) return fiber;
    // Out of queued work: take whatever I/O is ready, without blocking, if another thread blocks
    // in the poller (otherwise Idle() below blocks there itself, and a blocking poll returns at
    // once when something is ready: a non-blocking one first would be a wasted syscall).
    if (poller.waiters() > 0 && poller.poll_owned()) {
      poller::ReadyList ready;
      poller.Poll(0, &ready);
      poller_polls.fetch_add(1, std::memory_order_relaxed);
      if (!ready.empty()) {
        RunReady(ready);
        continue;
      }
    }
    if (Fiber* fiber = Steal()) return fiber;
    if (spinning_) {
      // Stop spinning before the last look, so a waker that saw us spinning is covered by it.
      spinning_ = false;
      runtime->spinning_.fetch_sub(1, std::memory_order_seq_cst);
      if (runtime->AnyQueuedWork()) continue;
    }
    Idle();
  }
}

bool Worker::RemoveFromIdle() {
  std::lock_guard<std::mutex> lock(runtime->idle_mutex_);
  auto& idle = runtime->idle_;
  auto it = std::find(idle.begin(), idle.end(), this);
  if (it == idle.end()) return false;  // A waker took us off and will (or did) set `wake`.
  idle.erase(it);
  runtime->idle_count_.fetch_sub(1, std::memory_order_seq_cst);
  return true;
}

void Worker::Idle() {
  poller::Poller& poller = poller::Poller::Get();
  {
    std::lock_guard<std::mutex> lock(runtime->idle_mutex_);
    runtime->idle_.push_back(this);
    runtime->idle_count_.fetch_add(1, std::memory_order_seq_cst);
  }
  // Registered as idle; now the last look (the worker's half of the idle handshake).
  if (runtime->AnyQueuedWork() || runtime->exiting_.load(std::memory_order_seq_cst)) {
    if (!RemoveFromIdle()) {
      // A waker chose us meanwhile: take its wake-up, and the spinning role it gave us.
      while (wake.load(std::memory_order_acquire) == 0) platform::FutexWait(&wake, 0);
      wake.store(0, std::memory_order_relaxed);
      spinning_ = true;
    }
    return;
  }
  bool io_to_wait_for = poller.waiters() > 0 || poller.EarliestTimer() != poller::kNever;
  if (io_to_wait_for && !poller.poll_owned()) {
    // Become the poller. Announce it before leaving the idle list, so a waker that no longer
    // finds us idle knows to break the poll instead.
    runtime->polling_.fetch_add(1, std::memory_order_seq_cst);
    if (!RemoveFromIdle()) {
      runtime->polling_.fetch_sub(1, std::memory_order_seq_cst);
      while (wake.load(std::memory_order_acquire) == 0) platform::FutexWait(&wake, 0);
      wake.store(0, std::memory_order_relaxed);
      spinning_ = true;
      return;
    }
    if (!runtime->AnyQueuedWork() && !runtime->exiting_.load(std::memory_order_seq_cst)) {
      poller::ReadyList ready;
      poller.Poll(-1, &ready);
      poller_waits.fetch_add(1, std::memory_order_relaxed);
      runtime->polling_.fetch_sub(1, std::memory_order_seq_cst);
      RunReady(ready);  // Wakes an idle worker if it readied more than this worker takes at once.
    } else {
      runtime->polling_.fetch_sub(1, std::memory_order_seq_cst);
    }
    return;
  }
  // Somebody else polls, or there is nothing to poll for: sleep until woken.
  // acquire: pairs with WakeOne's release, which follows the work it published.
  while (wake.load(std::memory_order_acquire) == 0) platform::FutexWait(&wake, 0);
  wake.store(0, std::memory_order_relaxed);
  spinning_ = true;  // WakeOne counted us as spinning when it took us off the idle list.
}

// ---------------------------------------------------------------------------------------------
// RuntimeImpl

RuntimeImpl::RuntimeImpl(RuntimeOptions opts) : options(opts) {}

RuntimeImpl::~RuntimeImpl() = default;

absl::Status RuntimeImpl::Start() {
  platform::StackPoolOptions pool;
  pool.stack_size = options.stack_size;
  pool.max_cached_stacks = options.max_cached_stacks;
  absl::StatusOr<std::unique_ptr<platform::StackPool>> created = platform::StackPool::Create(pool);
  if (!created.ok()) return created.status();
  stacks = std::move(*created);
  int n = options.workers > 0 ? options.workers : static_cast<int>(std::thread::hardware_concurrency());
  if (n <= 0) n = 1;
  for (int i = 0; i < n; ++i) workers_.push_back(std::make_unique<Worker>(this, i));
  for (auto& worker : workers_) {
    if (absl::Status status = worker->Start(); !status.ok()) return status;
  }
  started_ = true;
  RegisterRuntime(this);
  return absl::OkStatus();
}

void RuntimeImpl::PushGlobal(Fiber* fiber) {
  // seq_cst: counted before the fiber becomes runnable, so a Shutdown that sees the fiber gone
  // also sees us (see Shutdown).
  pushes_in_flight_.fetch_add(1, std::memory_order_seq_cst);
  global.Push(fiber);
  WakeOne();
  // release: our last touch of the runtime happens before Shutdown's acquire load sees zero.
  pushes_in_flight_.fetch_sub(1, std::memory_order_release);
}

bool RuntimeImpl::AnyQueuedWork() const {
  if (!global.empty()) return true;
  for (const auto& worker : workers_) {
    if (worker->HasStealableWork()) return true;
  }
  return false;
}

void RuntimeImpl::WakeOne() {
  // seq_cst throughout: the waker's half of the idle and polling handshakes.
  if (idle_count_.load(std::memory_order_seq_cst) > 0 && spinning_.load(std::memory_order_seq_cst) == 0) {
    Worker* worker = nullptr;
    {
      std::lock_guard<std::mutex> lock(idle_mutex_);
      if (!idle_.empty()) {
        worker = idle_.back();
        idle_.pop_back();
        idle_count_.fetch_sub(1, std::memory_order_seq_cst);
        spinning_.fetch_add(1, std::memory_order_seq_cst);
      }
    }
    if (worker != nullptr) {
      // release: the woken worker sees the work published before this call.
      worker->wake.store(1, std::memory_order_release);
      platform::FutexWake(&worker->wake, 1);
      worker_wakeups_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
  }
  if (polling_.load(std::memory_order_seq_cst) > 0) {
    poller::Poller::Get().Wakeup();
    poller_wakeups_.fetch_add(1, std::memory_order_relaxed);
  }
}

absl::Status RuntimeImpl::Spawn(absl::AnyInvocable<void()> fn, const char* file, int line) {
  // seq_cst pair with Shutdown: either it sees this fiber counted, or we see it stopped.
  live_.fetch_add(1, std::memory_order_seq_cst);
  if (stopped_.load(std::memory_order_seq_cst)) {
    live_.fetch_sub(1, std::memory_order_seq_cst);
    return absl::FailedPreconditionError("netpoll runtime: Go after Shutdown");
  }
  absl::StatusOr<platform::Stack> stack = stacks->Acquire();
  if (!stack.ok()) {
    FiberExited(nullptr);
    return stack.status();
  }
  Fiber* fiber = Fiber::Create(this, std::move(*stack), std::move(fn), file, line);
  created_.fetch_add(1, std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> lock(registry_mutex_);
    fiber->registry_next = registry_head_;
    if (registry_head_ != nullptr) registry_head_->registry_prev = fiber;
    registry_head_ = fiber;
  }
  Worker* worker = CurrentWorker();
  if (worker != nullptr && worker->runtime == this) {
    worker->PushLocal(fiber, /*run_next=*/false);
    MaybeWakeForLocalWork();
  } else {
    PushGlobal(fiber);
  }
  return absl::OkStatus();
}

void RuntimeImpl::FiberExited(Fiber* fiber) {
  if (fiber != nullptr) {
    {
      std::lock_guard<std::mutex> lock(registry_mutex_);
      if (fiber->registry_prev != nullptr) {
        fiber->registry_prev->registry_next = fiber->registry_next;
      } else {
        registry_head_ = fiber->registry_next;
      }
      if (fiber->registry_next != nullptr) fiber->registry_next->registry_prev = fiber->registry_prev;
    }
    stacks->Release(Fiber::Destroy(fiber));
  }
  if (live_.fetch_sub(1, std::memory_order_seq_cst) == 1) {
    std::lock_guard<std::mutex> lock(done_mutex_);
    done_cv_.notify_all();
  }
}

absl::Status RuntimeImpl::Shutdown(absl::Time deadline) {
  if (shut_down_) return absl::OkStatus();
  Worker* caller = CurrentWorker();
  if (caller != nullptr && caller->runtime == this) {
    return absl::FailedPreconditionError("netpoll runtime: Shutdown called from one of its own fibers");
  }
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(done_mutex_);
      auto done = [this] { return live_.load(std::memory_order_seq_cst) == 0; };
      if (deadline == absl::InfiniteFuture()) {
        done_cv_.wait(lock, done);
      } else if (!done_cv_.wait_until(lock, absl::ToChronoTime(deadline), done)) {
        return absl::DeadlineExceededError(
            absl::StrCat("netpoll runtime: fibers still running at the shutdown deadline:\n", DumpFibers()));
      }
    }
    stopped_.store(true, std::memory_order_seq_cst);
    if (live_.load(std::memory_order_seq_cst) == 0) break;
    stopped_.store(false, std::memory_order_seq_cst);  // A Go raced in; wait for it too.
  }
  // A thread that pushed the last fiber may still be inside PushGlobal, after that fiber finished.
  while (pushes_in_flight_.load(std::memory_order_acquire) != 0) std::this_thread::yield();
  UnregisterRuntime(this);
  exiting_.store(true, std::memory_order_seq_cst);
  for (auto& worker : workers_) {
    worker->wake.store(1, std::memory_order_release);
    platform::FutexWake(&worker->wake, 1);
  }
  poller::Poller::Get().Wakeup();  // A worker blocked in the poller.
  for (auto& worker : workers_) {
    // A worker blocked in the poller returns at the wake-up above; one that was about to block
    // there sees exiting_ first.
    worker->Join();
  }
  shut_down_ = true;
  return absl::OkStatus();
}

RuntimeStats RuntimeImpl::stats() const {
  RuntimeStats s;
  s.fibers_created = created_.load(std::memory_order_relaxed);
  s.fibers_live = live_.load(std::memory_order_relaxed);
  for (const auto& w : workers_) {
    s.context_switches += w->switches.load(std::memory_order_relaxed);
    s.steals += w->steals.load(std::memory_order_relaxed);
    s.poller_waits += w->poller_waits.load(std::memory_order_relaxed);
    s.poller_polls += w->poller_polls.load(std::memory_order_relaxed);
    s.timers_fired += w->timers_fired.load(std::memory_order_relaxed);
  }
  s.poller_wakeups = poller_wakeups_.load(std::memory_order_relaxed);
  s.worker_wakeups = worker_wakeups_.load(std::memory_order_relaxed);
  return s;
}

std::string RuntimeImpl::DumpFibers() const {
  std::string out;
  int64_t now = platform::MonotonicNanos();
  std::lock_guard<std::mutex> lock(registry_mutex_);
  for (Fiber* f = registry_head_; f != nullptr; f = f->registry_next) {
    const char* state = "runnable";
    switch (f->state.load(std::memory_order_relaxed)) {
      case Fiber::State::kRunnable:
        state = "runnable";
        break;
      case Fiber::State::kRunning:
        state = "running";
        break;
      case Fiber::State::kParked:
        state = "parked";
        break;
      case Fiber::State::kDone:
        state = "done";
        break;
    }
    absl::StrAppend(&out, "fiber ", f->id(), " [", state);
    if (f->state.load(std::memory_order_relaxed) == Fiber::State::kParked) {
      absl::StrAppend(&out, ": ", f->wait_what.load(std::memory_order_relaxed));
      int64_t fd = f->wait_fd.load(std::memory_order_relaxed);
      int64_t deadline = f->wait_deadline.load(std::memory_order_relaxed);
      if (fd >= 0) absl::StrAppend(&out, " fd ", fd);
      if (deadline > 0) {
        absl::StrAppend(&out, ", deadline in ", absl::FormatDuration(absl::Nanoseconds(deadline - now)));
      } else if (deadline < 0) {
        absl::StrAppend(&out, ", deadline passed");
      }
    }
    absl::StrAppend(&out, "] worker ", f->worker_index.load(std::memory_order_relaxed), ", created at ",
                    f->file, ":", f->line, "\n");
  }
  return out;
}

}  // namespace uthread_internal

// ---------------------------------------------------------------------------------------------
// Public API

using uthread_internal::CurrentFiber;
using uthread_internal::CurrentWorker;
using uthread_internal::RuntimeImpl;

Runtime::Runtime(std::unique_ptr<RuntimeImpl> impl) : impl_(std::move(impl)) {}

Runtime::~Runtime() {
  if (impl_ != nullptr) {
    absl::Status status = impl_->Shutdown(absl::InfiniteFuture());
    NETPOLL_CHECK(status.ok(), "netpoll::Runtime destroyed from one of its own fibers");
  }
}

absl::StatusOr<std::unique_ptr<Runtime>> Runtime::Start(RuntimeOptions options) {
  if (options.workers < 0) return absl::InvalidArgumentError("RuntimeOptions.workers must be >= 0");
  auto impl = std::make_unique<RuntimeImpl>(options);
  if (absl::Status status = impl->Start(); !status.ok()) {
    impl->Shutdown(absl::InfiniteFuture()).IgnoreError();
    return status;
  }
  return std::unique_ptr<Runtime>(new Runtime(std::move(impl)));
}

absl::Status Runtime::Go(absl::AnyInvocable<void()> fn, std::source_location where) {
  return impl_->Spawn(std::move(fn), where.file_name(), static_cast<int>(where.line()));
}

absl::Status Runtime::Shutdown(absl::Time deadline) { return impl_->Shutdown(deadline); }

int Runtime::workers() const { return impl_->worker_count(); }

RuntimeStats Runtime::stats() const { return impl_->stats(); }

std::string Runtime::DumpFibers() const { return impl_->DumpFibers(); }

absl::Status Spawn(absl::AnyInvocable<void()> fn, std::source_location where) {
  RuntimeImpl* runtime = nullptr;
  if (uthread_internal::Fiber* fiber = CurrentFiber()) {
    runtime = fiber->runtime();
  } else {
    runtime = uthread_internal::default_runtime.load(std::memory_order_acquire);
  }
  if (runtime == nullptr) {
    return absl::FailedPreconditionError("netpoll::Go: no runtime is running (start one, or use Run)");
  }
  return runtime->Spawn(std::move(fn), where.file_name(), static_cast<int>(where.line()));
}

void Go(absl::AnyInvocable<void()> fn, std::source_location where) {
  absl::Status status = Spawn(std::move(fn), where);
  if (!status.ok()) {
    std::string message = absl::StrCat("netpoll::Go could not start a fiber at ", where.file_name(), ":",
                                       where.line(), ": ", status.message());
    NETPOLL_FATAL(message.c_str());
  }
}

int Run(absl::AnyInvocable<int()> main, RuntimeOptions options) {
  absl::StatusOr<std::unique_ptr<Runtime>> runtime = Runtime::Start(options);
  if (!runtime.ok()) {
    std::fprintf(stderr, "netpoll::Run: %s\n", std::string(runtime.status().message()).c_str());
    return 70;  // EX_SOFTWARE
  }
  // Deliberately never destroyed (see the header); kept reachable for leak checkers.
  static std::vector<std::unique_ptr<Runtime>>* kept = new std::vector<std::unique_ptr<Runtime>>();
  Runtime* leaked = runtime->get();
  {
    static std::mutex kept_mutex;
    std::lock_guard<std::mutex> lock(kept_mutex);
    kept->push_back(std::move(*runtime));
  }
  uthread_internal::default_runtime.store(leaked->impl_.get(), std::memory_order_release);
  std::mutex mutex;
  std::condition_variable cv;
  bool done = false;
  int result = 0;
  absl::Status status = leaked->Go([&] {
    int r = main();
    std::lock_guard<std::mutex> lock(mutex);
    result = r;
    done = true;
    cv.notify_all();
  });
  NETPOLL_CHECK(status.ok(), "netpoll::Run could not start its main fiber");
  std::unique_lock<std::mutex> lock(mutex);
  cv.wait(lock, [&] { return done; });
  return result;
}

void Yield() {
  uthread_internal::Fiber* fiber = CurrentFiber();
  if (fiber == nullptr) {
    std::this_thread::yield();
    return;
  }
  fiber->request = uthread_internal::Fiber::Request::kYield;
  platform::SwitchContext(&fiber->context, &CurrentWorker()->scheduler_context, nullptr);
}

namespace {

struct Sleeper {
  poller::Timer timer;
  poller::Waiter* waiter;
};

void WakeSleeper(void* arg, uintptr_t, poller::ReadyList* ready) {
  ready->Push(static_cast<Sleeper*>(arg)->waiter);
}

bool ArmSleep(poller::Waiter*, void* arg) {
  auto* sleeper = static_cast<std::pair<Sleeper*, int64_t>*>(arg);
  // Armed only once we are suspended, so the timer can never ready a fiber still running.
  poller::ArmTimer(&sleeper->first->timer, sleeper->second, &WakeSleeper, sleeper->first, 0);
  return true;
}

}  // namespace

void SleepUntil(absl::Time deadline) {
  if (deadline == absl::InfiniteFuture()) {
    NETPOLL_FATAL("SleepUntil(InfiniteFuture): a sleep that never ends");
  }
  int64_t ns = absl::ToInt64Nanoseconds(deadline - absl::Now());
  if (ns <= 0) return;
  int64_t when = poller::DeadlineAfter(ns, platform::MonotonicNanos());
  Sleeper sleeper;
  sleeper.waiter = poller::CurrentWaiter();
  std::pair<Sleeper*, int64_t> arg{&sleeper, when};
  poller::WaitReason reason;
  reason.what = "sleep";
  reason.deadline = when;
  sleeper.waiter->Park(&ArmSleep, &arg, reason);
  // Readied by the timer: it has left the heap; wait until its callback is done with `sleeper`.
  poller::WaitForCallback(&sleeper.timer);
}

void SleepFor(absl::Duration duration) {
  if (duration <= absl::ZeroDuration()) return;
  SleepUntil(absl::Now() + duration);
}

bool InFiber() { return CurrentFiber() != nullptr; }

uint64_t CurrentFiberId() {
  uthread_internal::Fiber* fiber = CurrentFiber();
  return fiber != nullptr ? fiber->id() : 0;
}

std::string DumpAllFibers() {
  std::string out;
  std::lock_guard<std::mutex> lock(uthread_internal::RuntimesMutex());
  for (RuntimeImpl* runtime : uthread_internal::Runtimes()) {
    absl::StrAppend(&out, "runtime with ", runtime->worker_count(), " workers:\n", runtime->DumpFibers());
  }
  return out;
}

}  // namespace netpoll
