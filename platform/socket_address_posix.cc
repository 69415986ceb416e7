#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "platform/os.h"
#include "platform/socket_address.h"

namespace netpoll::platform {

static_assert(sizeof(sockaddr_storage) <= SocketAddress::kStorageSize,
              "SocketAddress storage is smaller than sockaddr_storage");

const size_t SocketAddress::kMaxUnixPathLength = sizeof(sockaddr_un{}.sun_path) - 1;

const char* AddressFamilyName(AddressFamily family) {
  switch (family) {
    case AddressFamily::kIPv4:
      return "ipv4";
    case AddressFamily::kIPv6:
      return "ipv6";
    case AddressFamily::kUnix:
      return "unix";
    case AddressFamily::kUnspecified:
      break;
  }
  return "unspecified";
}

IPAddress IPAddress::V4(std::array<uint8_t, 4> bytes) {
  IPAddress ip;
  ip.family_ = AddressFamily::kIPv4;
  std::memcpy(ip.bytes_.data(), bytes.data(), 4);
  return ip;
}

IPAddress IPAddress::V6(std::array<uint8_t, 16> bytes, uint32_t scope_id) {
  IPAddress ip;
  ip.family_ = AddressFamily::kIPv6;
  ip.bytes_ = bytes;
  ip.scope_id_ = scope_id;
  return ip;
}

IPAddress IPAddress::V4Loopback() { return V4({127, 0, 0, 1}); }
IPAddress IPAddress::V6Loopback() {
  std::array<uint8_t, 16> b{};
  b[15] = 1;
  return V6(b);
}
IPAddress IPAddress::V4Any() { return V4({0, 0, 0, 0}); }
IPAddress IPAddress::V6Any() { return V6({}); }

absl::StatusOr<IPAddress> IPAddress::Parse(absl::string_view text) {
  // inet_pton needs a NUL-terminated string, and an embedded NUL must not cut the input short.
  if (text.empty() || text.size() > 100 || text.find('\0') != absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat("invalid IP address \"", text, "\""));
  }
  std::string copy(text);
  std::array<uint8_t, 16> bytes{};
  if (copy.find(':') == std::string::npos) {
    if (inet_pton(AF_INET, copy.c_str(), bytes.data()) == 1) {
      return V4({bytes[0], bytes[1], bytes[2], bytes[3]});
    }
    return absl::InvalidArgumentError(absl::StrCat("invalid IP address \"", text, "\""));
  }
  uint32_t scope_id = 0;
  size_t percent = copy.find('%');
  if (percent != std::string::npos) {
    std::string zone = copy.substr(percent + 1);
    copy.resize(percent);
    if (zone.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("invalid IP address \"", text, "\": empty zone"));
    }
    if (zone.find_first_not_of("0123456789") == std::string::npos && zone.size() <= 9) {
      scope_id = static_cast<uint32_t>(std::stoul(zone));
    } else {
      scope_id = if_nametoindex(zone.c_str());
      if (scope_id == 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("invalid IP address \"", text, "\": unknown zone \"", zone, "\""));
      }
    }
  }
  if (inet_pton(AF_INET6, copy.c_str(), bytes.data()) == 1) return V6(bytes, scope_id);
  return absl::InvalidArgumentError(absl::StrCat("invalid IP address \"", text, "\""));
}

bool IPAddress::IsLoopback() const {
  if (is_v4()) return bytes_[0] == 127;
  if (!is_v6()) return false;
  if (IsV4Mapped()) return bytes_[12] == 127;
  for (int i = 0; i < 15; ++i) {
    if (bytes_[i] != 0) return false;
  }
  return bytes_[15] == 1;
}

bool IPAddress::IsUnspecified() const {
  if (family_ == AddressFamily::kUnspecified) return true;
  int n = is_v4() ? 4 : 16;
  for (int i = 0; i < n; ++i) {
    if (bytes_[i] != 0) return false;
  }
  return true;
}

bool IPAddress::IsV4Mapped() const {
  if (!is_v6()) return false;
  for (int i = 0; i < 10; ++i) {
    if (bytes_[i] != 0) return false;
  }
  return bytes_[10] == 0xff && bytes_[11] == 0xff;
}

std::string IPAddress::ToString() const {
  char buffer[INET6_ADDRSTRLEN];
  if (is_v4()) {
    return inet_ntop(AF_INET, bytes_.data(), buffer, sizeof buffer);
  }
  if (is_v6()) {
    std::string text = inet_ntop(AF_INET6, bytes_.data(), buffer, sizeof buffer);
    if (scope_id_ != 0) absl::StrAppend(&text, "%", scope_id_);
    return text;
  }
  return "<unspecified>";
}

SocketAddress SocketAddress::FromIP(const IPAddress& ip, uint16_t port) {
  SocketAddress address;
  if (ip.is_v4()) {
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(port);
    std::memcpy(&sin.sin_addr, ip.bytes().data(), 4);
    std::memcpy(address.storage_.data(), &sin, sizeof sin);
    address.length_ = sizeof sin;
  } else if (ip.is_v6()) {
    sockaddr_in6 sin6{};
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons(port);
    std::memcpy(&sin6.sin6_addr, ip.bytes().data(), 16);
    sin6.sin6_scope_id = ip.scope_id();
    std::memcpy(address.storage_.data(), &sin6, sizeof sin6);
    address.length_ = sizeof sin6;
  }
  return address;
}

