#include "netfd/address.h"

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "platform/resolver.h"
#include "platform/socket.h"
#include "platform/socket_address.h"
#include "poller/blocking.h"
#include "poller/waiter.h"
#include "tests/util/sync.h"

namespace netpoll {
namespace {

using platform::AddressFamily;
using platform::IPAddress;
using platform::SocketAddress;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// The capability sets that decide the tcp/udp wildcard and loopback choices.
constexpr IPStackCapabilities kDualStack{true, true, true};
constexpr IPStackCapabilities kSeparateStacks{true, true, false};  // IPV6_V6ONLY forced on
constexpr IPStackCapabilities kIPv4Only{true, false, false};
constexpr IPStackCapabilities kIPv6Only{false, true, false};

// The addresses as text ("127.0.0.1:80", "[::1]:80", "/tmp/sock"), or the error message.
std::vector<std::string> Strings(const absl::StatusOr<std::vector<SocketAddress>>& result) {
  if (!result.ok()) return {std::string("error: ") + std::string(result.status().message())};
  std::vector<std::string> out;
  for (const SocketAddress& a : *result) out.push_back(a.ToString());
  return out;
}

std::vector<std::string> Resolve(Network network, absl::string_view address, ResolveFor purpose,
                                 const IPStackCapabilities& caps = kDualStack) {
  return Strings(ResolveAddress(network, address, purpose, caps));
}

// ---------------------------------------------------------------------------------------------
// Networks

TEST(ParseNetwork, EveryNameRoundTrips) {
  const std::vector<std::pair<std::string, Network>> names = {
      {"tcp", Network::kTcp},   {"tcp4", Network::kTcp4},         {"tcp6", Network::kTcp6},
      {"udp", Network::kUdp},   {"udp4", Network::kUdp4},         {"udp6", Network::kUdp6},
      {"unix", Network::kUnix}, {"unixgram", Network::kUnixgram}, {"unixpacket", Network::kUnixpacket},
  };
  for (const auto& [name, network] : names) {
    absl::StatusOr<Network> parsed = ParseNetwork(name);
    ASSERT_TRUE(parsed.ok()) << name << ": " << parsed.status();
    EXPECT_EQ(*parsed, network) << name;
    EXPECT_EQ(NetworkName(network), name);
  }
}

TEST(ParseNetwork, UnknownNamesFailNamingTheInput) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"foo", R"(unknown network "foo")"},
      {"", R"(unknown network "")"},
      {"TCP", R"(unknown network "TCP")"},
      {"tcp ", R"(unknown network "tcp ")"},
      {"tcp5", R"(unknown network "tcp5")"},
      {"ip", R"(unknown network "ip")"},
      {"ip4:icmp", R"(unknown network "ip4:icmp")"},
      {std::string("tcp\0", 4), R"(unknown network "tcp\x00")"},
  };
  for (const auto& [name, message] : cases) {
    absl::StatusOr<Network> parsed = ParseNetwork(name);
    ASSERT_FALSE(parsed.ok()) << name;
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(parsed.status().message(), message);
  }
}

TEST(Network, Properties) {
  struct Case {
    Network network;
    bool stream, datagram, connection_oriented, unix_domain;
    platform::SocketType type;
    AddressFamily family;
  };
  using platform::SocketType;
  const Case cases[] = {
      {Network::kTcp, true, false, true, false, SocketType::kStream, AddressFamily::kUnspecified},
      {Network::kTcp4, true, false, true, false, SocketType::kStream, AddressFamily::kIPv4},
      {Network::kTcp6, true, false, true, false, SocketType::kStream, AddressFamily::kIPv6},
      {Network::kUdp, false, true, false, false, SocketType::kDatagram, AddressFamily::kUnspecified},
      {Network::kUdp4, false, true, false, false, SocketType::kDatagram, AddressFamily::kIPv4},
      {Network::kUdp6, false, true, false, false, SocketType::kDatagram, AddressFamily::kIPv6},
      {Network::kUnix, true, false, true, true, SocketType::kStream, AddressFamily::kUnix},
      {Network::kUnixgram, false, true, false, true, SocketType::kDatagram, AddressFamily::kUnix},
      {Network::kUnixpacket, false, false, true, true, SocketType::kSeqPacket, AddressFamily::kUnix},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(NetworkName(c.network));
    EXPECT_EQ(IsStream(c.network), c.stream);
    EXPECT_EQ(IsDatagram(c.network), c.datagram);
    EXPECT_EQ(IsConnectionOriented(c.network), c.connection_oriented);
    EXPECT_EQ(IsUnix(c.network), c.unix_domain);
    EXPECT_EQ(IsIP(c.network), !c.unix_domain);
    EXPECT_EQ(SocketTypeFor(c.network), c.type);
    EXPECT_EQ(AddressFamilyFor(c.network), c.family);
  }
}

