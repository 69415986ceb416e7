#include "netfd/errors.h"

#include <string>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"

namespace netpoll {
namespace {

constexpr absl::string_view kKindPayload = "netpoll.dev/net-error-kind";

absl::Status WithKind(absl::Status status, absl::string_view kind) {
  status.SetPayload(kKindPayload, absl::Cord(kind));
  return status;
}

bool HasKind(const absl::Status& status, absl::string_view kind) {
  if (status.ok()) return false;
  auto payload = status.GetPayload(kKindPayload);
  return payload.has_value() && *payload == kind;
}

}  // namespace

bool IsTimeout(const absl::Status& status) { return HasKind(status, "timeout"); }
bool IsClosed(const absl::Status& status) { return HasKind(status, "closed"); }
bool IsEOF(const absl::Status& status) { return HasKind(status, "eof"); }
bool IsCanceled(const absl::Status& status) { return HasKind(status, "canceled"); }

std::optional<platform::ErrorCode> OsErrorCode(const absl::Status& status) {
  return platform::ErrorCodeOf(status);
}

absl::Status TimeoutError() { return WithKind(absl::DeadlineExceededError("i/o timeout"), "timeout"); }

absl::Status ClosedError() {
  return WithKind(absl::FailedPreconditionError("use of closed network connection"), "closed");
}

absl::Status EofError() { return WithKind(absl::OutOfRangeError("EOF"), "eof"); }

absl::Status CanceledError() { return WithKind(absl::CancelledError("operation was canceled"), "canceled"); }

absl::Status NotPollableError() {
  return WithKind(absl::InternalError("not pollable"), "not-pollable");
}

absl::Status OpError(absl::string_view op, absl::string_view net, absl::string_view source,
                     absl::string_view addr, const absl::Status& cause) {
  if (cause.ok()) return cause;
  std::string prefix(op);
  if (!net.empty()) absl::StrAppend(&prefix, " ", net);
  if (!source.empty() && !addr.empty()) {
    absl::StrAppend(&prefix, " ", source, "->", addr);
  } else if (!addr.empty()) {
    absl::StrAppend(&prefix, " ", addr);
  } else if (!source.empty()) {
    absl::StrAppend(&prefix, " ", source);
  }
  absl::Status wrapped(cause.code(), absl::StrCat(prefix, ": ", cause.message()));
  cause.ForEachPayload([&](absl::string_view type_url, const absl::Cord& payload) {
    wrapped.SetPayload(type_url, payload);
  });
  return wrapped;
}

}  // namespace netpoll
