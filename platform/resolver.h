// The system's name resolver: host names to IP addresses (getaddrinfo) and service names to port
// numbers (getservbyname_r), as a seam with no policy.
//
// These functions ask the OS and report what it says. Choosing between the addresses, filtering
// them by family, parsing numeric ports and deciding what an empty host means are policy, and live
// in netfd/address.h.
//
// Blocking: both calls may block for as long as the system's resolver takes (a DNS query can take
// seconds, and /etc/resolv.conf decides the timeouts; there is no way to bound or cancel a
// getaddrinfo call). A fiber must not call them directly: call them inside poller::RunBlocking,
// as netfd::ResolveAddress does, so the fiber's worker goes on running other fibers.
//
// Thread-safety: both functions are thread-safe and keep no state of their own.
#ifndef NETPOLL_PLATFORM_RESOLVER_H_
#define NETPOLL_PLATFORM_RESOLVER_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "platform/socket_address.h"

namespace netpoll::platform {

// The IP addresses of `host`, as the system's resolver returns them (getaddrinfo with AF_UNSPEC,
// so /etc/hosts, DNS and whatever else nsswitch.conf names): IPv4 and IPv6 mixed, in the
// resolver's order of preference (RFC 6724 on glibc), without duplicates. An IP literal
// ("127.0.0.1", "::1", "fe80::1%eth0") resolves to itself; an IPv6 zone comes back as the
// address's scope id.
//
// Errors (each message reads "lookup <host>: <reason>", the reason being the resolver's own
// gai_strerror text, e.g. "lookup no-such-host.invalid: Name or service not known"):
//   * InvalidArgument: `host` is empty or contains a NUL byte (the resolver is not asked).
//   * NotFound: the name does not exist, or has no address (EAI_NONAME, EAI_NODATA,
//     EAI_ADDRFAMILY).
//   * Unavailable: the resolver could not answer now and a retry may succeed (EAI_AGAIN), or the
//     name server failed (EAI_FAIL).
//   * ResourceExhausted: out of memory (EAI_MEMORY).
//   * the errno's code (see platform/error.h) for EAI_SYSTEM.
//   * Internal: the resolver rejected the query itself (EAI_BADFLAGS, EAI_FAMILY, ...), which
//     would be a bug here; Unknown for a code this function does not know.
absl::StatusOr<std::vector<IPAddress>> LookupHost(absl::string_view host);

// The port number of the service `service` ("http", "ssh") for `protocol` ("tcp", "udp"; an
// empty `protocol` matches any), from the system's services database (/etc/services, through
// nsswitch.conf). Names only: a decimal string such as "80" is not a service name and is not
// found (netfd::ParsePort parses numbers).
//
// Errors:
//   * InvalidArgument: `service` is empty, or `service` or `protocol` contains a NUL byte.
//   * NotFound: the database has no such service for that protocol:
//     "lookup tcp/no-such-service: unknown service".
//   * ResourceExhausted: the entry did not fit in the largest buffer this function tries (1 MiB).
absl::StatusOr<uint16_t> LookupPort(absl::string_view service, absl::string_view protocol);

}  // namespace netpoll::platform

#endif  // NETPOLL_PLATFORM_RESOLVER_H_