// ---------------------------------------------------------------------------------------------
// SplitHostPort / JoinHostPort: the cases of Go's net package tests.

struct SplitCase {
  std::string hostport, host, port;
};

TEST(SplitHostPort, GoValidCases) {
  const SplitCase cases[] = {
      // Host name.
      {"localhost:http", "localhost", "http"},
      {"localhost:80", "localhost", "80"},
      // Go-specific host name with a zone.
      {"localhost%lo0:http", "localhost%lo0", "http"},
      {"localhost%lo0:80", "localhost%lo0", "80"},
      {"[localhost%lo0]:http", "localhost%lo0", "http"},
      {"[localhost%lo0]:80", "localhost%lo0", "80"},
      // IP literals.
      {"127.0.0.1:http", "127.0.0.1", "http"},
      {"127.0.0.1:80", "127.0.0.1", "80"},
      {"[::1]:http", "::1", "http"},
      {"[::1]:80", "::1", "80"},
      {"[::1%lo0]:http", "::1%lo0", "http"},
      {"[::1%lo0]:80", "::1%lo0", "80"},
      {"[fe80::1%eth0]:80", "fe80::1%eth0", "80"},
      // Empty host: the wildcard (Listen) or the local system (Dial).
      {":http", "", "http"},
      {":80", "", "80"},
      {":0", "", "0"},
      {"[::]:0", "::", "0"},
      {"[]:80", "", "80"},
      // Empty port.
      {"golang.org:", "golang.org", ""},
      {"127.0.0.1:", "127.0.0.1", ""},
      {"[::1]:", "::1", ""},
      {":", "", ""},
      // An opaque service name.
      {"golang.org:https%foo", "golang.org", "https%foo"},
  };
  for (const SplitCase& c : cases) {
    absl::StatusOr<HostPort> split = SplitHostPort(c.hostport);
    ASSERT_TRUE(split.ok()) << c.hostport << ": " << split.status();
    EXPECT_EQ(split->host, c.host) << c.hostport;
    EXPECT_EQ(split->port, c.port) << c.hostport;
  }
}

