#include "platform/socket.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace netpoll::platform {
namespace {

// Blocks (bounded) until `fd` is ready for `events`; fails the test on timeout.
void WaitFor(SocketHandle fd, short events) {
  pollfd p{fd, events, 0};
  ASSERT_EQ(poll(&p, 1, 10'000), 1) << "socket not ready within 10 s";
}

class Listener {
 public:
  explicit Listener(const SocketAddress& address) {
    SysResult<SocketHandle> s = CreateSocket(address.family(), SocketType::kStream);
    EXPECT_TRUE(s.ok()) << ErrorName(s.error);
    fd_ = s.value;
    EXPECT_EQ(SetReuseAddress(fd_, true), 0);
    EXPECT_EQ(Bind(fd_, address), 0) << ErrorName(LastError());
    EXPECT_EQ(Listen(fd_, MaxListenBacklog()), 0);
    SysResult<SocketAddress> local = GetLocalAddress(fd_);
    EXPECT_TRUE(local.ok());
    address_ = local.value;
  }
  ~Listener() { CloseSocket(fd_); }
  SocketHandle fd() const { return fd_; }
  const SocketAddress& address() const { return address_; }

 private:
  SocketHandle fd_ = kInvalidSocket;
  SocketAddress address_;
};

// Connects a new socket to `listener` and accepts it; returns {client, server}.
std::pair<SocketHandle, SocketHandle> ConnectPair(const Listener& listener) {
  SysResult<SocketHandle> client = CreateSocket(listener.address().family(), SocketType::kStream);
  EXPECT_TRUE(client.ok());
  ErrorCode e = Connect(client.value, listener.address());
  EXPECT_TRUE(e == 0 || ClassifyError(e) == ErrorKind::kInProgress) << ErrorName(e);
  WaitFor(listener.fd(), POLLIN);
  SocketAddress peer;
  SysResult<SocketHandle> server = Accept(listener.fd(), &peer);
  EXPECT_TRUE(server.ok()) << ErrorName(server.error);
  WaitFor(client.value, POLLOUT);
  SysResult<ErrorCode> pending = TakePendingError(client.value);
  EXPECT_TRUE(pending.ok());
  EXPECT_EQ(pending.value, 0);
  SysResult<SocketAddress> client_local = GetLocalAddress(client.value);
  EXPECT_TRUE(client_local.ok());
  if (listener.address().family() != AddressFamily::kUnix) {
    EXPECT_EQ(peer, client_local.value);
  }
  return {client.value, server.value};
}

void ExpectNonBlockingCloseOnExec(SocketHandle fd) {
  SysResult<bool> non_blocking = IsNonBlocking(fd);
  ASSERT_TRUE(non_blocking.ok());
  EXPECT_TRUE(non_blocking.value);
  EXPECT_TRUE(fcntl(fd, F_GETFD) & FD_CLOEXEC);
}

TEST(Socket, CreateIsNonBlockingAndCloseOnExec) {
  for (AddressFamily family : {AddressFamily::kIPv4, AddressFamily::kIPv6, AddressFamily::kUnix}) {
    for (SocketType type : {SocketType::kStream, SocketType::kDatagram}) {
      SysResult<SocketHandle> s = CreateSocket(family, type);
      ASSERT_TRUE(s.ok()) << AddressFamilyName(family) << ": " << ErrorName(s.error);
      ExpectNonBlockingCloseOnExec(s.value);
      SysResult<SocketType> got = GetSocketType(s.value);
      ASSERT_TRUE(got.ok());
      EXPECT_EQ(got.value, type);
      EXPECT_EQ(CloseSocket(s.value), 0);
    }
  }
}

TEST(Socket, CreateRejectsUnknownFamily) {
  SysResult<SocketHandle> s = CreateSocket(AddressFamily::kUnspecified, SocketType::kStream);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(ClassifyError(s.error), ErrorKind::kNotSupported);
  EXPECT_EQ(s.value, kInvalidSocket);
}

TEST(Socket, CloseTwiceReportsBadDescriptor) {
  SysResult<SocketHandle> s = CreateSocket(AddressFamily::kIPv4, SocketType::kStream);
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(IsOpenDescriptor(s.value));
  EXPECT_EQ(CloseSocket(s.value), 0);
  EXPECT_FALSE(IsOpenDescriptor(s.value));
  EXPECT_EQ(ClassifyError(CloseSocket(s.value)), ErrorKind::kBadDescriptor);
}

TEST(Socket, SocketPairTransfersBothWays) {
  auto pair = CreateSocketPair(SocketType::kStream);
  ASSERT_TRUE(pair.ok());
  auto [a, b] = pair.value;
  ExpectNonBlockingCloseOnExec(a);
  ExpectNonBlockingCloseOnExec(b);
  const char hello[] = "hello";
  SysResult<size_t> w = Write(a, absl::MakeConstSpan(hello, 5));
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w.value, 5u);
  char buffer[16];
  SysResult<size_t> r = Read(b, absl::MakeSpan(buffer));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(std::string(buffer, r.value), "hello");
  // Nothing more to read: a non-blocking socket says so instead of blocking.
  r = Read(b, absl::MakeSpan(buffer));
  EXPECT_EQ(ClassifyError(r.error), ErrorKind::kWouldBlock);
  CloseSocket(a);
  CloseSocket(b);
}

TEST(Socket, TcpOverIPv4AndIPv6) {
  for (IPAddress ip : {IPAddress::V4Loopback(), IPAddress::V6Loopback()}) {
    Listener listener(SocketAddress::FromIP(ip, 0));
    EXPECT_NE(listener.address().port(), 0);
    auto [client, server] = ConnectPair(listener);
    ExpectNonBlockingCloseOnExec(server);
    SysResult<SocketAddress> peer = GetPeerAddress(client);
    ASSERT_TRUE(peer.ok());
    EXPECT_EQ(peer.value, listener.address());

    std::string payload(100000, 'x');
    for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>('a' + i % 26);
    size_t sent = 0;
    std::string received;
    char buffer[65536];
    while (received.size() < payload.size()) {
      if (sent < payload.size()) {
        SysResult<size_t> w = Write(client, absl::MakeConstSpan(payload).subspan(sent));
        if (w.ok()) {
          sent += w.value;
        } else {
          ASSERT_EQ(ClassifyError(w.error), ErrorKind::kWouldBlock);
        }
      }
      SysResult<size_t> r = Read(server, absl::MakeSpan(buffer));
      if (r.ok()) {
        received.append(buffer, r.value);
      } else {
        ASSERT_EQ(ClassifyError(r.error), ErrorKind::kWouldBlock);
        WaitFor(server, POLLIN);
      }
    }
    EXPECT_EQ(received, payload);

    // Half-close: the server reads EOF, and can still write back.
    EXPECT_EQ(Shutdown(client, ShutdownHow::kWrite), 0);
    WaitFor(server, POLLIN);
    SysResult<size_t> eof = Read(server, absl::MakeSpan(buffer));
    ASSERT_TRUE(eof.ok());
    EXPECT_EQ(eof.value, 0u);
    ASSERT_TRUE(Write(server, absl::MakeConstSpan("ok", 2)).ok());
    WaitFor(client, POLLIN);
    SysResult<size_t> back = Read(client, absl::MakeSpan(buffer));
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(std::string(buffer, back.value), "ok");
    CloseSocket(client);
    CloseSocket(server);
  }
}

TEST(Socket, UnixStream) {
  // Bazel's test directories can be longer than a Unix socket path may be; /tmp is short.
  std::string path = "/tmp/netpoll_socket_test." + std::to_string(getpid()) + ".sock";
  ::unlink(path.c_str());
  absl::StatusOr<SocketAddress> address = SocketAddress::FromUnixPath(path);
  ASSERT_TRUE(address.ok());
  Listener listener(*address);
  EXPECT_EQ(listener.address().unix_path(), path);
  auto [client, server] = ConnectPair(listener);
  ASSERT_TRUE(Write(client, absl::MakeConstSpan("unix", 4)).ok());
  WaitFor(server, POLLIN);
  char buffer[8];
  SysResult<size_t> r = Read(server, absl::MakeSpan(buffer));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(std::string(buffer, r.value), "unix");
  CloseSocket(client);
  CloseSocket(server);
  ::unlink(path.c_str());
}

TEST(Socket, ScatterGather) {
  auto pair = CreateSocketPair(SocketType::kStream);
  ASSERT_TRUE(pair.ok());
  auto [a, b] = pair.value;
  EXPECT_GE(MaxIoBuffers(), 16u);
  ConstIoBuffer out[] = {{"abc", 3}, {"", 0}, {"defg", 4}};
  SysResult<size_t> w = WriteV(a, absl::MakeConstSpan(out));
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w.value, 7u);
  char first[2], second[10];
  IoBuffer in[] = {{first, sizeof first}, {second, sizeof second}};
  SysResult<size_t> r = ReadV(b, absl::MakeConstSpan(in));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.value, 7u);
  EXPECT_EQ(std::string(first, 2), "ab");
  EXPECT_EQ(std::string(second, 5), "cdefg");
  CloseSocket(a);
  CloseSocket(b);
}

