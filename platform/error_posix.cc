#include <errno.h>
#include <string.h>

#include <cstdint>
#include <string>

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "platform/error.h"

namespace netpoll::platform {
namespace {

// The payload type URL under which ErrorToStatus() keeps the native code.
constexpr absl::string_view kErrorCodePayload = "netpoll.dev/os-error-code";

struct NamedError {
  int code;
  const char* name;
  ErrorKind kind;
};

// The errno values netpoll classifies or that users commonly meet on sockets.
constexpr NamedError kNamedErrors[] = {
    {EAGAIN, "EAGAIN", ErrorKind::kWouldBlock},
#if EWOULDBLOCK != EAGAIN
    {EWOULDBLOCK, "EWOULDBLOCK", ErrorKind::kWouldBlock},
#endif
    {EINTR, "EINTR", ErrorKind::kInterrupted},
    {EINPROGRESS, "EINPROGRESS", ErrorKind::kInProgress},
    {EALREADY, "EALREADY", ErrorKind::kAlready},
    {EISCONN, "EISCONN", ErrorKind::kAlreadyConnected},
    {ECONNABORTED, "ECONNABORTED", ErrorKind::kConnectionAborted},
    {ECONNREFUSED, "ECONNREFUSED", ErrorKind::kConnectionRefused},
    {ECONNRESET, "ECONNRESET", ErrorKind::kConnectionReset},
    {EPIPE, "EPIPE", ErrorKind::kBrokenPipe},
    {ENOTCONN, "ENOTCONN", ErrorKind::kNotConnected},
    {ETIMEDOUT, "ETIMEDOUT", ErrorKind::kTimedOut},
    {EADDRINUSE, "EADDRINUSE", ErrorKind::kAddressInUse},
    {EADDRNOTAVAIL, "EADDRNOTAVAIL", ErrorKind::kAddressNotAvailable},
    {ENETUNREACH, "ENETUNREACH", ErrorKind::kNetworkUnreachable},
    {EHOSTUNREACH, "EHOSTUNREACH", ErrorKind::kNetworkUnreachable},
    {ENETDOWN, "ENETDOWN", ErrorKind::kNetworkUnreachable},
    {EBADF, "EBADF", ErrorKind::kBadDescriptor},
    {ENOTSOCK, "ENOTSOCK", ErrorKind::kBadDescriptor},
    {EINVAL, "EINVAL", ErrorKind::kInvalidArgument},
    {EMFILE, "EMFILE", ErrorKind::kTooManyOpenFiles},
    {ENFILE, "ENFILE", ErrorKind::kTooManyOpenFiles},
    {ENOBUFS, "ENOBUFS", ErrorKind::kNoBufferSpace},
    {ENOMEM, "ENOMEM", ErrorKind::kNoBufferSpace},
    {EOPNOTSUPP, "EOPNOTSUPP", ErrorKind::kNotSupported},
#if ENOTSUP != EOPNOTSUPP
    {ENOTSUP, "ENOTSUP", ErrorKind::kNotSupported},
#endif
    {EAFNOSUPPORT, "EAFNOSUPPORT", ErrorKind::kNotSupported},
    {EPROTONOSUPPORT, "EPROTONOSUPPORT", ErrorKind::kNotSupported},
    {ESOCKTNOSUPPORT, "ESOCKTNOSUPPORT", ErrorKind::kNotSupported},
    {EACCES, "EACCES", ErrorKind::kPermissionDenied},
    {EPERM, "EPERM", ErrorKind::kPermissionDenied},
    {EMSGSIZE, "EMSGSIZE", ErrorKind::kOther},
    {ENAMETOOLONG, "ENAMETOOLONG", ErrorKind::kOther},
    {ENOENT, "ENOENT", ErrorKind::kOther},
    {EEXIST, "EEXIST", ErrorKind::kOther},
    {ENODEV, "ENODEV", ErrorKind::kOther},
    {ENXIO, "ENXIO", ErrorKind::kOther},
    {EIO, "EIO", ErrorKind::kOther},
    {ESPIPE, "ESPIPE", ErrorKind::kOther},
    {ELOOP, "ELOOP", ErrorKind::kOther},
    {ENOTDIR, "ENOTDIR", ErrorKind::kOther},
    {EROFS, "EROFS", ErrorKind::kOther},
    {EFAULT, "EFAULT", ErrorKind::kOther},
    {ENOSYS, "ENOSYS", ErrorKind::kOther},
    {EDESTADDRREQ, "EDESTADDRREQ", ErrorKind::kOther},
    {EPROTOTYPE, "EPROTOTYPE", ErrorKind::kOther},
    {ENOPROTOOPT, "ENOPROTOOPT", ErrorKind::kOther},
    {ESHUTDOWN, "ESHUTDOWN", ErrorKind::kBrokenPipe},
    {EHOSTDOWN, "EHOSTDOWN", ErrorKind::kNetworkUnreachable},
};

const NamedError* FindError(ErrorCode code) {
  for (const NamedError& e : kNamedErrors) {
    if (e.code == code) return &e;
  }
  return nullptr;
}

}  // namespace

ErrorCode LastError() { return errno; }

ErrorKind ClassifyError(ErrorCode code) {
  if (code == 0) return ErrorKind::kNone;
  const NamedError* e = FindError(code);
  return e != nullptr ? e->kind : ErrorKind::kOther;
}

std::string ErrorText(ErrorCode code) {
  char buffer[256];
  // GNU strerror_r returns a pointer that may or may not be `buffer`; XSI returns an int. Both
  // are thread-safe, unlike strerror().
#if defined(__GLIBC__) && defined(_GNU_SOURCE)
  const char* text = strerror_r(code, buffer, sizeof buffer);
  return text;
#else
  if (strerror_r(code, buffer, sizeof buffer) != 0) return absl::StrCat("Unknown error ", code);
  return buffer;
#endif
}

std::string ErrorName(ErrorCode code) {
  const NamedError* e = FindError(code);
  return e != nullptr ? std::string(e->name) : absl::StrCat("errno ", code);
}

absl::Status ErrorToStatus(ErrorCode code, absl::string_view operation) {
  if (code == 0) {
    // A caller bug; still never turn a failure into OK.
    return absl::UnknownError(absl::StrCat(operation, ": failed without an OS error code"));
  }
  absl::Status status(absl::ErrnoToStatusCode(code),
                      absl::StrCat(operation, ": ", ErrorText(code), " (", ErrorName(code), ")"));
  status.SetPayload(kErrorCodePayload, absl::Cord(absl::StrCat(code)));
  return status;
}

std::optional<ErrorCode> ErrorCodeOf(const absl::Status& status) {
  auto payload = status.GetPayload(kErrorCodePayload);
  if (!payload.has_value()) return std::nullopt;
  int code = 0;
  if (!absl::SimpleAtoi(std::string(*payload), &code)) return std::nullopt;
  return code;
}

}  // namespace netpoll::platform