TEST(SplitHostPort, GoFailureCases) {
  const std::pair<std::string, std::string> cases[] = {
      {"www.google.com", "missing port in address"},
      {"127.0.0.1", "missing port in address"},
      {"[::1]", "missing port in address"},
      {"[fe80::1%lo0]", "missing port in address"},
      {"[localhost%lo0]", "missing port in address"},
      {"localhost%lo0", "missing port in address"},
      {"", "missing port in address"},
      {"::1", "too many colons in address"},
      {"fe80::1%lo0", "too many colons in address"},
      {"fe80::1%lo0:80", "too many colons in address"},
      {"[foo:bar]", "missing port in address"},
      {"[foo:bar]baz", "missing port in address"},
      {"[foo]bar:baz", "missing port in address"},
      {"[foo]:[bar]:baz", "too many colons in address"},
      {"[foo]:[bar]baz", "unexpected '[' in address"},
      {"foo[bar]:baz", "unexpected '[' in address"},
      {"foo]bar:baz", "unexpected ']' in address"},
      {"[::1:80", "missing ']' in address"},
      {"[", "missing port in address"},
      {"[:", "missing ']' in address"},
      {"]:80", "unexpected ']' in address"},
  };
  for (const auto& [hostport, why] : cases) {
    absl::StatusOr<HostPort> split = SplitHostPort(hostport);
    ASSERT_FALSE(split.ok()) << hostport << " split into " << (split.ok() ? split->host : "");
    EXPECT_EQ(split.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(split.status().message(), why + " \"" + hostport + "\"");
  }
}

TEST(JoinHostPort, GoCases) {
  const SplitCase cases[] = {
      {"www.google.com:80", "www.google.com", "80"},
      {"127.0.0.1:1234", "127.0.0.1", "1234"},
      {"[::1]:80", "::1", "80"},
      {"[fe80::1%lo0]:80", "fe80::1%lo0", "80"},
      {"localhost%lo0:80", "localhost%lo0", "80"},
      {":0", "", "0"},
      {"google.com:https%foo", "google.com", "https%foo"},
      {"127.0.0.1:", "127.0.0.1", ""},
      {"www.google.com:", "www.google.com", ""},
  };
  for (const SplitCase& c : cases) {
    EXPECT_EQ(JoinHostPort(c.host, c.port), c.hostport);
    // And back again.
    absl::StatusOr<HostPort> split = SplitHostPort(c.hostport);
    ASSERT_TRUE(split.ok()) << c.hostport << ": " << split.status();
    EXPECT_EQ(*split, (HostPort{c.host, c.port}));
  }
}

// ---------------------------------------------------------------------------------------------
// Ports

TEST(ParsePort, DecimalNumbers) {
  const std::pair<std::string, uint16_t> cases[] = {
      {"0", 0},   {"1", 1},   {"80", 80},   {"8080", 8080}, {"65535", 65535},
      {"080", 80}, {"+80", 80}, {"-0", 0},   {"", 0},  // "" is port 0, as in Go.
      {"0000000000000000000000443", 443},
  };
  for (const auto& [text, port] : cases) {
    for (Network network : {Network::kTcp, Network::kUdp6}) {
      absl::StatusOr<uint16_t> parsed = ParsePort(text, network);
      ASSERT_TRUE(parsed.ok()) << '"' << text << "\": " << parsed.status();
      EXPECT_EQ(*parsed, port) << '"' << text << '"';
    }
  }
}

TEST(ParsePort, OutOfRange) {
  for (const std::string text : {"65536", "-1", "99999", "-65535", "18446744073709551696",
                                 "99999999999999999999999999999999"}) {
    absl::StatusOr<uint16_t> parsed = ParsePort(text, Network::kTcp);
    ASSERT_FALSE(parsed.ok()) << text << " parsed as " << *parsed;
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(parsed.status().message(), "port out of range \"" + text + "\"");
  }
}

TEST(ParsePort, ServiceNames) {
  absl::StatusOr<uint16_t> http = ParsePort("http", Network::kTcp4);
  ASSERT_TRUE(http.ok()) << http.status();
  EXPECT_EQ(*http, 80);
  absl::StatusOr<uint16_t> domain = ParsePort("domain", Network::kUdp);
  ASSERT_TRUE(domain.ok()) << domain.status();
  EXPECT_EQ(*domain, 53);
}

TEST(ParsePort, NeitherNumberNorService) {
  absl::StatusOr<uint16_t> tcp = ParsePort("8o", Network::kTcp);
  ASSERT_FALSE(tcp.ok());
  EXPECT_EQ(tcp.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(tcp.status().message(), R"(unknown port "8o": not a number or a known tcp service)");

  absl::StatusOr<uint16_t> udp = ParsePort("no-such-service", Network::kUdp4);
  ASSERT_FALSE(udp.ok());
  EXPECT_EQ(udp.status().message(),
            R"(unknown port "no-such-service": not a number or a known udp service)");

  for (const std::string text : {"+", "-", "1e3", " 80", "80 ", "0x50"}) {
    absl::StatusOr<uint16_t> parsed = ParsePort(text, Network::kTcp);
    ASSERT_FALSE(parsed.ok()) << '"' << text << "\" parsed as " << *parsed;
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kNotFound) << text;
    EXPECT_THAT(std::string(parsed.status().message()), StartsWith("unknown port \"" + text + "\""));
  }
}

TEST(ParsePort, UnixNetworksHaveNoPorts) {
  absl::StatusOr<uint16_t> parsed = ParsePort("80", Network::kUnixgram);
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(parsed.status().message(), R"(unexpected port "80": network unixgram has no ports)");
}

// ---------------------------------------------------------------------------------------------
// ResolveAddress: literals, wildcards, loopback

TEST(ResolveAddress, IPv4Literal) {
  absl::StatusOr<std::vector<SocketAddress>> r =
      ResolveAddress(Network::kTcp4, "127.0.0.1:8080", ResolveFor::kListen, kDualStack);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].family(), AddressFamily::kIPv4);
  EXPECT_EQ((*r)[0].ip(), IPAddress::V4({127, 0, 0, 1}));
  EXPECT_EQ((*r)[0].port(), 8080);
  for (Network n : {Network::kTcp, Network::kTcp4, Network::kUdp, Network::kUdp4}) {
    for (ResolveFor p : {ResolveFor::kListen, ResolveFor::kDial}) {
      EXPECT_THAT(Resolve(n, "192.0.2.1:53", p), ElementsAre("192.0.2.1:53")) << NetworkName(n);
    }
  }
}

TEST(ResolveAddress, IPv6Literal) {
  for (Network n : {Network::kTcp, Network::kTcp6, Network::kUdp, Network::kUdp6}) {
    for (ResolveFor p : {ResolveFor::kListen, ResolveFor::kDial}) {
      EXPECT_THAT(Resolve(n, "[::1]:80", p), ElementsAre("[::1]:80")) << NetworkName(n);
      EXPECT_THAT(Resolve(n, "[2001:db8::1]:443", p), ElementsAre("[2001:db8::1]:443"));
    }
  }
  absl::StatusOr<std::vector<SocketAddress>> r =
      ResolveAddress(Network::kTcp6, "[2001:db8::1]:443", ResolveFor::kDial, kDualStack);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ((*r)[0].family(), AddressFamily::kIPv6);
  EXPECT_EQ((*r)[0].port(), 443);
}

