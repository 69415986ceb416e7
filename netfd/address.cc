#include "netfd/address.h"

#include <algorithm>
#include <array>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "platform/resolver.h"
#include "platform/socket.h"
#include "platform/socket_address.h"
#include "poller/blocking.h"

namespace netpoll {
namespace {

using platform::AddressFamily;
using platform::IPAddress;
using platform::SocketAddress;

// What went wrong, before it is phrased for the caller. A standalone parser reports
// "<why> \"<input>\"[: <detail>]"; ResolveAddress reports
// "<op> <network> \"<address>\": <why>[: <detail>]" (see address.h).
struct Problem {
  absl::StatusCode code;
  std::string why;
  std::string detail;
};

Problem FromStatus(const absl::Status& status) {
  return Problem{status.code(), std::string(status.message()), ""};
}

std::string Quote(absl::string_view text) { return absl::StrCat("\"", absl::CHexEscape(text), "\""); }

absl::Status StandaloneError(const Problem& problem, absl::string_view input) {
  return absl::Status(problem.code,
                      absl::StrCat(problem.why, " ", Quote(input),
                                   problem.detail.empty() ? "" : ": ", problem.detail));
}

absl::Status ResolveError(Network network, absl::string_view address, ResolveFor purpose,
                          const Problem& problem) {
  return absl::Status(
      problem.code,
      absl::StrCat(purpose == ResolveFor::kListen ? "listen " : "dial ", NetworkName(network), " ",
                   Quote(address), ": ", problem.why, problem.detail.empty() ? "" : ": ",
                   problem.detail));
}

constexpr const char* kMissingPort = "missing port in address";
constexpr const char* kTooManyColons = "too many colons in address";

// Go's SplitHostPort. Returns the reason it failed, or nullptr with `host` and `port` set to
// views into `hostport`.
const char* SplitHostPortViews(absl::string_view hostport, absl::string_view* host,
                               absl::string_view* port) {
  // The port starts after the last colon.
  size_t colon = hostport.rfind(':');
  if (colon == absl::string_view::npos) return kMissingPort;
  // No '[' may appear from `no_open_from` on, no ']' from `no_close_from` on.
  size_t no_open_from = 0;
  size_t no_close_from = 0;
  if (hostport[0] == '[') {
    // The first ']' must come just before the last ':'.
    size_t close = hostport.find(']');
    if (close == absl::string_view::npos) return "missing ']' in address";
    if (close + 1 == hostport.size()) return kMissingPort;  // Nothing, so no ':', after ']'.
    if (close + 1 != colon) {
      // Either ']' is not followed by ':', or by one that is not the last.
      return hostport[close + 1] == ':' ? kTooManyColons : kMissingPort;
    }
    *host = hostport.substr(1, close - 1);
    no_open_from = 1;
    no_close_from = close + 1;
  } else {
    *host = hostport.substr(0, colon);
    if (host->find(':') != absl::string_view::npos) return kTooManyColons;
  }
  if (hostport.find('[', no_open_from) != absl::string_view::npos) {
    return "unexpected '[' in address";
  }
  if (hostport.find(']', no_close_from) != absl::string_view::npos) {
    return "unexpected ']' in address";
  }
  *port = hostport.substr(colon + 1);
  return nullptr;
}

// Parses `service` as a port number or looks it up as a service name. Returns the problem, or
// nullopt with `*port` set.
std::optional<Problem> ParsePortOrProblem(absl::string_view service, Network network,
                                          uint16_t* port) {
  if (IsUnix(network)) {
    return Problem{absl::StatusCode::kInvalidArgument, "unexpected port",
                   absl::StrCat("network ", NetworkName(network), " has no ports")};
  }
  // The empty service is port 0, as in Go (golang.org/issue/13610).
  if (service.empty()) {
    *port = 0;
    return std::nullopt;
  }
  // A decimal number with an optional sign is a port number, whatever its value.
  absl::string_view digits = service;
  bool negative = false;
  if (digits[0] == '+' || digits[0] == '-') {
    negative = digits[0] == '-';
    digits.remove_prefix(1);
  }
  bool decimal = !digits.empty() &&
                 std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (decimal) {
    // Saturate rather than overflow: any value past 65535 is simply out of range.
    uint32_t value = 0;
    for (char c : digits) {
      value = value * 10 + static_cast<uint32_t>(c - '0');
      if (value > 65535) break;
    }
    if (value > 65535 || (negative && value != 0)) {
      return Problem{absl::StatusCode::kInvalidArgument, "port out of range", ""};
    }
    *port = static_cast<uint16_t>(value);
    return std::nullopt;
  }
  // Otherwise a service name, which the system's database may take a file read or more to find.
  const char* protocol = IsStream(network) ? "tcp" : "udp";
  absl::StatusOr<uint16_t> looked_up = absl::UnknownError("not run");
  poller::RunBlocking([&] { looked_up = platform::LookupPort(service, protocol); });
  if (looked_up.ok()) {
    *port = *looked_up;
    return std::nullopt;
  }
  if (looked_up.status().code() == absl::StatusCode::kNotFound) {
    return Problem{absl::StatusCode::kNotFound, "unknown port",
                   absl::StrCat("not a number or a known ", protocol, " service")};
  }
  return Problem{looked_up.status().code(), "unknown port",
                 std::string(looked_up.status().message())};
}

IPAddress V4MappedLoopback() {
  return IPAddress::V6({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1});
}

// The IPv4 address inside an IPv4-mapped IPv6 address.
IPAddress Unmap(const IPAddress& ip) {
  const std::array<uint8_t, 16>& b = ip.bytes();
  return IPAddress::V4({b[12], b[13], b[14], b[15]});
}

bool CanBind(AddressFamily family, const IPAddress& ip, std::optional<bool> v6only) {
  platform::SysResult<platform::SocketHandle> socket =
      platform::CreateSocket(family, platform::SocketType::kStream);
  if (!socket.ok()) return false;
  bool ok = !v6only.has_value() || platform::SetIPv6Only(socket.value, *v6only) == 0;
  ok = ok && platform::Bind(socket.value, SocketAddress::FromIP(ip, 0)) == 0;
  platform::CloseSocket(socket.value);
  return ok;
}

// The address an empty host stands for.
IPAddress DefaultAddress(Network network, ResolveFor purpose, const IPStackCapabilities& caps) {
  AddressFamily family = AddressFamilyFor(network);
  if (family == AddressFamily::kUnspecified) {
    if (purpose == ResolveFor::kListen) {
      // One dual-stack socket serves both families where the stack maps IPv4 into IPv6.
      bool v6 = caps.ipv6 && (caps.ipv4_mapped_ipv6 || !caps.ipv4);
      family = v6 ? AddressFamily::kIPv6 : AddressFamily::kIPv4;
    } else {
      family = (caps.ipv4 || !caps.ipv6) ? AddressFamily::kIPv4 : AddressFamily::kIPv6;
    }
  }
  bool v6 = family == AddressFamily::kIPv6;
  if (purpose == ResolveFor::kListen) return v6 ? IPAddress::V6Any() : IPAddress::V4Any();
  return v6 ? IPAddress::V6Loopback() : IPAddress::V4Loopback();
}

const char* FamilyWord(AddressFamily family) {
  switch (family) {
    case AddressFamily::kIPv4:
      return "IPv4";
    case AddressFamily::kIPv6:
      return "IPv6";
    default:
      return "IP";
  }
}

// Keeps the addresses of the family `network` wants, IPv4-mapped ones counting as IPv4, without
// duplicates and in order.
std::vector<IPAddress> FilterByFamily(Network network, const std::vector<IPAddress>& ips) {
  AddressFamily want = AddressFamilyFor(network);
  std::vector<IPAddress> kept;
  for (const IPAddress& original : ips) {
    IPAddress ip = original.IsV4Mapped() ? Unmap(original) : original;
    if (want != AddressFamily::kUnspecified && ip.family() != want) continue;
    if (std::find(kept.begin(), kept.end(), ip) == kept.end()) kept.push_back(ip);
  }
  return kept;
}

absl::StatusOr<std::vector<SocketAddress>> ResolveUnix(Network network, absl::string_view address,
                                                       ResolveFor purpose) {
  absl::StatusOr<SocketAddress> unix_address = SocketAddress::FromUnixPath(address);
  if (!unix_address.ok()) {
    return ResolveError(network, address, purpose, FromStatus(unix_address.status()));
  }
  return std::vector<SocketAddress>{*std::move(unix_address)};
}

}  // namespace

absl::StatusOr<Network> ParseNetwork(absl::string_view name) {
  static constexpr std::pair<const char*, Network> kNames[] = {
      {"tcp", Network::kTcp},   {"tcp4", Network::kTcp4},         {"tcp6", Network::kTcp6},
      {"udp", Network::kUdp},   {"udp4", Network::kUdp4},         {"udp6", Network::kUdp6},
      {"unix", Network::kUnix}, {"unixgram", Network::kUnixgram}, {"unixpacket", Network::kUnixpacket},
  };
  for (const auto& [text, network] : kNames) {
    if (name == text) return network;
  }
  return StandaloneError(Problem{absl::StatusCode::kInvalidArgument, "unknown network", ""}, name);
}

const char* NetworkName(Network network) {
  switch (network) {
    case Network::kTcp:
      return "tcp";
    case Network::kTcp4:
      return "tcp4";
    case Network::kTcp6:
      return "tcp6";
    case Network::kUdp:
      return "udp";
    case Network::kUdp4:
      return "udp4";
    case Network::kUdp6:
      return "udp6";
    case Network::kUnix:
      return "unix";
    case Network::kUnixgram:
      return "unixgram";
    case Network::kUnixpacket:
      return "unixpacket";
  }
  return "unknown";
}

bool IsStream(Network network) {
  return network == Network::kTcp || network == Network::kTcp4 || network == Network::kTcp6 ||
         network == Network::kUnix;
}

bool IsDatagram(Network network) {
  return network == Network::kUdp || network == Network::kUdp4 || network == Network::kUdp6 ||
         network == Network::kUnixgram;
}

bool IsConnectionOriented(Network network) {
  return IsStream(network) || network == Network::kUnixpacket;
}

bool IsUnix(Network network) {
  return network == Network::kUnix || network == Network::kUnixgram ||
         network == Network::kUnixpacket;
}

bool IsIP(Network network) { return !IsUnix(network); }

platform::SocketType SocketTypeFor(Network network) {
  if (IsStream(network)) return platform::SocketType::kStream;
  if (IsDatagram(network)) return platform::SocketType::kDatagram;
  return platform::SocketType::kSeqPacket;
}

AddressFamily AddressFamilyFor(Network network) {
  switch (network) {
    case Network::kTcp4:
    case Network::kUdp4:
      return AddressFamily::kIPv4;
    case Network::kTcp6:
    case Network::kUdp6:
      return AddressFamily::kIPv6;
    case Network::kUnix:
    case Network::kUnixgram:
    case Network::kUnixpacket:
      return AddressFamily::kUnix;
    case Network::kTcp:
    case Network::kUdp:
      break;
  }
  return AddressFamily::kUnspecified;
}

absl::StatusOr<HostPort> SplitHostPort(absl::string_view hostport) {
  absl::string_view host;
  absl::string_view port;
  if (const char* why = SplitHostPortViews(hostport, &host, &port)) {
    return StandaloneError(Problem{absl::StatusCode::kInvalidArgument, why, ""}, hostport);
  }
  return HostPort{std::string(host), std::string(port)};
}

std::string JoinHostPort(absl::string_view host, absl::string_view port) {
  // A host with a colon is taken for an IPv6 literal, which needs brackets.
  if (host.find(':') != absl::string_view::npos) return absl::StrCat("[", host, "]:", port);
  return absl::StrCat(host, ":", port);
}

absl::StatusOr<uint16_t> ParsePort(absl::string_view service, Network network) {
  uint16_t port = 0;
  if (std::optional<Problem> problem = ParsePortOrProblem(service, network, &port)) {
    return StandaloneError(*problem, service);
  }
  return port;
}

const IPStackCapabilities& ProbeIPStack() {
  // A function-local static: C++ guarantees one initialisation even under concurrent first calls.
  static const IPStackCapabilities capabilities = [] {
    IPStackCapabilities caps;
    caps.ipv4 = CanBind(AddressFamily::kIPv4, IPAddress::V4Loopback(), std::nullopt);
    caps.ipv6 = CanBind(AddressFamily::kIPv6, IPAddress::V6Loopback(), true);
    caps.ipv4_mapped_ipv6 =
        caps.ipv6 && CanBind(AddressFamily::kIPv6, V4MappedLoopback(), false);
    return caps;
  }();
  return capabilities;
}

absl::StatusOr<std::vector<SocketAddress>> ResolveAddress(Network network,
                                                          absl::string_view address,
                                                          ResolveFor purpose) {
  if (IsUnix(network)) return ResolveUnix(network, address, purpose);
  return ResolveAddress(network, address, purpose, ProbeIPStack());
}

absl::StatusOr<std::vector<SocketAddress>> ResolveAddress(
    Network network, absl::string_view address, ResolveFor purpose,
    const IPStackCapabilities& capabilities) {
  if (IsUnix(network)) return ResolveUnix(network, address, purpose);
  auto fail = [&](absl::StatusCode code, std::string why) {
    return ResolveError(network, address, purpose, Problem{code, std::move(why), ""});
  };

  // Split and parse the port. An empty address is the wildcard on port 0 for Listen, as in Go.
  absl::string_view host;
  uint16_t port = 0;
  if (address.empty()) {
    if (purpose == ResolveFor::kDial) return fail(absl::StatusCode::kInvalidArgument, "missing address");
  } else {
    absl::string_view service;
    if (const char* why = SplitHostPortViews(address, &host, &service)) {
      return fail(absl::StatusCode::kInvalidArgument, why);
    }
    if (std::optional<Problem> problem = ParsePortOrProblem(service, network, &port)) {
      return ResolveError(network, address, purpose, *problem);
    }
  }

  const AddressFamily want = AddressFamilyFor(network);
  std::vector<IPAddress> ips;
  if (host.empty()) {
    ips.push_back(DefaultAddress(network, purpose, capabilities));
  } else {
    // An IP literal: an IPv6 one is the only host that may contain a colon; an IPv4 one is tried
    // before the resolver, which would also accept legacy forms such as "127.1".
    std::optional<IPAddress> literal;
    if (host.find(':') != absl::string_view::npos) {
      absl::StatusOr<IPAddress> parsed = IPAddress::Parse(host);
      if (!parsed.ok()) return ResolveError(network, address, purpose, FromStatus(parsed.status()));
      literal = *parsed;
    } else if (size_t percent = host.find('%'); percent != absl::string_view::npos) {
      return fail(absl::StatusCode::kInvalidArgument,
                  absl::StrCat("zone ", Quote(host.substr(percent + 1)),
                               " is allowed only on an IPv6 address literal"));
    } else if (absl::StatusOr<IPAddress> parsed = IPAddress::Parse(host); parsed.ok()) {
      literal = *parsed;
    }

    if (literal.has_value()) {
      ips = FilterByFamily(network, {*literal});
      if (ips.empty()) {
        bool mapped = literal->IsV4Mapped();
        return fail(absl::StatusCode::kInvalidArgument,
                    mapped ? absl::StrCat("host ", Quote(host),
                                          " is an IPv4-mapped address, not an IPv6 one")
                           : absl::StrCat("host ", Quote(host), " is not an ", FamilyWord(want),
                                          " address"));
      }
      // Dialing the unspecified address reaches the local system (Go dials its loopback where
      // the OS does not do so itself); "::" also tries 127.0.0.1 for half-configured IPv6 hosts.
      if (purpose == ResolveFor::kDial && ips[0].IsUnspecified()) {
        if (ips[0].is_v4()) {
          ips = {IPAddress::V4Loopback()};
        } else {
          ips = {IPAddress::V6Loopback()};
          if (want == AddressFamily::kUnspecified) ips.push_back(IPAddress::V4Loopback());
        }
      }
    } else {
      // A host name: ask the system's resolver, off the fiber's worker.
      absl::StatusOr<std::vector<IPAddress>> found = absl::UnknownError("not run");
      poller::RunBlocking([&] { found = platform::LookupHost(host); });
      if (!found.ok()) return ResolveError(network, address, purpose, FromStatus(found.status()));
      ips = FilterByFamily(network, *found);
      if (ips.empty()) {
        return fail(absl::StatusCode::kNotFound,
                    absl::StrCat("no ", FamilyWord(want), " address for host ", Quote(host)));
      }
    }
  }

  // Listen binds the first address; like Go, prefer an IPv4 one.
  if (purpose == ResolveFor::kListen) {
    std::stable_partition(ips.begin(), ips.end(), [](const IPAddress& ip) { return ip.is_v4(); });
  }
  std::vector<SocketAddress> result;
  result.reserve(ips.size());
  for (const IPAddress& ip : ips) result.push_back(SocketAddress::FromIP(ip, port));
  return result;
}

}  // namespace netpoll
