#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "platform/error.h"
#include "platform/os.h"
#include "platform/resolver.h"

#if !defined(NETPOLL_OS_LINUX) && !defined(NETPOLL_OS_FREEBSD) && !defined(NETPOLL_OS_DRAGONFLY)
#include <mutex>
#endif

namespace netpoll::platform {
namespace {

// Inputs are echoed into messages escaped, so a stray control byte cannot garble a log line.
std::string Printable(absl::string_view text) { return absl::CHexEscape(text); }

absl::StatusCode GaiErrorCode(int gai_error) {
  switch (gai_error) {
    case EAI_NONAME:
#ifdef EAI_NODATA
#if EAI_NODATA != EAI_NONAME
    case EAI_NODATA:
#endif
#endif
#ifdef EAI_ADDRFAMILY
    case EAI_ADDRFAMILY:
#endif
      return absl::StatusCode::kNotFound;
    case EAI_AGAIN:
    case EAI_FAIL:
      return absl::StatusCode::kUnavailable;
    case EAI_MEMORY:
      return absl::StatusCode::kResourceExhausted;
    case EAI_BADFLAGS:
    case EAI_FAMILY:
    case EAI_SOCKTYPE:
    case EAI_SERVICE:
#ifdef EAI_OVERFLOW
    case EAI_OVERFLOW:
#endif
      return absl::StatusCode::kInternal;
    default:
      return absl::StatusCode::kUnknown;
  }
}

struct AddrInfoDeleter {
  void operator()(addrinfo* list) const { freeaddrinfo(list); }
};

}  // namespace

absl::StatusOr<std::vector<IPAddress>> LookupHost(absl::string_view host) {
  if (host.empty()) return absl::InvalidArgumentError("lookup: empty host name");
  if (host.find('\0') != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("lookup ", Printable(host), ": host name contains a NUL byte"));
  }
  std::string name(host);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  // One entry per address instead of one per socket type (stream, datagram, raw).
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* raw = nullptr;
  int rc = getaddrinfo(name.c_str(), nullptr, &hints, &raw);
  if (rc != 0) {
    if (rc == EAI_SYSTEM) {
      ErrorCode code = LastError();
      if (code != 0) return ErrorToStatus(code, absl::StrCat("lookup ", Printable(host)));
    }
    return absl::Status(GaiErrorCode(rc),
                        absl::StrCat("lookup ", Printable(host), ": ", gai_strerror(rc)));
  }
  std::unique_ptr<addrinfo, AddrInfoDeleter> list(raw);

  std::vector<IPAddress> addresses;
  for (const addrinfo* ai = list.get(); ai != nullptr; ai = ai->ai_next) {
    if (ai->ai_addr == nullptr) continue;
    if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
    absl::StatusOr<SocketAddress> address =
        SocketAddress::FromNative(ai->ai_addr, static_cast<size_t>(ai->ai_addrlen));
    if (!address.ok()) continue;
    IPAddress ip = address->ip();
    // Another socket type or protocol can still repeat an address; keep the first, in order.
    if (std::find(addresses.begin(), addresses.end(), ip) == addresses.end()) {
      addresses.push_back(ip);
    }
  }
  if (addresses.empty()) {
    return absl::NotFoundError(absl::StrCat("lookup ", Printable(host), ": no IP address"));
  }
  return addresses;
}

absl::StatusOr<uint16_t> LookupPort(absl::string_view service, absl::string_view protocol) {
  if (service.empty()) return absl::InvalidArgumentError("lookup port: empty service name");
  if (service.find('\0') != absl::string_view::npos ||
      protocol.find('\0') != absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat("lookup ", Printable(protocol), "/",
                                                   Printable(service), ": contains a NUL byte"));
  }
  std::string name(service);
  std::string proto(protocol);
  const char* proto_or_any = proto.empty() ? nullptr : proto.c_str();
  // "tcp/http", or just "http" when any protocol will do.
  std::string subject = protocol.empty()
                            ? Printable(service)
                            : absl::StrCat(Printable(protocol), "/", Printable(service));
  auto not_found = [&] {
    return absl::NotFoundError(absl::StrCat("lookup ", subject, ": unknown service"));
  };

#if defined(NETPOLL_OS_LINUX) || defined(NETPOLL_OS_FREEBSD) || defined(NETPOLL_OS_DRAGONFLY)
  // getservbyname_r reports a too-small buffer as ERANGE; grow it and ask again.
  constexpr size_t kMaxBuffer = size_t{1} << 20;
  std::vector<char> buffer(1024);
  for (;;) {
    servent entry{};
    servent* result = nullptr;
    int rc = getservbyname_r(name.c_str(), proto_or_any, &entry, buffer.data(), buffer.size(),
                             &result);
    if (rc == ERANGE) {
      if (buffer.size() >= kMaxBuffer) {
        return absl::ResourceExhaustedError(absl::StrCat("lookup ", subject, ": entry too large"));
      }
      buffer.resize(buffer.size() * 2);
      continue;
    }
    if (rc != 0 || result == nullptr) return not_found();
    return static_cast<uint16_t>(ntohs(static_cast<uint16_t>(result->s_port)));
  }
#else
  // No reentrant variant with this signature here: serialise the classic call, whose result
  // lives in static storage, and copy the port out before unlocking.
  static std::mutex* mutex = new std::mutex;
  std::lock_guard<std::mutex> lock(*mutex);
  const servent* result = getservbyname(name.c_str(), proto_or_any);
  if (result == nullptr) return not_found();
  return static_cast<uint16_t>(ntohs(static_cast<uint16_t>(result->s_port)));
#endif
}

}  // namespace netpoll::platform
