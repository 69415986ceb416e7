#include "platform/socket_address.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstring>
#include <string>

#include "gtest/gtest.h"

namespace netpoll::platform {
namespace {

TEST(IPAddress, ParsesIPv4) {
  absl::StatusOr<IPAddress> ip = IPAddress::Parse("10.1.2.3");
  ASSERT_TRUE(ip.ok()) << ip.status();
  EXPECT_TRUE(ip->is_v4());
  EXPECT_EQ(ip->bytes()[0], 10);
  EXPECT_EQ(ip->bytes()[3], 3);
  EXPECT_EQ(ip->ToString(), "10.1.2.3");
  EXPECT_FALSE(ip->IsLoopback());
}

TEST(IPAddress, ParsesIPv6AndZones) {
  absl::StatusOr<IPAddress> ip = IPAddress::Parse("::1");
  ASSERT_TRUE(ip.ok()) << ip.status();
  EXPECT_TRUE(ip->is_v6());
  EXPECT_TRUE(ip->IsLoopback());
  EXPECT_EQ(ip->ToString(), "::1");

  absl::StatusOr<IPAddress> zoned = IPAddress::Parse("fe80::1%3");
  ASSERT_TRUE(zoned.ok()) << zoned.status();
  EXPECT_EQ(zoned->scope_id(), 3u);
  EXPECT_EQ(zoned->ToString(), "fe80::1%3");

  absl::StatusOr<IPAddress> by_name = IPAddress::Parse("fe80::1%lo");
  ASSERT_TRUE(by_name.ok()) << by_name.status();
  EXPECT_NE(by_name->scope_id(), 0u);

  absl::StatusOr<IPAddress> mapped = IPAddress::Parse("::ffff:127.0.0.1");
  ASSERT_TRUE(mapped.ok());
  EXPECT_TRUE(mapped->IsV4Mapped());
  EXPECT_TRUE(mapped->IsLoopback());
}

TEST(IPAddress, RejectsBadInputWithTheInputInTheMessage) {
  for (const char* bad : {"", "1.2.3", "1.2.3.256", "localhost", "[::1]", "::1::2", "fe80::1%",
                          "fe80::1%no-such-interface", "1.2.3.4 "}) {
    absl::StatusOr<IPAddress> ip = IPAddress::Parse(bad);
    EXPECT_EQ(ip.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(ip.status().message().find(bad), absl::string_view::npos) << ip.status();
  }
  EXPECT_FALSE(IPAddress::Parse(absl::string_view("1.2.3.4\0", 8)).ok());
}

TEST(IPAddress, WellKnownAddresses) {
  EXPECT_EQ(IPAddress::V4Loopback().ToString(), "127.0.0.1");
  EXPECT_EQ(IPAddress::V6Loopback().ToString(), "::1");
  EXPECT_TRUE(IPAddress::V4Any().IsUnspecified());
  EXPECT_TRUE(IPAddress::V6Any().IsUnspecified());
  EXPECT_TRUE(IPAddress().IsUnspecified());
  EXPECT_EQ(IPAddress::V4Loopback(), *IPAddress::Parse("127.0.0.1"));
}

TEST(SocketAddress, IPv4RoundTripsThroughTheNativeForm) {
  SocketAddress address = SocketAddress::FromIP(IPAddress::V4({192, 168, 0, 1}), 8080);
  EXPECT_EQ(address.family(), AddressFamily::kIPv4);
  EXPECT_EQ(address.port(), 8080);
  EXPECT_EQ(address.ToString(), "192.168.0.1:8080");
  ASSERT_EQ(address.native_length(), sizeof(sockaddr_in));
  const auto* sin = static_cast<const sockaddr_in*>(address.native());
  EXPECT_EQ(sin->sin_family, AF_INET);
  EXPECT_EQ(ntohs(sin->sin_port), 8080);
  EXPECT_EQ(ntohl(sin->sin_addr.s_addr), 0xC0A80001u);

  absl::StatusOr<SocketAddress> copy = SocketAddress::FromNative(address.native(), address.native_length());
  ASSERT_TRUE(copy.ok()) << copy.status();
  EXPECT_EQ(*copy, address);
}

TEST(SocketAddress, IPv6WithZone) {
  SocketAddress address = SocketAddress::FromIP(*IPAddress::Parse("fe80::1%2"), 443);
  EXPECT_EQ(address.family(), AddressFamily::kIPv6);
  EXPECT_EQ(address.ToString(), "[fe80::1%2]:443");
  const auto* sin6 = static_cast<const sockaddr_in6*>(address.native());
  EXPECT_EQ(sin6->sin6_scope_id, 2u);
  EXPECT_EQ(address.ip().scope_id(), 2u);
}

TEST(SocketAddress, EqualityIgnoresPadding) {
  sockaddr_in sin;
  std::memset(&sin, 0xAB, sizeof sin);  // Garbage in sin_zero, as a kernel may leave it.
  sin.sin_family = AF_INET;
  sin.sin_port = htons(80);
  sin.sin_addr.s_addr = htonl(0x7F000001);
  absl::StatusOr<SocketAddress> native = SocketAddress::FromNative(&sin, sizeof sin);
  ASSERT_TRUE(native.ok());
  EXPECT_EQ(*native, SocketAddress::FromIP(IPAddress::V4Loopback(), 80));
  EXPECT_FALSE(*native == SocketAddress::FromIP(IPAddress::V4Loopback(), 81));
}

TEST(SocketAddress, UnixPath) {
  absl::StatusOr<SocketAddress> address = SocketAddress::FromUnixPath("/tmp/netpoll.sock");
  ASSERT_TRUE(address.ok()) << address.status();
  EXPECT_EQ(address->family(), AddressFamily::kUnix);
  EXPECT_EQ(address->unix_path(), "/tmp/netpoll.sock");
  EXPECT_EQ(address->ToString(), "/tmp/netpoll.sock");
  EXPECT_EQ(address->port(), 0);
  const auto* sun = static_cast<const sockaddr_un*>(address->native());
  EXPECT_STREQ(sun->sun_path, "/tmp/netpoll.sock");
}

TEST(SocketAddress, LongestUnixPathIsAcceptedAndOneMoreIsRejected) {
  std::string longest(SocketAddress::kMaxUnixPathLength, 'a');
  longest[0] = '/';
  absl::StatusOr<SocketAddress> ok = SocketAddress::FromUnixPath(longest);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->unix_path(), longest);

  absl::StatusOr<SocketAddress> too_long = SocketAddress::FromUnixPath(longest + "a");
  EXPECT_EQ(too_long.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(too_long.status().message().find("too long"), absl::string_view::npos) << too_long.status();
}

TEST(SocketAddress, BadUnixPaths) {
  EXPECT_EQ(SocketAddress::FromUnixPath("").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SocketAddress::FromUnixPath(absl::string_view("/a\0b", 4)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(SocketAddress, AbstractUnixName) {
  absl::StatusOr<SocketAddress> address = SocketAddress::FromUnixPath("@netpoll-test");
  ASSERT_TRUE(address.ok()) << address.status();
  EXPECT_EQ(address->unix_path(), "@netpoll-test");
  const auto* sun = static_cast<const sockaddr_un*>(address->native());
  EXPECT_EQ(sun->sun_path[0], '\0');
}

TEST(SocketAddress, FromNativeRejectsUnknownFamilyAndBadLengths) {
  sockaddr_storage storage{};
  storage.ss_family = AF_APPLETALK;
  absl::StatusOr<SocketAddress> unknown = SocketAddress::FromNative(&storage, sizeof storage);
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(unknown.status().message().find("unsupported address family"), absl::string_view::npos);

  storage.ss_family = AF_INET;
  EXPECT_FALSE(SocketAddress::FromNative(&storage, sizeof(sockaddr_in) - 1).ok());
  EXPECT_FALSE(SocketAddress::FromNative(&storage, 0).ok());
  EXPECT_FALSE(SocketAddress::FromNative(nullptr, 16).ok());
  EXPECT_FALSE(SocketAddress::FromNative(&storage, SocketAddress::kStorageSize + 1).ok());
}

TEST(SocketAddress, EmptyAddress) {
  SocketAddress empty;
  EXPECT_TRUE(empty.empty());
  EXPECT_EQ(empty.family(), AddressFamily::kUnspecified);
  EXPECT_EQ(empty.ToString(), "");
  EXPECT_EQ(empty.port(), 0);
}

TEST(AddressFamilyName, NamesEveryFamily) {
  EXPECT_STREQ(AddressFamilyName(AddressFamily::kIPv4), "ipv4");
  EXPECT_STREQ(AddressFamilyName(AddressFamily::kIPv6), "ipv6");
  EXPECT_STREQ(AddressFamilyName(AddressFamily::kUnix), "unix");
  EXPECT_STREQ(AddressFamilyName(AddressFamily::kUnspecified), "unspecified");
}

}  // namespace
}  // namespace netpoll::platform
