#include "platform/context.h"

#include <cstdint>

#include "platform/check.h"
#include "platform/context_arch.h"
#include "platform/os.h"
#include "platform/stack_region.h"

#if defined(NETPOLL_ASAN)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#if defined(NETPOLL_TSAN)
#include <sanitizer/tsan_interface.h>
#include <setjmp.h>

#include <mutex>
#include <vector>
#endif

#if defined(NETPOLL_TSAN)
// For functions that must not tell TSan they were entered or left: those that never return
// (TSan's shadow call stack has no way to pop them and would grow with every context, see
// "ThreadSanitizer" in context.h), and the one that changes TSan's current fiber.
#define NETPOLL_NO_SANITIZE_THREAD __attribute__((no_sanitize("thread")))
#else
#define NETPOLL_NO_SANITIZE_THREAD
#endif

namespace netpoll::platform {
namespace {

#if defined(NETPOLL_TSAN)
// TSan fibers of ended contexts, kept for the next contexts. Creating one costs ~2 ms and ~830 KiB
// (measured with GCC 12's libtsan), which would make every fiber spawn under TSan that slow.
class TsanFiberCache {
 public:
  static TsanFiberCache& Get() {
    // Leaked on purpose: contexts may be destroyed by other static destructors at exit.
    static TsanFiberCache* const cache = new TsanFiberCache;
    return *cache;
  }

  void* Take() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!idle_.empty()) {
        void* fiber = idle_.back();
        idle_.pop_back();
        return fiber;
      }
    }
    return __tsan_create_fiber(0);
  }

  void Give(void* fiber) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (idle_.size() < kMaxIdle) {
        idle_.push_back(fiber);
        return;
      }
    }
    __tsan_destroy_fiber(fiber);
  }

 private:
  // Bounds the memory idle fibers hold (~53 MiB); beyond this many, contexts pay for creation.
  static constexpr size_t kMaxIdle = 64;

  std::mutex mutex_;
  std::vector<void*> idle_;  // guarded by mutex_
};
#endif

}  // namespace

// The switch itself and the sanitizer protocol around it. A struct so that MachineContext can
// befriend it without naming the extern "C" functions.
struct ContextAccess {
  static void InitNew(MachineContext* context, StackRegion stack, ContextEntry entry, void* arg) {
    NETPOLL_CHECK(stack.lowest != nullptr && stack.size >= kMinContextStackSize,
                  "MachineContext: the stack region is null or smaller than kMinContextStackSize");
    NETPOLL_CHECK(reinterpret_cast<uintptr_t>(stack.highest()) % 16 == 0,
                  "MachineContext: the top of the stack region is not 16-byte aligned");
#if defined(NETPOLL_ASAN)
    ASAN_UNPOISON_MEMORY_REGION(stack.lowest, stack.size);
    context->asan_stack_bottom_ = stack.lowest;
    context->asan_stack_size_ = stack.size;
#endif
#if defined(NETPOLL_TSAN)
    context->tsan_.fiber = TsanFiberCache::Get().Take();
    context->tsan_.owns_fiber = true;
#endif
    context->saved_stack_pointer_ =
        context_arch::PrepareInitialFrame(stack, entry, arg, context);
  }

  static void Destroy([[maybe_unused]] MachineContext* context) {
#if defined(NETPOLL_TSAN)
    if (!context->tsan_.owns_fiber) return;
    NETPOLL_CHECK(__tsan_get_current_fiber() != context->tsan_.fiber,
                  "a MachineContext was destroyed while running");
    if (context->tsan_.started && !context->tsan_.ended) {
      // Abandoned while suspended: its frames are still on the fiber's shadow call stack.
      __tsan_destroy_fiber(context->tsan_.fiber);
    } else {
      TsanFiberCache::Get().Give(context->tsan_.fiber);
    }
#endif
  }

  // Takes the saved stack pointer out of `to`, so that resuming it twice is caught.
  static void* ClaimResumable(MachineContext* to) {
    void* stack_pointer = to->saved_stack_pointer_;
    NETPOLL_CHECK(stack_pointer != nullptr,
                  "SwitchContext to a context that is running, has ended, or never switched away");
    to->saved_stack_pointer_ = nullptr;
    return stack_pointer;
  }

  // Runs on the old stack right before the switch. `from_ends`: `from` is never resumed.
  // Not instrumented by TSan: it changes TSan's current fiber, so an instrumented epilogue would
  // pop a frame off the shadow call stack of the fiber being switched to.
  NETPOLL_NO_SANITIZE_THREAD static void BeforeSwitch([[maybe_unused]] MachineContext* from,
                           [[maybe_unused]] MachineContext* to, [[maybe_unused]] bool from_ends) {
#if defined(NETPOLL_ASAN)
    __sanitizer_start_switch_fiber(from_ends ? nullptr : &from->asan_fake_stack_,
                                   to->asan_stack_bottom_, to->asan_stack_size_);
#endif
#if defined(NETPOLL_TSAN)
    // A thread context has no fiber of its own: it is whichever thread is switching away from it
    // now (not necessarily the one from last time, so it is refreshed on every switch).
    if (!from->tsan_.owns_fiber) from->tsan_.fiber = __tsan_get_current_fiber();
    __tsan_switch_to_fiber(to->tsan_.fiber, 0);
#endif
  }

