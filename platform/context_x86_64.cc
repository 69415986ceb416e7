// The x86-64 System V context switch (Linux, macOS, the BSDs). See context.h for what it keeps.
#include "platform/os.h"

#if defined(NETPOLL_ARCH_X86_64) && !defined(NETPOLL_OS_WINDOWS)

#include <cstdint>

#include "platform/context_arch.h"

// IBT (-fcf-protection=branch) wants an end-branch marker where an indirect call may land.
// Shadow stacks (CET SHSTK) are not supported: a switch returns on another stack than it was
// called on, which a shadow stack rejects; Linux enables them only for binaries that opt in.
#if defined(__CET__) && (__CET__ & 1)
#define NETPOLL_ENDBR "endbr64\n"
#else
#define NETPOLL_ENDBR ""
#endif

// The saved frame, from the saved stack pointer upwards (64 bytes):
//   +0   MXCSR (4 bytes), x87 control word (2 bytes), padding (2 bytes)
//   +8   r15   +16 r14   +24 r13   +32 r12   +40 rbx   +48 rbp
//   +56  return address (into SwitchContext, or the trampoline for a new context)
// Arguments (System V): rdi = save_stack_pointer, rsi = load_stack_pointer, rdx = from,
// rcx = transfer. Result {from, transfer} in rax:rdx. rdx and rcx are not callee-saved, so they
// carry the values across the switch untouched.
asm(NETPOLL_ASM_FUNCTION_BEGIN(netpoll_platform_switch_stacks)  //
    NETPOLL_ENDBR
    "  pushq %rbp\n"
    "  pushq %rbx\n"
    "  pushq %r12\n"
    "  pushq %r13\n"
    "  pushq %r14\n"
    "  pushq %r15\n"
    "  subq $8, %rsp\n"
    "  stmxcsr (%rsp)\n"
    "  fnstcw 4(%rsp)\n"
    "  movq %rsp, (%rdi)\n"
    // From here on we run on the other context's stack.
    ".Lnetpoll_restore_context:\n"
    "  movq %rsi, %rsp\n"
    "  ldmxcsr (%rsp)\n"
    "  fldcw 4(%rsp)\n"
    "  addq $8, %rsp\n"
    "  popq %r15\n"
    "  popq %r14\n"
    "  popq %r13\n"
    "  popq %r12\n"
    "  popq %rbx\n"
    "  popq %rbp\n"
    "  movq %rdx, %rax\n"
    "  movq %rcx, %rdx\n"
    "  ret\n"  //
    NETPOLL_ASM_FUNCTION_END(netpoll_platform_switch_stacks)
    // rdi = load_stack_pointer, rsi = from, rdx = transfer: moved to where the restore half of
    // the switch above expects them (rsi, rdx, rcx).
    NETPOLL_ASM_FUNCTION_BEGIN(netpoll_platform_exit_to_stack)  //
    NETPOLL_ENDBR
    "  movq %rdx, %rcx\n"
    "  movq %rsi, %rdx\n"
    "  movq %rdi, %rsi\n"
    "  jmp .Lnetpoll_restore_context\n"  //
    NETPOLL_ASM_FUNCTION_END(netpoll_platform_exit_to_stack));

// Entered by the `ret` of the first switch into a new context, with rsp 16-byte aligned, rax:rdx
// = {from, transfer}, r12 = entry, r13 = arg, r14 = the new context (from the initial frame). "rip is undefined" tells
// debuggers and unwinders that the stack ends here instead of letting them walk into garbage.
asm(NETPOLL_ASM_FUNCTION_BEGIN(netpoll_platform_context_trampoline)  //
    "  .cfi_startproc\n"
    "  .cfi_undefined rip\n"
    "  movq %rax, %rdi\n"
    "  movq %rdx, %rsi\n"
    "  movq %r12, %rdx\n"
    "  movq %r13, %rcx\n"
    "  movq %r14, %r8\n"
    "  call " NETPOLL_ASM_SYMBOL(netpoll_platform_context_start) "\n"
    "  ud2\n"
    "  .cfi_endproc\n"  //
    NETPOLL_ASM_FUNCTION_END(netpoll_platform_context_trampoline));

namespace netpoll::platform::context_arch {

void* PrepareInitialFrame(StackRegion stack, ContextEntry entry, void* arg, MachineContext* self) {
  void* const stack_top = stack.highest();
  // Eight words; after the switch pops them, rsp = stack_top, 16-byte aligned, so the trampoline's
  // `call` gives the entry the alignment the ABI promises (rsp + 8 aligned at function entry).
  uint64_t* frame = static_cast<uint64_t*>(stack_top) - 8;
  frame[0] = CurrentFpControlWord();
  frame[1] = 0;                                     // r15
  frame[2] = reinterpret_cast<uintptr_t>(self);     // r14
  frame[3] = reinterpret_cast<uintptr_t>(arg);      // r13
  frame[4] = reinterpret_cast<uintptr_t>(entry);    // r12
  frame[5] = 0;                                     // rbx
  frame[6] = 0;                                     // rbp: ends frame-pointer chains
  frame[7] = reinterpret_cast<uintptr_t>(&netpoll_platform_context_trampoline);
  return frame;
}

}  // namespace netpoll::platform::context_arch

#endif  // NETPOLL_ARCH_X86_64 && !NETPOLL_OS_WINDOWS
