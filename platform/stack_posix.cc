#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "platform/check.h"
#include "platform/error.h"
#include "platform/os.h"
#include "platform/stack.h"

#if defined(NETPOLL_ASAN)
#include <sanitizer/asan_interface.h>
#endif

namespace netpoll::platform {
namespace {

#if defined(MAP_NORESERVE)
constexpr int kMapNoReserve = MAP_NORESERVE;
#else
constexpr int kMapNoReserve = 0;  // macOS: anonymous memory is never reserved up front anyway
#endif
#if defined(MAP_STACK)
constexpr int kMapStack = MAP_STACK;  // Linux 6.7+: also keeps transparent huge pages off stacks
#else
constexpr int kMapStack = 0;
#endif

#if defined(NETPOLL_OS_LINUX)
// Linux 6.13+ guard regions: the kernel marks the page's table entries so that any access faults,
// without changing the mapping's protection. The mapping is not split, so a stack is one mapping
// and neighbouring stacks merge into one: live fibers are no longer capped at about half of
// vm.max_map_count. Older kernels reject the advice (EINVAL) and the guard falls back to
// mprotect. Defined here because libc headers older than the kernel lack it.
#if defined(MADV_GUARD_INSTALL)
constexpr int kMadvGuardInstall = MADV_GUARD_INSTALL;
#else
constexpr int kMadvGuardInstall = 102;
#endif
#endif

// Whether guard regions work here, decided by the first guard page installed. seq_cst: read
// and written once per stack mapping (rare), so the simplest order costs nothing.
enum class GuardRegions { kUnknown, kSupported, kUnsupported };
std::atomic<GuardRegions> g_guard_regions{GuardRegions::kUnknown};

// Makes the page at `lowest` inaccessible: a guard region where the kernel has them, else
// PROT_NONE (which costs a mapping of its own). 0 or the errno of the failed call.
ErrorCode InstallGuardPage(void* lowest, size_t page) {
#if defined(NETPOLL_OS_LINUX)
  if (g_guard_regions.load(std::memory_order_seq_cst) != GuardRegions::kUnsupported) {
    if (madvise(lowest, page, kMadvGuardInstall) == 0) {
      g_guard_regions.store(GuardRegions::kSupported, std::memory_order_seq_cst);
      return 0;
    }
    const ErrorCode error = LastError();
    if (error != EINVAL) return error;
    g_guard_regions.store(GuardRegions::kUnsupported, std::memory_order_seq_cst);
  }
#endif
  return mprotect(lowest, page, PROT_NONE) == 0 ? 0 : LastError();
}

size_t PageSize() {
  static const size_t page_size = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return page_size;
}

size_t RoundUpToPage(size_t bytes) {
  const size_t page = PageSize();
  return (bytes + page - 1) / page * page;
}

// ---------------------------------------------------------------------------------------------
// Guard registry: where every live stack's guard page is, readable from a signal handler.
//
// Slots live in chunks that are allocated on demand and never freed (type-stable memory), found
// through a fixed table of chunk pointers, so the handler walks them with atomic loads only: no
// lock, no allocation. Registration and unregistration are rare (pooled stacks are registered
// once, when mapped) and take a std::mutex to manage the free list.
//
// A slot is published seqlock-style: guard_lowest == 0 means free or being rewritten. The writer
// clears guard_lowest before touching stack_highest and sets it last; a reader reads
// guard_lowest, then stack_highest, then guard_lowest again, and uses the slot only if both reads
// agree. Whether an address is in the guard depends on guard_lowest alone (the guard is always
// exactly one page), so only the printed stack range could ever be inconsistent, and the re-check
// rules that out too. The slot accesses are seq_cst rather than using fences: a seq_cst load that
// sees a store is ordered after it in the single total order, which is what the re-check needs,
// and ThreadSanitizer (which does not model fences) can follow it. They are rare (registration,
// unregistration, and a crash) so their cost does not matter.
// ---------------------------------------------------------------------------------------------

struct GuardSlot {
  std::atomic<uintptr_t> guard_lowest{0};
  std::atomic<uintptr_t> stack_highest{0};
};

constexpr uint32_t kSlotsPerChunk = 4096;
// 1024 chunks of 4096 slots: 4M live stacks, far beyond what memory or vm.max_map_count allow.
constexpr uint32_t kMaxChunks = 1024;

struct GuardChunk {
  GuardSlot slots[kSlotsPerChunk];
};

// Zero-initialised before any constructor runs, so usable from any static initialiser.
std::atomic<GuardChunk*> g_guard_chunks[kMaxChunks];
std::atomic<uint32_t> g_guard_chunk_count{0};
// The guard size, set before the first slot is published. A signal handler may not call sysconf.
std::atomic<size_t> g_guard_size{0};

class GuardRegistry {
 public:
  static GuardRegistry& Get() {
    // Leaked on purpose: stacks may be destroyed by other static destructors at exit.
    static GuardRegistry* const registry = new GuardRegistry;
    return *registry;
  }

