#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>

#include "platform/os.h"
#include "platform/socket.h"

namespace netpoll::platform {
namespace {

static_assert(sizeof(IoBuffer) == sizeof(iovec) && offsetof(IoBuffer, data) == offsetof(iovec, iov_base) &&
                  offsetof(IoBuffer, size) == offsetof(iovec, iov_len),
              "IoBuffer must have the layout of struct iovec");
static_assert(sizeof(ConstIoBuffer) == sizeof(iovec), "ConstIoBuffer must have the layout of iovec");

// Writes never raise SIGPIPE: a peer that went away is reported as EPIPE, as in Go.
#if defined(MSG_NOSIGNAL)
constexpr int kSendFlags = MSG_NOSIGNAL;
#else
constexpr int kSendFlags = 0;
#endif

int NativeFamily(AddressFamily family) {
  switch (family) {
    case AddressFamily::kIPv4:
      return AF_INET;
    case AddressFamily::kIPv6:
      return AF_INET6;
    case AddressFamily::kUnix:
      return AF_UNIX;
    case AddressFamily::kUnspecified:
      break;
  }
  return -1;
}

int NativeType(SocketType type) {
  switch (type) {
    case SocketType::kStream:
      return SOCK_STREAM;
    case SocketType::kDatagram:
      return SOCK_DGRAM;
    case SocketType::kSeqPacket:
      return SOCK_SEQPACKET;
  }
  return -1;
}

ErrorCode ResultOf(int rc) { return rc == 0 ? 0 : errno; }

SysResult<size_t> SizeResult(ssize_t n) {
  if (n < 0) return {0, errno};
  return {static_cast<size_t>(n), 0};
}

ErrorCode SetIntOption(int fd, int level, int name, int value) {
  return ResultOf(setsockopt(fd, level, name, &value, sizeof value));
}

SysResult<int> GetIntOption(int fd, int level, int name) {
  int value = 0;
  socklen_t length = sizeof value;
  if (getsockopt(fd, level, name, &value, &length) != 0) return {0, errno};
  return {value, 0};
}

#if !defined(SOCK_NONBLOCK)
// Systems without atomic flags (macOS): set them right after creation. There is a window in
// which a concurrent fork+exec could inherit the descriptor; nothing portable closes it.
ErrorCode MakeNonBlockingCloseOnExec(int fd) {
  int flags = fcntl(fd, F_GETFD);
  if (flags < 0 || fcntl(fd, F_SETFD, flags | FD_CLOEXEC) != 0) return errno;
  flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) return errno;
#if defined(SO_NOSIGPIPE)
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
#endif
  return 0;
}
#endif

}  // namespace

size_t MaxIoBuffers() {
#if defined(IOV_MAX)
  return IOV_MAX;
#else
  return 1024;
#endif
}

