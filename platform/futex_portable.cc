// The parking lot behind portable::FutexWait/FutexWake.
//
// Waiters hash their word's address to one of kBuckets buckets. A bucket's mutex serialises the
// "compare *word with expected, then enqueue" step of a waiter with the "dequeue and notify" step
// of a waker, which is what makes a wake that follows a store impossible to lose: the waker's
// store happens before it takes the bucket lock, so a waiter that takes the lock later sees the
// new value and does not sleep.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>

#include "platform/futex.h"

namespace netpoll::platform::portable {
namespace {

struct Waiter {
  const void* address;
  bool woken = false;
  std::condition_variable cv;
  Waiter* next = nullptr;
  Waiter* prev = nullptr;
};

struct alignas(64) Bucket {
  std::mutex mutex;
  Waiter* head = nullptr;
  Waiter* tail = nullptr;

  void Append(Waiter* w) {
    w->prev = tail;
    w->next = nullptr;
    if (tail != nullptr) {
      tail->next = w;
    } else {
      head = w;
    }
    tail = w;
  }
  void Remove(Waiter* w) {
    if (w->prev != nullptr) {
      w->prev->next = w->next;
    } else {
      head = w->next;
    }
    if (w->next != nullptr) {
      w->next->prev = w->prev;
    } else {
      tail = w->prev;
    }
    w->next = w->prev = nullptr;
  }
};

constexpr size_t kBuckets = 256;

Bucket& BucketFor(const void* address) {
  static Bucket buckets[kBuckets];
  auto bits = reinterpret_cast<uintptr_t>(address);
  // Words are at least 4-byte aligned; mix the higher bits in so neighbours spread out.
  return buckets[((bits >> 2) ^ (bits >> 12)) % kBuckets];
}

}  // namespace

FutexWaitResult FutexWait(std::atomic<uint32_t>* word, uint32_t expected, int64_t timeout_ns) {
  Bucket& bucket = BucketFor(word);
  std::unique_lock<std::mutex> lock(bucket.mutex);
  // seq_cst: pairs with the waker's store to *word, which precedes its FutexWake; the bucket
  // mutex orders this load after that store whenever the waker dequeued before we enqueued.
  if (word->load(std::memory_order_seq_cst) != expected) return FutexWaitResult::kValueMismatch;
  Waiter self;
  self.address = word;
  bucket.Append(&self);
  bool woken;
  if (timeout_ns < 0) {
    self.cv.wait(lock, [&] { return self.woken; });
    woken = true;
  } else {
    woken = self.cv.wait_for(lock, std::chrono::nanoseconds(timeout_ns), [&] { return self.woken; });
  }
  if (!self.woken) bucket.Remove(&self);  // A waker removes the waiters it wakes.
  return woken ? FutexWaitResult::kWoken : FutexWaitResult::kTimedOut;
}

int FutexWake(std::atomic<uint32_t>* word, int count) {
  Bucket& bucket = BucketFor(word);
  std::lock_guard<std::mutex> lock(bucket.mutex);
  int woken = 0;
  for (Waiter* w = bucket.head; w != nullptr && woken < count;) {
    Waiter* next = w->next;
    if (w->address == word) {
      bucket.Remove(w);
      w->woken = true;
      // Notify under the lock: once we unlock, the waiter may return and destroy `w`.
      w->cv.notify_one();
      ++woken;
    }
    w = next;
  }
  return woken;
}

}  // namespace netpoll::platform::portable
