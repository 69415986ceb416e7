// IP addresses and socket addresses (IPv4, IPv6, Unix-domain paths), without OS headers.
//
// SocketAddress owns a native socket address (a sockaddr_storage-sized buffer) so syscall
// wrappers pass it to the kernel without conversion, while portable code builds and inspects it
// through the accessors below. Values are small, copyable and immutable once built; they are
// safe to share between threads like any const value.
#ifndef NETPOLL_PLATFORM_SOCKET_ADDRESS_H_
#define NETPOLL_PLATFORM_SOCKET_ADDRESS_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"

namespace netpoll::platform {

enum class AddressFamily { kUnspecified, kIPv4, kIPv6, kUnix };

// "ipv4", "ipv6", "unix" or "unspecified".
const char* AddressFamilyName(AddressFamily family);

// An IPv4 or IPv6 address (no port). An IPv6 address may carry a zone (scope id).
class IPAddress {
 public:
  // The unspecified address of no family; only useful as a placeholder.
  IPAddress() = default;

  static IPAddress V4(std::array<uint8_t, 4> bytes);
  static IPAddress V6(std::array<uint8_t, 16> bytes, uint32_t scope_id = 0);
  static IPAddress V4Loopback();     // 127.0.0.1
  static IPAddress V6Loopback();     // ::1
  static IPAddress V4Any();          // 0.0.0.0
  static IPAddress V6Any();          // ::

  // Parses dotted-quad IPv4 ("10.0.0.1") or textual IPv6 ("::1", "fe80::1%2", "::ffff:1.2.3.4").
  // A zone given by interface name ("fe80::1%eth0") is resolved to its index. Anything else,
  // including host names and bracketed forms, is an InvalidArgument error naming the input.
  static absl::StatusOr<IPAddress> Parse(absl::string_view text);

  AddressFamily family() const { return family_; }
  bool is_v4() const { return family_ == AddressFamily::kIPv4; }
  bool is_v6() const { return family_ == AddressFamily::kIPv6; }
  // IPv4: the first 4 bytes are meaningful; IPv6: all 16.
  const std::array<uint8_t, 16>& bytes() const { return bytes_; }
  uint32_t scope_id() const { return scope_id_; }
  bool IsLoopback() const;
  bool IsUnspecified() const;
  // True for an IPv6 address of the form ::ffff:a.b.c.d.
  bool IsV4Mapped() const;

  // "10.0.0.1", "::1", "fe80::1%2".
  std::string ToString() const;

  friend bool operator==(const IPAddress& a, const IPAddress& b) {
    return a.family_ == b.family_ && a.bytes_ == b.bytes_ && a.scope_id_ == b.scope_id_;
  }

 private:
  AddressFamily family_ = AddressFamily::kUnspecified;
  std::array<uint8_t, 16> bytes_{};
  uint32_t scope_id_ = 0;
};

class SocketAddress {
 public:
  // Room for any native socket address (sizeof(sockaddr_storage) on every supported OS).
  static constexpr size_t kStorageSize = 128;
  // The longest Unix-domain path the kernel accepts, not counting the terminating NUL.
  static const size_t kMaxUnixPathLength;

  // An empty address of no family (length 0).
  SocketAddress() = default;

  static SocketAddress FromIP(const IPAddress& ip, uint16_t port);

  // A Unix-domain socket address. A leading '@' names a Linux abstract socket ("@name"); other
  // systems reject it. Errors: InvalidArgument for an empty path, a path with an embedded NUL, a
  // path longer than kMaxUnixPathLength, or an abstract name where the OS has none.
  static absl::StatusOr<SocketAddress> FromUnixPath(absl::string_view path);

  // Copies a native address that the kernel returned (accept, recvfrom, getsockname, ...).
  // Errors: InvalidArgument if `length` is too large or too short for its family, or if the family
  // is not one of IPv4, IPv6 and Unix.
  static absl::StatusOr<SocketAddress> FromNative(const void* native, size_t length);

  AddressFamily family() const;
  bool empty() const { return length_ == 0; }

  // IP families only; an unspecified IPAddress and port 0 for others.
  IPAddress ip() const;
  uint16_t port() const;
  // Unix family only: the path ("@name" for an abstract socket, "" for an unnamed one).
  std::string unix_path() const;

  // "10.0.0.1:80", "[::1]:80", "[fe80::1%2]:80", "/tmp/sock", "@abstract", "" (unnamed Unix).
  std::string ToString() const;

  // The native form, for syscall wrappers.
  const void* native() const { return storage_.data(); }
  void* mutable_native() { return storage_.data(); }
  size_t native_length() const { return length_; }
  // After a syscall filled mutable_native(): records how many bytes it wrote (clamped).
  void set_native_length(size_t length) { length_ = length < kStorageSize ? length : kStorageSize; }

  friend bool operator==(const SocketAddress& a, const SocketAddress& b);

 private:
  alignas(8) std::array<unsigned char, kStorageSize> storage_{};
  size_t length_ = 0;
};

}  // namespace netpoll::platform

#endif  // NETPOLL_PLATFORM_SOCKET_ADDRESS_H_