TEST(Socket, WriteToClosedPeerIsBrokenPipeNotSignal) {
  auto pair = CreateSocketPair(SocketType::kStream);
  ASSERT_TRUE(pair.ok());
  auto [a, b] = pair.value;
  CloseSocket(b);
  // Without MSG_NOSIGNAL this would kill the test with SIGPIPE.
  SysResult<size_t> w = Write(a, absl::MakeConstSpan("x", 1));
  EXPECT_EQ(ClassifyError(w.error), ErrorKind::kBrokenPipe);
  ConstIoBuffer out[] = {{"y", 1}};
  EXPECT_EQ(ClassifyError(WriteV(a, absl::MakeConstSpan(out)).error), ErrorKind::kBrokenPipe);
  CloseSocket(a);
}

TEST(Socket, UdpSendToAndRecvFrom) {
  SysResult<SocketHandle> receiver = CreateSocket(AddressFamily::kIPv4, SocketType::kDatagram);
  SysResult<SocketHandle> sender = CreateSocket(AddressFamily::kIPv4, SocketType::kDatagram);
  ASSERT_TRUE(receiver.ok() && sender.ok());
  ASSERT_EQ(Bind(receiver.value, SocketAddress::FromIP(IPAddress::V4Loopback(), 0)), 0);
  ASSERT_EQ(Bind(sender.value, SocketAddress::FromIP(IPAddress::V4Loopback(), 0)), 0);
  SocketAddress to = GetLocalAddress(receiver.value).value;
  SocketAddress from_expected = GetLocalAddress(sender.value).value;

  ASSERT_TRUE(SendTo(sender.value, absl::MakeConstSpan("one", 3), to).ok());
  ASSERT_TRUE(SendTo(sender.value, absl::MakeConstSpan("", 0), to).ok());  // An empty datagram.
  char buffer[16];
  SocketAddress from;
  WaitFor(receiver.value, POLLIN);
  SysResult<size_t> r = RecvFrom(receiver.value, absl::MakeSpan(buffer), &from);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(std::string(buffer, r.value), "one");
  EXPECT_EQ(from, from_expected);
  WaitFor(receiver.value, POLLIN);
  r = RecvFrom(receiver.value, absl::MakeSpan(buffer), nullptr);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.value, 0u);

  // Connected UDP: SendTo with an empty address goes to the connected peer.
  ASSERT_EQ(Connect(sender.value, to), 0);
  ASSERT_TRUE(SendTo(sender.value, absl::MakeConstSpan("two", 3), SocketAddress()).ok());
  WaitFor(receiver.value, POLLIN);
  r = RecvFrom(receiver.value, absl::MakeSpan(buffer), &from);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(std::string(buffer, r.value), "two");
  CloseSocket(receiver.value);
  CloseSocket(sender.value);
}

