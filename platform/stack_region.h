// StackRegion: the memory a fiber context runs on, as a plain pair of address and size.
//
// Split out of stack.h so that the context switch (context.h) depends on nothing but this struct:
// it does not care how a stack was made, and this header includes no Abseil or OS header, so the
// context switch also builds where stack.h's implementation does not exist yet (Windows).
//
// Thread-safety and lifetime: a StackRegion is a value that does not own the memory it names;
// whoever made the memory (a Stack, a StackPool) keeps it alive.
#ifndef NETPOLL_PLATFORM_STACK_REGION_H_
#define NETPOLL_PLATFORM_STACK_REGION_H_

#include <cstddef>

namespace netpoll::platform {

// The usable part of a stack, [lowest, lowest + size); excludes the guard page. A context that
// runs on it starts at highest() and grows towards lowest.
struct StackRegion {
  void* lowest = nullptr;
  size_t size = 0;

  void* highest() const { return static_cast<char*>(lowest) + size; }
};

}  // namespace netpoll::platform

#endif  // NETPOLL_PLATFORM_STACK_REGION_H_
