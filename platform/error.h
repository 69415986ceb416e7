// OS error codes (errno; on Windows, WSA/Win32 error codes) and their conversion to absl::Status.
//
// Syscall wrappers in platform/ report failure as a raw ErrorCode, because the layers above make
// policy from it (retry on EINTR, park on EAGAIN, skip ECONNABORTED). Portable code classifies a
// code with ClassifyError() instead of naming errno constants, and turns it into a Status with
// ErrorToStatus() when it gives up. The Status keeps the original code as a payload, so a caller
// can always recover it with ErrorCodeOf() without parsing the message.
#ifndef NETPOLL_PLATFORM_ERROR_H_
#define NETPOLL_PLATFORM_ERROR_H_

#include <optional>
#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/status.h"

namespace netpoll::platform {

// A native error code: an errno value on POSIX, a WSA or Win32 error code on Windows. 0 = none.
using ErrorCode = int;

// The calling thread's last error (errno, or WSAGetLastError() on Windows).
ErrorCode LastError();

// The portable meaning of an error code, for the cases the library makes decisions on.
enum class ErrorKind {
  kNone,                // code 0
  kWouldBlock,          // EAGAIN / EWOULDBLOCK / WSAEWOULDBLOCK
  kInterrupted,         // EINTR / WSAEINTR
  kInProgress,          // EINPROGRESS / WSAEINPROGRESS (a non-blocking connect continues)
  kAlready,             // EALREADY (a connect is already in progress)
  kAlreadyConnected,    // EISCONN
  kConnectionAborted,   // ECONNABORTED (a queued connection was reset before accept)
  kConnectionRefused,   // ECONNREFUSED
  kConnectionReset,     // ECONNRESET
  kBrokenPipe,          // EPIPE
  kNotConnected,        // ENOTCONN
  kTimedOut,            // ETIMEDOUT (the kernel's own timeout, not a netpoll deadline)
  kAddressInUse,        // EADDRINUSE
  kAddressNotAvailable, // EADDRNOTAVAIL
  kNetworkUnreachable,  // ENETUNREACH / EHOSTUNREACH
  kBadDescriptor,       // EBADF / WSAENOTSOCK
  kInvalidArgument,     // EINVAL
  kTooManyOpenFiles,    // EMFILE / ENFILE
  kNoBufferSpace,       // ENOBUFS / ENOMEM
  kNotSupported,        // EOPNOTSUPP / EAFNOSUPPORT / EPROTONOSUPPORT
  kPermissionDenied,    // EACCES / EPERM
  kOther,               // anything else
};
ErrorKind ClassifyError(ErrorCode code);

// The OS's description of `code` ("Connection refused"). Thread-safe.
std::string ErrorText(ErrorCode code);

// The symbolic name of `code` ("ECONNREFUSED"), or "errno 1234" for a code it does not know.
std::string ErrorName(ErrorCode code);

// A Status for a failed OS operation. The message is
//   "<operation>: <text> (<NAME>)"            e.g. "connect 127.0.0.1:1: Connection refused (ECONNREFUSED)"
// where `operation` names what failed and, where there is one, the address. The status code is
// the canonical one for the errno (absl::ErrnoToStatusCode on POSIX). `code` must not be 0.
absl::Status ErrorToStatus(ErrorCode code, absl::string_view operation);

// The OS error code that ErrorToStatus() stored in `status`, or nullopt if `status` did not come
// from ErrorToStatus() (for example a timeout or "closed" error from netfd).
std::optional<ErrorCode> ErrorCodeOf(const absl::Status& status);

}  // namespace netpoll::platform

#endif  // NETPOLL_PLATFORM_ERROR_H_
