// Stackful context switching: the lowest layer of the fiber runtime.
//
// A MachineContext is a suspended thread of execution: the registers a function call must
// preserve, saved on the context's own stack, and the stack pointer to find them. SwitchContext
// saves the running context into one MachineContext and resumes another; it is an ordinary
// function call to each side, so the compiler already keeps everything else (caller-saved
// registers) across it. There is no scheduler here: which context runs next is the caller's
// policy (uthread/).
//
//   MachineContext thread_context;                       // the calling thread's own stack
//   MachineContext fiber(stack.region(), &FiberMain, fiber_state);
//   void* reply = SwitchContext(&thread_context, &fiber, request);   // runs FiberMain
//   ...
//   void FiberMain(void* fiber_state, void* request) {   // must never return
//     ... SwitchContext(&fiber, &thread_context, reply) ...
//     ExitContext(&fiber, &thread_context, nullptr);       // leave for good
//   }
//
// What a switch preserves, per context:
//   x86-64 System V: rbx, rbp, r12-r15, rsp (the callee-saved registers), the MXCSR (SSE
//     rounding mode, exception masks, flush-to-zero) and the x87 control word.
//   AArch64 (AAPCS64): x19-x28, x29 (frame pointer), x30 (link register), sp, d8-d15 (the low
//     halves of v8-v15, which is all the ABI preserves), and the FPCR (rounding mode,
//     flush-to-zero, exception traps). AAPCS64 makes FPCR global rather than callee-saved; we
//     keep it per context anyway so that both architectures give the same guarantee.
//   Windows x64 (Microsoft x64 ABI): rbx, rbp, rdi, rsi, r12-r15, rsp, xmm6-xmm15 (all 128 bits),
//     the MXCSR and the x87 control word, and the Thread Information Block fields that describe
//     the running stack: StackBase, StackLimit, DeallocationStack, and ExceptionList (see below).
// So the floating-point control state belongs to a context: a rounding mode set in one context is
// not seen by another, and a new context starts with the control state of the thread that
// constructed its MachineContext (as POSIX threads inherit it from their creator). Status flags
// (MXCSR exception flags, FPSR) are caller-saved and are not switched.
//
// Windows (x64 only; Windows on ARM64 stops the build). Windows itself reads the running stack's
// bounds from the Thread Information Block: to grow a stack through its PAGE_GUARD page, to raise
// STATUS_STACK_OVERFLOW, to decide which SEH frames are valid while an exception (a C++ throw
// too) is dispatched, and in MSVC's stack probe __chkstk. A switch therefore saves these fields
// with the context and loads those of the context it resumes, so they always describe the stack
// that runs. (ExceptionList, the x86 SEH chain, is unused on x64 Windows, but Wine's dispatcher
// follows it, and a C++ throw on a fiber fails under Wine unless it is switched too; new contexts
// start with an empty chain.) This is a hand-written switch, not Windows fibers (CreateFiberEx/SwitchToFiber),
// mainly because a Windows fiber cannot run on a stack the caller owns; context_windows_x64.cc
// gives the full argument. What that means for callers:
//   - Stacks: a region may be fully committed, or reserved and committed on demand the way
//     Windows grows thread stacks (its top committed, a PAGE_GUARD page below the committed part,
//     the rest reserved); its top page must be committed read-write, or constructing the context
//     is a fatal error. A new context's stack bounds are [stack.lowest, stack.highest()), and its
//     StackLimit is where the committed part begins now, which the constructor asks VirtualQuery
//     (one to three system calls, where the POSIX constructor makes none). A context that grows
//     its stack lowers its own StackLimit, which the switch keeps.
//   - A thread must not exit while it runs a context other than its own thread context (Windows
//     releases the stack recorded in the running TIB when a thread exits); a scheduler's workers
//     return to their thread context before they exit anyway.
//   - Not switched: fiber-local storage (FlsAlloc) and GetCurrentFiber(), which stay those of the
//     thread, and the thread's stack guarantee (SetThreadStackGuarantee), which applies to
//     whichever context runs on that thread. Do not mix these contexts with Windows fibers on one
//     thread. Shadow stacks (CET, /CETCOMPAT) are not supported, as on the other platforms.
//
// Sanitizers (the layout of MachineContext depends on them, so every object in a binary must be
// built with the same sanitizer, which Bazel configs guarantee):
//   AddressSanitizer: every switch is announced with __sanitizer_start_switch_fiber and completed
//     with __sanitizer_finish_switch_fiber, so ASan knows which stack is current (otherwise it
//     reports false stack-buffer-overflows and misattributes frames); ExitContext frees the
//     fake stack of the dying context. Constructing a context unpoisons its whole stack, because
//     frames of a previous context that never returned leave poisoned redzones behind.
//   ThreadSanitizer: each constructed context runs as a TSan fiber and every switch calls
//     __tsan_switch_to_fiber, which also tells TSan that the switch orders the two contexts
//     (happens-before), exactly like a hand-off between threads. Creating a TSan fiber costs
//     ~2 ms and ~830 KiB (GCC 12), so fibers are not created per context: a context takes one
//     from a small process-wide cache when constructed and gives it back when destroyed, which
//     the scheduler does together with taking the stack from and giving it back to its StackPool;
//     no caller action is needed. Reuse is sound because the destroy-then-reconstruct hand-off
//     already orders everything the old context did before everything the new one does. For the
//     fiber to be reusable its shadow call stack must be empty again, and a context that ends in
//     ExitContext never returns from its frames: so under TSan, ExitContext first longjmps back
//     to the context's first frame (TSan's longjmp interceptor pops the frames in between) and
//     switches away from there. A context destroyed while suspended mid-run takes its fiber
//     with it (destroyed, not cached).
//
// Thread-safety: a MachineContext is not synchronised. A suspended context may be resumed by any
// thread (that is what an M:N scheduler does), but by only one, and only after the SwitchContext
// that suspended it has completed, which is guaranteed to whoever publishes the context from the
// resumed side (for example: the scheduler context that `from` switched to puts `from` on a run
// queue). The hand-off that publishes it must carry the ordering (a mutex or a release/acquire
// pair), as for any data passed between threads.
//
// Thread-local storage: a compiler assumes a function runs on one thread from start to end. It may
// compute the address of a thread_local (or call pthread_self(), which is declared
// __attribute__((const))) once and reuse it after a SwitchContext call, by which time the context
// may be running on another thread. Code that can resume on another thread must reach
// thread-locals after a switch through a function the optimiser cannot see into (noinline is not
// enough: GCC infers const-ness across noinline; use __attribute__((noipa)) or an out-of-line
// call into another translation unit without LTO). The scheduler owns this rule for its users.
#ifndef NETPOLL_PLATFORM_CONTEXT_H_
#define NETPOLL_PLATFORM_CONTEXT_H_

