// The net API: Go's `net` package for C++, over netpoll's poller.
//
//   absl::StatusOr<netpoll::Listener> listener = netpoll::Listen("tcp", "127.0.0.1:8080");
//   for (;;) {
//     absl::StatusOr<netpoll::Conn> conn = listener->Accept();
//     if (!conn.ok()) break;
//     netpoll::Go([c = std::move(*conn)]() mutable { ...c.Read(...), c.Write(...)... });
//   }
//
// Networks and addresses are Go's (see netfd/address.h): "tcp", "tcp4", "tcp6" with "host:port",
// "[::1]:80", ":0"; "udp", "udp4", "udp6"; "unix" (stream), "unixpacket" (seqpacket) and
// "unixgram" (datagram) with a path or "@abstract" name. Host names resolve without blocking the
// other fibers of the caller's worker.
//
// Blocking. Every call may block (Accept, Read, Write, Dial, Close); from a fiber it parks only the
// fiber, from a plain thread it blocks that thread. Both may use the same Conn.
//
// Thread-safety. A Conn or Listener may be used from several user threads at once: one Read
// (or ReadFrom) and one Write (or WriteTo) at a time proceed, others queue behind them; Close,
// CloseRead/CloseWrite, the deadline setters, the option setters and the address getters may be
// called concurrently with anything, including from another thread to interrupt a blocked call.
//
// Lifetime and ownership. Conn and Listener are movable values that own their socket. Destroying
// one closes it and waits, like Close, until calls in progress on other threads have returned
// (with the closed error); no call may *start* once destruction has begun, and a Conn must not be
// moved while another thread uses it. Close may be called any number of times; every call after
// the first returns the closed error.
//
// Errors (netfd/errors.h has the predicates):
//   IsTimeout(s)   a deadline passed: "read tcp 127.0.0.1:8080->127.0.0.1:51234: i/o timeout"
//   IsClosed(s)    used after Close, or closed while blocked: "... use of closed network connection"
//   IsEOF(s)       the peer finished sending (Read on a stream): "EOF"
//   IsCanceled(s)  a dial cancelled through its Canceller
//   OsErrorCode(s) any other failure of the OS: "dial tcp 127.0.0.1:1: connect: Connection refused
//                  (ECONNREFUSED)"
// Bad input (an unknown network, a malformed address, a port out of range, a Unix path that is too
// long) fails with InvalidArgument and touches nothing; an operation on a default-constructed or
// moved-from Conn/Listener fails with FailedPrecondition, not a crash.
#ifndef NETPOLL_NETFD_NET_H_
#define NETPOLL_NETFD_NET_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "netfd/address.h"
#include "netfd/canceller.h"
#include "netfd/errors.h"
#include "netfd/netfd.h"
#include "platform/socket_address.h"

namespace netpoll {

using platform::SocketAddress;

struct DialOptions;

// A connection: a stream (TCP, Unix), a connected datagram socket (Dial "udp"), or a datagram
// socket bound with ListenPacket.
class Conn {
 public:
  Conn() = default;
  Conn(Conn&&) = default;
  Conn& operator=(Conn&&) = default;
  ~Conn() = default;

  // Reads what is available, up to buffer.size() bytes, waiting until something is. Returns 0 at
  // once for an empty buffer. A stream returns the EOF error once the peer finished; a datagram
  // socket returns one datagram (possibly empty) per call.
  absl::StatusOr<size_t> Read(absl::Span<char> buffer);
  // Writes all of `data` (or, on a datagram socket, sends it as one datagram). On error,
  // `written` still says how much went out (a deadline in the middle of a large write).
  WriteResult Write(absl::Span<const char> data);
  // A char array would convert to a Span that includes its terminating NUL ("hi" is 3 bytes);
  // say what you mean: Write(absl::string_view("hi")), or a Span of the bytes to send.
  template <size_t N>
  WriteResult Write(const char (&array)[N]) = delete;
  absl::StatusOr<size_t> ReadV(absl::Span<const absl::Span<char>> buffers);
  WriteResult WriteV(absl::Span<const absl::Span<const char>> buffers);

  // Datagram sockets: one datagram and its sender; send one datagram to `to`.
  absl::StatusOr<ReadFromResult> ReadFrom(absl::Span<char> buffer);
  absl::StatusOr<size_t> WriteTo(absl::Span<const char> data, const SocketAddress& to);
  template <size_t N>
  absl::StatusOr<size_t> WriteTo(const char (&array)[N], const SocketAddress& to) = delete;

  absl::Status Close();
  // Shut down the reading or writing half (TCP/Unix streams): the peer reads EOF after CloseWrite.
  absl::Status CloseRead();
  absl::Status CloseWrite();

