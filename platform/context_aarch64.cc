// The AArch64 (AAPCS64) context switch (Linux, macOS, the BSDs). See context.h for what it keeps.
#include "platform/os.h"

#if defined(NETPOLL_ARCH_AARCH64) && !defined(NETPOLL_OS_WINDOWS)

#include <cstdint>

#include "platform/context_arch.h"

// BTI (-mbranch-protection=bti): "bti c" marks a valid target of an indirect call; it is a NOP
// (hint #34) on cores without BTI. Return-address signing needs nothing here: SwitchContext signs
// and authenticates its own link register against its own stack pointer, which a switch restores
// exactly.
#define NETPOLL_BTI_C "hint #34\n"

// The saved frame, from the saved stack pointer upwards (176 bytes, a multiple of 16 as sp must
// always be):
//   +0   x19 x20   +16 x21 x22   +32 x23 x24   +48 x25 x26   +64 x27 x28
//   +80  x29 (frame pointer), x30 (link register: where the switch returns to)
//   +96  d8 d9     +112 d10 d11  +128 d12 d13  +144 d14 d15
//   +160 FPCR      +168 padding
// Arguments: x0 = save_stack_pointer, x1 = load_stack_pointer, x2 = from, x3 = transfer. Result
// {from, transfer} in x0:x1. x9 and x10 are scratch (caller-saved).
// FPCR is written only when it differs: on some cores an FPCR write is a serialising operation,
// and it almost never differs between two contexts.
asm(NETPOLL_ASM_FUNCTION_BEGIN(netpoll_platform_switch_stacks)  //
    NETPOLL_BTI_C
    "  sub sp, sp, #176\n"
    "  stp x19, x20, [sp, #0]\n"
    "  stp x21, x22, [sp, #16]\n"
    "  stp x23, x24, [sp, #32]\n"
    "  stp x25, x26, [sp, #48]\n"
    "  stp x27, x28, [sp, #64]\n"
    "  stp x29, x30, [sp, #80]\n"
    "  stp d8, d9, [sp, #96]\n"
    "  stp d10, d11, [sp, #112]\n"
    "  stp d12, d13, [sp, #128]\n"
    "  stp d14, d15, [sp, #144]\n"
    "  mrs x9, fpcr\n"
    "  str x9, [sp, #160]\n"
    "  mov x10, sp\n"
    "  str x10, [x0]\n"
    // From here on we run on the other context's stack.
    ".Lnetpoll_restore_context:\n"
    "  mov sp, x1\n"
    "  ldp x19, x20, [sp, #0]\n"
    "  ldp x21, x22, [sp, #16]\n"
    "  ldp x23, x24, [sp, #32]\n"
    "  ldp x25, x26, [sp, #48]\n"
    "  ldp x27, x28, [sp, #64]\n"
    "  ldp x29, x30, [sp, #80]\n"
    "  ldp d8, d9, [sp, #96]\n"
    "  ldp d10, d11, [sp, #112]\n"
    "  ldp d12, d13, [sp, #128]\n"
    "  ldp d14, d15, [sp, #144]\n"
    "  ldr x10, [sp, #160]\n"
    "  cmp x9, x10\n"
    "  b.eq 1f\n"
    "  msr fpcr, x10\n"
    "1:\n"
    "  add sp, sp, #176\n"
    "  mov x0, x2\n"
    "  mov x1, x3\n"
    "  ret\n"  //
    NETPOLL_ASM_FUNCTION_END(netpoll_platform_switch_stacks)
    // x0 = load_stack_pointer, x1 = from, x2 = transfer: moved to where the restore half of the
    // switch above expects them (x1, x2, x3), with the current FPCR in x9 for its comparison.
    NETPOLL_ASM_FUNCTION_BEGIN(netpoll_platform_exit_to_stack)  //
    NETPOLL_BTI_C
    "  mov x3, x2\n"
    "  mov x2, x1\n"
    "  mov x1, x0\n"
    "  mrs x9, fpcr\n"
    "  b .Lnetpoll_restore_context\n"  //
    NETPOLL_ASM_FUNCTION_END(netpoll_platform_exit_to_stack));

// Entered by the `ret` of the first switch into a new context (ret is not an indirect call, so no
// BTI landing pad is needed), with sp 16-byte aligned, x0:x1 = {from, transfer}, x19 = entry,
// x20 = arg, x21 = the new context and x29 = 0 (from the initial frame). "x30 is undefined" tells debuggers and
// unwinders that the stack ends here.
asm(NETPOLL_ASM_FUNCTION_BEGIN(netpoll_platform_context_trampoline)  //
    "  .cfi_startproc\n"
    "  .cfi_undefined x30\n"
    "  mov x2, x19\n"
    "  mov x3, x20\n"
    "  mov x4, x21\n"
    "  bl " NETPOLL_ASM_SYMBOL(netpoll_platform_context_start) "\n"
    "  brk #0x3e8\n"
    "  .cfi_endproc\n"  //
    NETPOLL_ASM_FUNCTION_END(netpoll_platform_context_trampoline));

namespace netpoll::platform::context_arch {

void* PrepareInitialFrame(StackRegion stack, ContextEntry entry, void* arg, MachineContext* self) {
  void* const stack_top = stack.highest();
  uint64_t fpcr;
  asm volatile("mrs %0, fpcr" : "=r"(fpcr));
  uint64_t* frame = static_cast<uint64_t*>(stack_top) - 22;  // 176 bytes; keeps sp 16-aligned
  for (int i = 0; i < 22; ++i) frame[i] = 0;                 // x22-x28 and d8-d15 start as 0
  frame[0] = reinterpret_cast<uintptr_t>(entry);             // x19
  frame[1] = reinterpret_cast<uintptr_t>(arg);               // x20
  frame[2] = reinterpret_cast<uintptr_t>(self);              // x21
  frame[10] = 0;                                             // x29: ends frame-pointer chains
  frame[11] = reinterpret_cast<uintptr_t>(&netpoll_platform_context_trampoline);  // x30
  frame[20] = fpcr;
  return frame;
}

}  // namespace netpoll::platform::context_arch

#endif  // NETPOLL_ARCH_AARCH64 && !NETPOLL_OS_WINDOWS