absl::StatusOr<SocketAddress> SocketAddress::FromUnixPath(absl::string_view path) {
  if (path.empty()) return absl::InvalidArgumentError("unix socket path is empty");
  bool abstract = path[0] == '@';
#if !defined(NETPOLL_OS_LINUX)
  if (abstract) {
    return absl::InvalidArgumentError(absl::StrCat(
        "unix socket path \"", path, "\": abstract sockets ('@' names) exist only on Linux"));
  }
#endif
  if (!abstract && path.find('\0') != absl::string_view::npos) {
    return absl::InvalidArgumentError("unix socket path contains a NUL byte");
  }
  if (path.size() > kMaxUnixPathLength) {
    return absl::InvalidArgumentError(absl::StrCat("unix socket path is too long: ", path.size(),
                                                   " bytes, the limit is ", kMaxUnixPathLength));
  }
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  std::memcpy(sun.sun_path, path.data(), path.size());
  size_t length = offsetof(sockaddr_un, sun_path) + path.size();
  if (abstract) {
    sun.sun_path[0] = '\0';  // The kernel's spelling of '@'; the name is not NUL-terminated.
  } else {
    length += 1;  // Count the terminating NUL, as the kernel reports it back.
  }
  SocketAddress address;
  std::memcpy(address.storage_.data(), &sun, sizeof sun);
  address.length_ = length;
  return address;
}

absl::StatusOr<SocketAddress> SocketAddress::FromNative(const void* native, size_t length) {
  if (native == nullptr || length < sizeof(sa_family_t)) {
    return absl::InvalidArgumentError(absl::StrCat("socket address too short: ", length, " bytes"));
  }
  if (length > kStorageSize) {
    return absl::InvalidArgumentError(absl::StrCat("socket address too long: ", length, " bytes"));
  }
  sa_family_t family;
  std::memcpy(&family, static_cast<const char*>(native) + offsetof(sockaddr, sa_family),
              sizeof family);
  size_t minimum = 0;
  switch (family) {
    case AF_INET:
      minimum = sizeof(sockaddr_in);
      break;
    case AF_INET6:
      minimum = sizeof(sockaddr_in6);
      break;
    case AF_UNIX:
      minimum = offsetof(sockaddr_un, sun_path);  // An unnamed socket has no path at all.
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("unsupported address family ", family, " (want IPv4, IPv6 or Unix)"));
  }
  if (length < minimum) {
    return absl::InvalidArgumentError(absl::StrCat("socket address of family ", family,
                                                   " too short: ", length, " bytes"));
  }
  SocketAddress address;
  std::memcpy(address.storage_.data(), native, length);
  address.length_ = length;
  return address;
}

AddressFamily SocketAddress::family() const {
  if (length_ < sizeof(sa_family_t)) return AddressFamily::kUnspecified;
  switch (reinterpret_cast<const sockaddr*>(storage_.data())->sa_family) {
    case AF_INET:
      return AddressFamily::kIPv4;
    case AF_INET6:
      return AddressFamily::kIPv6;
    case AF_UNIX:
      return AddressFamily::kUnix;
    default:
      return AddressFamily::kUnspecified;
  }
}

IPAddress SocketAddress::ip() const {
  switch (family()) {
    case AddressFamily::kIPv4: {
      const auto* sin = reinterpret_cast<const sockaddr_in*>(storage_.data());
      std::array<uint8_t, 4> b;
      std::memcpy(b.data(), &sin->sin_addr, 4);
      return IPAddress::V4(b);
    }
    case AddressFamily::kIPv6: {
      const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(storage_.data());
      std::array<uint8_t, 16> b;
      std::memcpy(b.data(), &sin6->sin6_addr, 16);
      return IPAddress::V6(b, sin6->sin6_scope_id);
    }
    default:
      return IPAddress();
  }
}

uint16_t SocketAddress::port() const {
  switch (family()) {
    case AddressFamily::kIPv4:
      return ntohs(reinterpret_cast<const sockaddr_in*>(storage_.data())->sin_port);
    case AddressFamily::kIPv6:
      return ntohs(reinterpret_cast<const sockaddr_in6*>(storage_.data())->sin6_port);
    default:
      return 0;
  }
}

std::string SocketAddress::unix_path() const {
  if (family() != AddressFamily::kUnix) return "";
  const auto* sun = reinterpret_cast<const sockaddr_un*>(storage_.data());
  size_t offset = offsetof(sockaddr_un, sun_path);
  if (length_ <= offset) return "";  // Unnamed.
  size_t n = length_ - offset;
  if (sun->sun_path[0] == '\0') {
    return absl::StrCat("@", absl::string_view(sun->sun_path + 1, n - 1));
  }
  return std::string(sun->sun_path, strnlen(sun->sun_path, n));
}

std::string SocketAddress::ToString() const {
  switch (family()) {
    case AddressFamily::kIPv4:
      return absl::StrCat(ip().ToString(), ":", port());
    case AddressFamily::kIPv6:
      return absl::StrCat("[", ip().ToString(), "]:", port());
    case AddressFamily::kUnix:
      return unix_path();
    default:
      return "";
  }
}

bool operator==(const SocketAddress& a, const SocketAddress& b) {
  // Compare meaning, not bytes: kernels leave padding such as sin_zero unspecified.
  AddressFamily family = a.family();
  if (family != b.family()) return false;
  switch (family) {
    case AddressFamily::kIPv4:
    case AddressFamily::kIPv6:
      return a.ip() == b.ip() && a.port() == b.port();
    case AddressFamily::kUnix:
      return a.unix_path() == b.unix_path();
    case AddressFamily::kUnspecified:
      break;
  }
  return a.length_ == b.length_ && std::memcmp(a.storage_.data(), b.storage_.data(), a.length_) == 0;
}

}  // namespace netpoll::platform
