#include "poller/poller.h"

#include <new>
#include <thread>

#include "absl/status/status.h"
#include "platform/check.h"
#include "platform/clock.h"
#include "platform/futex.h"
#include "poller/test_hooks.h"

namespace netpoll::poller {

// ---------------------------------------------------------------------------------------------
// PollDescSlab

PollDesc* PollDescSlab::Allocate() {
  std::lock_guard<platform::FutexMutex> lock(mutex_);
  if (free_list_ == nullptr) {
    if (chunks_used_ == kMaxChunks) return nullptr;
    void* memory = ::operator new(sizeof(PollDesc) * kChunkSize, std::align_val_t(alignof(PollDesc)));
    auto* chunk = static_cast<PollDesc*>(memory);
    const uint32_t base = chunks_used_ << kChunkBits;
    for (uint32_t i = 0; i < kChunkSize; ++i) {
      PollDesc* pd = new (&chunk[i]) PollDesc();
      pd->index_ = base + i;
    }
    // Lowest index first on the free list (nicer to read in dumps).
    for (uint32_t i = kChunkSize; i-- > 0;) {
      chunk[i].free_next_ = free_list_;
      free_list_ = &chunk[i];
    }
    // release: Lookup's acquire load sees the constructed PollDescs.
    chunks_[chunks_used_].store(chunk, std::memory_order_release);
    ++chunks_used_;
    // relaxed: a statistic.
    slots_.fetch_add(kChunkSize, std::memory_order_relaxed);
  }
  PollDesc* pd = free_list_;
  free_list_ = pd->free_next_;
  pd->free_next_ = nullptr;
  return pd;
}

void PollDescSlab::Free(PollDesc* pd) {
  {
    std::lock_guard<platform::FutexMutex> lock(pd->lock_);
    uint32_t next = pd->generation_.load(std::memory_order_relaxed) + 1;
    if (next == 0) next = 1;  // 0 is never a live generation (it is the wake-up token's).
    // seq_cst: DeliverEvent compares against it without the lock; PublishInfoLocked then moves
    // the summary word's generation too, which SetEventError checks (R25, Go #60133).
    pd->generation_.store(next, std::memory_order_seq_cst);
    pd->fd_ = platform::kInvalidSocket;
    pd->PublishInfoLocked();
  }
  std::lock_guard<platform::FutexMutex> lock(mutex_);
  pd->free_next_ = free_list_;
  free_list_ = pd;
}

PollDesc* PollDescSlab::Lookup(uint32_t index) const {
  uint32_t chunk_index = index >> kChunkBits;
  if (chunk_index >= kMaxChunks) return nullptr;
  // acquire: pairs with the release in Allocate.
  PollDesc* chunk = chunks_[chunk_index].load(std::memory_order_acquire);
  if (chunk == nullptr) return nullptr;
  return &chunk[index & (kChunkSize - 1)];
}

size_t PollDescSlab::allocated_slots() const { return slots_.load(std::memory_order_relaxed); }

// ---------------------------------------------------------------------------------------------
// Poller

Poller& Poller::Get() {
  // Leaked on purpose: see the class comment. The function-local static makes the first use
  // thread-safe.
  static Poller* poller = new Poller();
  return *poller;
}

Poller::Poller() {
  absl::Status status = backend_.Init();
  if (!status.ok()) {
    std::string message = "poller backend failed to initialise: " + std::string(status.message());
    NETPOLL_FATAL(message.c_str());
  }
  snapshots_.push_back(std::make_unique<const std::vector<TimerHeap*>>());
  // release: readers (EarliestTimer) acquire the snapshot.
  heaps_.store(snapshots_.back().get(), std::memory_order_release);
}

absl::StatusOr<PollDesc*> Poller::Open(platform::SocketHandle fd) {
  PollDesc* pd = slab_.Allocate();
  if (pd == nullptr) {
    return absl::ResourceExhaustedError("poller: every PollDesc slot is in use");
  }
  {
    std::lock_guard<platform::FutexMutex> lock(pd->lock_);
    // seq_cst loads: a waiter left on a free slot would be a use-after-close bug somewhere.
    uintptr_t rg = pd->rg_.load(std::memory_order_seq_cst);
    uintptr_t wg = pd->wg_.load(std::memory_order_seq_cst);
    NETPOLL_CHECK(rg <= PollDesc::kReady, "blocked read on a free PollDesc");
    NETPOLL_CHECK(wg <= PollDesc::kReady, "blocked write on a free PollDesc");
    pd->fd_ = fd;
    pd->closing_ = false;
    pd->SetEventError(false, 0);
    // Timer callbacks armed by the slot's previous user are stale from here on (R21).
    ++pd->rseq_;
    ++pd->wseq_;
    pd->rg_.store(PollDesc::kNil, std::memory_order_seq_cst);
    pd->wg_.store(PollDesc::kNil, std::memory_order_seq_cst);
    pd->rd_ = 0;
    pd->wd_ = 0;
    pd->PublishInfoLocked();
  }
  absl::Status status = backend_.Open(fd, pd->token());
  if (!status.ok()) {
    // Mark it closing so the slot's invariants hold while it sits on the free list.
    pd->Evict();
    slab_.Free(pd);
    return status;
  }
  return pd;
}

absl::Status Poller::Close(PollDesc* pd) {
  {
    std::lock_guard<platform::FutexMutex> lock(pd->lock_);
    NETPOLL_CHECK(pd->closing_, "PollDesc closed without Evict (close without unblock)");
  }
  NETPOLL_CHECK(pd->rg_.load(std::memory_order_seq_cst) <= PollDesc::kReady,
                "blocked read on a closing PollDesc");
  NETPOLL_CHECK(pd->wg_.load(std::memory_order_seq_cst) <= PollDesc::kReady,
                "blocked write on a closing PollDesc");
  // Unregister while the descriptor is still open, so the kernel cannot have given its number to
  // somebody else yet (R11).
  absl::Status status = backend_.Close(pd->fd_);
  NETPOLL_TEST_HOOK(HookPoint::kCloseAfterUnregister, pd);
  slab_.Free(pd);
  return status;
}

void Poller::RegisterTimerHeap(TimerHeap* heap) {
  std::lock_guard<std::mutex> lock(heaps_mutex_);
  // acquire: see the constructor; replaced snapshots stay alive in snapshots_ (a concurrent reader).
  const std::vector<TimerHeap*>* current = heaps_.load(std::memory_order_acquire);
  auto next = std::make_unique<std::vector<TimerHeap*>>(*current);
  next->push_back(heap);
  heaps_.store(next.get(), std::memory_order_release);
  snapshots_.push_back(std::move(next));
}

void Poller::UnregisterTimerHeap(TimerHeap* heap) {
  std::lock_guard<std::mutex> lock(heaps_mutex_);
  const std::vector<TimerHeap*>* current = heaps_.load(std::memory_order_acquire);
  auto next = std::make_unique<std::vector<TimerHeap*>>();
  for (TimerHeap* h : *current) {
    if (h != heap) next->push_back(h);
  }
  heaps_.store(next.get(), std::memory_order_release);
  snapshots_.push_back(std::move(next));
}

int64_t Poller::EarliestTimer() const {
  int64_t earliest = shared_timers_.next_when();
  // acquire: pairs with the release in Register/UnregisterTimerHeap.
  for (TimerHeap* heap : *heaps_.load(std::memory_order_acquire)) {
    int64_t when = heap->next_when();
    if (when < earliest) earliest = when;
  }
  return earliest;
}

int Poller::RunDueTimers(int64_t now, ReadyList* ready) {
  int ran = shared_timers_.RunDue(now, ready);
  for (TimerHeap* heap : *heaps_.load(std::memory_order_acquire)) ran += heap->RunDue(now, ready);
  if (ran > 0) timers_fired_.fetch_add(ran, std::memory_order_relaxed);
  return ran;
}

void Poller::Poll(int64_t timeout_ns, ReadyList* ready) {
  bool owner = false;
  if (timeout_ns != 0) {
    uint32_t expected = 0;
    // seq_cst: the claim must be ordered before our read of the timer heaps below, against a
    // thread that arms a timer and then checks the owner (NotifyTimerArmed): either it sees us
    // and breaks the poll, or we see its timer.
    owner = poll_owner_.compare_exchange_strong(expected, 1, std::memory_order_seq_cst);
    if (!owner) timeout_ns = 0;  // Somebody else blocks; just take what is ready.
  }
  if (owner) {
    int64_t now = platform::MonotonicNanos();
    int64_t next = EarliestTimer();
    if (next != kNever) {
      int64_t until_timer = next > now ? next - now : 0;
      if (timeout_ns < 0 || until_timer < timeout_ns) timeout_ns = until_timer;
    }
    int64_t until = timeout_ns < 0 ? kNever : now + timeout_ns;
    // seq_cst: published after the claim; a waker that reads 0 (not yet published) breaks the
    // poll, which at worst makes it return at once (R31).
    poll_until_.store(until, std::memory_order_seq_cst);
    blocking_polls_.fetch_add(1, std::memory_order_relaxed);
  }
  polls_.fetch_add(1, std::memory_order_relaxed);

  backends::BackendEvent events[backends::NativeBackend::kMaxEvents];
  int n = backend_.Wait(timeout_ns, absl::MakeSpan(events));
  if (owner) {
    // Clear the plan before giving up the token, so a waker in between sees "owner, plan 0" and
    // breaks (harmless) rather than "owner, stale plan" (which could lose its wake-up).
    poll_until_.store(0, std::memory_order_seq_cst);
    NETPOLL_TEST_HOOK(HookPoint::kPollBeforeRelease, nullptr);
    if (poll_owner_.exchange(0, std::memory_order_seq_cst) == 2) platform::FutexWakeAll(&poll_owner_);
  }
  for (;;) {
    for (int i = 0; i < n; ++i) DispatchEvent(events[i], ready);
    // A full batch means more may be ready: take everything now (starving the poller is what
    // gave a peer a 0.4 s p99.9, see DESIGN.md).
    if (n < backends::NativeBackend::kMaxEvents) break;
    n = backend_.Wait(0, absl::MakeSpan(events));
  }
  RunDueTimers(platform::MonotonicNanos(), ready);
}

void Poller::DispatchEvent(const backends::BackendEvent& event, ReadyList* ready) {
  uint32_t index = static_cast<uint32_t>(event.token);
  uint32_t generation = static_cast<uint32_t>(event.token >> 32);
  PollDesc* pd = slab_.Lookup(index);
  if (pd != nullptr && pd->DeliverEvent(generation, event.modes, event.error_only, ready)) {
    events_.fetch_add(1, std::memory_order_relaxed);
  } else {
    stale_events_.fetch_add(1, std::memory_order_relaxed);
  }
}

void Poller::InjectEvent(uint64_t token, uint32_t modes, bool error_only, ReadyList* ready) {
  DispatchEvent(backends::BackendEvent{token, modes, error_only}, ready);
}

void Poller::ReadyAll(ReadyList& ready) {
  int delta = ready.waiter_delta;
  ready.waiter_delta = 0;
  while (Waiter* w = ready.Pop()) w->Ready();
  // Only now: until every readied waiter is runnable, the count must still include it (R32).
  if (delta != 0) AdjustWaiters(delta);
}

void Poller::Wakeup() {
  wakeups_.fetch_add(1, std::memory_order_relaxed);
  backend_.Wakeup();
}

void Poller::NotifyTimerArmed(int64_t when) {
  // seq_cst: the other half of the handshake described in Poll.
  if (poll_owner_.load(std::memory_order_seq_cst) != 0) {
    int64_t until = poll_until_.load(std::memory_order_seq_cst);
    if (until == 0 || until > when) Wakeup();
    return;
  }
  // acquire: pairs with SetNoPollerHook's release.
  bool (*hook)() = no_poller_hook_.load(std::memory_order_acquire);
  if (hook == nullptr || !hook()) EnsurePolling();
}

void Poller::SetNoPollerHook(bool (*hook)()) { no_poller_hook_.store(hook, std::memory_order_release); }

void Poller::EnsurePolling() {
  std::call_once(background_started_, [this] {
    std::thread([this] { BackgroundLoop(); }).detach();
  });
}

void Poller::BackgroundLoop() {
  for (;;) {
    // Only one thread blocks in the backend. If a fiber worker is blocked there, it serves OS
    // threads too (it runs every heap's timers and readies every kind of waiter), so wait for it
    // to give the token back instead of spinning in non-blocking polls.
    uint32_t owner = poll_owner_.load(std::memory_order_seq_cst);
    if (owner != 0) {
      if (owner == 1 && !poll_owner_.compare_exchange_strong(owner, 2, std::memory_order_seq_cst)) {
        continue;
      }
      platform::FutexWait(&poll_owner_, 2);
      continue;
    }
    ReadyList ready;
    Poll(-1, &ready);
    ReadyAll(ready);
  }
}

PollerStats Poller::stats() const {
  PollerStats s;
  s.polls = polls_.load(std::memory_order_relaxed);
  s.blocking_polls = blocking_polls_.load(std::memory_order_relaxed);
  s.events = events_.load(std::memory_order_relaxed);
  s.stale_events = stale_events_.load(std::memory_order_relaxed);
  s.timers_fired = timers_fired_.load(std::memory_order_relaxed);
  s.wakeups = wakeups_.load(std::memory_order_relaxed);
  return s;
}

}  // namespace netpoll::poller
