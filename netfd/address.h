// Network names and addresses of the net API: Go's net.SplitHostPort, JoinHostPort and the
// ResolveTCPAddr / ResolveUDPAddr / ResolveUnixAddr family, as used by Listen and Dial.
//
// A user names an endpoint the way Go does, with two strings:
//   network  "tcp", "tcp4", "tcp6", "udp", "udp4", "udp6", "unix", "unixgram", "unixpacket"
//   address  "host:port" for the IP networks ("127.0.0.1:8080", "[::1]:80", "example.com:http",
//            "[fe80::1%eth0]:80", ":8080"), a filesystem path or "@abstract" name for Unix ones.
// ParseNetwork turns the first into a Network, and ResolveAddress turns both into the socket
// addresses to bind or connect to, looking host names up with the system's resolver.
//
// What an address resolves to (ResolveAddress), as in Go:
//   * Empty host (":80", or an empty address for kListen): for kListen the wildcard address,
//     "::" for tcp/udp where the IP stack is dual-stack (or has no IPv4), else "0.0.0.0";
//     "0.0.0.0" for tcp4/udp4 and "::" for tcp6/udp6. For kDial the loopback address (127.0.0.1,
//     or ::1 for tcp6/udp6 and on an IPv6-only stack): dialing ":80" reaches the local system.
//   * An IP literal ("10.0.0.1", "[::1]", "[fe80::1%eth0]") is used as is, with no lookup. For
//     kDial an unspecified literal ("0.0.0.0", "::") means the local system too and becomes the
//     loopback address of its family ("[::]" with tcp/udp also yields 127.0.0.1 after ::1, for
//     hosts whose IPv6 is only half configured, Go issue 18806).
//   * A host name is looked up with platform::LookupHost inside poller::RunBlocking, so a fiber
//     that resolves does not stall the other fibers of its worker. A service name as port
//     ("http") is looked up the same way.
//   * The addresses are then filtered by the network's family: tcp4/udp4 keep IPv4 only, tcp6/udp6
//     IPv6 only, tcp/udp keep both. An IPv4-mapped IPv6 address ("::ffff:10.0.0.1") counts as
//     IPv4, like Go's: it becomes the plain IPv4 address for tcp/tcp4/udp/udp4, and does not
//     match tcp6/udp6.
//   * Order: for kDial the resolver's order (the system's preference, RFC 6724 on glibc), to be
//     tried first to last; for kListen the IPv4 addresses first (Go listens on the first IPv4
//     address of a name), the rest after them in the resolver's order. Never empty on success.
//
// Errors. Every error is an absl::Status whose message is complete and meant for the user:
//   * The standalone parsers (ParseNetwork, SplitHostPort, ParsePort) say what is wrong, then
//     quote the input they were given: `unknown network "foo"`,
//     `missing port in address "example.com"`, `port out of range "65536"`.
//   * ResolveAddress names the operation, the network and the whole address, then says what is
//     wrong with it; a reason that concerns the whole address or its port does not repeat them:
//       dial tcp "localhost:99999": port out of range
//       listen tcp "example.com": missing port in address
//       dial tcp "no-such-host.invalid:80": lookup no-such-host.invalid: Name or service not known
//       dial tcp6 "localhost:80": no IPv6 address for host "localhost"
//       listen unix "/very/long/...": unix socket path is too long: 200 bytes, the limit is 107
//     (Inputs in quotes are C-escaped, so a control byte in an address cannot garble a log line.)
//   * Codes: InvalidArgument for anything wrong with the text itself (syntax, a port out of range,
//     an IP literal of the wrong family, a bad zone, a bad Unix path); NotFound when a lookup
//     finds nothing (unknown host or service, or a host with no address of the wanted family);
//     the resolver's own code otherwise (Unavailable for a temporary DNS failure, ...).
//
// Thread-safety: every function here is thread-safe. ResolveAddress and ParsePort may block in
// the system resolver (see platform/resolver.h); from a fiber they block only the fiber.
#ifndef NETPOLL_NETFD_ADDRESS_H_
#define NETPOLL_NETFD_ADDRESS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "platform/socket.h"
#include "platform/socket_address.h"

