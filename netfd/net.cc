#include "netfd/net.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "platform/socket.h"

namespace netpoll {
namespace {

absl::Status NotValid(const char* what) {
  return absl::FailedPreconditionError(absl::StrCat(what, " on an empty (default-constructed or moved-from) object"));
}

const std::string& EmptyString() {
  static const std::string* empty = new std::string();
  return *empty;
}

const SocketAddress& EmptyAddress() {
  static const SocketAddress* empty = new SocketAddress();
  return *empty;
}

// Go's default TCP keep-alive period.
constexpr int kDefaultKeepAliveSeconds = 15;

// The options every dialled or accepted TCP connection starts with (Go's defaults), set on a
// socket. 0 if all took.
platform::ErrorCode SetTcpDefaults(platform::SocketHandle h) {
  platform::ErrorCode e = platform::SetNoDelay(h, true);
  if (e == 0) e = platform::SetKeepAlive(h, true);
  if (e == 0) e = platform::SetKeepAlivePeriod(h, kDefaultKeepAliveSeconds);
  return e;
}

// Best effort, as in Go: a connection that cannot take them is still a connection.
void ApplyTcpDefaults(netfd::NetFD& fd) { fd.Control("setsockopt", &SetTcpDefaults).IgnoreError(); }

// A socket of the address's family and the network's type, wrapped (unregistered) in a NetFD.
absl::StatusOr<std::unique_ptr<netfd::NetFD>> NewSocket(Network network, const SocketAddress& address,
                                                         const char* op, bool register_now) {
  platform::SysResult<platform::SocketHandle> s = platform::CreateSocket(address.family(), SocketTypeFor(network));
  if (!s.ok()) {
    return OpError(op, NetworkName(network), "", address.ToString(), platform::ErrorToStatus(s.error, "socket"));
  }
  if (address.family() == platform::AddressFamily::kIPv6) {
    // "tcp"/"udp" on an IPv6 socket also serve IPv4 (dual stack); "tcp6"/"udp6" only IPv6.
    bool v6_only = network == Network::kTcp6 || network == Network::kUdp6;
    platform::SetIPv6Only(s.value, v6_only);
  }
  return netfd::NetFD::New(s.value, SocketTypeFor(network), NetworkName(network), register_now);
}

absl::StatusOr<Network> StreamNetwork(absl::string_view name, const char* op, absl::string_view address) {
  absl::StatusOr<Network> network = ParseNetwork(name);
  if (!network.ok()) return OpError(op, "", "", address, network.status());
  return network;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Conn

absl::StatusOr<size_t> Conn::Read(absl::Span<char> buffer) {
  if (!valid()) return NotValid("Read");
  return fd_->Read(buffer);
}

WriteResult Conn::Write(absl::Span<const char> data) {
  if (!valid()) return {0, NotValid("Write")};
  if (IsDatagram(network_)) {
    // One datagram, not a loop: a connected datagram socket sends all or nothing.
    absl::StatusOr<size_t> sent = fd_->WriteTo(data, SocketAddress());
    if (!sent.ok()) return {0, sent.status()};
    return {*sent, absl::OkStatus()};
  }
  return fd_->Write(data);
}

absl::StatusOr<size_t> Conn::ReadV(absl::Span<const absl::Span<char>> buffers) {
  if (!valid()) return NotValid("ReadV");
  return fd_->ReadV(buffers);
}

WriteResult Conn::WriteV(absl::Span<const absl::Span<const char>> buffers) {
  if (!valid()) return {0, NotValid("WriteV")};
  return fd_->WriteV(buffers);
}

absl::StatusOr<ReadFromResult> Conn::ReadFrom(absl::Span<char> buffer) {
  if (!valid()) return NotValid("ReadFrom");
  return fd_->ReadFrom(buffer);
}

absl::StatusOr<size_t> Conn::WriteTo(absl::Span<const char> data, const SocketAddress& to) {
  if (!valid()) return NotValid("WriteTo");
  if (to.empty()) {
    return OpError("write", NetworkName(network_), LocalAddr().ToString(), "",
                   absl::InvalidArgumentError("WriteTo needs a destination address"));
  }
  return fd_->WriteTo(data, to);
}

absl::Status Conn::Close() {
  if (!valid()) return NotValid("Close");
  return fd_->Close();
}

absl::Status Conn::CloseRead() {
  if (!valid()) return NotValid("CloseRead");
  return fd_->CloseRead();
}

absl::Status Conn::CloseWrite() {
  if (!valid()) return NotValid("CloseWrite");
  return fd_->CloseWrite();
}

absl::Status Conn::SetDeadline(absl::Time t) {
  if (!valid()) return NotValid("SetDeadline");
  return fd_->SetDeadline(t);
}

absl::Status Conn::SetReadDeadline(absl::Time t) {
  if (!valid()) return NotValid("SetReadDeadline");
  return fd_->SetReadDeadline(t);
}

absl::Status Conn::SetWriteDeadline(absl::Time t) {
  if (!valid()) return NotValid("SetWriteDeadline");
  return fd_->SetWriteDeadline(t);
}

const SocketAddress& Conn::LocalAddr() const { return valid() ? fd_->local_address() : EmptyAddress(); }
const SocketAddress& Conn::RemoteAddr() const { return valid() ? fd_->remote_address() : EmptyAddress(); }
const std::string& Conn::network() const { return valid() ? fd_->net() : EmptyString(); }

bool Conn::is_tcp() const {
  return network_ == Network::kTcp || network_ == Network::kTcp4 || network_ == Network::kTcp6;
}

absl::Status Conn::SetNoDelay(bool no_delay) {
  if (!valid()) return NotValid("SetNoDelay");
  if (!is_tcp()) return absl::FailedPreconditionError("SetNoDelay: not a TCP connection");
  return fd_->Control("setsockopt", [no_delay](platform::SocketHandle h) { return platform::SetNoDelay(h, no_delay); });
}

absl::Status Conn::SetKeepAlive(bool keep_alive) {
  if (!valid()) return NotValid("SetKeepAlive");
  if (!is_tcp()) return absl::FailedPreconditionError("SetKeepAlive: not a TCP connection");
  return fd_->Control("setsockopt", [keep_alive](platform::SocketHandle h) {
    return platform::SetKeepAlive(h, keep_alive);
  });
}

absl::Status Conn::SetKeepAlivePeriod(absl::Duration period) {
  if (!valid()) return NotValid("SetKeepAlivePeriod");
  if (!is_tcp()) return absl::FailedPreconditionError("SetKeepAlivePeriod: not a TCP connection");
  // Whole seconds, at least one, as the kernel counts them (Go rounds the same way).
  int64_t seconds = absl::ToInt64Seconds(period + absl::Milliseconds(500));
  if (seconds < 1) seconds = 1;
  if (seconds > 32767) seconds = 32767;  // TCP_KEEPIDLE's limit.
  return fd_->Control("setsockopt", [seconds](platform::SocketHandle h) {
    return platform::SetKeepAlivePeriod(h, static_cast<int>(seconds));
  });
}

absl::Status Conn::SetReadBuffer(int bytes) {
  if (!valid()) return NotValid("SetReadBuffer");
  return fd_->Control("setsockopt", [bytes](platform::SocketHandle h) {
    return platform::SetReceiveBufferSize(h, bytes);
  });
}

absl::Status Conn::SetWriteBuffer(int bytes) {
  if (!valid()) return NotValid("SetWriteBuffer");
  return fd_->Control("setsockopt", [bytes](platform::SocketHandle h) {
    return platform::SetSendBufferSize(h, bytes);
  });
}

// ---------------------------------------------------------------------------------------------
// Listener

Listener& Listener::operator=(Listener&& other) {
  if (this != &other) {
    if (valid()) Close().IgnoreError();
    fd_ = std::move(other.fd_);
    network_ = other.network_;
    unix_path_ = std::move(other.unix_path_);
    tcp_defaults_inherited_ = other.tcp_defaults_inherited_;
  }
  return *this;
}

Listener::~Listener() {
  if (valid()) Close().IgnoreError();
}

absl::StatusOr<Conn> Listener::Accept() {
  if (!valid()) return NotValid("Accept");
  absl::StatusOr<std::unique_ptr<netfd::NetFD>> fd = fd_->Accept();
  if (!fd.ok()) return fd.status();
  Conn conn(std::move(*fd), network_);
  if (conn.is_tcp() && !tcp_defaults_inherited_) ApplyTcpDefaults(*conn.fd_);
  return conn;
}

absl::Status Listener::Close() {
  if (!valid()) return NotValid("Close");
  absl::Status status = fd_->Close();
  if (status.ok() && !unix_path_.empty()) {
    platform::RemoveUnixSocketFile(unix_path_);
    unix_path_.clear();
  }
  return status;
}

absl::Status Listener::SetDeadline(absl::Time t) {
  if (!valid()) return NotValid("SetDeadline");
  return fd_->SetReadDeadline(t);
}

const SocketAddress& Listener::Addr() const { return valid() ? fd_->local_address() : EmptyAddress(); }

// ---------------------------------------------------------------------------------------------
// Listen, ListenPacket, Dial

absl::StatusOr<Listener> Listen(absl::string_view network_name, absl::string_view address) {
  absl::StatusOr<Network> network = StreamNetwork(network_name, "listen", address);
  if (!network.ok()) return network.status();
  if (IsDatagram(*network)) {
    return OpError("listen", NetworkName(*network), "", address,
                   absl::InvalidArgumentError("a datagram network cannot Listen; use ListenPacket"));
  }
  absl::StatusOr<std::vector<SocketAddress>> addresses = ResolveAddress(*network, address, ResolveFor::kListen);
  if (!addresses.ok()) return addresses.status();
  const SocketAddress& bind_to = addresses->front();
  const std::string where = bind_to.ToString();
  absl::StatusOr<std::unique_ptr<netfd::NetFD>> fd = NewSocket(*network, bind_to, "listen", /*register_now=*/false);
  if (!fd.ok()) return fd.status();
  platform::SocketHandle handle = (*fd)->handle_for_testing();
  if (!IsUnix(*network)) platform::SetReuseAddress(handle, true);  // Rebind right after a restart.
  // Where accepted sockets inherit them, the TCP defaults are set here once, not per Accept (a
  // listener that cannot take them leaves the work to Accept).
  const bool tcp_defaults_inherited = platform::kAcceptedSocketsInheritTcpOptions && !IsUnix(*network) &&
                                      SetTcpDefaults(handle) == 0;
  if (platform::ErrorCode e = platform::Bind(handle, bind_to); e != 0) {
    return OpError("listen", NetworkName(*network), "", where, platform::ErrorToStatus(e, "bind"));
  }
  if (platform::ErrorCode e = platform::Listen(handle, platform::MaxListenBacklog()); e != 0) {
    return OpError("listen", NetworkName(*network), "", where, platform::ErrorToStatus(e, "listen"));
  }
  // Registered after listen(2), as Go does.
  if (absl::Status status = (*fd)->Init(); !status.ok()) {
    return OpError("listen", NetworkName(*network), "", where, status);
  }
  platform::SysResult<SocketAddress> local = platform::GetLocalAddress(handle);
  (*fd)->SetAddresses(local.ok() ? local.value : bind_to, SocketAddress());
  std::string unix_path = IsUnix(*network) ? bind_to.unix_path() : std::string();
  return Listener(std::move(*fd), *network, std::move(unix_path), tcp_defaults_inherited);
}

absl::StatusOr<Conn> ListenPacket(absl::string_view network_name, absl::string_view address) {
  absl::StatusOr<Network> network = StreamNetwork(network_name, "listen", address);
  if (!network.ok()) return network.status();
  if (!IsDatagram(*network)) {
    return OpError("listen", NetworkName(*network), "", address,
                   absl::InvalidArgumentError("ListenPacket needs a datagram network (udp, udp4, udp6, unixgram)"));
  }
  absl::StatusOr<std::vector<SocketAddress>> addresses = ResolveAddress(*network, address, ResolveFor::kListen);
  if (!addresses.ok()) return addresses.status();
  const SocketAddress& bind_to = addresses->front();
  absl::StatusOr<std::unique_ptr<netfd::NetFD>> fd = NewSocket(*network, bind_to, "listen", /*register_now=*/true);
  if (!fd.ok()) return fd.status();
  platform::SocketHandle handle = (*fd)->handle_for_testing();
  if (platform::ErrorCode e = platform::Bind(handle, bind_to); e != 0) {
    return OpError("listen", NetworkName(*network), "", bind_to.ToString(), platform::ErrorToStatus(e, "bind"));
  }
  platform::SysResult<SocketAddress> local = platform::GetLocalAddress(handle);
  (*fd)->SetAddresses(local.ok() ? local.value : bind_to, SocketAddress());
  return Conn(std::move(*fd), *network);
}

absl::StatusOr<Conn> DialWithOptions(absl::string_view network_name, absl::string_view address,
                                     const DialOptions& options) {
  absl::StatusOr<Network> network = StreamNetwork(network_name, "dial", address);
  if (!network.ok()) return network.status();
  absl::StatusOr<std::vector<SocketAddress>> addresses = ResolveAddress(*network, address, ResolveFor::kDial);
  if (!addresses.ok()) return addresses.status();
  const int64_t deadline = netfd::MonotonicDeadline(options.deadline);
  absl::Status first_error;
  for (const SocketAddress& remote : *addresses) {
    const std::string where = remote.ToString();
    if (deadline < 0) {
      first_error = OpError("dial", NetworkName(*network), "", where, TimeoutError());
      break;
    }
    absl::StatusOr<std::unique_ptr<netfd::NetFD>> fd = NewSocket(*network, remote, "dial", /*register_now=*/false);
    if (!fd.ok()) {
      if (first_error.ok()) first_error = fd.status();
      continue;
    }
    platform::SocketHandle handle = (*fd)->handle_for_testing();
    if (!options.local.empty()) {
      if (platform::ErrorCode e = platform::Bind(handle, options.local); e != 0) {
        if (first_error.ok()) {
          first_error = OpError("dial", NetworkName(*network), options.local.ToString(), where,
                                platform::ErrorToStatus(e, "bind"));
        }
        continue;
      }
    }
    absl::Status connected = (*fd)->Connect(remote, deadline, options.cancel);
    if (!connected.ok()) {
      // The socket (and its poll registration) goes away with `fd`.
      if (first_error.ok()) first_error = OpError("dial", NetworkName(*network), "", where, connected);
      if (IsCanceled(connected) || IsTimeout(connected)) break;  // No point trying the others.
      continue;
    }
    platform::SysResult<SocketAddress> local = platform::GetLocalAddress(handle);
    (*fd)->SetAddresses(local.ok() ? local.value : SocketAddress(), remote);
    Conn conn(std::move(*fd), *network);
    if (conn.is_tcp()) ApplyTcpDefaults(*conn.fd_);
    return conn;
  }
  return first_error;
}

absl::StatusOr<Conn> Dial(absl::string_view network, absl::string_view address) {
  return DialWithOptions(network, address, DialOptions());
}

absl::StatusOr<Conn> DialTimeout(absl::string_view network, absl::string_view address, absl::Duration timeout) {
  DialOptions options;
  options.deadline = absl::Now() + timeout;
  return DialWithOptions(network, address, options);
}

}  // namespace netpoll