TEST(Socket, ConnectToClosedPortIsRefused) {
  // Find a port nobody listens on: bind, read the port, close.
  SysResult<SocketHandle> probe = CreateSocket(AddressFamily::kIPv4, SocketType::kStream);
  ASSERT_TRUE(probe.ok());
  ASSERT_EQ(Bind(probe.value, SocketAddress::FromIP(IPAddress::V4Loopback(), 0)), 0);
  SocketAddress address = GetLocalAddress(probe.value).value;
  CloseSocket(probe.value);

  SysResult<SocketHandle> client = CreateSocket(AddressFamily::kIPv4, SocketType::kStream);
  ASSERT_TRUE(client.ok());
  ErrorCode e = Connect(client.value, address);
  if (ClassifyError(e) == ErrorKind::kInProgress) {
    WaitFor(client.value, POLLOUT);
    SysResult<ErrorCode> pending = TakePendingError(client.value);
    ASSERT_TRUE(pending.ok());
    e = pending.value;
    // Reading SO_ERROR clears it.
    EXPECT_EQ(TakePendingError(client.value).value, 0);
  }
  EXPECT_EQ(ClassifyError(e), ErrorKind::kConnectionRefused) << ErrorName(e);
  EXPECT_EQ(ClassifyError(GetPeerAddress(client.value).error), ErrorKind::kNotConnected);
  CloseSocket(client.value);
}

