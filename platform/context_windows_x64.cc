// The Windows x64 context switch (Microsoft x64 calling convention). See context.h for what it
// keeps and for the stacks it accepts.
//
// Why a hand-written switch and not Windows fibers (CreateFiberEx / SwitchToFiber /
// ConvertThreadToFiber):
//   - Stacks. A Windows fiber allocates its own stack in CreateFiberEx and frees it in
//     DeleteFiber; it cannot run on a StackRegion the caller owns. The MachineContext API takes
//     the stack from the caller so that the runtime can pool stacks (DESIGN.md: mapping a stack
//     per connection cost a peer a third of its accept rate). With Windows fibers every spawn
//     would map and every exit unmap a stack again. This alone decides it.
//   - Transfer values. SwitchToFiber(fiber) passes no value, and a fiber's start routine gets
//     only the CreateFiber parameter, so SwitchContext's `transfer` and the {from, transfer} that
//     a resumed side learns would have to go through memory next to the fiber handle. Workable,
//     but it is one more store and load per switch on top of a call into kernel32.
//   - Entry semantics. A fiber start routine that returns ends the whole thread (ExitThread);
//     ours must stop the process with a clear message instead, and ExitContext must leave a
//     context without that context being deleted by the one it leaves for (DeleteFiber of the
//     running fiber also ends the thread). Both would need a wrapper that re-implements what
//     context.cc already does for every platform.
//   - The thread context. Every thread would have to call ConvertThreadToFiber before its first
//     switch (and ConvertFiberToThread before it exits); a default-constructed MachineContext is
//     free and needs nothing.
//   - Cost: no reason either way. SwitchToFiber is a user-mode switch too, with no system call;
//     it is reached through an import and also switches what our contexts do not need
//     (fiber-local storage, the activation context stack, the stack guarantee), and a value passed
//     through it needs the extra memory round trip above. The switch below is the POSIX one plus
//     ten 16-byte stores and loads (xmm6-xmm15) and eight TEB moves. Under Wine 8 on the project's
//     x86-64 VMs (-O2, 2M round trips), a round trip of two switches cost ~32 ns with
//     SwitchContext (its checks included) and ~35 ns with SwitchToFiber (Wine's implementation);
//     no Windows machine was available to measure Windows' own.
// What Windows fibers do for free, this file does by hand: switching the Thread Information Block
// (TIB) fields that describe the running stack. Fiber-local storage (FlsAlloc) and
// GetCurrentFiber() are per thread for our contexts; code that needs per-fiber storage uses the
// runtime's FiberLocal.
#include "platform/os.h"

#if defined(NETPOLL_ARCH_X86_64) && defined(NETPOLL_OS_WINDOWS)

#include <windows.h>

#include <cstdint>

#include "platform/check.h"
#include "platform/context_arch.h"
#include "platform/stack_region.h"