#include <cstddef>

#include "platform/os.h"
#include "platform/stack_region.h"

#if defined(NETPOLL_OS_WINDOWS) && !defined(NETPOLL_ARCH_X86_64)
#error "netpoll: fiber context switching on Windows is implemented for x64 only (see context.h)"
#endif

namespace netpoll::platform {

// The function a new context starts in. `arg` is the value given to the MachineContext
// constructor; `transfer` is the value passed by the SwitchContext that first resumed it.
//
// It must never return: a context ends by calling ExitContext (or by switching away and never
// being resumed). There is no caller to return to; if it does return, the process stops with
//   "netpoll: fatal error: a fiber context's entry function returned; it must leave with ExitContext"
// Exceptions must not escape it either (with no frame to unwind into, std::terminate is called).
using ContextEntry = void (*)(void* arg, void* transfer);

// The smallest stack a context may be given. Real fibers need far more (kDefaultStackSize); this
// only rejects regions that could not even hold the first frames.
inline constexpr size_t kMinContextStackSize = 4096;

// A suspended context, or the place to save the running one. Neither copyable nor movable: the
// saved state is found through its address.
class MachineContext {
 public:
  // A context for the calling thread's own stack. It holds nothing until the thread switches
  // away from it with SwitchContext, which saves the thread's registers into it; a context
  // switched to it later resumes the thread there. Resuming it before that is a fatal error.
  MachineContext() = default;