  absl::StatusOr<uint32_t> Register(uintptr_t guard_lowest, uintptr_t stack_highest) {
    std::lock_guard<std::mutex> lock(mutex_);
    uint32_t index;
    if (!free_slots_.empty()) {
      index = free_slots_.back();
      free_slots_.pop_back();
    } else {
      if (next_unused_ == kSlotsPerChunk * kMaxChunks) {
        return absl::ResourceExhaustedError(
            absl::StrCat("too many live fiber stacks (the guard registry holds ",
                         kSlotsPerChunk * kMaxChunks, ")"));
      }
      index = next_unused_++;
      if (index % kSlotsPerChunk == 0) {
        // Relaxed: the mutex orders chunk creation among registrars, and readers (the signal
        // handler) only reach the chunk through the count published with release below.
        g_guard_chunks[index / kSlotsPerChunk].store(new GuardChunk, std::memory_order_relaxed);
        // Release: a handler that sees the new count also sees the chunk pointer and its zeroed slots.
        g_guard_chunk_count.store(index / kSlotsPerChunk + 1, std::memory_order_release);
      }
    }
    GuardSlot& slot = SlotAt(index);
    // seq_cst: the seqlock protocol above (written after the slot was cleared, before it is set).
    slot.stack_highest.store(stack_highest, std::memory_order_seq_cst);
    // seq_cst: publishes the slot; also a release, so a reader sees g_guard_size too.
    slot.guard_lowest.store(guard_lowest, std::memory_order_seq_cst);
    return index;
  }

  void Unregister(uint32_t index) {
    std::lock_guard<std::mutex> lock(mutex_);
    // seq_cst: the seqlock writer's "being rewritten" step, ordered before the next Register's
    // store of stack_highest in the single total order.
    SlotAt(index).guard_lowest.store(0, std::memory_order_seq_cst);
    free_slots_.push_back(index);
  }

 private:
  static GuardSlot& SlotAt(uint32_t index) {
    // Relaxed: the caller holds mutex_, under which the chunk was created.
    return g_guard_chunks[index / kSlotsPerChunk].load(std::memory_order_relaxed)
        ->slots[index % kSlotsPerChunk];
  }