TEST(ResolveAddress, ListenWildcardForTcpAndUdpFollowsTheStack) {
  for (Network n : {Network::kTcp, Network::kUdp}) {
    SCOPED_TRACE(NetworkName(n));
    EXPECT_THAT(Resolve(n, ":0", ResolveFor::kListen, kDualStack), ElementsAre("[::]:0"));
    EXPECT_THAT(Resolve(n, ":8080", ResolveFor::kListen, kDualStack), ElementsAre("[::]:8080"));
    EXPECT_THAT(Resolve(n, ":0", ResolveFor::kListen, kSeparateStacks), ElementsAre("0.0.0.0:0"));
    EXPECT_THAT(Resolve(n, ":0", ResolveFor::kListen, kIPv4Only), ElementsAre("0.0.0.0:0"));
    EXPECT_THAT(Resolve(n, ":0", ResolveFor::kListen, kIPv6Only), ElementsAre("[::]:0"));
    // An empty address is the wildcard on port 0, as in Go.
    EXPECT_THAT(Resolve(n, "", ResolveFor::kListen, kDualStack), ElementsAre("[::]:0"));
    EXPECT_THAT(Resolve(n, "", ResolveFor::kListen, kIPv4Only), ElementsAre("0.0.0.0:0"));
  }
}

TEST(ResolveAddress, ListenWildcardForNumberedNetworks) {
  for (const IPStackCapabilities& caps : {kDualStack, kIPv4Only, kIPv6Only}) {
    EXPECT_THAT(Resolve(Network::kTcp4, ":80", ResolveFor::kListen, caps), ElementsAre("0.0.0.0:80"));
    EXPECT_THAT(Resolve(Network::kUdp4, ":80", ResolveFor::kListen, caps), ElementsAre("0.0.0.0:80"));
    EXPECT_THAT(Resolve(Network::kTcp6, ":80", ResolveFor::kListen, caps), ElementsAre("[::]:80"));
    EXPECT_THAT(Resolve(Network::kUdp6, ":80", ResolveFor::kListen, caps), ElementsAre("[::]:80"));
    EXPECT_THAT(Resolve(Network::kTcp4, "", ResolveFor::kListen, caps), ElementsAre("0.0.0.0:0"));
    EXPECT_THAT(Resolve(Network::kTcp6, "[]:7", ResolveFor::kListen, caps), ElementsAre("[::]:7"));
  }
}

TEST(ResolveAddress, ExplicitUnspecifiedAddressIsKeptForListen) {
  EXPECT_THAT(Resolve(Network::kTcp, "0.0.0.0:80", ResolveFor::kListen), ElementsAre("0.0.0.0:80"));
  EXPECT_THAT(Resolve(Network::kTcp, "[::]:80", ResolveFor::kListen), ElementsAre("[::]:80"));
  EXPECT_THAT(Resolve(Network::kTcp6, "[::]:0", ResolveFor::kListen), ElementsAre("[::]:0"));
}

TEST(ResolveAddress, DialEmptyHostIsLoopback) {
  for (Network n : {Network::kTcp, Network::kTcp4, Network::kUdp, Network::kUdp4}) {
    EXPECT_THAT(Resolve(n, ":80", ResolveFor::kDial), ElementsAre("127.0.0.1:80")) << NetworkName(n);
    EXPECT_THAT(Resolve(n, ":80", ResolveFor::kDial, kIPv4Only), ElementsAre("127.0.0.1:80"));
  }
  for (Network n : {Network::kTcp6, Network::kUdp6}) {
    EXPECT_THAT(Resolve(n, ":80", ResolveFor::kDial), ElementsAre("[::1]:80")) << NetworkName(n);
  }
  // No IPv4 at all: tcp falls back to the IPv6 loopback; tcp4 still asks for IPv4.
  EXPECT_THAT(Resolve(Network::kTcp, ":80", ResolveFor::kDial, kIPv6Only), ElementsAre("[::1]:80"));
  EXPECT_THAT(Resolve(Network::kTcp4, ":80", ResolveFor::kDial, kIPv6Only),
              ElementsAre("127.0.0.1:80"));
}

TEST(ResolveAddress, DialUnspecifiedLiteralIsLoopback) {
  EXPECT_THAT(Resolve(Network::kTcp, "0.0.0.0:80", ResolveFor::kDial), ElementsAre("127.0.0.1:80"));
  EXPECT_THAT(Resolve(Network::kUdp4, "0.0.0.0:80", ResolveFor::kDial), ElementsAre("127.0.0.1:80"));
  // "::" tries the IPv6 loopback, then the IPv4 one (Go issue 18806)...
  EXPECT_THAT(Resolve(Network::kTcp, "[::]:80", ResolveFor::kDial),
              ElementsAre("[::1]:80", "127.0.0.1:80"));
  // ... unless the network is IPv6 only.
  EXPECT_THAT(Resolve(Network::kTcp6, "[::]:80", ResolveFor::kDial), ElementsAre("[::1]:80"));
}

