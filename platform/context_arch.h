// Private to platform:context: the seam between the portable part of the context switch
// (context.cc: checks, sanitizer bookkeeping) and the per-ABI assembly (context_x86_64.cc and
// context_aarch64.cc for the POSIX systems, context_windows_x64.cc for Windows x64). Each file
// compiles to nothing on the other ABIs; the BUILD file still compiles the Windows file only for
// Windows and the POSIX ones only elsewhere.
#ifndef NETPOLL_PLATFORM_CONTEXT_ARCH_H_
#define NETPOLL_PLATFORM_CONTEXT_ARCH_H_

#include <cstdint>

#include "platform/context.h"
#include "platform/os.h"
#include "platform/stack_region.h"

// Symbol spelling and visibility for the hand-written functions. Hidden: they are called with
// direct (non-PLT) branches, which must not be preempted when the library is a shared object.
#if defined(NETPOLL_OS_MACOS)
#define NETPOLL_ASM_SYMBOL(name) "_" #name
#define NETPOLL_ASM_FUNCTION_BEGIN(name) \
  ".text\n.globl _" #name "\n.private_extern _" #name "\n.p2align 4\n_" #name ":\n"
#define NETPOLL_ASM_FUNCTION_END(name) ""
#elif defined(NETPOLL_OS_WINDOWS)
// PE/COFF: no leading underscore on x64, no symbol visibility and no .pushsection; `.def` marks
// the symbol as an external function. GCC emits top-level asm at the start of the file, right
// after its own opening .text, so selecting .text here leaves it in the section it expects.
#define NETPOLL_ASM_SYMBOL(name) #name
#define NETPOLL_ASM_FUNCTION_BEGIN(name)                                          \
  ".text\n.globl " #name "\n.def " #name "; .scl 2; .type 32; .endef\n.p2align 4\n" #name \
  ":\n"
#define NETPOLL_ASM_FUNCTION_END(name) ""
#else
#define NETPOLL_ASM_SYMBOL(name) #name
#define NETPOLL_ASM_FUNCTION_BEGIN(name)                                                  \
  ".pushsection .text\n.globl " #name "\n.hidden " #name "\n.type " #name ", %function\n" \
  ".p2align 4\n" #name ":\n"
#define NETPOLL_ASM_FUNCTION_END(name) ".size " #name ", .-" #name "\n.popsection\n"
#endif

#if defined(NETPOLL_OS_WINDOWS)
#define NETPOLL_HIDDEN  // PE has no visibility attribute; a DLL exports only dllexport symbols
#else
#define NETPOLL_HIDDEN __attribute__((visibility("hidden")))
#endif

namespace netpoll::platform::context_arch {

// What a resumed context learns from the switch that resumed it. Two pointer-sized members, so
// it comes back in two registers (rax:rdx, x0:x1) and nobody reads the suspended side's stack.
// The Microsoft x64 ABI returns a 16-byte struct through a pointer the caller passes instead; the
// Windows switch keeps that pointer in the suspended frame (see context_windows_x64.cc).
struct SwitchResult {
  MachineContext* from;  // the context that was running until the switch
  void* transfer;        // the value it passed
};

#if defined(NETPOLL_ARCH_X86_64)
// The calling thread's floating-point control state as both x86-64 switches keep it in one
// saved word: the MXCSR in the low 32 bits, the x87 control word above. A new context starts
// with it (see "floating-point control state" in context.h).
inline uint64_t CurrentFpControlWord() {
  uint32_t mxcsr;
  uint16_t x87_control;
  asm volatile("stmxcsr %0" : "=m"(mxcsr));
  asm volatile("fnstcw %0" : "=m"(x87_control));
  return mxcsr | (uint64_t{x87_control} << 32);
}
#endif

extern "C" {

// Pushes the callee-saved registers and FP control state on the running stack, stores the stack
// pointer in *save_stack_pointer, switches to load_stack_pointer, pops that context's registers
// and returns into it with {from, transfer} as that side's return value.
NETPOLL_HIDDEN SwitchResult netpoll_platform_switch_stacks(void** save_stack_pointer,
                                                           void* load_stack_pointer,
                                                           MachineContext* from, void* transfer);

// The second half of netpoll_platform_switch_stacks alone: switches to load_stack_pointer without
// saving anything, for a context that ends. Saving into a local would be wrong under ASan, whose
// fake stack (where such a local may live) is freed by the switch announcement of an ending
// context.
[[noreturn]] NETPOLL_HIDDEN void netpoll_platform_exit_to_stack(void* load_stack_pointer,
                                                                MachineContext* from,
                                                                void* transfer);

// Where a new context's first switch "returns" to; calls netpoll_platform_context_start with the
// switch's {from, transfer} and the entry, argument and context that the initial frame left in
// callee-saved registers.
NETPOLL_HIDDEN void netpoll_platform_context_trampoline();

// Defined in context.cc: finishes the first switch into a new context (`self`), runs its entry
// and stops the process if the entry returns.
[[noreturn]] NETPOLL_HIDDEN void netpoll_platform_context_start(MachineContext* from,
                                                                 void* transfer, ContextEntry entry,
                                                                 void* arg, MachineContext* self);

}  // extern "C"

// Writes the initial frame of `self` below stack.highest() (16-byte aligned) so that the first
// netpoll_platform_switch_stacks into it lands in the trampoline with `entry`, `arg` and `self` at
// hand and the FP control state of the calling thread; returns the stack pointer to switch to.
// (Windows also records the stack's bounds in the frame, for the Thread Information Block.)
void* PrepareInitialFrame(StackRegion stack, ContextEntry entry, void* arg, MachineContext* self);

}  // namespace netpoll::platform::context_arch

#endif  // NETPOLL_PLATFORM_CONTEXT_ARCH_H_