// The Thread Environment Block is at gs:0 in user mode. Offsets (stable since Windows XP x64, and
// the same in Wine):
//   gs:0x08    NT_TIB.StackBase          the top of the running stack (exclusive)
//   gs:0x10    NT_TIB.StackLimit         the lowest committed byte of the running stack
//   gs:0x1478  TEB.DeallocationStack     the lowest byte the running stack may ever grow to
// Windows reads them to grow the stack when its PAGE_GUARD page is touched (only for a guard page
// in [DeallocationStack, StackBase), and StackLimit follows the growth), to raise
// STATUS_STACK_OVERFLOW near DeallocationStack, to accept or reject SEH frames while dispatching
// an exception (a frame outside [StackLimit, StackBase] stops the dispatch, so a C++ throw on a
// fiber would terminate), in RtlCaptureStackBackTrace, and in MSVC's __chkstk, which probes pages
// only below StackLimit. So they must describe the fiber's stack while it runs, and StackLimit
// must be exact: too low and __chkstk skips the guard page, too high and SEH rejects live frames.
//   gs:0x00    NT_TIB.ExceptionList      the x86 SEH chain
// x64 Windows does not dispatch through ExceptionList, but Wine's x64 dispatcher also calls the
// handlers of Wine's own frames chained there, interleaved with the unwound frames by address.
// Left pointing at the thread's frames (on the thread's stack), that calls the thread's outermost
// handler before any frame of a fiber whose stack lies above the thread's, the dispatch ends
// there, and a C++ throw on the fiber ends in std::terminate (seen with Wine 8, and fixed by
// this). Windows fibers and Wine's keep ExceptionList per fiber and start a new one at -1, the
// end of the chain; so do we.
//
// The saved frame, from the saved stack pointer upwards (288 bytes; the stack pointer stays
// 16-byte aligned, so the XMM registers use aligned moves):
//   +0    MXCSR (4 bytes), x87 control word (2 bytes), padding (2 bytes)
//   +8    ExceptionList   +16 StackLimit   +24 StackBase   +32 DeallocationStack   +40 padding
//   +48   xmm6  +64 xmm7  +80 xmm8  +96 xmm9  +112 xmm10  +128 xmm11  +144 xmm12  +160 xmm13
//   +176  xmm14 +192 xmm15
//   +208  where this side's SwitchResult is stored when it is resumed (see below)
//   +216  r15  +224 r14  +232 r13  +240 r12  +248 rsi  +256 rdi  +264 rbx  +272 rbp
//   +280  return address (into SwitchContext, or the trampoline for a new context)
// Arguments: a 16-byte SwitchResult does not come back in registers in this ABI; the caller passes
// a pointer to it in rcx and the real arguments move one register up: rdx = save_stack_pointer,
// r8 = load_stack_pointer, r9 = from, and transfer on the stack above the return address and the
// 32-byte home area of the four register arguments ([rsp + 40] at entry). The pointer in rcx
// belongs to this side, so it is saved with the frame, and the restore half fills in the resumed
// side's SwitchResult and returns its address in rax, as that side's caller expects. rax and r10
// are scratch (volatile); r9 and r10 carry {from, transfer} across the switch.
//
// Order matters where the stack may grow. Every write below the caller's frame can land on the
// PAGE_GUARD page, and Windows then commits it and lowers StackLimit. The first write to the new
// frame after the pushes is its lowest word (MXCSR, at most 208 bytes below the last push, so on
// the committed page or on the guard page right below it, never further), and StackLimit is read
// only after it, so the saved value includes any growth this very switch caused. The resumed side
// writes nothing on its stack before its TIB fields are back in place except its SwitchResult,
// which lies in its own caller's frame, on committed memory.
asm(NETPOLL_ASM_FUNCTION_BEGIN(netpoll_platform_switch_stacks)  //
    "  movq 40(%rsp), %r10\n"
    "  pushq %rbp\n"
    "  pushq %rbx\n"
    "  pushq %rdi\n"
    "  pushq %rsi\n"
    "  pushq %r12\n"
    "  pushq %r13\n"
    "  pushq %r14\n"
    "  pushq %r15\n"
    "  pushq %rcx\n"
    "  subq $208, %rsp\n"
    "  stmxcsr (%rsp)\n"
    "  fnstcw 4(%rsp)\n"
    "  movaps %xmm6, 48(%rsp)\n"
    "  movaps %xmm7, 64(%rsp)\n"
    "  movaps %xmm8, 80(%rsp)\n"
    "  movaps %xmm9, 96(%rsp)\n"
    "  movaps %xmm10, 112(%rsp)\n"
    "  movaps %xmm11, 128(%rsp)\n"
    "  movaps %xmm12, 144(%rsp)\n"
    "  movaps %xmm13, 160(%rsp)\n"
    "  movaps %xmm14, 176(%rsp)\n"
    "  movaps %xmm15, 192(%rsp)\n"
    "  movq %gs:0x00, %rax\n"
    "  movq %rax, 8(%rsp)\n"
    "  movq %gs:0x10, %rax\n"
    "  movq %rax, 16(%rsp)\n"
    "  movq %gs:0x08, %rax\n"
    "  movq %rax, 24(%rsp)\n"
    "  movq %gs:0x1478, %rax\n"
    "  movq %rax, 32(%rsp)\n"
    "  movq %rsp, (%rdx)\n"
    // From here on we run on the other context's stack: r8 = its saved stack pointer, r9 = from,
    // r10 = transfer.
    ".Lnetpoll_restore_context:\n"
    "  movq %r8, %rsp\n"
    "  movq 8(%rsp), %rax\n"
    "  movq %rax, %gs:0x00\n"
    "  movq 16(%rsp), %rax\n"
    "  movq %rax, %gs:0x10\n"
    "  movq 24(%rsp), %rax\n"
    "  movq %rax, %gs:0x08\n"
    "  movq 32(%rsp), %rax\n"
    "  movq %rax, %gs:0x1478\n"
    "  ldmxcsr (%rsp)\n"
    "  fldcw 4(%rsp)\n"
    "  movaps 48(%rsp), %xmm6\n"
    "  movaps 64(%rsp), %xmm7\n"
    "  movaps 80(%rsp), %xmm8\n"
    "  movaps 96(%rsp), %xmm9\n"
    "  movaps 112(%rsp), %xmm10\n"
    "  movaps 128(%rsp), %xmm11\n"
    "  movaps 144(%rsp), %xmm12\n"
    "  movaps 160(%rsp), %xmm13\n"
    "  movaps 176(%rsp), %xmm14\n"
    "  movaps 192(%rsp), %xmm15\n"
    "  addq $208, %rsp\n"
    "  popq %rax\n"
    "  popq %r15\n"
    "  popq %r14\n"
    "  popq %r13\n"
    "  popq %r12\n"
    "  popq %rsi\n"
    "  popq %rdi\n"
    "  popq %rbx\n"
    "  popq %rbp\n"
    "  movq %r9, (%rax)\n"
    "  movq %r10, 8(%rax)\n"
    "  ret\n"  //
    NETPOLL_ASM_FUNCTION_END(netpoll_platform_switch_stacks)
    // rcx = load_stack_pointer, rdx = from, r8 = transfer: moved to where the restore half of the
    // switch above expects them (r8, r9, r10).
    NETPOLL_ASM_FUNCTION_BEGIN(netpoll_platform_exit_to_stack)  //
    "  movq %r8, %r10\n"
    "  movq %rdx, %r9\n"
    "  movq %rcx, %r8\n"
    "  jmp .Lnetpoll_restore_context\n"  //
    NETPOLL_ASM_FUNCTION_END(netpoll_platform_exit_to_stack));

