// Futex-style waiting on a 32-bit atomic word: the building block of thread parking.
//
// FutexWait(word, expected) blocks the calling OS thread only if *word still equals `expected`
// when it goes to sleep, checked atomically with respect to FutexWake(word); a wake that follows a
// store to *word therefore cannot be lost. Like the Linux futex, a wait may also return for no
// reason (spuriously), so callers re-check their condition in a loop.
//
// Linux uses the futex syscall (process-private). Other systems use the portable version in
// namespace `portable`, a parking lot of mutexes and condition variables keyed by address, which
// is also built and tested on Linux.
//
// Thread-safety: all functions may be called from any thread, concurrently.
#ifndef NETPOLL_PLATFORM_FUTEX_H_
#define NETPOLL_PLATFORM_FUTEX_H_

#include <atomic>
#include <cstdint>

namespace netpoll::platform {

enum class FutexWaitResult {
  kWoken,          // a FutexWake reached this waiter, or a spurious wake-up
  kValueMismatch,  // *word != expected when the wait began
  kTimedOut,       // the timeout passed
};

// Blocks while *word == expected, for at most `timeout_ns` nanoseconds (negative = no limit).
FutexWaitResult FutexWait(std::atomic<uint32_t>* word, uint32_t expected, int64_t timeout_ns = -1);

// Wakes up to `count` threads blocked in FutexWait on `word`; returns how many it woke (the
// portable version reports exactly, Linux reports what the kernel says).
int FutexWake(std::atomic<uint32_t>* word, int count);

// Convenience for FutexWake(word, INT32_MAX).
int FutexWakeAll(std::atomic<uint32_t>* word);

namespace portable {
FutexWaitResult FutexWait(std::atomic<uint32_t>* word, uint32_t expected, int64_t timeout_ns = -1);
int FutexWake(std::atomic<uint32_t>* word, int count);
}  // namespace portable

}  // namespace netpoll::platform

#endif  // NETPOLL_PLATFORM_FUTEX_H_
