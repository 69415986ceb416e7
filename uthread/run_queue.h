// Run queues of the M:N scheduler (internal to uthread/).
//
// LocalRunQueue: each worker's bounded ring of runnable fibers. Only its owner pushes; the owner
// pops from the head, and idle workers steal half of it from the head too (Go's runq). Lock-free:
// `tail` is written only by the owner (release), `head` is advanced by CAS by whoever consumes.
//
// GlobalRunQueue: an unbounded intrusive FIFO under a mutex, for fibers made runnable from outside
// any worker (a plain OS thread, the poller's background thread), for overflow of local queues,
// and checked every 61 scheduling rounds so no fiber starves behind a busy local queue.
#ifndef NETPOLL_UTHREAD_RUN_QUEUE_H_
#define NETPOLL_UTHREAD_RUN_QUEUE_H_

#include <atomic>
#include <cstdint>
#include <mutex>

namespace netpoll::uthread_internal {

class Fiber;

class LocalRunQueue {
 public:
  // Big enough that what one poll readies under heavy load (thousands of connections) stays in
  // this ring instead of going through the global list, whose links live in the fibers' own
  // control blocks (one cache miss each); 32 KiB per worker.
  static constexpr uint32_t kCapacity = 4096;

  // Owner only. False when full (the caller moves half to the global queue, see SpillHalf).
  bool Push(Fiber* fiber);
  // Owner only (stealers use StealHalfInto). Null when empty.
  Fiber* Pop();
  // Any thread: moves about half of this queue into `thief`, which must be empty and owned by the
  // caller; returns one of the stolen fibers to run now (the rest are in `thief`), or null.
  Fiber* StealHalfInto(LocalRunQueue& thief);
  // Owner only, when Push failed: removes half of the queue plus `extra` into a linked chain
  // (through Fiber::run_next) for the global queue. Returns the chain's head; *count its length.
  Fiber* SpillHalf(Fiber* extra, uint32_t* count, Fiber** chain_tail);

  // Approximate (a racy snapshot) from any thread; exact from the owner.
  uint32_t size() const;
  bool empty() const { return size() == 0; }

 private:
  // Consumers CAS it forward. acquire/release pairs with the owner's tail store for slot contents.
  std::atomic<uint32_t> head_{0};
  // Written only by the owner (release), read by stealers (acquire).
  std::atomic<uint32_t> tail_{0};
  // Slots are atomics so that a stealer's read racing the owner's overwrite of a reused slot is
  // not a data race; the head CAS decides whether the read value counts. relaxed: ordered by
  // head/tail.
  std::atomic<Fiber*> slots_[kCapacity] = {};
};

class GlobalRunQueue {
 public:
  void Push(Fiber* fiber);
  void PushChain(Fiber* head, Fiber* tail, uint32_t count);
  Fiber* Pop();
  // Pops one fiber to return and moves up to `max` more into `local` (owned by the caller).
  Fiber* PopBatch(LocalRunQueue& local, uint32_t max);
  bool empty() const { return size_.load(std::memory_order_seq_cst) == 0; }
  uint32_t size() const { return size_.load(std::memory_order_seq_cst); }

 private:
  std::mutex mutex_;
  Fiber* head_ = nullptr;
  Fiber* tail_ = nullptr;
  // Mirrors the list length for lock-free emptiness checks. seq_cst: part of the idle-worker
  // handshake (a worker registers idle, then re-checks this; a pusher pushes, then checks idle).
  std::atomic<uint32_t> size_{0};
};

}  // namespace netpoll::uthread_internal

#endif  // NETPOLL_UTHREAD_RUN_QUEUE_H_
