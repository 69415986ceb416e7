// Thin, policy-free wrappers over the socket syscalls, in portable types.
//
// Every function makes exactly one syscall (or the fixed sequence the OS needs for one logical
// step) and reports failure as a raw ErrorCode: no retry on EINTR, no waiting on EAGAIN. Policy
// lives above (netfd/). Sockets are always created non-blocking and close-on-exec, atomically
// where the OS can (SOCK_NONBLOCK|SOCK_CLOEXEC, accept4).
//
// Thread-safety: every function is as thread-safe as the syscall it wraps; none keeps state.
// Ownership: a SocketHandle returned here is owned by the caller, who must CloseSocket() it once.
#ifndef NETPOLL_PLATFORM_SOCKET_H_
#define NETPOLL_PLATFORM_SOCKET_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include "absl/types/span.h"
#include "platform/error.h"
#include "platform/os.h"
#include "platform/socket_address.h"

namespace netpoll::platform {

#if defined(NETPOLL_OS_WINDOWS)
using SocketHandle = uintptr_t;  // SOCKET
inline constexpr SocketHandle kInvalidSocket = ~static_cast<uintptr_t>(0);
#else
using SocketHandle = int;
inline constexpr SocketHandle kInvalidSocket = -1;
#endif

// The result of one syscall: a value, or the error it failed with (error != 0).
template <typename T>
struct SysResult {
  T value{};
  ErrorCode error = 0;
  bool ok() const { return error == 0; }
};

enum class SocketType { kStream, kDatagram, kSeqPacket };
enum class ShutdownHow { kRead, kWrite, kBoth };

// One buffer of a scatter/gather operation. It has the layout of the OS's own (struct iovec on
// POSIX), so a span of them is passed to the kernel without copying.
struct IoBuffer {
  void* data;
  size_t size;
};
struct ConstIoBuffer {
  const void* data;
  size_t size;
};
// The most buffers one ReadV/WriteV call accepts (IOV_MAX); callers pass at most this many.
size_t MaxIoBuffers();

SysResult<SocketHandle> CreateSocket(AddressFamily family, SocketType type, int protocol = 0);
// A connected pair of Unix-domain sockets (tests and in-process channels).
SysResult<std::pair<SocketHandle, SocketHandle>> CreateSocketPair(SocketType type);

// Closes `handle`. Never retried: after EINTR the descriptor is gone all the same on Linux and
// unspecified elsewhere, and a retry could close a number another thread was just given.
ErrorCode CloseSocket(SocketHandle handle);

ErrorCode Bind(SocketHandle handle, const SocketAddress& address);
ErrorCode Listen(SocketHandle handle, int backlog);
// The largest accept backlog the OS allows (SOMAXCONN, or /proc/sys/net/core/somaxconn on Linux).
int MaxListenBacklog();
// Starts a connect. A non-blocking socket normally fails with kInProgress; see netfd for the rest.
ErrorCode Connect(SocketHandle handle, const SocketAddress& address);
// Accepts one connection as a non-blocking, close-on-exec socket; fills `peer` if non-null.
SysResult<SocketHandle> Accept(SocketHandle listener, SocketAddress* peer);
ErrorCode Shutdown(SocketHandle handle, ShutdownHow how);

// Byte I/O. The value is the number of bytes transferred; 0 from Read on a stream means EOF.
SysResult<size_t> Read(SocketHandle handle, absl::Span<char> buffer);
SysResult<size_t> Write(SocketHandle handle, absl::Span<const char> buffer);
SysResult<size_t> ReadV(SocketHandle handle, absl::Span<const IoBuffer> buffers);
SysResult<size_t> WriteV(SocketHandle handle, absl::Span<const ConstIoBuffer> buffers);
// Datagram I/O. RecvFrom fills `from` if non-null. SendTo with an empty `to` sends to the
// connected peer.
SysResult<size_t> RecvFrom(SocketHandle handle, absl::Span<char> buffer, SocketAddress* from);
SysResult<size_t> SendTo(SocketHandle handle, absl::Span<const char> buffer, const SocketAddress& to);

// Socket options.
ErrorCode SetNonBlocking(SocketHandle handle, bool non_blocking);
SysResult<bool> IsNonBlocking(SocketHandle handle);
ErrorCode SetNoDelay(SocketHandle handle, bool enable);          // TCP_NODELAY
ErrorCode SetKeepAlive(SocketHandle handle, bool enable);        // SO_KEEPALIVE
// Idle time before the first probe and the interval between probes, in whole seconds (>= 1).
ErrorCode SetKeepAlivePeriod(SocketHandle handle, int seconds);
// Whether a connection accepted from a TCP listener starts with the listener's TCP_NODELAY and
// keep-alive settings (SO_KEEPALIVE and the period). On Linux the accepted socket is a copy of the
// listening one, so options set once on the listener spare every accept their setsockopt calls.
// Elsewhere (not relied on): set them on each accepted socket.
#if defined(NETPOLL_OS_LINUX)
inline constexpr bool kAcceptedSocketsInheritTcpOptions = true;
#else
inline constexpr bool kAcceptedSocketsInheritTcpOptions = false;
#endif
ErrorCode SetReuseAddress(SocketHandle handle, bool enable);     // SO_REUSEADDR
ErrorCode SetReusePort(SocketHandle handle, bool enable);        // SO_REUSEPORT
ErrorCode SetIPv6Only(SocketHandle handle, bool enable);         // IPV6_V6ONLY
ErrorCode SetBroadcast(SocketHandle handle, bool enable);        // SO_BROADCAST
ErrorCode SetLinger(SocketHandle handle, bool enable, int seconds);  // SO_LINGER
ErrorCode SetReceiveBufferSize(SocketHandle handle, int bytes);  // SO_RCVBUF
ErrorCode SetSendBufferSize(SocketHandle handle, int bytes);     // SO_SNDBUF
SysResult<int> GetReceiveBufferSize(SocketHandle handle);
SysResult<int> GetSendBufferSize(SocketHandle handle);
SysResult<bool> GetNoDelay(SocketHandle handle);
SysResult<bool> GetKeepAlive(SocketHandle handle);
// The pending error of the socket (SO_ERROR), which reading clears; value 0 = none.
SysResult<ErrorCode> TakePendingError(SocketHandle handle);
SysResult<SocketType> GetSocketType(SocketHandle handle);
SysResult<SocketAddress> GetLocalAddress(SocketHandle handle);  // getsockname
SysResult<SocketAddress> GetPeerAddress(SocketHandle handle);   // getpeername

// Removes the file a Unix-domain listener created at `path` (no-op for "@abstract" names).
// Returns the unlink(2) error, ENOENT if it is already gone.
ErrorCode RemoveUnixSocketFile(const std::string& path);

// Whether `handle` names an open descriptor of this process (tests, leak checks).
bool IsOpenDescriptor(SocketHandle handle);

}  // namespace netpoll::platform

#endif  // NETPOLL_PLATFORM_SOCKET_H_
