#include "platform/error.h"

#include <cerrno>

#include "gtest/gtest.h"

namespace netpoll::platform {
namespace {

TEST(ClassifyError, KnownCodes) {
  EXPECT_EQ(ClassifyError(0), ErrorKind::kNone);
  EXPECT_EQ(ClassifyError(EAGAIN), ErrorKind::kWouldBlock);
  EXPECT_EQ(ClassifyError(EWOULDBLOCK), ErrorKind::kWouldBlock);
  EXPECT_EQ(ClassifyError(EINTR), ErrorKind::kInterrupted);
  EXPECT_EQ(ClassifyError(EINPROGRESS), ErrorKind::kInProgress);
  EXPECT_EQ(ClassifyError(EALREADY), ErrorKind::kAlready);
  EXPECT_EQ(ClassifyError(EISCONN), ErrorKind::kAlreadyConnected);
  EXPECT_EQ(ClassifyError(ECONNABORTED), ErrorKind::kConnectionAborted);
  EXPECT_EQ(ClassifyError(ECONNREFUSED), ErrorKind::kConnectionRefused);
  EXPECT_EQ(ClassifyError(ECONNRESET), ErrorKind::kConnectionReset);
  EXPECT_EQ(ClassifyError(EPIPE), ErrorKind::kBrokenPipe);
  EXPECT_EQ(ClassifyError(EBADF), ErrorKind::kBadDescriptor);
  EXPECT_EQ(ClassifyError(EMFILE), ErrorKind::kTooManyOpenFiles);
  EXPECT_EQ(ClassifyError(EADDRINUSE), ErrorKind::kAddressInUse);
}

TEST(ClassifyError, UnknownCodeIsOther) {
  EXPECT_EQ(ClassifyError(EDOM), ErrorKind::kOther);
  EXPECT_EQ(ClassifyError(987654), ErrorKind::kOther);
}

TEST(ErrorName, NamesKnownCodesAndNumbersUnknownOnes) {
  EXPECT_EQ(ErrorName(ECONNREFUSED), "ECONNREFUSED");
  EXPECT_EQ(ErrorName(EAGAIN), "EAGAIN");
  EXPECT_EQ(ErrorName(987654), "errno 987654");
}

TEST(ErrorText, IsTheOsDescription) {
  EXPECT_EQ(ErrorText(ECONNREFUSED), "Connection refused");
  EXPECT_FALSE(ErrorText(987654).empty());
}

TEST(ErrorToStatus, NamesOperationTextAndErrno) {
  absl::Status status = ErrorToStatus(ECONNREFUSED, "connect 127.0.0.1:1");
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(status.message(), "connect 127.0.0.1:1: Connection refused (ECONNREFUSED)");
}

TEST(ErrorToStatus, CanonicalCodes) {
  EXPECT_EQ(ErrorToStatus(EINVAL, "op").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ErrorToStatus(EACCES, "op").code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(ErrorToStatus(ENOMEM, "op").code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(ErrorToStatus(ETIMEDOUT, "op").code(), absl::StatusCode::kDeadlineExceeded);
}

TEST(ErrorToStatus, ZeroCodeIsNeverOk) {
  absl::Status status = ErrorToStatus(0, "read");
  EXPECT_FALSE(status.ok());
  EXPECT_EQ(status.code(), absl::StatusCode::kUnknown);
  EXPECT_EQ(ErrorCodeOf(status), std::nullopt);
}

TEST(ErrorCodeOf, RecoversTheCodeWithoutParsingTheMessage) {
  absl::Status status = ErrorToStatus(ECONNRESET, "read");
  ASSERT_TRUE(ErrorCodeOf(status).has_value());
  EXPECT_EQ(*ErrorCodeOf(status), ECONNRESET);
  // Statuses that did not come from the OS carry no code.
  EXPECT_EQ(ErrorCodeOf(absl::DeadlineExceededError("i/o timeout")), std::nullopt);
  EXPECT_EQ(ErrorCodeOf(absl::OkStatus()), std::nullopt);
}

TEST(LastError, ReadsErrno) {
  errno = ENOTCONN;
  EXPECT_EQ(LastError(), ENOTCONN);
}

}  // namespace
}  // namespace netpoll::platform
