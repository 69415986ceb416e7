#include "platform/resolver.h"

#include <chrono>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "platform/socket_address.h"
#include "tests/util/sync.h"

namespace netpoll::platform {
namespace {

using ::testing::HasSubstr;

// A name that needs the DNS (it is in no hosts file) goes to the configured name server. On these
// offline machines it answers at once (NXDOMAIN in milliseconds, checked), but a machine whose
// resolv.conf points at a silent server would hang in getaddrinfo for its retries; bound the wait
// so such a machine fails loudly instead of stalling the suite.
constexpr std::chrono::seconds kLookupBound{60};

absl::StatusOr<std::vector<IPAddress>> BoundedLookupHost(absl::string_view host) {
  absl::StatusOr<std::vector<IPAddress>> result = absl::UnknownError("not run");
  testing::BoundedThread thread([&] { result = LookupHost(host); });
  thread.Join(kLookupBound);
  return result;
}

TEST(LookupHost, LocalhostResolvesToLoopbackAddresses) {
  absl::StatusOr<std::vector<IPAddress>> addresses = BoundedLookupHost("localhost");
  ASSERT_TRUE(addresses.ok()) << addresses.status();
  ASSERT_FALSE(addresses->empty());
  bool has_v4_or_v6_loopback = false;
  for (const IPAddress& ip : *addresses) {
    EXPECT_TRUE(ip.IsLoopback()) << ip.ToString();
    if (ip == IPAddress::V4Loopback() || ip == IPAddress::V6Loopback()) has_v4_or_v6_loopback = true;
  }
  EXPECT_TRUE(has_v4_or_v6_loopback);
  // No address appears twice, although getaddrinfo knows several socket types per address.
  for (size_t i = 0; i < addresses->size(); ++i) {
    for (size_t j = i + 1; j < addresses->size(); ++j) {
      EXPECT_FALSE((*addresses)[i] == (*addresses)[j]) << (*addresses)[i].ToString();
    }
  }
}

TEST(LookupHost, IPv4LiteralResolvesToItself) {
  absl::StatusOr<std::vector<IPAddress>> addresses = BoundedLookupHost("192.0.2.7");
  ASSERT_TRUE(addresses.ok()) << addresses.status();
  ASSERT_EQ(addresses->size(), 1u);
  EXPECT_EQ((*addresses)[0], IPAddress::V4({192, 0, 2, 7}));
}

TEST(LookupHost, IPv6LiteralResolvesToItself) {
  absl::StatusOr<std::vector<IPAddress>> addresses = BoundedLookupHost("2001:db8::5");
  ASSERT_TRUE(addresses.ok()) << addresses.status();
  ASSERT_EQ(addresses->size(), 1u);
  EXPECT_EQ((*addresses)[0].ToString(), "2001:db8::5");
  EXPECT_TRUE((*addresses)[0].is_v6());
}

TEST(LookupHost, IPv6LiteralKeepsItsZoneAsScopeId) {
  absl::StatusOr<std::vector<IPAddress>> addresses = BoundedLookupHost("fe80::1%1");
  ASSERT_TRUE(addresses.ok()) << addresses.status();
  ASSERT_EQ(addresses->size(), 1u);
  EXPECT_EQ((*addresses)[0].scope_id(), 1u);
  EXPECT_EQ((*addresses)[0].ToString(), "fe80::1%1");
}

TEST(LookupHost, InvalidTopLevelDomainIsNotFound) {
  absl::StatusOr<std::vector<IPAddress>> addresses = BoundedLookupHost("no-such-host.invalid");
  ASSERT_FALSE(addresses.ok());
  EXPECT_EQ(addresses.status().code(), absl::StatusCode::kNotFound) << addresses.status();
  // The host, then the resolver's own words (glibc: "Name or service not known").
  EXPECT_THAT(std::string(addresses.status().message()),
              ::testing::StartsWith("lookup no-such-host.invalid: "));
  EXPECT_GT(addresses.status().message().size(), std::string("lookup no-such-host.invalid: ").size());
}

TEST(LookupHost, EmptyHostIsRejectedWithoutAsking) {
  absl::StatusOr<std::vector<IPAddress>> addresses = LookupHost("");
  ASSERT_FALSE(addresses.ok());
  EXPECT_EQ(addresses.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(addresses.status().message(), "lookup: empty host name");
}

TEST(LookupHost, EmbeddedNulIsRejectedNotTruncated) {
  // Truncated at the NUL this would be "localhost", which resolves.
  absl::StatusOr<std::vector<IPAddress>> addresses =
      LookupHost(absl::string_view("localhost\0.evil", 15));
  ASSERT_FALSE(addresses.ok());
  EXPECT_EQ(addresses.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(addresses.status().message()), HasSubstr("NUL"));
  EXPECT_THAT(std::string(addresses.status().message()), HasSubstr("localhost\\x00.evil"));
}

TEST(LookupPort, HttpOverTcpIs80) {
  absl::StatusOr<uint16_t> port = LookupPort("http", "tcp");
  ASSERT_TRUE(port.ok()) << port.status();
  EXPECT_EQ(*port, 80);
}

TEST(LookupPort, ServicesByNameAndProtocol) {
  absl::StatusOr<uint16_t> https = LookupPort("https", "tcp");
  ASSERT_TRUE(https.ok()) << https.status();
  EXPECT_EQ(*https, 443);
  absl::StatusOr<uint16_t> domain = LookupPort("domain", "udp");
  ASSERT_TRUE(domain.ok()) << domain.status();
  EXPECT_EQ(*domain, 53);
  absl::StatusOr<uint16_t> any = LookupPort("ssh", "");
  ASSERT_TRUE(any.ok()) << any.status();
  EXPECT_EQ(*any, 22);
}

TEST(LookupPort, UnknownServiceFailsClearly) {
  absl::StatusOr<uint16_t> port = LookupPort("no-such-service-x", "tcp");
  ASSERT_FALSE(port.ok());
  EXPECT_EQ(port.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(port.status().message(), "lookup tcp/no-such-service-x: unknown service");
}

TEST(LookupPort, NumbersAreNotServiceNames) {
  absl::StatusOr<uint16_t> port = LookupPort("80", "tcp");
  ASSERT_FALSE(port.ok());
  EXPECT_EQ(port.status().code(), absl::StatusCode::kNotFound);
}

TEST(LookupPort, BadInputsAreRejected) {
  absl::StatusOr<uint16_t> empty = LookupPort("", "tcp");
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(empty.status().message(), "lookup port: empty service name");

  absl::StatusOr<uint16_t> nul = LookupPort(absl::string_view("http\0x", 6), "tcp");
  ASSERT_FALSE(nul.ok());
  EXPECT_EQ(nul.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(nul.status().message()), HasSubstr("NUL"));
}

}  // namespace
}  // namespace netpoll::platform
