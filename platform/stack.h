// Fiber stacks: mmap'd, lazily committed, guarded against overflow, and pooled.
//
// A Stack is one anonymous private mapping laid out as
//
//     lowest address                                                highest address
//     [ guard page, no access ][ usable bytes, read/write, committed on first touch ]
//                                                               ^ a context starts here
//
// Stacks grow down, so the guard page sits below the usable bytes: a fiber that overflows its
// stack touches the guard page and faults instead of silently writing into whatever lies below.
// On Linux 6.13+ the guard is a guard region (madvise MADV_GUARD_INSTALL), which leaves the
// mapping whole, so a stack costs one kernel memory mapping (and adjacent stacks merge into one);
// elsewhere it is PROT_NONE, which splits the mapping in two, so vm.max_map_count (65530 by
// default) caps a process at about 32,000 live stacks.
// The mapping is MAP_NORESERVE and nothing is written to it when it is made, so a 256 KiB stack
// costs only the pages its fiber really touches (typically 2-3 pages for a connection handler).
//
// StackPool keeps released stacks and hands them out again, so spawning a fiber costs no mmap,
// mprotect or munmap (see DESIGN.md: mapping a fresh stack per connection cost a peer a third of
// its accept rate). Its memory policy is documented on StackPoolOptions.
//
// Overflow reporting: every live Stack registers its guard page in a process-wide registry that a
// SIGSEGV/SIGBUS handler reads async-signal-safely. A thread that runs fibers calls
// InstallStackOverflowHandlerForThisThread() once; after that, a fault in any registered guard page
// prints
//     netpoll: fiber stack overflow (guard page hit at 0x..., stack 0x...-0x...)
// and aborts. Every other fault goes to the handler that was installed before netpoll's (or the
// default action), so ordinary crashes and sanitizer reports look exactly as they would without
// netpoll.
//
// Limitation: a single stack frame larger than the guard page (one page) can step over it. Code
// that keeps very large arrays on a fiber stack should be compiled with -fstack-clash-protection,
// which probes every page of a large frame.
#ifndef NETPOLL_PLATFORM_STACK_H_
#define NETPOLL_PLATFORM_STACK_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "platform/stack_region.h"  // StackRegion, the usable part of a Stack

namespace netpoll::platform {

// The usable size of a fiber stack when nobody asks for another. Go starts goroutines at 8 KiB and
// copies stacks to grow them; we cannot move C++ frames, so we reserve generously and rely on lazy
// commit: an unused stack page costs address space, not memory.
inline constexpr size_t kDefaultStackSize = 256 * 1024;

// The largest usable size Stack::Allocate accepts. Anything bigger is almost certainly a unit
// mistake (bytes vs KiB) rather than a fiber that needs a gigabyte of stack.
inline constexpr size_t kMaxStackSize = size_t{1} << 30;

// One fiber stack with its guard page. Move-only; owns its mapping and unmaps it on destruction.
//
// Thread-safety: a Stack is a value; distinct Stacks may be used on distinct threads freely. The
// memory is used by whichever thread runs the context on it.
class Stack {
 public:
  // Maps a stack with `usable_size` bytes (rounded up to whole pages) above one guard page, and
  // registers the guard page for overflow reporting.
  // Errors:
  //   InvalidArgument     usable_size is 0 or larger than kMaxStackSize;
  //   ResourceExhausted   (and the other codes of ErrorToStatus) when mmap or mprotect fails,
  //                       e.g. ENOMEM when the address space or vm.max_map_count is exhausted.
  static absl::StatusOr<Stack> Allocate(size_t usable_size = kDefaultStackSize);

  // An empty Stack owns nothing; region() is {nullptr, 0}.
  Stack() = default;
  Stack(Stack&& other) noexcept;
  Stack& operator=(Stack&& other) noexcept;
  Stack(const Stack&) = delete;
  Stack& operator=(const Stack&) = delete;
  // Unregisters the guard page and unmaps the stack. No context may be running on it, and no
  // suspended context on it may ever be resumed again.
  ~Stack();

  bool empty() const { return mapping_ == nullptr; }
  StackRegion region() const;
  // The address range of the guard page: [guard_lowest(), guard_lowest() + guard_size()).
  const void* guard_lowest() const { return mapping_; }
  size_t guard_size() const;

 private:
  Stack(void* mapping, size_t mapping_size, uint32_t guard_slot)
      : mapping_(mapping), mapping_size_(mapping_size), guard_slot_(guard_slot) {}
  void Reset();

  void* mapping_ = nullptr;
  size_t mapping_size_ = 0;
  uint32_t guard_slot_ = 0;  // index in the guard registry, for O(1) unregistration
};

// True while guard pages are made with PROT_NONE (each stack then costs two memory mappings);
// false once a guard region was installed, so stacks cost at most one. For tests and diagnostics.
bool GuardPagesSplitMappings();

// How a StackPool sizes, keeps and trims its stacks.
struct StackPoolOptions {
  // The usable size of every stack the pool hands out (rounded up to whole pages).
  size_t stack_size = kDefaultStackSize;

