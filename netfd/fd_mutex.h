// FdMutex: the reference count, closed bit and read/write locks of one descriptor (Go's
// internal/poll fdMutex).
//
// One 64-bit atomic word:
//   bit 0        closed
//   bit 1        read lock held
//   bit 2        write lock held
//   bits 3..22   references (every operation in progress holds one)
//   bits 23..42  read-lock waiters
//   bits 43..62  write-lock waiters
// plus two WaiterSemaphores on which lock waiters park (as user threads: a waiting fiber costs no
// OS thread).
//
// What it guarantees:
//   * at most one reader and one writer in the descriptor at a time, which keeps the poller's
//     one-waiter-per-direction invariant;
//   * the descriptor number cannot be closed, and so cannot be reused by the OS, while any
//     operation holds a reference: whoever drops the last reference after close runs destroy;
//   * after IncrefAndClose, every lock waiter wakes and fails, and new operations fail at once.
// Locks are not FIFO: a newcomer can take a lock before a woken waiter retries (as in Go).
//
// Thread-safety: all methods are thread-safe. Memory ordering: every CAS on the word is seq_cst;
// it is the state machine of a descriptor's life, and its cost is one CAS per operation.
#ifndef NETPOLL_NETFD_FD_MUTEX_H_
#define NETPOLL_NETFD_FD_MUTEX_H_

#include <atomic>
#include <cstdint>

#include "poller/semaphore.h"

namespace netpoll::netfd {

class FdMutex {
 public:
  FdMutex() = default;
  FdMutex(const FdMutex&) = delete;
  FdMutex& operator=(const FdMutex&) = delete;

  // Adds a reference. False (and no reference) if the descriptor is closed.
  bool Incref();
  // Marks closed and adds a reference; wakes every lock waiter, who then fails. False if it was
  // already closed (a second Close).
  bool IncrefAndClose();
  // Drops a reference. True if that left the descriptor closed with no reference: the caller
  // must then destroy it.
  bool Decref();
  // Takes the read or write lock (and a reference), parking while the other holder has it.
  // False if the descriptor is or becomes closed.
  bool RwLock(bool read);
  // Releases the lock and its reference; true means "destroy now", as for Decref.
  bool RwUnlock(bool read);

  bool closed() const;
  // References held right now, and callers parked for the read or write lock (tests, checks).
  uint64_t references() const;
  uint64_t lock_waiters(bool read) const;

 private:
  std::atomic<uint64_t> state_{0};
  poller::WaiterSemaphore read_sema_;
  poller::WaiterSemaphore write_sema_;
};

}  // namespace netpoll::netfd

#endif  // NETPOLL_NETFD_FD_MUTEX_H_