TEST(ResolveAddress, DialNeedsAnAddress) {
  absl::StatusOr<std::vector<SocketAddress>> r =
      ResolveAddress(Network::kTcp, "", ResolveFor::kDial);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(), R"(dial tcp "": missing address)");
}

TEST(ResolveAddress, ProbedStackDecidesTheDefaultWildcard) {
  const IPStackCapabilities& caps = ProbeIPStack();
  EXPECT_EQ(&caps, &ProbeIPStack());  // Probed once, then cached.
  // Every machine that runs the suite has IPv4 loopback; a mapped-IPv4 stack needs IPv6.
  EXPECT_TRUE(caps.ipv4);
  if (caps.ipv4_mapped_ipv6) {
    EXPECT_TRUE(caps.ipv6);
  }
  EXPECT_EQ(Strings(ResolveAddress(Network::kTcp, ":0", ResolveFor::kListen)),
            Resolve(Network::kTcp, ":0", ResolveFor::kListen, caps));
  EXPECT_THAT(Strings(ResolveAddress(Network::kTcp, ":0", ResolveFor::kListen)),
              ElementsAre(caps.ipv6 && caps.ipv4_mapped_ipv6 ? "[::]:0" : "0.0.0.0:0"));
}

// ---------------------------------------------------------------------------------------------
// Family filtering

TEST(ResolveAddress, LiteralOfTheWrongFamilyIsAnError) {
  EXPECT_THAT(Resolve(Network::kTcp4, "[::1]:80", ResolveFor::kDial),
              ElementsAre(R"(error: dial tcp4 "[::1]:80": host "::1" is not an IPv4 address)"));
  EXPECT_THAT(Resolve(Network::kUdp6, "127.0.0.1:80", ResolveFor::kListen),
              ElementsAre(R"(error: listen udp6 "127.0.0.1:80": host "127.0.0.1" is not an IPv6 address)"));
  EXPECT_THAT(Resolve(Network::kTcp4, "[::]:80", ResolveFor::kListen),
              ElementsAre(R"(error: listen tcp4 "[::]:80": host "::" is not an IPv4 address)"));
  absl::StatusOr<std::vector<SocketAddress>> r =
      ResolveAddress(Network::kTcp4, "[::1]:80", ResolveFor::kDial);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ResolveAddress, IPv4MappedLiteralCountsAsIPv4) {
  for (Network n : {Network::kTcp, Network::kTcp4, Network::kUdp, Network::kUdp4}) {
    absl::StatusOr<std::vector<SocketAddress>> r =
        ResolveAddress(n, "[::ffff:10.1.2.3]:80", ResolveFor::kDial, kDualStack);
    ASSERT_TRUE(r.ok()) << NetworkName(n) << ": " << r.status();
    ASSERT_EQ(r->size(), 1u);
    EXPECT_EQ((*r)[0].family(), AddressFamily::kIPv4) << NetworkName(n);
    EXPECT_EQ((*r)[0].ToString(), "10.1.2.3:80");
  }
  EXPECT_THAT(Resolve(Network::kTcp6, "[::ffff:10.1.2.3]:80", ResolveFor::kDial),
              ElementsAre(R"(error: dial tcp6 "[::ffff:10.1.2.3]:80": host "::ffff:10.1.2.3" is an IPv4-mapped address, not an IPv6 one)"));
  // The mapped unspecified address is 0.0.0.0, so dialing it reaches the IPv4 loopback.
  EXPECT_THAT(Resolve(Network::kTcp, "[::ffff:0.0.0.0]:80", ResolveFor::kDial),
              ElementsAre("127.0.0.1:80"));
}

// ---------------------------------------------------------------------------------------------
// IPv6 zones

TEST(ResolveAddress, NumericZone) {
  absl::StatusOr<std::vector<SocketAddress>> r =
      ResolveAddress(Network::kTcp6, "[fe80::1%1]:80", ResolveFor::kDial, kDualStack);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].ip().scope_id(), 1u);
  EXPECT_EQ((*r)[0].ToString(), "[fe80::1%1]:80");
  EXPECT_THAT(Resolve(Network::kTcp, "[fe80::1%1]:80", ResolveFor::kListen),
              ElementsAre("[fe80::1%1]:80"));
}

TEST(ResolveAddress, InterfaceNameZone) {
  // The loopback interface exists everywhere; its index is whatever the OS gave it.
  absl::StatusOr<IPAddress> expected = IPAddress::Parse("fe80::1%lo");
  if (!expected.ok()) GTEST_SKIP() << "no interface named lo here: " << expected.status();
  ASSERT_NE(expected->scope_id(), 0u);
  absl::StatusOr<std::vector<SocketAddress>> r =
      ResolveAddress(Network::kTcp, "[fe80::1%lo]:8080", ResolveFor::kDial, kDualStack);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].ip(), *expected);
  EXPECT_EQ((*r)[0].ip().scope_id(), expected->scope_id());
  EXPECT_EQ((*r)[0].port(), 8080);
}

