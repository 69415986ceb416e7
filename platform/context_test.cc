#include "platform/context.h"

#include <cfenv>
#include <chrono>
#include <condition_variable>
#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "platform/os.h"
#include "platform/stack.h"
#include "platform/testing/fp_control_x86.h"

namespace netpoll::platform {
namespace {

// A context on its own stack, driven from the thread that calls Resume(). The body runs with the
// fiber as argument and may Yield() back; when it returns the fiber ends with ExitContext.
class TestFiber {
 public:
  explicit TestFiber(std::function<void(TestFiber&)> body, size_t stack_size = 64 * 1024)
      : body_(std::move(body)),
        stack_(AllocateOrDie(stack_size)),
        context_(stack_.region(), &TestFiber::Entry, this) {}

  // From the thread: run the fiber until it yields or ends; returns what it passed.
  void* Resume(void* value = nullptr) { return SwitchContext(&caller_, &context_, value); }
  // From inside the fiber: go back to whoever resumed it; returns the next Resume's value.
  void* Yield(void* value = nullptr) { return SwitchContext(&context_, &caller_, value); }

  bool finished() const { return finished_; }
  void* first_transfer() const { return first_transfer_; }
  MachineContext& context() { return context_; }
  MachineContext& caller() { return caller_; }

 private:
  static Stack AllocateOrDie(size_t size) {
    absl::StatusOr<Stack> stack = Stack::Allocate(size);
    if (!stack.ok()) {
      ADD_FAILURE() << stack.status();
      std::abort();
    }
    return *std::move(stack);
  }

  static void Entry(void* arg, void* transfer) {
    TestFiber* self = static_cast<TestFiber*>(arg);
    self->first_transfer_ = transfer;
    self->body_(*self);
    self->finished_ = true;
    ExitContext(&self->context_, &self->caller_, nullptr);
  }

