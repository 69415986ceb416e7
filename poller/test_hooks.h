// Test-only hooks at the interleaving points of the poller's state machine.
//
// The race catalogue (R1-R43) is tested by forcing each interleaving, not by hoping for it: a test
// installs a hook, and the state machine calls it at the marked points, where the test can run the
// "other side" of the race (a Close, a readiness event, a timer) at exactly that moment, or block
// the thread until another thread has done so.
//
// Cost when no hook is installed: one relaxed load of a global and a predictable branch. Build
// with -DNETPOLL_NO_TEST_HOOKS to compile the points out entirely.
#ifndef NETPOLL_POLLER_TEST_HOOKS_H_
#define NETPOLL_POLLER_TEST_HOOKS_H_

#include <atomic>

namespace netpoll::poller {

class PollDesc;

enum class HookPoint {
  // In PollDesc::Block, after the waiter published Wait and before it re-checks errors (R4, R5).
  kBlockAfterPublishWait,
  // In the park commit, before the CAS Wait -> waiter pointer (R2).
  kBlockBeforeCommit,
  // In PollDesc::Block, after waking or aborting the park, before the final exchange (R16, R19).
  kBlockAfterWake,
  // In the timer callback, before it takes the descriptor lock (R15, R21).
  kDeadlineTimerBeforeLock,
  // In the poller's event dispatch, after the token check and before the error bit is set (R25).
  kEventAfterTokenCheck,
  // In Poller::Close, after the backend unregistered the fd and before the slot is freed.
  kCloseAfterUnregister,
  // In Poller::Poll, after the blocking owner cleared its planned wake time and before it gave up
  // the owner token (R31). Called with pd == nullptr.
  kPollBeforeRelease,
};

using HookFn = void (*)(HookPoint point, PollDesc* pd);

// Installs `hook` for every PollDesc (nullptr removes it). Returns the previous hook.
HookFn SetTestHook(HookFn hook);

namespace internal {
extern std::atomic<HookFn> test_hook;
}  // namespace internal

}  // namespace netpoll::poller

#if defined(NETPOLL_NO_TEST_HOOKS)
#define NETPOLL_TEST_HOOK(point, pd) \
  do {                               \
  } while (0)
#else
// relaxed: tests install hooks before starting the threads that hit them (thread creation is the
// synchronisation); the hook itself synchronises with whatever it needs.
#define NETPOLL_TEST_HOOK(point, pd)                                                          \
  do {                                                                                        \
    ::netpoll::poller::HookFn netpoll_hook_ =                                                 \
        ::netpoll::poller::internal::test_hook.load(std::memory_order_relaxed);               \
    if (__builtin_expect(netpoll_hook_ != nullptr, 0)) netpoll_hook_((point), (pd));          \
  } while (0)
#endif

#endif  // NETPOLL_POLLER_TEST_HOOKS_H_
