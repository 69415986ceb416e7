// Errors of the net API, and the helpers that tell them apart without parsing messages.
//
// Every failed operation returns an absl::Status. Four kinds matter to callers, and each has a
// predicate that looks at a payload, never at the message:
//   IsTimeout(s)  a deadline passed ("i/o timeout"; code kDeadlineExceeded)
//   IsClosed(s)   the connection or listener was closed locally ("use of closed network
//                 connection", Go's net.ErrClosed; code kFailedPrecondition)
//   IsEOF(s)      the peer finished sending ("EOF"; code kOutOfRange). Returned bare, like io.EOF.
//   IsCanceled(s) an operation was cancelled through a Canceller ("operation was canceled";
//                 code kCancelled)
// Anything else is an OS error: OsErrorCode(s) gives the errno (or WSA code), and the message
// names the operation, the network, the addresses and the OS text, in Go's format:
//   "read tcp 127.0.0.1:8080->127.0.0.1:51234: Connection reset by peer (ECONNRESET)"
//   "dial tcp 127.0.0.1:1: connect: Connection refused (ECONNREFUSED)"
// Timeout and closed errors carry the same prefix ("read tcp ...: i/o timeout").
//
// Thread-safety: pure functions.
#ifndef NETPOLL_NETFD_ERRORS_H_
#define NETPOLL_NETFD_ERRORS_H_

#include <optional>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "platform/error.h"

namespace netpoll {

bool IsTimeout(const absl::Status& status);
bool IsClosed(const absl::Status& status);
bool IsEOF(const absl::Status& status);
bool IsCanceled(const absl::Status& status);
// The OS error code behind `status`, or nullopt if it is not an OS error.
std::optional<platform::ErrorCode> OsErrorCode(const absl::Status& status);

// The bare errors (no operation prefix), as returned where Go returns them bare.
absl::Status TimeoutError();
absl::Status ClosedError();
absl::Status EofError();
absl::Status CanceledError();
// The descriptor reported an error on its own ("not pollable", Go's ErrNotPollable).
absl::Status NotPollableError();

// Prefixes `cause` with "<op> <net> <source>-><addr>: " (parts that are empty are left out, and
// "->" only appears with both addresses), keeping its code and payloads, so the predicates above
// still work on the result. OK stays OK.
absl::Status OpError(absl::string_view op, absl::string_view net, absl::string_view source,
                     absl::string_view addr, const absl::Status& cause);

}  // namespace netpoll

#endif  // NETPOLL_NETFD_ERRORS_H_