  std::function<void(TestFiber&)> body_;
  Stack stack_;
  MachineContext caller_;
  MachineContext context_;
  void* first_transfer_ = nullptr;
  bool finished_ = false;
};

void* AsPointer(uintptr_t value) { return reinterpret_cast<void*>(value); }
uintptr_t AsNumber(void* pointer) { return reinterpret_cast<uintptr_t>(pointer); }

TEST(ContextTest, PingPongPassesValuesBothWays) {
  TestFiber fiber([](TestFiber& self) {
    uintptr_t value = AsNumber(self.first_transfer());
    while (value != 0) value = AsNumber(self.Yield(AsPointer(value * 2)));
  });
  for (uintptr_t i = 1; i <= 1000; ++i) {
    ASSERT_EQ(AsNumber(fiber.Resume(AsPointer(i))), i * 2);
    EXPECT_FALSE(fiber.finished());
  }
  EXPECT_EQ(fiber.Resume(nullptr), nullptr);  // 0 ends the loop; ExitContext passes nullptr
  EXPECT_TRUE(fiber.finished());
}

TEST(ContextTest, EntryReceivesArgumentAndFirstTransfer) {
  absl::StatusOr<Stack> stack = Stack::Allocate(64 * 1024);
  ASSERT_TRUE(stack.ok()) << stack.status();
  struct State {
    MachineContext thread_context;
    MachineContext* fiber = nullptr;
    void* arg = nullptr;
    void* transfer = nullptr;
  } state;
  MachineContext fiber(
      stack->region(),
      [](void* arg, void* transfer) {
        State* s = static_cast<State*>(arg);
        s->arg = arg;
        s->transfer = transfer;
        ExitContext(s->fiber, &s->thread_context, AsPointer(77));
      },
      &state);
  state.fiber = &fiber;
  EXPECT_TRUE(fiber.resumable());
  EXPECT_FALSE(state.thread_context.resumable());
  EXPECT_EQ(AsNumber(SwitchContext(&state.thread_context, &fiber, AsPointer(42))), 77u);
  EXPECT_EQ(state.arg, &state);
  EXPECT_EQ(AsNumber(state.transfer), 42u);
  EXPECT_FALSE(fiber.resumable());  // it ended
}

// Two fibers hand control straight to each other, never through the thread's context.
TEST(ContextTest, FibersSwitchDirectlyToEachOther) {
  std::vector<int> trace;
  std::unique_ptr<TestFiber> ping, pong;
  ping = std::make_unique<TestFiber>([&](TestFiber& self) {
    for (int i = 0; i < 3; ++i) {
      trace.push_back(10 + i);
      SwitchContext(&self.context(), &pong->context(), nullptr);
    }
    self.Yield();  // back to the thread, which resumed us
  });
  pong = std::make_unique<TestFiber>([&](TestFiber& self) {
    for (int i = 0; i < 3; ++i) {
      trace.push_back(20 + i);
      SwitchContext(&self.context(), &ping->context(), nullptr);
    }
    // Ends, back to the thread: its last Resume() is what got us here.
  });
  ping->Resume();
  EXPECT_EQ(trace, (std::vector<int>{10, 20, 11, 21, 12, 22}));
  // Let both finish so that their contexts end properly.
  ping->Resume();
  EXPECT_TRUE(ping->finished());
  pong->Resume();
  EXPECT_TRUE(pong->finished());
}

// A recursive computation in double precision that yields at every level: its locals live in
// callee-saved registers and stack slots across switches, while the thread does other FP work.
double Series(TestFiber* fiber, int depth) {
  if (depth == 0) return 1.0;
  const double here = 1.0 / (depth * depth) + std::sqrt(static_cast<double>(depth));
  if (fiber != nullptr) fiber->Yield();
  const double below = Series(fiber, depth - 1);
  if (fiber != nullptr) fiber->Yield();
  return here * 0.5 + below;
}

TEST(ContextTest, DeepCallChainWithFloatingPointSurvivesSwitches) {
  constexpr int kDepth = 300;
  const double expected = Series(nullptr, kDepth);
  double result = 0;
  TestFiber fiber([&](TestFiber& self) { result = Series(&self, kDepth); }, 256 * 1024);
  double noise = 0;
  int switches = 0;
  while (!fiber.finished()) {
    fiber.Resume();
    noise += std::sin(switches++ * 0.1);  // clobbers every caller-saved FP register
  }
  EXPECT_EQ(switches, 2 * kDepth + 1);
  EXPECT_EQ(result, expected);
  EXPECT_TRUE(std::isfinite(noise));
}

TEST(ContextTest, RoundingModeBelongsToEachContext) {
  ASSERT_EQ(std::fegetround(), FE_TONEAREST);
  int fiber_mode_after_switch = -1;
  TestFiber fiber([&](TestFiber& self) {
    ASSERT_EQ(std::fesetround(FE_UPWARD), 0);
    self.Yield();
    fiber_mode_after_switch = std::fegetround();
    std::fesetround(FE_TONEAREST);
  });
  fiber.Resume();
  EXPECT_EQ(std::fegetround(), FE_TONEAREST) << "the fiber's rounding mode leaked to the thread";
  ASSERT_EQ(std::fesetround(FE_TOWARDZERO), 0);
  fiber.Resume();
  EXPECT_EQ(fiber_mode_after_switch, FE_UPWARD) << "the thread's rounding mode leaked to the fiber";
  EXPECT_EQ(std::fegetround(), FE_TOWARDZERO);
  std::fesetround(FE_TONEAREST);
}

TEST(ContextTest, NewContextStartsWithItsCreatorsRoundingMode) {
  ASSERT_EQ(std::fesetround(FE_DOWNWARD), 0);
  int mode_in_fiber = -1;
  TestFiber fiber([&](TestFiber&) { mode_in_fiber = std::fegetround(); });
  std::fesetround(FE_TONEAREST);
  fiber.Resume();
  EXPECT_EQ(mode_in_fiber, FE_DOWNWARD);
  EXPECT_EQ(std::fegetround(), FE_TONEAREST);
}

#if defined(NETPOLL_ARCH_X86_64)

using testing::ReadMxcsr;
using testing::ReadX87ControlWord;
using testing::WriteMxcsr;
using testing::WriteX87ControlWord;

constexpr uint32_t kMxcsrFlushToZero = 1u << 15;
constexpr uint32_t kMxcsrDenormalsAreZero = 1u << 6;
constexpr uint16_t kX87PrecisionMask = 3u << 8;  // 0 = single, 2 = double, 3 = extended

// The bits fesetround does not touch: flush-to-zero, denormals-are-zero, x87 precision control.
TEST(ContextTest, X86FloatingPointControlRegistersBelongToEachContext) {
  const uint32_t thread_mxcsr = ReadMxcsr();
  const uint16_t thread_x87 = ReadX87ControlWord();
  uint32_t fiber_mxcsr_after_switch = 0;
  uint16_t fiber_x87_after_switch = 0;
  const uint32_t fiber_mxcsr = (thread_mxcsr | kMxcsrFlushToZero | kMxcsrDenormalsAreZero);
  const uint16_t fiber_x87 = static_cast<uint16_t>(thread_x87 & ~kX87PrecisionMask);  // single
  TestFiber fiber([&](TestFiber& self) {
    WriteMxcsr(fiber_mxcsr);
    WriteX87ControlWord(fiber_x87);
    self.Yield();
    fiber_mxcsr_after_switch = ReadMxcsr();
    fiber_x87_after_switch = ReadX87ControlWord();
  });
  fiber.Resume();
  EXPECT_EQ(ReadMxcsr() & ~0x3fu, thread_mxcsr & ~0x3fu);  // low 6 bits are status flags
  EXPECT_EQ(ReadX87ControlWord(), thread_x87);
  fiber.Resume();
  EXPECT_EQ(fiber_mxcsr_after_switch & ~0x3fu, fiber_mxcsr & ~0x3fu);
  EXPECT_EQ(fiber_x87_after_switch, fiber_x87);
  EXPECT_EQ(ReadMxcsr() & ~0x3fu, thread_mxcsr & ~0x3fu);
  EXPECT_EQ(ReadX87ControlWord(), thread_x87);
}

#endif  // NETPOLL_ARCH_X86_64

// The callee-saved registers, checked directly. The helper (assembly, because only there can a
// test hold known values in callee-saved registers across a call) loads pattern+i into the i-th
// callee-saved register, calls switch_function(from, to, nullptr), and stores the registers as
// they are when the call returns into out[i].
#if defined(__ELF__)
using SwitchFunction = void* (*)(MachineContext*, MachineContext*, void*);
extern "C" void netpoll_test_switch_with_register_pattern(SwitchFunction switch_function,
                                                          MachineContext* from,
                                                          MachineContext* to, uint64_t pattern,
                                                          uint64_t* out);
#if defined(NETPOLL_ARCH_X86_64)
constexpr const char* kCalleeSaved[] = {"rbx", "rbp", "r12", "r13", "r14", "r15"};
// rdi = switch_function, rsi = from, rdx = to, rcx = pattern, r8 = out.
asm(R"(
  .pushsection .text
  .globl netpoll_test_switch_with_register_pattern
  .type netpoll_test_switch_with_register_pattern, @function
  .p2align 4
netpoll_test_switch_with_register_pattern:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  pushq %r8             # out; also makes rsp 16-byte aligned for the call
  movq %rdi, %r11
  movq %rsi, %rdi
  movq %rdx, %rsi
  xorl %edx, %edx
  movq %rcx, %rbx
  leaq 1(%rcx), %rbp
  leaq 2(%rcx), %r12
  leaq 3(%rcx), %r13
  leaq 4(%rcx), %r14
  leaq 5(%rcx), %r15
  call *%r11
  popq %r8
  movq %rbx, 0(%r8)
  movq %rbp, 8(%r8)
  movq %r12, 16(%r8)
  movq %r13, 24(%r8)
  movq %r14, 32(%r8)
  movq %r15, 40(%r8)
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size netpoll_test_switch_with_register_pattern, .-netpoll_test_switch_with_register_pattern
  .popsection
)");
#elif defined(NETPOLL_ARCH_AARCH64)
constexpr const char* kCalleeSaved[] = {"x19", "x20", "x21", "x22", "x23", "x24", "x25",
                                        "x26", "x27", "x28", "d8",  "d9",  "d10", "d11",
                                        "d12", "d13", "d14", "d15"};
// x0 = switch_function, x1 = from, x2 = to, x3 = pattern, x4 = out. x29/x30 are checked
// implicitly: the helper could not return without them.
asm(R"(
  .pushsection .text
  .globl netpoll_test_switch_with_register_pattern
  .type netpoll_test_switch_with_register_pattern, %function
  .p2align 4
netpoll_test_switch_with_register_pattern:
  stp x29, x30, [sp, #-176]!
  mov x29, sp
  stp x19, x20, [sp, #16]
  stp x21, x22, [sp, #32]
  stp x23, x24, [sp, #48]
  stp x25, x26, [sp, #64]
  stp x27, x28, [sp, #80]
  stp d8, d9, [sp, #96]
  stp d10, d11, [sp, #112]
  stp d12, d13, [sp, #128]
  stp d14, d15, [sp, #144]
  str x4, [sp, #160]
  mov x9, x0
  mov x0, x1
  mov x1, x2
  mov x2, #0
  add x19, x3, #0
  add x20, x3, #1
  add x21, x3, #2
  add x22, x3, #3
  add x23, x3, #4
  add x24, x3, #5
  add x25, x3, #6
  add x26, x3, #7
  add x27, x3, #8
  add x28, x3, #9
  add x10, x3, #10
  fmov d8, x10
  add x10, x3, #11
  fmov d9, x10
  add x10, x3, #12
  fmov d10, x10
  add x10, x3, #13
  fmov d11, x10
  add x10, x3, #14
  fmov d12, x10
  add x10, x3, #15
  fmov d13, x10
  add x10, x3, #16
  fmov d14, x10
  add x10, x3, #17
  fmov d15, x10
  blr x9
  ldr x4, [sp, #160]
  stp x19, x20, [x4, #0]
  stp x21, x22, [x4, #16]
  stp x23, x24, [x4, #32]
  stp x25, x26, [x4, #48]
  stp x27, x28, [x4, #64]
  stp d8, d9, [x4, #80]
  stp d10, d11, [x4, #96]
  stp d12, d13, [x4, #112]
  stp d14, d15, [x4, #128]
  ldp x19, x20, [sp, #16]
  ldp x21, x22, [sp, #32]
  ldp x23, x24, [sp, #48]
  ldp x25, x26, [sp, #64]
  ldp x27, x28, [sp, #80]
  ldp d8, d9, [sp, #96]
  ldp d10, d11, [sp, #112]
  ldp d12, d13, [sp, #128]
  ldp d14, d15, [sp, #144]
  ldp x29, x30, [sp], #176
  ret
  .size netpoll_test_switch_with_register_pattern, .-netpoll_test_switch_with_register_pattern
  .popsection
)");
#endif
constexpr int kCalleeSavedCount = sizeof(kCalleeSaved) / sizeof(kCalleeSaved[0]);

void ExpectPattern(const uint64_t (&registers)[kCalleeSavedCount], uint64_t pattern,
                   const char* who) {
  for (int i = 0; i < kCalleeSavedCount; ++i) {
    EXPECT_EQ(registers[i], pattern + i) << who << "'s " << kCalleeSaved[i] << " was not preserved";
  }
}

TEST(ContextTest, CalleeSavedRegistersSurviveSwitches) {
  constexpr uint64_t kThreadPattern = 0x1111'0000'0000'1000;
  constexpr uint64_t kFiberPattern = 0x2222'0000'0000'2000;
  uint64_t thread_registers[kCalleeSavedCount] = {};
  uint64_t fiber_registers[kCalleeSavedCount] = {};
  TestFiber fiber([&](TestFiber& self) {
    // Switches to the thread with the fiber's pattern loaded; the thread's pattern must come back
    // on the thread side and the fiber's on this side.
    netpoll_test_switch_with_register_pattern(&SwitchContext, &self.context(), &self.caller(),
                                              kFiberPattern, fiber_registers);
  });
  netpoll_test_switch_with_register_pattern(&SwitchContext, &fiber.caller(), &fiber.context(),
                                            kThreadPattern, thread_registers);
  ExpectPattern(thread_registers, kThreadPattern, "the thread");
  fiber.Resume();
  EXPECT_TRUE(fiber.finished());
  ExpectPattern(fiber_registers, kFiberPattern, "the fiber");
}
#else
TEST(ContextTest, CalleeSavedRegistersSurviveSwitches) {
  GTEST_SKIP() << "the register helper is written for ELF assemblers (Linux, the BSDs)";
}
#endif  // __ELF__


// pthread_self() is declared __attribute__((const)), so within one function the compiler may
// reuse its result across a SwitchContext call, although the context can come back on another
// thread. noipa hides that this function is the same (see "Thread-local storage" in context.h).
__attribute__((noipa)) std::thread::id CurrentThreadId() { return std::this_thread::get_id(); }

// A context suspended on one thread and resumed on another, as an M:N scheduler does. The first
// thread stays alive until the second is done, so that the two thread ids are distinct; the
// mutex hand-off orders the two halves.
TEST(ContextTest, SuspendedContextResumesOnAnotherThread) {
  std::thread::id first_thread, second_thread;
  int local_kept_across_threads = 0;
  TestFiber fiber([&](TestFiber& self) {
    int local = 1234;
    first_thread = CurrentThreadId();
    self.Yield();
    second_thread = CurrentThreadId();
    local_kept_across_threads = local;
  });
  std::mutex mutex;
  std::condition_variable changed;
  bool first_half_done = false, second_half_done = false;
  auto wait_for = [&](const bool& flag) {
    std::unique_lock<std::mutex> lock(mutex);
    return changed.wait_for(lock, std::chrono::seconds(30), [&] { return flag; });
  };
  auto set = [&](bool& flag) {
    std::lock_guard<std::mutex> lock(mutex);
    flag = true;
    changed.notify_all();
  };
  std::thread first([&] {
    fiber.Resume();
    set(first_half_done);
    EXPECT_TRUE(wait_for(second_half_done)) << "the second thread never finished";
  });
  std::thread second([&] {
    ASSERT_TRUE(wait_for(first_half_done)) << "the first thread never suspended the fiber";
    fiber.Resume();
    set(second_half_done);
  });
  first.join();
  second.join();
  EXPECT_TRUE(fiber.finished());
  EXPECT_NE(first_thread, std::thread::id());
  EXPECT_NE(first_thread, second_thread);
  EXPECT_EQ(local_kept_across_threads, 1234);
}

// 100,000 fibers: each takes a stack from the pool, runs to completion and gives it back. Up to
// kLive run interleaved, so the pool sees many stacks in flight, not just one bouncing.
TEST(ContextTest, HundredThousandContextsRecycledThroughPool) {
  constexpr int kFibers = 100'000;
  constexpr int kLive = 32;
  absl::StatusOr<std::unique_ptr<StackPool>> pool = StackPool::Create({.stack_size = 32 * 1024});
  ASSERT_TRUE(pool.ok()) << pool.status();

  struct Slot {
    Stack stack;
    std::unique_ptr<MachineContext> context;
    MachineContext thread_context;
    uint64_t input = 0;
    uint64_t output = 0;
    int yields_left = 0;
  };
  auto body = [](void* arg, void* transfer) {
    Slot* slot = static_cast<Slot*>(arg);
    uint64_t sum = AsNumber(transfer);
    for (int i = 0; i < 2; ++i) {
      sum += AsNumber(SwitchContext(slot->context.get(), &slot->thread_context, nullptr));
    }
    slot->output = sum;
    ExitContext(slot->context.get(), &slot->thread_context, nullptr);
  };

  std::vector<Slot> slots(kLive);
  int started = 0, finished = 0;
  uint64_t expected_sum = 0, actual_sum = 0;
  while (finished < kFibers) {
    for (Slot& slot : slots) {
      if (slot.context == nullptr) {
        if (started == kFibers) continue;
        absl::StatusOr<Stack> stack = (*pool)->Acquire();
        ASSERT_TRUE(stack.ok()) << stack.status();
        slot.stack = *std::move(stack);
        slot.input = static_cast<uint64_t>(started++);
        slot.yields_left = 3;
        slot.context = std::make_unique<MachineContext>(slot.stack.region(), body, &slot);
        expected_sum += slot.input * 3;
      }
      SwitchContext(&slot.thread_context, slot.context.get(), AsPointer(slot.input));
      if (--slot.yields_left == 0) {
        ASSERT_FALSE(slot.context->resumable());
        actual_sum += slot.output;
        slot.context.reset();
        (*pool)->Release(std::move(slot.stack));
        ++finished;
      }
    }
  }
  EXPECT_EQ(actual_sum, expected_sum);
  const StackPool::Stats stats = (*pool)->stats();
  EXPECT_LE(stats.mapped, static_cast<uint64_t>(kLive)) << "the pool did not reuse stacks";
  EXPECT_EQ(stats.mapped + stats.reused, static_cast<uint64_t>(kFibers));
  EXPECT_EQ(stats.unmapped, 0u);
  EXPECT_EQ(stats.cached, stats.mapped);
}

// A fiber that recursed deep gives its deep pages back when its stack returns to the pool.
int TouchStackDeeply(int depth) {
  volatile char frame[1024];
  frame[0] = static_cast<char>(depth);
  frame[sizeof(frame) - 1] = 1;
  if (depth == 0) return frame[0];
  return TouchStackDeeply(depth - 1) + frame[0];
}

TEST(ContextTest, DeepFiberStackIsTrimmedWhenPooled) {
  absl::StatusOr<std::unique_ptr<StackPool>> pool =
      StackPool::Create({.stack_size = 256 * 1024, .trim_depth = 64 * 1024});
  ASSERT_TRUE(pool.ok()) << pool.status();
  for (const int depth : {8, 150}) {  // ~8 KiB, then ~150+ KiB of frames
    absl::StatusOr<Stack> stack = (*pool)->Acquire();
    ASSERT_TRUE(stack.ok()) << stack.status();
    struct State {
      MachineContext thread_context;
      MachineContext* fiber;
      int depth;
    } state{{}, nullptr, depth};
    {
      MachineContext fiber(
          stack->region(),
          [](void* arg, void*) {
            State* s = static_cast<State*>(arg);
            TouchStackDeeply(s->depth);
            ExitContext(s->fiber, &s->thread_context, nullptr);
          },
          &state);
      state.fiber = &fiber;
      SwitchContext(&state.thread_context, &fiber, nullptr);
    }
    (*pool)->Release(*std::move(stack));
    EXPECT_EQ((*pool)->stats().trimmed, depth == 8 ? 0u : 1u) << "depth " << depth;
  }
}

using ContextDeathTest = ::testing::Test;

TEST(ContextDeathTest, EntryFunctionReturningIsFatal) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        absl::StatusOr<Stack> stack = Stack::Allocate(64 * 1024);
        if (!stack.ok()) std::abort();
        MachineContext thread_context;
        MachineContext fiber(stack->region(), [](void*, void*) {}, nullptr);
        SwitchContext(&thread_context, &fiber, nullptr);
      },
      "netpoll: fatal error: a fiber context's entry function returned; it must leave with "
      "ExitContext");
}

TEST(ContextDeathTest, ResumingARunningContextIsFatal) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        MachineContext thread_context;
        MachineContext also_thread;
        // thread_context was never saved: it is the running thread itself.
        SwitchContext(&also_thread, &thread_context, nullptr);
      },
      "SwitchContext to a context that is running, has ended, or never switched away");
}

TEST(ContextDeathTest, ResumingAnEndedContextIsFatal) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        TestFiber fiber([](TestFiber&) {});
        fiber.Resume();  // runs to ExitContext
        fiber.Resume();
      },
      "SwitchContext to a context that is running, has ended, or never switched away");
}

}  // namespace
}  // namespace netpoll::platform