TEST(Socket, AcceptWithNothingQueuedWouldBlock) {
  Listener listener(SocketAddress::FromIP(IPAddress::V4Loopback(), 0));
  SysResult<SocketHandle> r = Accept(listener.fd(), nullptr);
  EXPECT_EQ(ClassifyError(r.error), ErrorKind::kWouldBlock);
  EXPECT_EQ(r.value, kInvalidSocket);
}

TEST(Socket, BindTwiceIsAddressInUse) {
  Listener listener(SocketAddress::FromIP(IPAddress::V4Loopback(), 0));
  SysResult<SocketHandle> s = CreateSocket(AddressFamily::kIPv4, SocketType::kStream);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(ClassifyError(Bind(s.value, listener.address())), ErrorKind::kAddressInUse);
  CloseSocket(s.value);
}

TEST(Socket, OptionsRoundTrip) {
  SysResult<SocketHandle> s = CreateSocket(AddressFamily::kIPv6, SocketType::kStream);
  ASSERT_TRUE(s.ok());
  int fd = s.value;
  EXPECT_EQ(SetNoDelay(fd, true), 0);
  EXPECT_TRUE(GetNoDelay(fd).value);
  EXPECT_EQ(SetNoDelay(fd, false), 0);
  EXPECT_FALSE(GetNoDelay(fd).value);
  EXPECT_EQ(SetKeepAlive(fd, true), 0);
  EXPECT_TRUE(GetKeepAlive(fd).value);
  EXPECT_EQ(SetKeepAlivePeriod(fd, 30), 0);
  EXPECT_EQ(ClassifyError(SetKeepAlivePeriod(fd, 0)), ErrorKind::kInvalidArgument);
  EXPECT_EQ(SetReuseAddress(fd, true), 0);
  EXPECT_EQ(SetReusePort(fd, true), 0);
  EXPECT_EQ(SetIPv6Only(fd, true), 0);
  EXPECT_EQ(SetLinger(fd, true, 0), 0);
  EXPECT_EQ(SetReceiveBufferSize(fd, 64 * 1024), 0);
  EXPECT_GE(GetReceiveBufferSize(fd).value, 64 * 1024);  // Linux doubles the value.
  EXPECT_EQ(SetSendBufferSize(fd, 64 * 1024), 0);
  EXPECT_GE(GetSendBufferSize(fd).value, 64 * 1024);
  EXPECT_EQ(SetNonBlocking(fd, false), 0);
  EXPECT_FALSE(IsNonBlocking(fd).value);
  EXPECT_EQ(SetNonBlocking(fd, true), 0);
  EXPECT_TRUE(IsNonBlocking(fd).value);
  CloseSocket(fd);

  SysResult<SocketHandle> udp = CreateSocket(AddressFamily::kIPv4, SocketType::kDatagram);
  ASSERT_TRUE(udp.ok());
  EXPECT_EQ(SetBroadcast(udp.value, true), 0);
  // TCP options on a UDP socket are an error, not a crash.
  EXPECT_NE(SetNoDelay(udp.value, true), 0);
  CloseSocket(udp.value);
}

TEST(Socket, OperationsOnABadHandleFailCleanly) {
  int bad = 1 << 20;  // Far above any descriptor this test opens.
  char buffer[4];
  EXPECT_EQ(ClassifyError(Read(bad, absl::MakeSpan(buffer)).error), ErrorKind::kBadDescriptor);
  EXPECT_EQ(ClassifyError(Write(bad, absl::MakeConstSpan(buffer)).error), ErrorKind::kBadDescriptor);
  EXPECT_EQ(ClassifyError(SetNoDelay(bad, true)), ErrorKind::kBadDescriptor);
  EXPECT_EQ(ClassifyError(GetLocalAddress(bad).error), ErrorKind::kBadDescriptor);
  EXPECT_EQ(ClassifyError(Listen(bad, 1)), ErrorKind::kBadDescriptor);
  EXPECT_EQ(ClassifyError(Shutdown(bad, ShutdownHow::kBoth)), ErrorKind::kBadDescriptor);
  EXPECT_EQ(ClassifyError(TakePendingError(bad).error), ErrorKind::kBadDescriptor);
  EXPECT_FALSE(IsOpenDescriptor(bad));
}

TEST(Socket, MaxListenBacklogIsPositive) { EXPECT_GT(MaxListenBacklog(), 0); }

}  // namespace
}  // namespace netpoll::platform