  // Runs on the new stack right after the switch. `fake_stack` is the resumed context's saved
  // fake stack (null when it starts); `came_from` is the context that switched to it.
  static void AfterSwitch([[maybe_unused]] void* fake_stack,
                          [[maybe_unused]] MachineContext* came_from) {
#if defined(NETPOLL_ASAN)
    // This is also how a thread context learns its stack bounds: the first switch away from it
    // is the first time ASan tells us where the thread's stack is.
    __sanitizer_finish_switch_fiber(fake_stack, &came_from->asan_stack_bottom_,
                                    &came_from->asan_stack_size_);
#endif
  }

  static void* Switch(MachineContext* from, MachineContext* to, void* transfer) {
    void* to_stack_pointer = ClaimResumable(to);
    BeforeSwitch(from, to, /*from_ends=*/false);
    const context_arch::SwitchResult result = context_arch::netpoll_platform_switch_stacks(
        &from->saved_stack_pointer_, to_stack_pointer, from, transfer);
#if defined(NETPOLL_ASAN)
    AfterSwitch(from->asan_fake_stack_, result.from);
#else
    AfterSwitch(nullptr, result.from);
#endif
    return result.transfer;
  }

  // The last switch of `from`. Never returns, so under TSan it must not register a frame.
  [[noreturn]] NETPOLL_NO_SANITIZE_THREAD static void SwitchForGood(MachineContext* from,
                                                                     MachineContext* to,
                                                                     void* transfer) {
    void* to_stack_pointer = ClaimResumable(to);
#if defined(NETPOLL_TSAN)
    from->tsan_.ended = true;
#endif
    BeforeSwitch(from, to, /*from_ends=*/true);
    // Nothing is saved, so `from` stays non-resumable and a stray SwitchContext to it is caught.
    context_arch::netpoll_platform_exit_to_stack(to_stack_pointer, from, transfer);
  }

  [[noreturn]] static void Exit(MachineContext* from, MachineContext* to, void* transfer) {
#if defined(NETPOLL_TSAN)
    if (from->tsan_.exit_point != nullptr) {
      // Go back to the context's first frame before switching: TSan's longjmp interceptor pops
      // every frame in between off the fiber's shadow call stack, so the fiber can be reused.
      from->tsan_.exit_to = to;
      from->tsan_.exit_transfer = transfer;
      siglongjmp(*static_cast<sigjmp_buf*>(from->tsan_.exit_point), 1);
    }
#endif
    SwitchForGood(from, to, transfer);
  }

  [[noreturn]] NETPOLL_NO_SANITIZE_THREAD static void Start(MachineContext* from, void* transfer,
                                                            ContextEntry entry, void* arg,
                                                            [[maybe_unused]] MachineContext* self) {
    AfterSwitch(/*fake_stack=*/nullptr, from);
#if defined(NETPOLL_TSAN)
    // Read back after the longjmp; volatile so that no register copy is trusted across it.
    MachineContext* volatile exiting = self;
    sigjmp_buf exit_point;
    self->tsan_.started = true;
    self->tsan_.exit_point = &exit_point;
    if (sigsetjmp(exit_point, /*savemask=*/0) != 0) {
      MachineContext* context = exiting;
      SwitchForGood(context, context->tsan_.exit_to, context->tsan_.exit_transfer);
    }
#endif
    entry(arg, transfer);
    NETPOLL_FATAL("a fiber context's entry function returned; it must leave with ExitContext");
  }
};

MachineContext::MachineContext(StackRegion stack, ContextEntry entry, void* arg) {
  ContextAccess::InitNew(this, stack, entry, arg);
}

MachineContext::~MachineContext() { ContextAccess::Destroy(this); }

void* SwitchContext(MachineContext* from, MachineContext* to, void* transfer) {
  return ContextAccess::Switch(from, to, transfer);
}

void ExitContext(MachineContext* from, MachineContext* to, void* transfer) {
  ContextAccess::Exit(from, to, transfer);
}

namespace context_arch {

NETPOLL_NO_SANITIZE_THREAD void netpoll_platform_context_start(MachineContext* from,
                                                               void* transfer, ContextEntry entry,
                                                               void* arg, MachineContext* self) {
  ContextAccess::Start(from, transfer, entry, arg, self);
}

}  // namespace context_arch

}  // namespace netpoll::platform
