// The syscalls NetFD makes, as a table of function pointers, so tests can inject the kernel's
// rarer answers (EINTR from close, ECONNABORTED from accept, a write that claims more than it
// was given, a spurious "connected") at exactly the call they want (R11, R26, R36, R37, R39).
//
// Production code never changes the table. Tests swap entries with ScopedSyscall and must restore
// them before other threads can observe the change (install before starting the threads that
// make the calls).
#ifndef NETPOLL_NETFD_SYSCALLS_H_
#define NETPOLL_NETFD_SYSCALLS_H_

#include "platform/socket.h"

namespace netpoll::netfd {

struct Syscalls {
  platform::SysResult<size_t> (*read)(platform::SocketHandle, absl::Span<char>) = &platform::Read;
  platform::SysResult<size_t> (*write)(platform::SocketHandle, absl::Span<const char>) = &platform::Write;
  platform::SysResult<size_t> (*readv)(platform::SocketHandle, absl::Span<const platform::IoBuffer>) =
      &platform::ReadV;
  platform::SysResult<size_t> (*writev)(platform::SocketHandle,
                                        absl::Span<const platform::ConstIoBuffer>) = &platform::WriteV;
  platform::SysResult<size_t> (*recvfrom)(platform::SocketHandle, absl::Span<char>,
                                          platform::SocketAddress*) = &platform::RecvFrom;
  platform::SysResult<size_t> (*sendto)(platform::SocketHandle, absl::Span<const char>,
                                        const platform::SocketAddress&) = &platform::SendTo;
  platform::SysResult<platform::SocketHandle> (*accept)(platform::SocketHandle,
                                                        platform::SocketAddress*) = &platform::Accept;
  platform::ErrorCode (*connect)(platform::SocketHandle, const platform::SocketAddress&) =
      &platform::Connect;
  platform::SysResult<platform::ErrorCode> (*take_pending_error)(platform::SocketHandle) =
      &platform::TakePendingError;
  platform::SysResult<platform::SocketAddress> (*peer_address)(platform::SocketHandle) =
      &platform::GetPeerAddress;
  platform::ErrorCode (*close)(platform::SocketHandle) = &platform::CloseSocket;
};

// The table every NetFD uses.
Syscalls& syscalls();

// Test-only hooks inside NetFD's Close protocol (null in production).
struct CloseHooks {
  // After Close marked the descriptor closed and took its own reference, before it evicts the
  // waiters (R10).
  void (*after_mark_closed)() = nullptr;
};
CloseHooks& close_hooks();

// Replaces one entry for the scope: ScopedSyscall s(&Syscalls::close, &MyClose);
template <typename Fn>
class ScopedSyscall {
 public:
  ScopedSyscall(Fn Syscalls::*entry, Fn replacement) : entry_(entry), saved_(syscalls().*entry) {
    syscalls().*entry = replacement;
  }
  ~ScopedSyscall() { syscalls().*entry_ = saved_; }
  ScopedSyscall(const ScopedSyscall&) = delete;
  ScopedSyscall& operator=(const ScopedSyscall&) = delete;

 private:
  Fn Syscalls::*entry_;
  Fn saved_;
};

}  // namespace netpoll::netfd

#endif  // NETPOLL_NETFD_SYSCALLS_H_