TEST(ResolveAddress, ZoneErrors) {
  absl::StatusOr<std::vector<SocketAddress>> unknown =
      ResolveAddress(Network::kTcp, "[fe80::1%no-such-if0]:80", ResolveFor::kDial);
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(unknown.status().message()),
              StartsWith(R"(dial tcp "[fe80::1%no-such-if0]:80": invalid IP address)"));
  EXPECT_THAT(std::string(unknown.status().message()), HasSubstr("no-such-if0"));

  EXPECT_THAT(Resolve(Network::kTcp, "localhost%lo:80", ResolveFor::kDial),
              ElementsAre(R"(error: dial tcp "localhost%lo:80": zone "lo" is allowed only on an IPv6 address literal)"));
  EXPECT_THAT(Resolve(Network::kTcp, "[localhost%lo]:80", ResolveFor::kDial),
              ElementsAre(R"(error: dial tcp "[localhost%lo]:80": zone "lo" is allowed only on an IPv6 address literal)"));
  EXPECT_THAT(Resolve(Network::kTcp4, "127.0.0.1%1:80", ResolveFor::kListen),
              ElementsAre(R"(error: listen tcp4 "127.0.0.1%1:80": zone "1" is allowed only on an IPv6 address literal)"));
  EXPECT_THAT(Resolve(Network::kTcp4, "[fe80::1%1]:80", ResolveFor::kDial),
              ElementsAre(R"(error: dial tcp4 "[fe80::1%1]:80": host "fe80::1%1" is not an IPv4 address)"));
}

// ---------------------------------------------------------------------------------------------
// Ports inside addresses

TEST(ResolveAddress, PortErrorsNameTheAddress) {
  EXPECT_THAT(Resolve(Network::kTcp, "localhost:99999", ResolveFor::kDial),
              ElementsAre(R"(error: dial tcp "localhost:99999": port out of range)"));
  EXPECT_THAT(Resolve(Network::kTcp, "127.0.0.1:-1", ResolveFor::kListen),
              ElementsAre(R"(error: listen tcp "127.0.0.1:-1": port out of range)"));
  EXPECT_THAT(Resolve(Network::kTcp, "127.0.0.1:8o", ResolveFor::kDial),
              ElementsAre(R"(error: dial tcp "127.0.0.1:8o": unknown port: not a number or a known tcp service)"));
  EXPECT_THAT(Resolve(Network::kUdp, "127.0.0.1:8o", ResolveFor::kDial),
              ElementsAre(R"(error: dial udp "127.0.0.1:8o": unknown port: not a number or a known udp service)"));
  absl::StatusOr<std::vector<SocketAddress>> r =
      ResolveAddress(Network::kTcp, "127.0.0.1:65536", ResolveFor::kDial);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ResolveAddress, ServiceNamesAndEmptyPort) {
  EXPECT_THAT(Resolve(Network::kTcp, "127.0.0.1:http", ResolveFor::kDial), ElementsAre("127.0.0.1:80"));
  EXPECT_THAT(Resolve(Network::kUdp, "[::1]:domain", ResolveFor::kDial), ElementsAre("[::1]:53"));
  EXPECT_THAT(Resolve(Network::kTcp4, ":https", ResolveFor::kListen), ElementsAre("0.0.0.0:443"));
  // An empty port is port 0, as in Go.
  EXPECT_THAT(Resolve(Network::kTcp4, "127.0.0.1:", ResolveFor::kListen), ElementsAre("127.0.0.1:0"));
  EXPECT_THAT(Resolve(Network::kTcp6, ":", ResolveFor::kListen), ElementsAre("[::]:0"));
}

// ---------------------------------------------------------------------------------------------
// Host names

TEST(ResolveAddress, LocalhostResolvesToLoopback) {
  absl::StatusOr<std::vector<SocketAddress>> r =
      ResolveAddress(Network::kTcp, "localhost:80", ResolveFor::kDial);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_FALSE(r->empty());
  for (const SocketAddress& a : *r) {
    EXPECT_TRUE(a.ip().IsLoopback()) << a.ToString();
    EXPECT_EQ(a.port(), 80);
  }
  absl::StatusOr<std::vector<SocketAddress>> v4 =
      ResolveAddress(Network::kTcp4, "localhost:http", ResolveFor::kDial);
  ASSERT_TRUE(v4.ok()) << v4.status();
  for (const SocketAddress& a : *v4) EXPECT_EQ(a.family(), AddressFamily::kIPv4) << a.ToString();
  EXPECT_THAT(Strings(v4), ::testing::Contains("127.0.0.1:80"));
  // Brackets around a name change nothing (as in Go).
  EXPECT_EQ(Strings(ResolveAddress(Network::kTcp4, "[localhost]:80", ResolveFor::kDial)),
            Strings(ResolveAddress(Network::kTcp4, "localhost:80", ResolveFor::kDial)));
}