  // Deadlines are absolute and apply to calls in progress and to later ones; a time in the past
  // fails blocked and future calls of that direction with a timeout at once; absl::InfiniteFuture()
  // removes the deadline. Idle timeout idiom: extend it after each successful Read or Write.
  absl::Status SetDeadline(absl::Time t);
  absl::Status SetReadDeadline(absl::Time t);
  absl::Status SetWriteDeadline(absl::Time t);

  const SocketAddress& LocalAddr() const;
  const SocketAddress& RemoteAddr() const;  // Empty for an unconnected datagram socket.
  // The network it was made with ("tcp", "udp4", ...), "" for an empty Conn.
  const std::string& network() const;
  bool valid() const { return fd_ != nullptr; }

  // TCP options. Dialled and accepted TCP connections start with no-delay on and keep-alive on
  // (15 s), as in Go. Errors: the setsockopt error; FailedPrecondition on a non-TCP Conn.
  absl::Status SetNoDelay(bool no_delay);
  absl::Status SetKeepAlive(bool keep_alive);
  absl::Status SetKeepAlivePeriod(absl::Duration period);
  // Kernel buffer sizes (SO_RCVBUF / SO_SNDBUF).
  absl::Status SetReadBuffer(int bytes);
  absl::Status SetWriteBuffer(int bytes);

  // For the library and tests: the underlying descriptor object.
  netfd::NetFD* netfd_for_testing() const { return fd_.get(); }

 private:
  friend class Listener;
  friend absl::StatusOr<Conn> DialWithOptions(absl::string_view, absl::string_view, const DialOptions&);
  friend absl::StatusOr<Conn> ListenPacket(absl::string_view, absl::string_view);
  Conn(std::unique_ptr<netfd::NetFD> fd, Network network) : fd_(std::move(fd)), network_(network) {}
  bool is_tcp() const;

  std::unique_ptr<netfd::NetFD> fd_;
  Network network_ = Network::kTcp;
};

class Listener {
 public:
  Listener() = default;
  Listener(Listener&&) = default;
  Listener& operator=(Listener&&);
  ~Listener();

  // Waits for and returns the next connection. Errors: closed (after Close, also when Close runs
  // while Accept waits), timeout (SetDeadline), OS errors such as EMFILE.
  absl::StatusOr<Conn> Accept();
  // Stops listening; an Accept in progress returns the closed error. A Unix listener removes its
  // socket file, as Go's does.
  absl::Status Close();
  // A deadline for Accept, like Conn::SetDeadline.
  absl::Status SetDeadline(absl::Time t);
  const SocketAddress& Addr() const;
  bool valid() const { return fd_ != nullptr; }

  // For the library and tests: the underlying descriptor object.
  netfd::NetFD* netfd_for_testing() const { return fd_.get(); }

 private:
  friend absl::StatusOr<Listener> Listen(absl::string_view, absl::string_view);
  Listener(std::unique_ptr<netfd::NetFD> fd, Network network, std::string unix_path, bool tcp_defaults_inherited)
      : fd_(std::move(fd)), network_(network), unix_path_(std::move(unix_path)),
        tcp_defaults_inherited_(tcp_defaults_inherited) {}

  std::unique_ptr<netfd::NetFD> fd_;
  Network network_ = Network::kTcp;
  std::string unix_path_;  // Removed on Close.
  // Accepted TCP connections already carry the default options (set on the listening socket).
  bool tcp_defaults_inherited_ = false;
};

// Listens on a stream network: "tcp", "tcp4", "tcp6", "unix", "unixpacket". Port 0 picks a free
// port (see Addr()). "tcp" on the wildcard address accepts IPv4 and IPv6 where the system can.
absl::StatusOr<Listener> Listen(absl::string_view network, absl::string_view address);

// A datagram socket bound to `address`: "udp", "udp4", "udp6", "unixgram". Use ReadFrom/WriteTo.
absl::StatusOr<Conn> ListenPacket(absl::string_view network, absl::string_view address);

struct DialOptions {
  // The dial fails with a timeout if not connected by then (over all the addresses tried).
  absl::Time deadline = absl::InfiniteFuture();
  // Cancels the dial from another user thread (Canceller::Cancel). Must outlive the call.
  Canceller* cancel = nullptr;
  // Bind to this local address first (empty: the system chooses).
  SocketAddress local;
};

// Connects to `address` on `network` (every network above). A name that resolves to several
// addresses is tried in order until one connects; the first error is returned if none does.
absl::StatusOr<Conn> Dial(absl::string_view network, absl::string_view address);
absl::StatusOr<Conn> DialTimeout(absl::string_view network, absl::string_view address, absl::Duration timeout);
absl::StatusOr<Conn> DialWithOptions(absl::string_view network, absl::string_view address, const DialOptions& options);

}  // namespace netpoll

#endif  // NETPOLL_NETFD_NET_H_