// Entered by the `ret` of the first switch into a new context, with rsp 16-byte aligned and
// pointing at a zero word, r9 = from, r10 = transfer, r12 = entry, r13 = arg, r14 = the new
// context (from the initial frame). It has unwind data like a compiled function whose return
// address is that zero word: the SEH dispatcher, the C++ unwinder and stack walkers see the
// trampoline as the outermost frame and stop there, as they stop at a thread's start routine.
// 48 bytes of frame: the 32-byte home area every call must provide, the fifth argument at +32,
// and 8 bytes that keep rsp 16-byte aligned at the call.
asm(NETPOLL_ASM_FUNCTION_BEGIN(netpoll_platform_context_trampoline)  //
    "  .seh_proc netpoll_platform_context_trampoline\n"
    "  subq $48, %rsp\n"
    "  .seh_stackalloc 48\n"
    "  .seh_endprologue\n"
    "  movq %r9, %rcx\n"
    "  movq %r10, %rdx\n"
    "  movq %r12, %r8\n"
    "  movq %r13, %r9\n"
    "  movq %r14, 32(%rsp)\n"
    "  call " NETPOLL_ASM_SYMBOL(netpoll_platform_context_start) "\n"
    "  ud2\n"
    "  .seh_endproc\n"  //
    NETPOLL_ASM_FUNCTION_END(netpoll_platform_context_trampoline));

