#include "uthread/fiber_local.h"

#include <mutex>

#include "uthread/fiber.h"

namespace netpoll::uthread_internal {
namespace {

std::mutex& KeysMutex() {
  static std::mutex* mutex = new std::mutex();
  return *mutex;
}
std::vector<void (*)(void*)>& Destructors() {
  static std::vector<void (*)(void*)>* destructors = new std::vector<void (*)(void*)>();
  return *destructors;
}

void (*DestructorOf(int key))(void*) {
  std::lock_guard<std::mutex> lock(KeysMutex());
  return Destructors()[key];
}

// Plain threads keep their values here and destroy them at thread exit.
struct ThreadLocals {
  std::vector<void*> slots;
  ~ThreadLocals() { RunFiberLocalDestructors(slots); }
};
thread_local ThreadLocals thread_locals;

}  // namespace

int AllocateFiberLocalKey(void (*destroy)(void*)) {
  std::lock_guard<std::mutex> lock(KeysMutex());
  Destructors().push_back(destroy);
  return static_cast<int>(Destructors().size() - 1);
}

void*& FiberLocalSlot(int key) {
  Fiber* fiber = CurrentFiber();
  std::vector<void*>& slots = fiber != nullptr ? fiber->locals : thread_locals.slots;
  if (slots.size() <= static_cast<size_t>(key)) slots.resize(key + 1, nullptr);
  return slots[key];
}

void RunFiberLocalDestructors(std::vector<void*>& locals) {
  // A destructor may itself use fiber-locals (and so grow `locals`): index, don't iterate.
  for (size_t key = 0; key < locals.size(); ++key) {
    if (void* value = locals[key]) {
      locals[key] = nullptr;
      DestructorOf(static_cast<int>(key))(value);
    }
  }
  locals.clear();
}

}  // namespace netpoll::uthread_internal