  std::mutex mutex_;
  std::vector<uint32_t> free_slots_;  // guarded by mutex_
  uint32_t next_unused_ = 0;          // guarded by mutex_
};

struct GuardHit {
  uintptr_t guard_lowest;
  uintptr_t stack_highest;
};

// Async-signal-safe: atomic loads and arithmetic only.
bool FindGuard(uintptr_t address, GuardHit* hit) {
  // Acquire: pairs with the release store in Register, so the chunk pointers below are visible,
  // and so is g_guard_size, which Stack::Allocate stored before registering the first stack.
  const uint32_t chunks = g_guard_chunk_count.load(std::memory_order_acquire);
  if (chunks == 0) return false;  // no stack was ever made
  // Relaxed: ordered by the acquire load of the chunk count just above.
  const size_t guard_size = g_guard_size.load(std::memory_order_relaxed);
  for (uint32_t c = 0; c < chunks; ++c) {
    // Relaxed: the acquire load of the count made the pointer (stored before it) visible.
    const GuardChunk* chunk = g_guard_chunks[c].load(std::memory_order_relaxed);
    for (const GuardSlot& slot : chunk->slots) {
      // seq_cst (all three): the seqlock reader; if stack_highest came from a later Register,
      // the second load of guard_lowest is ordered after that Register's clearing store and
      // cannot return the old value again (a re-registration at the same address is the same
      // guard page, so that case is harmless).
      const uintptr_t guard = slot.guard_lowest.load(std::memory_order_seq_cst);
      if (guard == 0 || address - guard >= guard_size) continue;
      const uintptr_t highest = slot.stack_highest.load(std::memory_order_seq_cst);
      if (slot.guard_lowest.load(std::memory_order_seq_cst) != guard) continue;
      hit->guard_lowest = guard;
      hit->stack_highest = highest;
      return true;
    }
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// The fault handler.
// ---------------------------------------------------------------------------------------------

// The dispositions netpoll's handler replaced, so other faults go where they went before.
// Published once by InstallFaultHandlers; read by the handler.
struct sigaction g_previous_segv_storage;
struct sigaction g_previous_bus_storage;
std::atomic<const struct sigaction*> g_previous_segv{nullptr};
std::atomic<const struct sigaction*> g_previous_bus{nullptr};

// Appends `text` to buf at *len; async-signal-safe.
void AppendText(char* buf, size_t capacity, size_t* len, const char* text) {
  while (*text != '\0' && *len + 1 < capacity) buf[(*len)++] = *text++;
}

void AppendHex(char* buf, size_t capacity, size_t* len, uintptr_t value) {
  char digits[2 + sizeof(uintptr_t) * 2 + 1];
  size_t n = sizeof(digits) - 1;
  digits[n] = '\0';
  do {
    digits[--n] = "0123456789abcdef"[value & 0xf];
    value >>= 4;
  } while (value != 0);
  digits[--n] = 'x';
  digits[--n] = '0';
  AppendText(buf, capacity, len, digits + n);
}

[[noreturn]] void ReportOverflowAndAbort(uintptr_t fault_address, const GuardHit& hit) {
  char message[192];
  size_t len = 0;
  AppendText(message, sizeof(message), &len, "netpoll: fiber stack overflow (guard page hit at ");
  AppendHex(message, sizeof(message), &len, fault_address);
  AppendText(message, sizeof(message), &len, ", stack ");
  // Relaxed: the registry set it before the first guard was published.
  AppendHex(message, sizeof(message), &len,
            hit.guard_lowest + g_guard_size.load(std::memory_order_relaxed));
  AppendText(message, sizeof(message), &len, "-");
  AppendHex(message, sizeof(message), &len, hit.stack_highest);
  AppendText(message, sizeof(message), &len, ")\n");
  size_t written = 0;
  while (written < len) {
    ssize_t n = write(STDERR_FILENO, message + written, len - written);
    if (n > 0) {
      written += static_cast<size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      break;
    }
  }
  abort();
}

void ForwardToPreviousHandler(int signo, siginfo_t* info, void* ucontext) {
  // Acquire: pairs with the release store in InstallFaultHandlers, so the copy is complete.
  const struct sigaction* previous =
      (signo == SIGSEGV ? g_previous_segv : g_previous_bus).load(std::memory_order_acquire);
  if (previous != nullptr) {
    if ((previous->sa_flags & SA_SIGINFO) != 0) {
      if (previous->sa_sigaction != nullptr) {
        previous->sa_sigaction(signo, info, ucontext);
        return;
      }
    } else if (previous->sa_handler != SIG_DFL && previous->sa_handler != SIG_IGN) {
      previous->sa_handler(signo);
      return;
    }
  }
  // The default action (a fault cannot be ignored). Restore it and return: the faulting
  // instruction runs again and the kernel kills the process the usual way, with a core dump.
  struct sigaction default_action;
  memset(&default_action, 0, sizeof(default_action));
  default_action.sa_handler = SIG_DFL;
  sigemptyset(&default_action.sa_mask);
  sigaction(signo, &default_action, nullptr);
  // A signal sent with kill() or raise() has no instruction to re-run; send it again.
  if (info == nullptr || info->si_code <= 0) raise(signo);
}

void OnFaultSignal(int signo, siginfo_t* info, void* ucontext) {
  const int saved_errno = errno;
  if (info != nullptr && info->si_code > 0) {  // raised by the hardware, not by kill()
    const uintptr_t address = reinterpret_cast<uintptr_t>(info->si_addr);
    GuardHit hit;
    if (FindGuard(address, &hit)) ReportOverflowAndAbort(address, hit);
  }
  ForwardToPreviousHandler(signo, info, ucontext);
  errno = saved_errno;
}

absl::Status InstallFaultHandlers() {
  struct sigaction action;
  memset(&action, 0, sizeof(action));
  action.sa_sigaction = &OnFaultSignal;
  // SA_ONSTACK: the overflowing stack cannot hold a signal frame. SA_NODEFER is not set, so a
  // fault inside the handler itself kills the process instead of recursing.
  action.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&action.sa_mask);
  if (sigaction(SIGSEGV, &action, &g_previous_segv_storage) != 0) {
    return ErrorToStatus(LastError(), "sigaction(SIGSEGV) for the fiber stack overflow handler");
  }
  // Release: the handler that loads this pointer sees the whole copy.
  g_previous_segv.store(&g_previous_segv_storage, std::memory_order_release);
  if (sigaction(SIGBUS, &action, &g_previous_bus_storage) != 0) {
    return ErrorToStatus(LastError(), "sigaction(SIGBUS) for the fiber stack overflow handler");
  }
  // Release: as above.
  g_previous_bus.store(&g_previous_bus_storage, std::memory_order_release);
  return absl::OkStatus();
}

// The alternate signal stack netpoll gave a thread, freed when the thread exits.
constexpr size_t kMinAlternateStackSize = 16 * 1024;
constexpr size_t kAlternateStackSize = 64 * 1024;

class ThreadAlternateStack {
 public:
  ~ThreadAlternateStack() {
    if (mapping_ == nullptr) return;
    stack_t current;
    if (sigaltstack(nullptr, &current) == 0 && current.ss_sp == usable_) {
      // Put back whatever the thread had before (a sanitizer runtime frees its own at exit).
      stack_t restore = previous_;
      if ((restore.ss_flags & SS_DISABLE) == 0) restore.ss_flags = 0;
      sigaltstack(&restore, nullptr);
    }
    munmap(mapping_, mapping_size_);
  }

  bool installed() const { return mapping_ != nullptr; }

  absl::Status Install(const stack_t& previous) {
    const size_t page = PageSize();
    const size_t usable_size = RoundUpToPage(kAlternateStackSize);
    const size_t size = usable_size + page;
    void* mapping =
        mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | kMapNoReserve, -1, 0);
    if (mapping == MAP_FAILED) {
      return ErrorToStatus(LastError(), "mmap of the alternate signal stack");
    }
    // A guard page below it too: a broken handler faults instead of corrupting memory.
    if (const ErrorCode error = InstallGuardPage(mapping, page); error != 0) {
      munmap(mapping, size);
      return ErrorToStatus(error, "guard page of the alternate signal stack");
    }
    stack_t ours;
    memset(&ours, 0, sizeof(ours));
    ours.ss_sp = static_cast<char*>(mapping) + page;
    ours.ss_size = usable_size;
    ours.ss_flags = 0;
    if (sigaltstack(&ours, nullptr) != 0) {
      const ErrorCode error = LastError();
      munmap(mapping, size);
      return ErrorToStatus(error, "sigaltstack");
    }
    mapping_ = mapping;
    mapping_size_ = size;
    usable_ = ours.ss_sp;
    previous_ = previous;
    return absl::OkStatus();
  }

 private:
  void* mapping_ = nullptr;
  size_t mapping_size_ = 0;
  void* usable_ = nullptr;
  stack_t previous_{};
};

thread_local ThreadAlternateStack t_alternate_stack;
thread_local bool t_overflow_handler_ready = false;

// The probe of the trimming policy: whether anything was ever written to this page. It samples
// one word in every 32 bytes (128 words of a 4 KiB page) rather than all of them: a page that
// frames ran through holds return addresses, saved registers and pointers in dozens of words, so
// missing them all is negligible, and reading 512 words on every Release cost ~180 ns (the loop
// does not vectorise) against ~25 ns for the sample. Four accumulators keep the loads independent.
bool PageHoldsData(const void* page, size_t size) {
  const uint64_t* words = static_cast<const uint64_t*>(page);
  constexpr size_t kStride = 32 / sizeof(uint64_t);
  uint64_t any0 = 0, any1 = 0, any2 = 0, any3 = 0;
  for (size_t i = 0; i + 4 * kStride <= size / sizeof(uint64_t); i += 4 * kStride) {
    any0 |= words[i];
    any1 |= words[i + kStride];
    any2 |= words[i + 2 * kStride];
    any3 |= words[i + 3 * kStride];
  }
  return (any0 | any1 | any2 | any3) != 0;
}

void UnpoisonForSanitizers([[maybe_unused]] const StackRegion& region) {
#if defined(NETPOLL_ASAN)
  // Frames of a context that never returned leave their redzones poisoned; the next user of the
  // stack (and our probe) must not trip over them.
  ASAN_UNPOISON_MEMORY_REGION(region.lowest, region.size);
#endif
}

}  // namespace

bool GuardPagesSplitMappings() {
  return g_guard_regions.load(std::memory_order_seq_cst) != GuardRegions::kSupported;
}

// ---------------------------------------------------------------------------------------------
// Stack
// ---------------------------------------------------------------------------------------------

absl::StatusOr<Stack> Stack::Allocate(size_t usable_size) {
  if (usable_size == 0) {
    return absl::InvalidArgumentError("fiber stack size must be positive, got 0 bytes");
  }
  if (usable_size > kMaxStackSize) {
    return absl::InvalidArgumentError(absl::StrCat("fiber stack size of ", usable_size,
                                                   " bytes exceeds the maximum of ", kMaxStackSize,
                                                   " bytes (1 GiB)"));
  }
  const size_t page = PageSize();
  const size_t usable = RoundUpToPage(usable_size);
  const size_t total = usable + page;
  void* mapping = mmap(nullptr, total, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | kMapNoReserve | kMapStack, -1, 0);
  // ENOMEM here usually means the process ran out of memory mappings, not of memory: where the
  // guard page is PROT_NONE (kernels before 6.13) each stack is two, and vm.max_map_count
  // defaults to 65530.
  constexpr const char* kMapCountHint =
      " (the process may be out of memory mappings: raise vm.max_map_count for more fibers)";
  if (mapping == MAP_FAILED) {
    const ErrorCode error = LastError();
    return ErrorToStatus(error, absl::StrCat("mmap of a ", usable, "-byte fiber stack",
                                             error == ENOMEM ? kMapCountHint : ""));
  }
  if (const ErrorCode error = InstallGuardPage(mapping, page); error != 0) {
    munmap(mapping, total);
    return ErrorToStatus(error, absl::StrCat("guard page of a fiber stack",
                                             error == ENOMEM ? kMapCountHint : ""));
  }
  // Relaxed: the release store of the slot in Register publishes it to the handler.
  g_guard_size.store(page, std::memory_order_relaxed);
  const uintptr_t lowest = reinterpret_cast<uintptr_t>(mapping);
  absl::StatusOr<uint32_t> slot = GuardRegistry::Get().Register(lowest, lowest + total);
  if (!slot.ok()) {
    munmap(mapping, total);
    return slot.status();
  }
  return Stack(mapping, total, *slot);
}

Stack::Stack(Stack&& other) noexcept
    : mapping_(std::exchange(other.mapping_, nullptr)),
      mapping_size_(std::exchange(other.mapping_size_, 0)),
      guard_slot_(std::exchange(other.guard_slot_, 0)) {}

Stack& Stack::operator=(Stack&& other) noexcept {
  if (this != &other) {
    Reset();
    mapping_ = std::exchange(other.mapping_, nullptr);
    mapping_size_ = std::exchange(other.mapping_size_, 0);
    guard_slot_ = std::exchange(other.guard_slot_, 0);
  }
  return *this;
}

Stack::~Stack() { Reset(); }

void Stack::Reset() {
  if (mapping_ == nullptr) return;
  // Unregister first: once unmapped, the address range may be handed to someone else.
  GuardRegistry::Get().Unregister(guard_slot_);
  NETPOLL_CHECK(munmap(mapping_, mapping_size_) == 0, "munmap of a fiber stack failed");
  mapping_ = nullptr;
  mapping_size_ = 0;
}

StackRegion Stack::region() const {
  if (mapping_ == nullptr) return StackRegion{};
  const size_t page = PageSize();
  return StackRegion{static_cast<char*>(mapping_) + page, mapping_size_ - page};
}

size_t Stack::guard_size() const { return mapping_ == nullptr ? 0 : PageSize(); }

// ---------------------------------------------------------------------------------------------
// StackPool
// ---------------------------------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<StackPool>> StackPool::Create(StackPoolOptions options) {
  if (options.stack_size == 0 || options.stack_size > kMaxStackSize) {
    return absl::InvalidArgumentError(absl::StrCat("StackPool stack_size must be in [1, ",
                                                   kMaxStackSize, "] bytes, got ",
                                                   options.stack_size));
  }
  options.stack_size = RoundUpToPage(options.stack_size);
  options.trim_depth = options.trim_depth >= options.stack_size
                           ? options.stack_size
                           : RoundUpToPage(options.trim_depth);
  return std::unique_ptr<StackPool>(new StackPool(options));
}

