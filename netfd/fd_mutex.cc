#include "netfd/fd_mutex.h"

#include "platform/check.h"

namespace netpoll::netfd {
namespace {

constexpr uint64_t kClosed = 1ull << 0;
constexpr uint64_t kReadLock = 1ull << 1;
constexpr uint64_t kWriteLock = 1ull << 2;
constexpr uint64_t kRef = 1ull << 3;
constexpr uint64_t kRefMask = ((1ull << 20) - 1) << 3;
constexpr uint64_t kReadWait = 1ull << 23;
constexpr uint64_t kReadWaitMask = ((1ull << 20) - 1) << 23;
constexpr uint64_t kWriteWait = 1ull << 43;
constexpr uint64_t kWriteWaitMask = ((1ull << 20) - 1) << 43;

constexpr const char* kOverflow =
    "too many concurrent operations on a single socket (max 1048575)";

}  // namespace

bool FdMutex::Incref() {
  uint64_t old = state_.load(std::memory_order_seq_cst);
  for (;;) {
    if (old & kClosed) return false;
    uint64_t next = old + kRef;
    NETPOLL_CHECK((next & kRefMask) != 0, kOverflow);
    if (state_.compare_exchange_weak(old, next, std::memory_order_seq_cst)) return true;
  }
}

bool FdMutex::IncrefAndClose() {
  uint64_t old = state_.load(std::memory_order_seq_cst);
  for (;;) {
    if (old & kClosed) return false;
    uint64_t next = (old | kClosed) + kRef;
    NETPOLL_CHECK((next & kRefMask) != 0, kOverflow);
    // Forget the waiters: they are released below and fail when they retry.
    next &= ~(kReadWaitMask | kWriteWaitMask);
    if (state_.compare_exchange_weak(old, next, std::memory_order_seq_cst)) break;
  }
  for (uint64_t w = (old & kReadWaitMask) / kReadWait; w > 0; --w) read_sema_.Release();
  for (uint64_t w = (old & kWriteWaitMask) / kWriteWait; w > 0; --w) write_sema_.Release();
  return true;
}

bool FdMutex::Decref() {
  uint64_t old = state_.load(std::memory_order_seq_cst);
  for (;;) {
    NETPOLL_CHECK((old & kRefMask) != 0, "inconsistent fd mutex: reference count underflow");
    uint64_t next = old - kRef;
    if (state_.compare_exchange_weak(old, next, std::memory_order_seq_cst)) {
      return (next & (kClosed | kRefMask)) == kClosed;
    }
  }
}

bool FdMutex::RwLock(bool read) {
  const uint64_t lock_bit = read ? kReadLock : kWriteLock;
  const uint64_t wait_one = read ? kReadWait : kWriteWait;
  const uint64_t wait_mask = read ? kReadWaitMask : kWriteWaitMask;
  poller::WaiterSemaphore& sema = read ? read_sema_ : write_sema_;
  uint64_t old = state_.load(std::memory_order_seq_cst);
  for (;;) {
    if (old & kClosed) return false;
    uint64_t next;
    if ((old & lock_bit) == 0) {
      next = (old | lock_bit) + kRef;
      NETPOLL_CHECK((next & kRefMask) != 0, kOverflow);
    } else {
      next = old + wait_one;
      NETPOLL_CHECK((next & wait_mask) != 0, kOverflow);
    }
    if (!state_.compare_exchange_weak(old, next, std::memory_order_seq_cst)) continue;
    if ((old & lock_bit) == 0) return true;
    // Sleep until an unlocker (or Close) releases us, then try again from the start: the unlocker
    // already took our waiter count off the word.
    sema.Acquire(read ? "fd read lock" : "fd write lock");
    old = state_.load(std::memory_order_seq_cst);
  }
}

bool FdMutex::RwUnlock(bool read) {
  const uint64_t lock_bit = read ? kReadLock : kWriteLock;
  const uint64_t wait_one = read ? kReadWait : kWriteWait;
  const uint64_t wait_mask = read ? kReadWaitMask : kWriteWaitMask;
  uint64_t old = state_.load(std::memory_order_seq_cst);
  uint64_t next;
  for (;;) {
    NETPOLL_CHECK((old & lock_bit) != 0 && (old & kRefMask) != 0,
                  "inconsistent fd mutex: unlock of a lock that is not held");
    next = (old & ~lock_bit) - kRef;
    if (old & wait_mask) next -= wait_one;
    if (state_.compare_exchange_weak(old, next, std::memory_order_seq_cst)) break;
  }
  if (old & wait_mask) (read ? read_sema_ : write_sema_).Release();
  return (next & (kClosed | kRefMask)) == kClosed;
}

bool FdMutex::closed() const { return state_.load(std::memory_order_seq_cst) & kClosed; }

uint64_t FdMutex::references() const {
  return (state_.load(std::memory_order_seq_cst) & kRefMask) / kRef;
}

}  // namespace netpoll::netfd

namespace netpoll::netfd {

uint64_t FdMutex::lock_waiters(bool read) const {
  uint64_t state = state_.load(std::memory_order_seq_cst);
  return read ? (state & kReadWaitMask) / kReadWait : (state & kWriteWaitMask) / kWriteWait;
}

}  // namespace netpoll::netfd
