#include "uthread/sync.h"

#include <cstdint>
#include <limits>
#include <mutex>

#include "platform/check.h"
#include "platform/clock.h"
#include "poller/waiter.h"

namespace netpoll {
namespace {

using sync_internal::kResultSignaled;
using sync_internal::TryWake;

// How long a contended lock() watches the state word before it parks. Each round is one pause
// (tens of cycles), so this is a few microseconds at most: long enough to catch a holder that
// is about to leave a short critical section on another CPU, short enough that a fiber spinning
// on a lock held by a fiber of its own worker (which cannot run meanwhile) wastes little.
constexpr int kSpinRounds = 64;

// A waiter that has waited longer than this puts the Mutex into hand-off mode (Go uses 1 ms too).
constexpr int64_t kStarvationNs = 1'000'000;

// See sync_internal::MutexHandoffs. relaxed: a statistic that orders nothing.
std::atomic<uint64_t> mutex_handoffs{0};

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Mutex
//
// The state word (state_) and the queue:
//
//   kLocked   set by whoever acquires (a CAS from a state without kLocked); cleared by unlock(),
//             except in hand-off mode, where it stays set and ownership passes to the first
//             waiter in the queue.
//   kQueued   the queue is non-empty. Set by a locker, under queue_mutex_, in the same CAS that
//             checks that the Mutex is still locked (so a locker never queues behind an unlocked
//             Mutex: either it sees kLocked clear and takes the lock, or its kQueued lands
//             before the holder's unlock CAS, which then sees it). Cleared, under queue_mutex_, by
//             whoever pops the last waiter.
//   kWoken    one waiter has been woken and is competing for the lock; unlock() wakes nobody
//             else meanwhile. Set by unlock() in the very CAS that releases the lock (so an
//             unlock that owes a wake-up claims it atomically with the release and touches the
//             Mutex afterwards only while a waiter, which keeps it alive, is still queued).
//             Cleared by the woken waiter in the CAS that acquires the lock or re-queues it.
//   kHandoff  starvation mode. Set by a woken waiter that has waited > kStarvationNs and finds
//             the lock held (in the CAS that re-queues it at the front); cleared by the hand-off
//             that empties the queue or serves a waiter that waited < kStarvationNs. Implies
//             kLocked and kQueued, so newcomers never see an unlocked Mutex in this mode.
//
// No lost wake-ups: whenever the lock is released with waiters queued, either that same CAS
// claims kWoken (and the unlocker wakes one), or kWoken was already set, and the woken waiter it
// denotes will either take the lock or re-queue with a CAS that requires kLocked, i.e. while
// some holder exists whose unlock will see kQueued without kWoken.
//
// All CASes on state_ that acquire the lock are acquire; the releasing ones are release; the
// others (queueing, bookkeeping bits) are relaxed: they order nothing but themselves, and RMWs on
// one word are totally ordered anyway (and keep the release sequence of the last unlock intact).
// The queue itself is ordered by queue_mutex_, and a hand-off is ordered by Ready()/Park().

struct Mutex::WaitNode {
  poller::Waiter* waiter = nullptr;
  WaitNode* next = nullptr;
  int64_t wait_start = 0;   // monotonic ns of the first park, for the starvation rule
  bool handed_off = false;  // set by HandOff(): the waiter owns the Mutex when it resumes
};

struct Mutex::ParkContext {
  Mutex* mutex;
  WaitNode* node;
  bool front;  // a woken waiter that lost re-queues at the front
};

Mutex::~Mutex() {
  NETPOLL_CHECK((state_.load(std::memory_order_relaxed) & (kQueued | kWoken)) == 0,
                "netpoll::Mutex destroyed while user threads wait for it");
}

bool Mutex::try_lock() {
  uint32_t s = state_.load(std::memory_order_relaxed);
  while ((s & kLocked) == 0) {
    // acquire: the critical section starts here.
    if (state_.compare_exchange_weak(s, s | kLocked, std::memory_order_acquire,
                                     std::memory_order_relaxed)) {
      return true;
    }
  }
  return false;
}

void Mutex::LockSlow() {
  WaitNode node;
  bool woken = false;  // whether we hold kWoken (and must clear it)
  for (;;) {
    const uint32_t drop = woken ? kWoken : 0;
    for (int i = 0; i < kSpinRounds; ++i) {
      uint32_t s = state_.load(std::memory_order_relaxed);
      if ((s & kLocked) == 0) {
        if (state_.compare_exchange_weak(s, (s | kLocked) & ~drop, std::memory_order_acquire,
                                         std::memory_order_relaxed)) {
          return;
        }
        continue;
      }
      if ((s & kHandoff) != 0) break;  // The lock is promised to the queue: go and join it.
      CpuRelax();
    }

    const bool starving =
        node.wait_start != 0 && platform::MonotonicNanos() - node.wait_start > kStarvationNs;
    queue_mutex_.lock();
    uint32_t s = state_.load(std::memory_order_relaxed);
    for (;;) {
      if ((s & kLocked) == 0) {
        if (state_.compare_exchange_weak(s, (s | kLocked) & ~drop, std::memory_order_acquire,
                                         std::memory_order_relaxed)) {
          queue_mutex_.unlock();
          return;
        }
        continue;
      }
      uint32_t next = (s | kQueued) & ~drop;
      if (starving) next |= kHandoff;
      // relaxed: see the comment above; the unlocker finds our node through queue_mutex_.
      if (state_.compare_exchange_weak(s, next, std::memory_order_relaxed,
                                       std::memory_order_relaxed)) {
        break;
      }
    }
    // Still holding queue_mutex_: CommitQueued links us and releases it once we are safely
    // suspended, so an unlock that saw kQueued finds us in the queue.
    if (node.wait_start == 0) node.wait_start = platform::MonotonicNanos();
    node.waiter = poller::CurrentWaiter();
    node.handed_off = false;
    ParkContext ctx{this, &node, woken};
    poller::WaitReason reason;
    reason.what = "mutex";
    poller::Park(&Mutex::CommitQueued, &ctx, reason);
    // Ready() orders what the waker wrote (handed_off, and in hand-off mode the critical section
    // of the previous owner) before this point.
    if (node.handed_off) return;
    woken = true;
  }
}

bool Mutex::CommitQueued(poller::Waiter* /*self*/, void* context) {
  auto* ctx = static_cast<ParkContext*>(context);
  Mutex* mu = ctx->mutex;
  WaitNode* node = ctx->node;
  if (ctx->front) {
    node->next = mu->head_;
    mu->head_ = node;
    if (mu->tail_ == nullptr) mu->tail_ = node;
  } else {
    node->next = nullptr;
    if (mu->tail_ == nullptr) {
      mu->head_ = node;
    } else {
      mu->tail_->next = node;
    }
    mu->tail_ = node;
  }
  // After this unlock the waiter may be readied and return: touch neither ctx nor node.
  mu->queue_mutex_.unlock();
  return true;
}

void Mutex::UnlockSlow(uint32_t s) {
  for (;;) {
    NETPOLL_CHECK((s & kLocked) != 0, "netpoll::Mutex: unlock of an unlocked mutex");
    // Only the holder clears kHandoff, so what we read cannot change under us.
    if ((s & kHandoff) != 0) {
      HandOff();
      return;
    }
    const bool wake = (s & kQueued) != 0 && (s & kWoken) == 0;
    uint32_t next = s & ~kLocked;
    if (wake) next |= kWoken;
    // release: publishes the critical section to the next owner.
    if (state_.compare_exchange_weak(s, next, std::memory_order_release,
                                     std::memory_order_relaxed)) {
      if (wake) WakeOne();
      return;
    }
  }
}

void Mutex::WakeOne() {
  poller::Waiter* waiter;
  {
    std::lock_guard<platform::FutexMutex> lock(queue_mutex_);
    WaitNode* node = head_;
    // kQueued was set when we claimed kWoken, and only a holder of kWoken or of the lock in
    // hand-off mode pops; neither can exist alongside our claim.
    NETPOLL_CHECK(node != nullptr, "netpoll::Mutex: corrupted state (waiters flagged, none queued)");
    head_ = node->next;
    if (head_ == nullptr) {
      tail_ = nullptr;
      state_.fetch_and(~kQueued, std::memory_order_relaxed);
    }
    waiter = node->waiter;
  }
  waiter->Ready();
}

void Mutex::HandOff() {
  poller::Waiter* waiter;
  {
    std::lock_guard<platform::FutexMutex> lock(queue_mutex_);
    WaitNode* node = head_;
    NETPOLL_CHECK(node != nullptr, "netpoll::Mutex: corrupted state (hand-off with none queued)");
    head_ = node->next;
    uint32_t clear = 0;
    if (head_ == nullptr) {
      tail_ = nullptr;
      clear = kQueued | kHandoff;
    } else if (platform::MonotonicNanos() - node->wait_start < kStarvationNs) {
      clear = kHandoff;  // The queue moves fast again: back to normal mode.
    }
    // kLocked stays set: the Mutex passes straight to `node`. relaxed: the new owner is ordered
    // after us by queue_mutex_ and Ready(), not by this word.
    if (clear != 0) state_.fetch_and(~clear, std::memory_order_relaxed);
    node->handed_off = true;
    waiter = node->waiter;
  }
  mutex_handoffs.fetch_add(1, std::memory_order_relaxed);
  waiter->Ready();
}

uint64_t sync_internal::MutexHandoffs() { return mutex_handoffs.load(std::memory_order_relaxed); }

// ---------------------------------------------------------------------------------------------
// CondVar

CondVar::~CondVar() {
  std::lock_guard<platform::FutexMutex> lock(queue_mutex_);
  NETPOLL_CHECK(waiters_.empty(), "netpoll::CondVar destroyed while user threads wait on it");
}

void CondVar::Wait(Mutex& mu) { WaitInternal(mu, 0); }

bool CondVar::WaitUntil(Mutex& mu, absl::Time deadline) {
  int64_t d = sync_internal::MonotonicDeadline(deadline);
  if (sync_internal::DeadlinePassed(d)) return false;
  return WaitInternal(mu, d);
}

bool CondVar::WaitFor(Mutex& mu, absl::Duration timeout) {
  int64_t d = sync_internal::MonotonicDeadlineAfter(timeout);
  if (sync_internal::DeadlinePassed(d)) return false;
  return WaitInternal(mu, d);
}

bool CondVar::WaitInternal(Mutex& mu, int64_t deadline) {
  sync_internal::WaitNode node;
  node.waiter = poller::CurrentWaiter();
  {
    std::lock_guard<platform::FutexMutex> lock(queue_mutex_);
    waiters_.PushBack(&node);
  }
  // Queued before `mu` is released, so a Signal sent after the caller's check of its condition
  // (which needs `mu`) finds us. If it comes before we park, our commit sees the claim and we do
  // not sleep; no lock is held across the park.
  mu.unlock();
  uint32_t result = sync_internal::ParkOnNode(&node, deadline, nullptr, "condvar");
  if (result != kResultSignaled) {
    // Our deadline won. We may still be queued; a Signal that popped us (and lost) holds
    // queue_mutex_ while it looks at our node, so taking it also waits until it has let go.
    std::lock_guard<platform::FutexMutex> lock(queue_mutex_);
    waiters_.Remove(&node);
  }
  // A signaller unlinks the node before claiming it and never touches it after the claim, so a
  // signalled waiter needs no lock here.
  mu.lock();
  return result == kResultSignaled;
}

void CondVar::Signal() {
  poller::Waiter* to_ready = nullptr;
  {
    std::lock_guard<platform::FutexMutex> lock(queue_mutex_);
    while (sync_internal::WaitNode* node = waiters_.PopFront()) {
      if (TryWake(node, kResultSignaled, &to_ready)) break;
      // That waiter's deadline claimed it first; it will report a timeout. The signal goes to
      // the next waiter instead.
    }
  }
  if (to_ready != nullptr) to_ready->Ready();
}

void CondVar::SignalAll() {
  poller::ReadyList ready;
  {
    std::lock_guard<platform::FutexMutex> lock(queue_mutex_);
    while (sync_internal::WaitNode* node = waiters_.PopFront()) {
      poller::Waiter* to_ready = nullptr;
      if (TryWake(node, kResultSignaled, &to_ready) && to_ready != nullptr) ready.Push(to_ready);
    }
  }
  while (poller::Waiter* w = ready.Pop()) w->Ready();
}

// ---------------------------------------------------------------------------------------------
// WaitGroup

namespace {

int64_t CounterOf(uint64_t state) { return static_cast<int32_t>(static_cast<uint32_t>(state >> 32)); }
uint32_t WaitersOf(uint64_t state) { return static_cast<uint32_t>(state); }

}  // namespace

WaitGroup::~WaitGroup() {
  NETPOLL_CHECK(WaitersOf(state_.load(std::memory_order_relaxed)) == 0,
                "netpoll::WaitGroup destroyed while user threads wait on it");
}

void WaitGroup::Add(int delta) {
  // Two's complement arithmetic on the high half; conversion to uint64_t first keeps the shift
  // well-defined for negative deltas.
  const uint64_t step = static_cast<uint64_t>(static_cast<int64_t>(delta)) << 32;
  // acq_rel: the release half publishes the caller's work (a Done after a task); the acquire half
  // makes the Done that reaches zero see every earlier Done's work (they form one release
  // sequence on this word), which it then passes to the waiters through Ready().
  const uint64_t old = state_.fetch_add(step, std::memory_order_acq_rel);
  const int64_t count = CounterOf(old) + delta;
  const uint32_t waiters = WaitersOf(old);
  NETPOLL_CHECK(count >= 0, "netpoll::WaitGroup: negative counter (more Done than Add)");
  NETPOLL_CHECK(count <= std::numeric_limits<int32_t>::max(), "netpoll::WaitGroup: counter overflow");
  NETPOLL_CHECK(!(waiters != 0 && delta > 0 && count == delta),
                "netpoll::WaitGroup misuse: Add called concurrently with Wait");
  if (count > 0 || waiters == 0) return;  // Not the last Done, or nobody to wake: done with *this.

  // The counter is zero and `waiters` Wait calls are parked or about to park (each registered
  // under queue_mutex_ and stays linked under it until it sleeps). While the counter is zero no
  // Wait registers, so only a misusing Add could change the word now.
  uint64_t expected = old + step;
  // release: a later Wait that reads 0 from here still synchronizes with our fetch_add (this CAS
  // continues its release sequence).
  const bool reset = state_.compare_exchange_strong(expected, 0, std::memory_order_release,
                                                    std::memory_order_relaxed);
  NETPOLL_CHECK(reset, "netpoll::WaitGroup misuse: Add called concurrently with Wait");
  poller::ReadyList ready;
  uint32_t woken = 0;
  {
    std::lock_guard<platform::FutexMutex> lock(queue_mutex_);
    while (sync_internal::WaitNode* node = waiters_.PopFront()) {
      poller::Waiter* to_ready = nullptr;
      if (TryWake(node, kResultSignaled, &to_ready)) {
        ++woken;
        if (to_ready != nullptr) ready.Push(to_ready);
      }
    }
  }
  NETPOLL_CHECK(woken == waiters, "netpoll::WaitGroup: corrupted state (waiter count mismatch)");
  // The waiters cannot return (and destroy *this) before they are readied; we no longer touch it.
  while (poller::Waiter* w = ready.Pop()) w->Ready();
}

void WaitGroup::Wait() {
  // acquire: if the counter is already zero, the work of every Done is visible once we return.
  if (CounterOf(state_.load(std::memory_order_acquire)) == 0) return;
  queue_mutex_.lock();
  uint64_t s = state_.load(std::memory_order_acquire);
  for (;;) {
    if (CounterOf(s) == 0) {
      queue_mutex_.unlock();
      return;
    }
    NETPOLL_CHECK(WaitersOf(s) != std::numeric_limits<uint32_t>::max(),
                  "netpoll::WaitGroup: too many waiters");
    // acquire on failure: the reload may be the zero that lets us return.
    if (state_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel, std::memory_order_acquire)) {
      break;
    }
  }
  sync_internal::WaitNode node;
  node.waiter = poller::CurrentWaiter();
  waiters_.PushBack(&node);
  // Releases queue_mutex_ once we are suspended; the Done that reaches zero takes it before it
  // looks for us, so it always finds us linked and parked. Its Ready() orders the tasks' work
  // before our return.
  sync_internal::ParkOnNode(&node, 0, &queue_mutex_, "waitgroup");
}

}  // namespace netpoll