namespace netpoll::platform::context_arch {
namespace {

bool IsUsable(const MEMORY_BASIC_INFORMATION& info) {
  return info.State == MEM_COMMIT && (info.Protect & (PAGE_GUARD | PAGE_NOACCESS)) == 0;
}

// The lowest address of the committed, accessible part of `stack` that reaches its top: the
// StackLimit a new context starts with. Walks the region upwards one run of same-state pages at a
// time (VirtualQuery describes runs from the queried page up): typically "reserved, then guard
// page, then committed" for a stack committed on demand (three queries), or "committed" for a
// fully committed one (one query). A stack pooled after a fiber grew it deep is measured as it is
// now, so its next context starts with the right limit.
void* CommittedLowest(StackRegion stack) {
  const uintptr_t top = reinterpret_cast<uintptr_t>(stack.highest());
  uintptr_t address = reinterpret_cast<uintptr_t>(stack.lowest);
  while (address < top) {
    MEMORY_BASIC_INFORMATION info;
    NETPOLL_CHECK(VirtualQuery(reinterpret_cast<const void*>(address), &info, sizeof(info)) ==
                      sizeof(info),
                  "MachineContext: VirtualQuery failed on the stack region");
    const uintptr_t run_end = reinterpret_cast<uintptr_t>(info.BaseAddress) + info.RegionSize;
    if (IsUsable(info)) {
      NETPOLL_CHECK(run_end >= top,
                    "MachineContext: a Windows stack region must be committed from some page up "
                    "to its top, with nothing inaccessible in between");
      return reinterpret_cast<void*>(address);
    }
    address = run_end;
  }
  NETPOLL_FATAL("MachineContext: the top page of a Windows stack region is not committed");
}

}  // namespace

void* PrepareInitialFrame(StackRegion stack, ContextEntry entry, void* arg, MachineContext* self) {
  void* const stack_top = stack.highest();
  // 40 words. The switch pops the lowest 36 (288 bytes) and returns into the trampoline with
  // rsp = stack_top - 32, 16-byte aligned, pointing at words 36-37 (the trampoline's "return
  // address", zero, and padding); words 38-39 receive the first switch's SwitchResult, which the
  // trampoline takes from registers instead.
  uint64_t* frame = static_cast<uint64_t*>(stack_top) - 40;
  for (int i = 0; i < 40; ++i) frame[i] = 0;  // xmm6-15, r15, rsi, rdi, rbx start as 0
  frame[0] = CurrentFpControlWord();
  frame[1] = ~uint64_t{0};                                          // ExceptionList: empty chain
  frame[2] = reinterpret_cast<uintptr_t>(CommittedLowest(stack));  // StackLimit
  frame[3] = reinterpret_cast<uintptr_t>(stack_top);                // StackBase
  // DeallocationStack: the bottom of the region, not the allocation base below a guard page.
  // Windows grows the stack down to here and raises STATUS_STACK_OVERFLOW near it, and
  // GetCurrentThreadStackLimits reports exactly the usable region.
  frame[4] = reinterpret_cast<uintptr_t>(stack.lowest);
  frame[26] = reinterpret_cast<uintptr_t>(&frame[38]);  // where the first SwitchResult goes
  frame[28] = reinterpret_cast<uintptr_t>(self);        // r14
  frame[29] = reinterpret_cast<uintptr_t>(arg);         // r13
  frame[30] = reinterpret_cast<uintptr_t>(entry);       // r12
  frame[34] = 0;                                        // rbp: ends frame-pointer chains
  frame[35] = reinterpret_cast<uintptr_t>(&netpoll_platform_context_trampoline);
  return frame;
}

}  // namespace netpoll::platform::context_arch

#endif  // NETPOLL_ARCH_X86_64 && NETPOLL_OS_WINDOWS