SysResult<SocketHandle> CreateSocket(AddressFamily family, SocketType type, int protocol) {
  int native_family = NativeFamily(family);
  if (native_family < 0) return {kInvalidSocket, EAFNOSUPPORT};
#if defined(SOCK_NONBLOCK)
  int fd = socket(native_family, NativeType(type) | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
  if (fd < 0) return {kInvalidSocket, errno};
#else
  int fd = socket(native_family, NativeType(type), protocol);
  if (fd < 0) return {kInvalidSocket, errno};
  if (ErrorCode error = MakeNonBlockingCloseOnExec(fd); error != 0) {
    close(fd);
    return {kInvalidSocket, error};
  }
#endif
  return {fd, 0};
}

SysResult<std::pair<SocketHandle, SocketHandle>> CreateSocketPair(SocketType type) {
  int fds[2];
#if defined(SOCK_NONBLOCK)
  if (socketpair(AF_UNIX, NativeType(type) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0) {
    return {{kInvalidSocket, kInvalidSocket}, errno};
  }
#else
  if (socketpair(AF_UNIX, NativeType(type), 0, fds) != 0) {
    return {{kInvalidSocket, kInvalidSocket}, errno};
  }
  for (int fd : fds) {
    if (ErrorCode error = MakeNonBlockingCloseOnExec(fd); error != 0) {
      close(fds[0]);
      close(fds[1]);
      return {{kInvalidSocket, kInvalidSocket}, error};
    }
  }
#endif
  return {{fds[0], fds[1]}, 0};
}

ErrorCode CloseSocket(SocketHandle handle) { return ResultOf(close(handle)); }

ErrorCode Bind(SocketHandle handle, const SocketAddress& address) {
  return ResultOf(bind(handle, static_cast<const sockaddr*>(address.native()),
                       static_cast<socklen_t>(address.native_length())));
}

ErrorCode Listen(SocketHandle handle, int backlog) { return ResultOf(listen(handle, backlog)); }

int MaxListenBacklog() {
#if defined(NETPOLL_OS_LINUX)
  // The kernel silently caps the backlog at somaxconn; ask for exactly that, as Go does.
  if (FILE* f = std::fopen("/proc/sys/net/core/somaxconn", "r")) {
    int value = 0;
    bool ok = std::fscanf(f, "%d", &value) == 1 && value > 0;
    std::fclose(f);
    if (ok) return value > 65535 ? 65535 : value;
  }
#endif
  return SOMAXCONN;
}

ErrorCode Connect(SocketHandle handle, const SocketAddress& address) {
  return ResultOf(connect(handle, static_cast<const sockaddr*>(address.native()),
                          static_cast<socklen_t>(address.native_length())));
}

SysResult<SocketHandle> Accept(SocketHandle listener, SocketAddress* peer) {
  sockaddr_storage storage;
  socklen_t length = sizeof storage;
  sockaddr* addr = peer != nullptr ? reinterpret_cast<sockaddr*>(&storage) : nullptr;
  socklen_t* length_ptr = peer != nullptr ? &length : nullptr;
#if defined(SOCK_NONBLOCK)
  int fd = accept4(listener, addr, length_ptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd < 0) return {kInvalidSocket, errno};
#else
  int fd = accept(listener, addr, length_ptr);
  if (fd < 0) return {kInvalidSocket, errno};
  if (ErrorCode error = MakeNonBlockingCloseOnExec(fd); error != 0) {
    close(fd);
    return {kInvalidSocket, error};
  }
#endif
  if (peer != nullptr) {
    absl::StatusOr<SocketAddress> address = SocketAddress::FromNative(&storage, length);
    *peer = address.ok() ? *address : SocketAddress();
  }
  return {fd, 0};
}

ErrorCode Shutdown(SocketHandle handle, ShutdownHow how) {
  int native = how == ShutdownHow::kRead ? SHUT_RD : how == ShutdownHow::kWrite ? SHUT_WR : SHUT_RDWR;
  return ResultOf(shutdown(handle, native));
}

SysResult<size_t> Read(SocketHandle handle, absl::Span<char> buffer) {
  return SizeResult(read(handle, buffer.data(), buffer.size()));
}

SysResult<size_t> Write(SocketHandle handle, absl::Span<const char> buffer) {
  ssize_t n = send(handle, buffer.data(), buffer.size(), kSendFlags);
  if (n < 0 && errno == ENOTSOCK) n = write(handle, buffer.data(), buffer.size());  // A pipe.
  return SizeResult(n);
}

SysResult<size_t> ReadV(SocketHandle handle, absl::Span<const IoBuffer> buffers) {
  return SizeResult(readv(handle, reinterpret_cast<const iovec*>(buffers.data()),
                          static_cast<int>(buffers.size())));
}

SysResult<size_t> WriteV(SocketHandle handle, absl::Span<const ConstIoBuffer> buffers) {
  msghdr message{};
  message.msg_iov = const_cast<iovec*>(reinterpret_cast<const iovec*>(buffers.data()));
  message.msg_iovlen = buffers.size();
  ssize_t n = sendmsg(handle, &message, kSendFlags);
  if (n < 0 && errno == ENOTSOCK) {
    n = writev(handle, message.msg_iov, static_cast<int>(buffers.size()));
  }
  return SizeResult(n);
}

SysResult<size_t> RecvFrom(SocketHandle handle, absl::Span<char> buffer, SocketAddress* from) {
  sockaddr_storage storage;
  socklen_t length = sizeof storage;
  ssize_t n = recvfrom(handle, buffer.data(), buffer.size(), 0,
                       from != nullptr ? reinterpret_cast<sockaddr*>(&storage) : nullptr,
                       from != nullptr ? &length : nullptr);
  if (n < 0) return {0, errno};
  if (from != nullptr) {
    absl::StatusOr<SocketAddress> address = SocketAddress::FromNative(&storage, length);
    *from = address.ok() ? *address : SocketAddress();
  }
  return {static_cast<size_t>(n), 0};
}

SysResult<size_t> SendTo(SocketHandle handle, absl::Span<const char> buffer, const SocketAddress& to) {
  return SizeResult(sendto(handle, buffer.data(), buffer.size(), kSendFlags,
                           to.empty() ? nullptr : static_cast<const sockaddr*>(to.native()),
                           static_cast<socklen_t>(to.native_length())));
}

ErrorCode SetNonBlocking(SocketHandle handle, bool non_blocking) {
  int flags = fcntl(handle, F_GETFL);
  if (flags < 0) return errno;
  int wanted = non_blocking ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
  if (wanted == flags) return 0;
  return ResultOf(fcntl(handle, F_SETFL, wanted));
}

SysResult<bool> IsNonBlocking(SocketHandle handle) {
  int flags = fcntl(handle, F_GETFL);
  if (flags < 0) return {false, errno};
  return {(flags & O_NONBLOCK) != 0, 0};
}

ErrorCode SetNoDelay(SocketHandle handle, bool enable) {
  return SetIntOption(handle, IPPROTO_TCP, TCP_NODELAY, enable ? 1 : 0);
}

ErrorCode SetKeepAlive(SocketHandle handle, bool enable) {
  return SetIntOption(handle, SOL_SOCKET, SO_KEEPALIVE, enable ? 1 : 0);
}

ErrorCode SetKeepAlivePeriod(SocketHandle handle, int seconds) {
  if (seconds < 1) return EINVAL;
#if defined(TCP_KEEPIDLE)
  if (ErrorCode e = SetIntOption(handle, IPPROTO_TCP, TCP_KEEPIDLE, seconds); e != 0) return e;
#elif defined(TCP_KEEPALIVE)
  if (ErrorCode e = SetIntOption(handle, IPPROTO_TCP, TCP_KEEPALIVE, seconds); e != 0) return e;
#endif
#if defined(TCP_KEEPINTVL)
  if (ErrorCode e = SetIntOption(handle, IPPROTO_TCP, TCP_KEEPINTVL, seconds); e != 0) return e;
#endif
  return 0;
}

ErrorCode SetReuseAddress(SocketHandle handle, bool enable) {
  return SetIntOption(handle, SOL_SOCKET, SO_REUSEADDR, enable ? 1 : 0);
}

ErrorCode SetReusePort(SocketHandle handle, bool enable) {
#if defined(SO_REUSEPORT)
  return SetIntOption(handle, SOL_SOCKET, SO_REUSEPORT, enable ? 1 : 0);
#else
  (void)handle;
  (void)enable;
  return EOPNOTSUPP;
#endif
}

ErrorCode SetIPv6Only(SocketHandle handle, bool enable) {
  return SetIntOption(handle, IPPROTO_IPV6, IPV6_V6ONLY, enable ? 1 : 0);
}

ErrorCode SetBroadcast(SocketHandle handle, bool enable) {
  return SetIntOption(handle, SOL_SOCKET, SO_BROADCAST, enable ? 1 : 0);
}

ErrorCode SetLinger(SocketHandle handle, bool enable, int seconds) {
  linger value{};
  value.l_onoff = enable ? 1 : 0;
  value.l_linger = seconds;
  return ResultOf(setsockopt(handle, SOL_SOCKET, SO_LINGER, &value, sizeof value));
}

ErrorCode SetReceiveBufferSize(SocketHandle handle, int bytes) {
  return SetIntOption(handle, SOL_SOCKET, SO_RCVBUF, bytes);
}

ErrorCode SetSendBufferSize(SocketHandle handle, int bytes) {
  return SetIntOption(handle, SOL_SOCKET, SO_SNDBUF, bytes);
}

SysResult<int> GetReceiveBufferSize(SocketHandle handle) {
  return GetIntOption(handle, SOL_SOCKET, SO_RCVBUF);
}

SysResult<int> GetSendBufferSize(SocketHandle handle) {
  return GetIntOption(handle, SOL_SOCKET, SO_SNDBUF);
}

SysResult<bool> GetNoDelay(SocketHandle handle) {
  SysResult<int> r = GetIntOption(handle, IPPROTO_TCP, TCP_NODELAY);
  return {r.value != 0, r.error};
}

SysResult<bool> GetKeepAlive(SocketHandle handle) {
  SysResult<int> r = GetIntOption(handle, SOL_SOCKET, SO_KEEPALIVE);
  return {r.value != 0, r.error};
}

SysResult<ErrorCode> TakePendingError(SocketHandle handle) {
  return GetIntOption(handle, SOL_SOCKET, SO_ERROR);
}

SysResult<SocketType> GetSocketType(SocketHandle handle) {
  SysResult<int> r = GetIntOption(handle, SOL_SOCKET, SO_TYPE);
  if (!r.ok()) return {SocketType::kStream, r.error};
  switch (r.value) {
    case SOCK_STREAM:
      return {SocketType::kStream, 0};
    case SOCK_DGRAM:
      return {SocketType::kDatagram, 0};
    case SOCK_SEQPACKET:
      return {SocketType::kSeqPacket, 0};
    default:
      return {SocketType::kStream, EPROTOTYPE};
  }
}

namespace {
template <typename Getter>
SysResult<SocketAddress> GetAddress(SocketHandle handle, Getter getter) {
  SocketAddress address;
  socklen_t length = SocketAddress::kStorageSize;
  if (getter(handle, static_cast<sockaddr*>(address.mutable_native()), &length) != 0) {
    return {SocketAddress(), errno};
  }
  address.set_native_length(length);
  return {address, 0};
}
}  // namespace

SysResult<SocketAddress> GetLocalAddress(SocketHandle handle) { return GetAddress(handle, getsockname); }

SysResult<SocketAddress> GetPeerAddress(SocketHandle handle) { return GetAddress(handle, getpeername); }

ErrorCode RemoveUnixSocketFile(const std::string& path) {
  if (path.empty() || path[0] == '@') return 0;
  return ResultOf(unlink(path.c_str()));
}

bool IsOpenDescriptor(SocketHandle handle) { return fcntl(handle, F_GETFD) >= 0; }

}  // namespace netpoll::platform