TEST(ResolveAddress, FamilyFilteringOfAName) {
  // What the system says about localhost decides what tcp6 may find.
  absl::StatusOr<std::vector<IPAddress>> all = platform::LookupHost("localhost");
  ASSERT_TRUE(all.ok()) << all.status();
  std::vector<std::string> v6;
  for (const IPAddress& ip : *all) {
    if (ip.is_v6() && !ip.IsV4Mapped()) v6.push_back(SocketAddress::FromIP(ip, 80).ToString());
  }
  absl::StatusOr<std::vector<SocketAddress>> r =
      ResolveAddress(Network::kTcp6, "localhost:80", ResolveFor::kDial);
  if (v6.empty()) {
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
    EXPECT_EQ(r.status().message(), R"(dial tcp6 "localhost:80": no IPv6 address for host "localhost")");
  } else {
    EXPECT_EQ(Strings(r), v6);
  }
}

TEST(ResolveAddress, ListenPutsIPv4FirstDialKeepsTheResolverOrder) {
  absl::StatusOr<std::vector<IPAddress>> all = platform::LookupHost("localhost");
  ASSERT_TRUE(all.ok()) << all.status();
  std::vector<std::string> resolver_order, v4_first, v6_after;
  for (const IPAddress& ip : *all) {
    std::string text = SocketAddress::FromIP(ip, 9).ToString();
    resolver_order.push_back(text);
    (ip.is_v4() ? v4_first : v6_after).push_back(text);
  }
  v4_first.insert(v4_first.end(), v6_after.begin(), v6_after.end());
  EXPECT_EQ(Resolve(Network::kTcp, "localhost:9", ResolveFor::kDial), resolver_order);
  EXPECT_EQ(Resolve(Network::kTcp, "localhost:9", ResolveFor::kListen), v4_first);
}

TEST(ResolveAddress, UnknownHost) {
  absl::StatusOr<std::vector<SocketAddress>> r =
      ResolveAddress(Network::kTcp, "no-such-host.invalid:80", ResolveFor::kDial);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(r.status().message()),
              StartsWith(R"(dial tcp "no-such-host.invalid:80": lookup no-such-host.invalid: )"));
}

// ---------------------------------------------------------------------------------------------
// Malformed input: a clear error, never a crash

TEST(ResolveAddress, MalformedAddresses) {
  const std::pair<std::string, std::string> cases[] = {
      {"example.com", R"(listen tcp "example.com": missing port in address)"},
      {"::1", R"(listen tcp "::1": too many colons in address)"},
      {"[::1", R"(listen tcp "[::1": missing ']' in address)"},
      {"[::1]", R"(listen tcp "[::1]": missing port in address)"},
      {"a[b]:80", R"(listen tcp "a[b]:80": unexpected '[' in address)"},
      {"a]b:80", R"(listen tcp "a]b:80": unexpected ']' in address)"},
      {"[::g]:80", R"(listen tcp "[::g]:80": invalid IP address "::g")"},
      {"[1.2.3.4:5]:80", R"(listen tcp "[1.2.3.4:5]:80": invalid IP address "1.2.3.4:5")"},
      {"/tmp/sock", R"(listen tcp "/tmp/sock": missing port in address)"},
  };
  for (const auto& [address, message] : cases) {
    absl::StatusOr<std::vector<SocketAddress>> r =
        ResolveAddress(Network::kTcp, address, ResolveFor::kListen);
    ASSERT_FALSE(r.ok()) << address;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << address;
    EXPECT_EQ(r.status().message(), message);
  }
}

TEST(ResolveAddress, BinaryGarbageIsEscapedInTheMessage) {
  std::string address("\xff\x00\n:80", 6);
  absl::StatusOr<std::vector<SocketAddress>> r =
      ResolveAddress(Network::kTcp, address, ResolveFor::kDial);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(),
            R"(dial tcp "\xff\x00\n:80": lookup \xff\x00\n: host name contains a NUL byte)");
}

TEST(ResolveAddress, OverlongHostNameFailsCleanly) {
  std::string address = std::string(1000, 'a') + ".invalid:80";
  absl::StatusOr<std::vector<SocketAddress>> r =
      ResolveAddress(Network::kTcp, address, ResolveFor::kDial);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()), StartsWith("dial tcp \"" + address + "\": lookup "));
}

// ---------------------------------------------------------------------------------------------
// Unix networks