  // Released stacks beyond this many are unmapped instead of kept. Bounds the address space (and
  // the few committed top pages per stack) that a burst of fibers leaves behind.
  size_t max_cached_stacks = 1024;

  // Trimming policy. A stack keeps the pages its fiber touched when it goes back to the pool, so
  // the next fiber starts on warm pages without page faults. That is right for the common
  // shallow fiber, but a fiber that once recursed deep would pin that memory forever. So Release
  // looks at one page, the page just below `trim_depth` bytes from the top of the stack:
  //   - untouched (all zero): the fiber stayed shallow; the stack is cached as it is, no syscall;
  //   - touched: the fiber went deeper than trim_depth; everything below the top trim_depth
  //     bytes is returned to the OS with madvise(MADV_DONTNEED) (one syscall, only for such
  //     stacks), which also makes the probe page zero again for the next round.
  // Every frame stores at least a return address, so a fiber that ran through the probe page left
  // data in it. The probe samples one word in every 32 bytes of that page (a cheap read, ~25 ns,
  // of a page that is in cache). It misses a page covered by one large frame that never wrote
  // there (an untouched buffer); then that stack is simply not trimmed this time. Reading an
  // untouched probe page maps the shared zero page, which costs no memory.
  // Rounded up to whole pages. A value >= stack_size disables trimming.
  size_t trim_depth = 64 * 1024;
};

// A cache of stacks of one size, so that creating a fiber does not map memory.
//
// Thread-safety: thread-safe; Acquire and Release may be called from any threads concurrently (a
// fiber commonly ends on another worker than the one that spawned it). Uses one std::mutex, which
// unlike the system absl::Mutex is visible to ThreadSanitizer.
// Lifetime: stacks handed out own their memory and stay valid after the pool is destroyed.
class StackPool {
 public:
  // Errors: InvalidArgument if options.stack_size is 0 or larger than kMaxStackSize.
  static absl::StatusOr<std::unique_ptr<StackPool>> Create(StackPoolOptions options = {});

  StackPool(const StackPool&) = delete;
  StackPool& operator=(const StackPool&) = delete;
  // Unmaps the cached stacks.
  ~StackPool();

  // A stack of stack_size() usable bytes: the most recently released one if any (its top pages
  // are likely still committed and in cache), else a freshly mapped one.
  // Errors: those of Stack::Allocate when a new stack must be mapped.
  absl::StatusOr<Stack> Acquire();

  // Takes a stack back. No context may be running on it and no suspended context on it may be
  // resumed later. A stack of another size than stack_size() (one made by Stack::Allocate) is
  // accepted and unmapped. An empty Stack is ignored.
  void Release(Stack stack);

  size_t stack_size() const { return options_.stack_size; }

  // Counters since the pool was created, for tests, benchmarks and metrics.
  struct Stats {
    uint64_t mapped = 0;    // stacks this pool had to map (Acquire found the cache empty)
    uint64_t unmapped = 0;  // stacks Release unmapped (cache full, or not of the pool's size)
    uint64_t reused = 0;    // Acquires served from the cache
    uint64_t trimmed = 0;   // Releases that returned deep pages with madvise(MADV_DONTNEED)
    size_t cached = 0;      // stacks in the cache now
  };
  Stats stats() const;

 private:
  explicit StackPool(StackPoolOptions options) : options_(options) {}
  // Applies the trimming policy to `stack`; returns whether it gave memory back to the OS.
  bool TrimIfDeep(const Stack& stack) const;

  const StackPoolOptions options_;
  mutable std::mutex mutex_;
  std::vector<Stack> cache_;  // guarded by mutex_; LIFO, so the warmest stack is reused first
  Stats stats_;               // guarded by mutex_, except `cached`, computed from cache_
};

// Prepares the calling thread so that a fiber stack overflow on it is reported (see the top of
// this file) instead of killing the process with a bare SIGSEGV: installs, once per process, the
// SIGSEGV and SIGBUS handlers, and gives this thread an alternate signal stack (a handler cannot
// run on the stack that just overflowed). A thread that already has an alternate signal stack of
// at least 16 KiB (a sanitizer runtime installs one) keeps it. Idempotent; cheap after the first
// call on a thread. The alternate stack is freed when the thread exits.
// Thread-safety: call it from the thread being prepared; any number of threads may call it
// concurrently. Scheduler worker threads call it before running their first fiber.
// Errors: the ErrorToStatus() of a failing mmap, sigaltstack or sigaction.
absl::Status InstallStackOverflowHandlerForThisThread();

// Whether `address` lies in the guard page of a live Stack. Async-signal-safe (atomic loads only),
// so a custom crash handler may use it too.
bool IsInStackGuard(const void* address);

}  // namespace netpoll::platform

#endif  // NETPOLL_PLATFORM_STACK_H_