  // A new, suspended context that will run entry(arg, transfer) on `stack` when first resumed.
  // The stack must stay valid (mapped, and not used by anything else) until this context has
  // ended and is destroyed. A stack smaller than kMinContextStackSize or not 16-byte aligned at
  // its top is a programming error and stops the process (stacks from Stack/StackPool always
  // qualify). Costs no syscall and no allocation (under TSan, see above). On Windows it also
  // stops the process if the top page of the stack is not committed, and it costs a VirtualQuery
  // or three (see "Windows" above).
  MachineContext(StackRegion stack, ContextEntry entry, void* arg);

  // Frees what the context holds (its TSan fiber). A context may be destroyed when it is not
  // running: never started, ended with ExitContext, or suspended and abandoned. Abandoning a
  // suspended context does not unwind its stack: destructors of objects on it never run. Destroying
  // the running context is a fatal error under TSan, where it can be detected, and undefined
  // behaviour otherwise.
  ~MachineContext();

  MachineContext(const MachineContext&) = delete;
  MachineContext& operator=(const MachineContext&) = delete;

  // Whether the context can be resumed now: it is suspended in a SwitchContext, or constructed
  // on a stack and not started. False while it runs, after it ended, and for a thread context
  // that never switched away.
  bool resumable() const { return saved_stack_pointer_ != nullptr; }

 private:
  friend struct ContextAccess;  // context.cc: the switch and its sanitizer bookkeeping

  // Where SwitchContext left this context's registers on its stack; null while it runs.
  void* saved_stack_pointer_ = nullptr;
#if defined(NETPOLL_ASAN)
  const void* asan_stack_bottom_ = nullptr;  // the stack this context runs on, as ASan sees it
  size_t asan_stack_size_ = 0;
  void* asan_fake_stack_ = nullptr;  // ASan's fake stack while suspended (use-after-return mode)
#endif
#if defined(NETPOLL_TSAN)
  struct TsanState {
    void* fiber = nullptr;  // a thread context takes the current one on every switch away
    bool owns_fiber = false;
    bool started = false;
    bool ended = false;
    void* exit_point = nullptr;  // the sigjmp_buf in the context's first frame
    MachineContext* exit_to = nullptr;
    void* exit_transfer = nullptr;
  } tsan_;
#endif
};

// Suspends the running context, saving it into `from`, and resumes `to`; returns, in `from`,
// when some later SwitchContext(..., from, value) resumes it, and then returns that `value`.
// `transfer` is handed to `to`: its pending SwitchContext returns it, or, if `to` has not
// started, its entry function receives it.
//
// `from` must be the running context: the thread context of the calling thread the first time,
// after that whichever MachineContext this code was resumed as. `to` must be resumable(); resuming
// a running or never-saved context stops the process with a fatal error. Cost: a few
// nanoseconds plus sanitizer bookkeeping in sanitizer builds; no syscall, no allocation.
void* SwitchContext(MachineContext* from, MachineContext* to, void* transfer);

// Like SwitchContext, but `from` is left for good: it ends and is never resumed. Its stack may be
// reused, and `from` destroyed, as soon as `to` (or whoever `to` tells) sees the switch, i.e.
// from the code that runs after the SwitchContext in `to` returns. Under ASan this also frees the
// ending context's fake stack.
[[noreturn]] void ExitContext(MachineContext* from, MachineContext* to, void* transfer);

}  // namespace netpoll::platform

#endif  // NETPOLL_PLATFORM_CONTEXT_H_