TEST(ResolveAddress, UnixPaths) {
  for (Network n : {Network::kUnix, Network::kUnixgram, Network::kUnixpacket}) {
    for (ResolveFor p : {ResolveFor::kListen, ResolveFor::kDial}) {
      absl::StatusOr<std::vector<SocketAddress>> r = ResolveAddress(n, "/tmp/netpoll.sock", p);
      ASSERT_TRUE(r.ok()) << r.status();
      ASSERT_EQ(r->size(), 1u);
      EXPECT_EQ((*r)[0].family(), AddressFamily::kUnix);
      EXPECT_EQ((*r)[0].unix_path(), "/tmp/netpoll.sock");
    }
  }
  // A path that looks like host:port is still a path.
  EXPECT_THAT(Strings(ResolveAddress(Network::kUnix, "relative:80", ResolveFor::kDial)),
              ElementsAre("relative:80"));
#if defined(__linux__)
  EXPECT_THAT(Strings(ResolveAddress(Network::kUnixgram, "@netpoll-abstract", ResolveFor::kListen)),
              ElementsAre("@netpoll-abstract"));
#endif
}

TEST(ResolveAddress, UnixPathLimits) {
  const size_t limit = SocketAddress::kMaxUnixPathLength;
  std::string longest = "/" + std::string(limit - 1, 'p');
  absl::StatusOr<std::vector<SocketAddress>> ok =
      ResolveAddress(Network::kUnix, longest, ResolveFor::kListen);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ((*ok)[0].unix_path(), longest);

  std::string too_long = longest + "p";
  absl::StatusOr<std::vector<SocketAddress>> r =
      ResolveAddress(Network::kUnix, too_long, ResolveFor::kListen);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(),
            "listen unix \"" + too_long + "\": unix socket path is too long: " +
                std::to_string(limit + 1) + " bytes, the limit is " + std::to_string(limit));

  absl::StatusOr<std::vector<SocketAddress>> empty =
      ResolveAddress(Network::kUnixpacket, "", ResolveFor::kDial);
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.status().message(), R"(dial unixpacket "": unix socket path is empty)");
}

// ---------------------------------------------------------------------------------------------
// Lookups run through RunBlocking, off a fiber's worker

// Stands in for a fiber: claims IsFiber(), so RunBlocking hands the work to a helper thread and
// parks this "fiber" until the helper readies it. Parks the OS thread on a condition variable.
class FakeFiber final : public poller::Waiter {
 public:
  void Park(CommitFn commit, void* arg, const poller::WaitReason&) override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      ++parks_;
      readied_ = false;
    }
    if (!commit(this, arg)) return;
    std::unique_lock<std::mutex> lock(mutex_);
    if (!cv_.wait_for(lock, testing::kWaitBound, [this] { return readied_; })) {
      // The helper still holds pointers into this frame; there is no safe way to go on.
      std::fprintf(stderr, "FakeFiber: not readied within the bound\n");
      std::abort();
    }
  }
  void Ready() override {
    std::lock_guard<std::mutex> lock(mutex_);
    readied_ = true;
    cv_.notify_one();
  }
  bool IsFiber() const override { return true; }
  int parks() {
    std::lock_guard<std::mutex> lock(mutex_);
    return parks_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool readied_ = false;
  int parks_ = 0;
};

TEST(ResolveAddress, LookupsRunOffTheFibersWorker) {
  // Never destroyed: a helper thread may still be returning from Ready() when the test ends.
  static FakeFiber* fiber = new FakeFiber;
  poller::SetCurrentFiberWaiter(fiber);
  absl::StatusOr<std::vector<SocketAddress>> literal =
      ResolveAddress(Network::kTcp, "127.0.0.1:80", ResolveFor::kDial);
  int parks_after_literal = fiber->parks();
  absl::StatusOr<std::vector<SocketAddress>> name =
      ResolveAddress(Network::kTcp4, "localhost:80", ResolveFor::kDial);
  int parks_after_name = fiber->parks();
  absl::StatusOr<std::vector<SocketAddress>> service =
      ResolveAddress(Network::kTcp, "[::1]:http", ResolveFor::kDial);
  int parks_after_service = fiber->parks();
  poller::SetCurrentFiberWaiter(nullptr);

  ASSERT_TRUE(literal.ok()) << literal.status();
  EXPECT_THAT(Strings(literal), ElementsAre("127.0.0.1:80"));
  EXPECT_EQ(parks_after_literal, 0);  // An IP literal needs no lookup.
  ASSERT_TRUE(name.ok()) << name.status();
  EXPECT_THAT(Strings(name), ::testing::Contains("127.0.0.1:80"));
  EXPECT_EQ(parks_after_name, 1);  // The host name was looked up on a helper thread.
  ASSERT_TRUE(service.ok()) << service.status();
  EXPECT_THAT(Strings(service), ElementsAre("[::1]:80"));
  EXPECT_EQ(parks_after_service, 2);  // So was the service name.
  EXPECT_GE(poller::BlockingThreadCount(), 1);
}

}  // namespace
}  // namespace netpoll