StackPool::~StackPool() = default;  // cache_ unmaps its stacks

absl::StatusOr<Stack> StackPool::Acquire() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!cache_.empty()) {
      Stack stack = std::move(cache_.back());
      cache_.pop_back();
      ++stats_.reused;
      return stack;
    }
    ++stats_.mapped;
  }
  // Map outside the lock: mmap takes the process's mm lock and may be slow under pressure.
  absl::StatusOr<Stack> stack = Stack::Allocate(options_.stack_size);
  if (!stack.ok()) {
    std::lock_guard<std::mutex> lock(mutex_);
    --stats_.mapped;
  }
  return stack;
}

bool StackPool::TrimIfDeep(const Stack& stack) const {
  const StackRegion region = stack.region();
  const size_t page = stack.guard_size();
  if (options_.trim_depth + page > region.size) return false;  // trimming disabled
  char* const keep_from = static_cast<char*>(region.highest()) - options_.trim_depth;
  if (!PageHoldsData(keep_from - page, page)) return false;
  const size_t discard = static_cast<size_t>(keep_from - static_cast<char*>(region.lowest));
  // MADV_DONTNEED, not MADV_FREE: the pages must read as zero afterwards, or the probe would
  // report the next, shallow, fiber as deep.
  return madvise(region.lowest, discard, MADV_DONTNEED) == 0;
}

