#include "uthread/run_queue.h"

#include "uthread/fiber.h"

namespace netpoll::uthread_internal {

bool LocalRunQueue::Push(Fiber* fiber) {
  // relaxed: only the owner writes tail_.
  uint32_t tail = tail_.load(std::memory_order_relaxed);
  // acquire: a consumer's head CAS (acq_rel) frees the slot it read before we overwrite it.
  uint32_t head = head_.load(std::memory_order_acquire);
  if (tail - head >= kCapacity) return false;
  slots_[tail % kCapacity].store(fiber, std::memory_order_relaxed);
  // release: publishes the slot (and the fiber's saved context) to consumers.
  tail_.store(tail + 1, std::memory_order_release);
  return true;
}

Fiber* LocalRunQueue::Pop() {
  for (;;) {
    // acquire: see Push.
    uint32_t head = head_.load(std::memory_order_acquire);
    uint32_t tail = tail_.load(std::memory_order_relaxed);  // Owner: our own writes.
    if (head == tail) return nullptr;
    Fiber* fiber = slots_[head % kCapacity].load(std::memory_order_relaxed);
    // acq_rel: claims the slot against stealers; release lets Push reuse it.
    if (head_.compare_exchange_weak(head, head + 1, std::memory_order_acq_rel)) return fiber;
  }
}

Fiber* LocalRunQueue::StealHalfInto(LocalRunQueue& thief) {
  for (;;) {
    // acquire on both: head for slot reuse, tail for the slots' contents.
    uint32_t head = head_.load(std::memory_order_acquire);
    uint32_t tail = tail_.load(std::memory_order_acquire);
    uint32_t available = tail - head;
    if (available == 0 || available > kCapacity) {
      if (available == 0) return nullptr;
      continue;  // Torn snapshot (head moved past a stale tail); read again.
    }
    uint32_t take = available - available / 2;
    // The thief's queue is empty and only its owner (the caller) writes it.
    uint32_t thief_tail = thief.tail_.load(std::memory_order_relaxed);
    for (uint32_t i = 0; i < take; ++i) {
      Fiber* f = slots_[(head + i) % kCapacity].load(std::memory_order_relaxed);
      thief.slots_[(thief_tail + i) % kCapacity].store(f, std::memory_order_relaxed);
    }
    // acq_rel: claims the slots; if the owner or another thief consumed any, retry.
    if (!head_.compare_exchange_weak(head, head + take, std::memory_order_acq_rel)) continue;
    // Run the last one now; publish the rest in the thief's queue.
    Fiber* run_now = thief.slots_[(thief_tail + take - 1) % kCapacity].load(std::memory_order_relaxed);
    if (take > 1) thief.tail_.store(thief_tail + take - 1, std::memory_order_release);
    return run_now;
  }
}

Fiber* LocalRunQueue::SpillHalf(Fiber* extra, uint32_t* count, Fiber** chain_tail) {
  uint32_t head = head_.load(std::memory_order_acquire);
  uint32_t tail = tail_.load(std::memory_order_relaxed);
  uint32_t n = (tail - head) / 2;
  Fiber* batch[kCapacity / 2];  // 16 KiB: runs on the worker's own (thread) stack.
  for (uint32_t i = 0; i < n; ++i) batch[i] = slots_[(head + i) % kCapacity].load(std::memory_order_relaxed);
  if (n == 0 || !head_.compare_exchange_strong(head, head + n, std::memory_order_acq_rel)) {
    // Stealers emptied it meanwhile; only `extra` goes out (the caller retries its push otherwise).
    n = 0;
  }
  Fiber* first = n > 0 ? batch[0] : extra;
  for (uint32_t i = 0; i + 1 < n; ++i) batch[i]->run_next = batch[i + 1];
  if (n > 0) batch[n - 1]->run_next = extra;
  extra->run_next = nullptr;
  *count = n + 1;
  *chain_tail = extra;
  return first;
}

uint32_t LocalRunQueue::size() const {
  uint32_t head = head_.load(std::memory_order_acquire);
  uint32_t tail = tail_.load(std::memory_order_acquire);
  uint32_t n = tail - head;
  return n > kCapacity ? 0 : n;  // A torn snapshot reads as empty; callers re-check.
}

void GlobalRunQueue::Push(Fiber* fiber) {
  fiber->run_next = nullptr;
  std::lock_guard<std::mutex> lock(mutex_);
  if (tail_ == nullptr) {
    head_ = fiber;
  } else {
    tail_->run_next = fiber;
  }
  tail_ = fiber;
  size_.fetch_add(1, std::memory_order_seq_cst);
}

void GlobalRunQueue::PushChain(Fiber* head, Fiber* tail, uint32_t count) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (tail_ == nullptr) {
    head_ = head;
  } else {
    tail_->run_next = head;
  }
  tail_ = tail;
  size_.fetch_add(count, std::memory_order_seq_cst);
}

Fiber* GlobalRunQueue::Pop() {
  if (empty()) return nullptr;
  std::lock_guard<std::mutex> lock(mutex_);
  Fiber* fiber = head_;
  if (fiber == nullptr) return nullptr;
  head_ = fiber->run_next;
  if (head_ == nullptr) tail_ = nullptr;
  fiber->run_next = nullptr;
  size_.fetch_sub(1, std::memory_order_seq_cst);
  return fiber;
}

Fiber* GlobalRunQueue::PopBatch(LocalRunQueue& local, uint32_t max) {
  if (empty()) return nullptr;
  std::lock_guard<std::mutex> lock(mutex_);
  Fiber* first = head_;
  if (first == nullptr) return nullptr;
  head_ = first->run_next;
  uint32_t taken = 1;
  while (head_ != nullptr && taken <= max && local.Push(head_)) {
    head_ = head_->run_next;
    ++taken;
  }
  if (head_ == nullptr) tail_ = nullptr;
  first->run_next = nullptr;
  size_.fetch_sub(taken, std::memory_order_seq_cst);
  return first;
}

}  // namespace netpoll::uthread_internal
