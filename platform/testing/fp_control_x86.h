// Test support: read and write the x86 floating-point control state (the SSE MXCSR and the x87
// control word) of the calling thread, which a context switch must keep per context (see
// context.h). Shared by context_test.cc and windows_context_check.cc; needs no GoogleTest, Abseil
// or OS header, so the MinGW-w64 build of the Windows check can include it too.
#ifndef NETPOLL_PLATFORM_TESTING_FP_CONTROL_X86_H_
#define NETPOLL_PLATFORM_TESTING_FP_CONTROL_X86_H_

#include <cstdint>

#include "platform/os.h"

#if defined(NETPOLL_ARCH_X86_64)

namespace netpoll::platform::testing {

inline uint32_t ReadMxcsr() {
  uint32_t value;
  asm volatile("stmxcsr %0" : "=m"(value));
  return value;
}
inline void WriteMxcsr(uint32_t value) { asm volatile("ldmxcsr %0" : : "m"(value)); }
inline uint16_t ReadX87ControlWord() {
  uint16_t value;
  asm volatile("fnstcw %0" : "=m"(value));
  return value;
}
inline void WriteX87ControlWord(uint16_t value) { asm volatile("fldcw %0" : : "m"(value)); }

}  // namespace netpoll::platform::testing

#endif  // NETPOLL_ARCH_X86_64

#endif  // NETPOLL_PLATFORM_TESTING_FP_CONTROL_X86_H_