namespace netpoll {

// The networks of Go's net.Dial and net.Listen (the "ip:proto" raw networks are not supported).
enum class Network {
  kTcp,         // TCP over IPv4 or IPv6
  kTcp4,        // TCP over IPv4 only
  kTcp6,        // TCP over IPv6 only
  kUdp,         // UDP over IPv4 or IPv6
  kUdp4,        // UDP over IPv4 only
  kUdp6,        // UDP over IPv6 only
  kUnix,        // Unix-domain stream socket (SOCK_STREAM)
  kUnixgram,    // Unix-domain datagram socket (SOCK_DGRAM)
  kUnixpacket,  // Unix-domain sequenced-packet socket (SOCK_SEQPACKET)
};

// Parses a network name, exactly as Go spells it (lower case, no spaces).
// Errors: InvalidArgument `unknown network "foo"`.
absl::StatusOr<Network> ParseNetwork(absl::string_view name);

// The name ParseNetwork accepts for `network`: "tcp", "tcp4", ..., "unixpacket".
const char* NetworkName(Network network);

// tcp, tcp4, tcp6, unix: byte streams (SOCK_STREAM).
bool IsStream(Network network);
// udp, udp4, udp6, unixgram: datagrams (SOCK_DGRAM).
bool IsDatagram(Network network);
// tcp*, unix and unixpacket: connection-oriented, so Listen/Accept apply (unixpacket is
// connection-oriented but keeps message boundaries, so it is neither IsStream nor IsDatagram).
bool IsConnectionOriented(Network network);
// unix, unixgram, unixpacket.
bool IsUnix(Network network);
// tcp*, udp*.
bool IsIP(Network network);

// The socket type to create for `network`: kStream, kDatagram or kSeqPacket.
platform::SocketType SocketTypeFor(Network network);

// The address family `network` wants: kUnspecified for tcp and udp (either IP family), kIPv4 for
// tcp4/udp4, kIPv6 for tcp6/udp6, kUnix for the Unix networks.
platform::AddressFamily AddressFamilyFor(Network network);

// The two halves of "host:port".
struct HostPort {
  std::string host;
  std::string port;
  friend bool operator==(const HostPort& a, const HostPort& b) {
    return a.host == b.host && a.port == b.port;
  }
};

// Splits "host:port", "host%zone:port", "[host]:port" or "[host%zone]:port" into host (or
// host%zone) and port, with Go's net.SplitHostPort semantics exactly: the port is whatever follows
// the last colon (it may be empty or a service name; it is not checked here), a host with a colon
// must be bracketed, and the brackets are removed. ":80" gives an empty host.
// Errors (InvalidArgument; the reason is Go's text, then the input quoted):
//   "missing port in address"     no colon, or nothing after "]" ("example.com", "[::1]")
//   "too many colons in address"  an unbracketed host with a colon ("::1", "fe80::1:80")
//   "missing ']' in address"      "[" with no "]" ("[::1:80")
//   "unexpected '[' in address"   a "[" anywhere but first ("a[b]:80")
//   "unexpected ']' in address"   a "]" outside a leading bracket pair ("a]b:80")
absl::StatusOr<HostPort> SplitHostPort(absl::string_view hostport);

// Joins host and port into "host:port", or "[host]:port" if host contains a colon (an IPv6
// literal, possibly with a zone), as Go's net.JoinHostPort: the inverse of SplitHostPort. Neither
// part is checked.
std::string JoinHostPort(absl::string_view host, absl::string_view port);

// The port number of `service` for an IP network: a decimal number 0..65535, an optional sign
// and leading zeros allowed ("80", "080", "+80"); the empty string, which means port 0 (Go keeps
// that for compatibility, golang.org/issue/13610); or else a service name ("http") looked up in
// the system's services database for "tcp" or "udp" according to `network` (inside
// poller::RunBlocking).
// Errors (InvalidArgument unless noted):
//   `port out of range "65536"`  a decimal number outside 0..65535 (also "-1")
//   `unknown port "8o": not a number or a known tcp service`  (NotFound) the lookup failed
//   `unexpected port "80": network unix has no ports`  a Unix network
absl::StatusOr<uint16_t> ParsePort(absl::string_view service, Network network);

// What a resolved address is for: it decides what an empty or unspecified host means.
enum class ResolveFor {
  kListen,  // bind: an empty host is the wildcard address
  kDial,    // connect: an empty or unspecified host is the loopback address
};

// What the IP stack of this machine can do, probed once per process the way Go does (by binding
// sockets to 127.0.0.1, ::1 and ::ffff:127.0.0.1 on port 0 and closing them).
struct IPStackCapabilities {
  bool ipv4 = true;             // AF_INET sockets work.
  bool ipv6 = true;             // AF_INET6 sockets work.
  bool ipv4_mapped_ipv6 = true; // An AF_INET6 socket without IPV6_V6ONLY also serves IPv4.
};

// This machine's capabilities. The first call probes (a few non-blocking syscalls); later calls
// return the cached answer. Thread-safe.
const IPStackCapabilities& ProbeIPStack();

// Resolves `address` on `network` for `purpose`, as described in the file comment. Unix networks
// take `address` as the path (platform::SocketAddress::FromUnixPath, "@name" for a Linux abstract
// socket). The result is never empty on success.
//
// For the socket built on the result: the "::" that tcp and udp listen on serves IPv4 too only if
// the socket clears IPV6_V6ONLY (the system default varies), and tcp6/udp6 sockets should set it,
// as Go does; the family of each address says which socket family to create.
// Errors: see the file comment. Beyond SplitHostPort's and ParsePort's:
//   missing address                       an empty address for kDial on an IP network
//   invalid IP address "..."[: reason]    a host with a colon that is not an IPv6 literal
//                                         ("[::g]:80"), or an unknown zone ("[fe80::1%nope]:80")
//   zone "z" is allowed only on an IPv6 address literal   "name%z:80", "10.0.0.1%z:80"
//   host "::1" is not an IPv4 address     an IP literal of the wrong family (also "... is an
//                                         IPv4-mapped address, not an IPv6 one" for tcp6/udp6)
//   no IPv6 address for host "h"          (NotFound) the name has addresses, none of the family
//   lookup <host>: <resolver text>        the lookup failed (NotFound, Unavailable, ...)
//   the platform's message for a Unix path that is empty, too long or contains a NUL byte.
// A host name in brackets ("[localhost]:80") is looked up like an unbracketed one, as in Go.
absl::StatusOr<std::vector<platform::SocketAddress>> ResolveAddress(Network network,
                                                                     absl::string_view address,
                                                                     ResolveFor purpose);

// As above, with the IP stack's capabilities given instead of probed (they decide the wildcard
// and loopback choices for tcp and udp). For tests, and for callers that probed on their own.
absl::StatusOr<std::vector<platform::SocketAddress>> ResolveAddress(
    Network network, absl::string_view address, ResolveFor purpose,
    const IPStackCapabilities& capabilities);

}  // namespace netpoll

#endif  // NETPOLL_NETFD_ADDRESS_H_