void StackPool::Release(Stack stack) {
  if (stack.empty()) return;
  const bool pool_size = stack.region().size == options_.stack_size;
  bool trimmed = false;
  if (pool_size) {
    UnpoisonForSanitizers(stack.region());
    trimmed = TrimIfDeep(stack);  // outside the lock: it reads a page and may make a syscall
  }
  Stack to_unmap;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (trimmed) ++stats_.trimmed;
    if (pool_size && cache_.size() < options_.max_cached_stacks) {
      cache_.push_back(std::move(stack));
    } else {
      ++stats_.unmapped;
      to_unmap = std::move(stack);
    }
  }
  // to_unmap (if any) is unmapped here, outside the lock.
}

StackPool::Stats StackPool::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  Stats stats = stats_;
  stats.cached = cache_.size();
  return stats;
}

// ---------------------------------------------------------------------------------------------
// Overflow reporting
// ---------------------------------------------------------------------------------------------

absl::Status InstallStackOverflowHandlerForThisThread() {
  if (t_overflow_handler_ready) return absl::OkStatus();
  // Once per process; a thread-safe static. A failure is remembered and reported to every caller.
  static const absl::Status process_status = InstallFaultHandlers();
  if (!process_status.ok()) return process_status;

  stack_t current;
  if (sigaltstack(nullptr, &current) != 0) {
    return ErrorToStatus(LastError(), "sigaltstack (query)");
  }
  const bool has_usable_stack =
      (current.ss_flags & SS_DISABLE) == 0 && current.ss_size >= kMinAlternateStackSize;
  if (!has_usable_stack && !t_alternate_stack.installed()) {
    absl::Status status = t_alternate_stack.Install(current);
    if (!status.ok()) return status;
  }
  t_overflow_handler_ready = true;
  return absl::OkStatus();
}

bool IsInStackGuard(const void* address) {
  GuardHit hit;
  return FindGuard(reinterpret_cast<uintptr_t>(address), &hit);
}

}  // namespace netpoll::platform
