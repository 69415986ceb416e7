// FiberLocal<T>: a value per fiber (and per plain OS thread, for code that runs outside fibers).
//
// Unlike thread_local, a FiberLocal stays with its fiber when the fiber migrates between worker
// threads (work stealing moves fibers around; thread_local would silently switch values under a
// fiber's feet). The value is created with `new T()` on first get() in a fiber and destroyed when
// the fiber ends; on a plain thread, when the thread exits.
//
//   static netpoll::FiberLocal<RequestContext> request_context;
//   request_context.get().user = "alice";
//
// Thread-safety: get() returns the calling fiber's (or thread's) own value; sharing that reference
// with others is the caller's business. Lifetime: FiberLocal objects are meant to be static; one
// that is destroyed leaks its slot (values already made are still destroyed with their fibers).
#ifndef NETPOLL_UTHREAD_FIBER_LOCAL_H_
#define NETPOLL_UTHREAD_FIBER_LOCAL_H_

#include <vector>

namespace netpoll {

namespace uthread_internal {
// Reserves a slot whose values are destroyed with `destroy`.
int AllocateFiberLocalKey(void (*destroy)(void*));
// The calling fiber's (or thread's) slot for `key`; null until set.
void*& FiberLocalSlot(int key);
// Destroys every value in `locals` (a fiber's slots) and clears them.
void RunFiberLocalDestructors(std::vector<void*>& locals);
}  // namespace uthread_internal

template <typename T>
class FiberLocal {
 public:
  FiberLocal() : key_(uthread_internal::AllocateFiberLocalKey(&Destroy)) {}
  FiberLocal(const FiberLocal&) = delete;
  FiberLocal& operator=(const FiberLocal&) = delete;

  T& get() {
    void*& slot = uthread_internal::FiberLocalSlot(key_);
    if (slot == nullptr) slot = new T();
    return *static_cast<T*>(slot);
  }
  T* operator->() { return &get(); }
  T& operator*() { return get(); }

 private:
  static void Destroy(void* value) { delete static_cast<T*>(value); }
  const int key_;
};

}  // namespace netpoll

#endif  // NETPOLL_UTHREAD_FIBER_LOCAL_H_
