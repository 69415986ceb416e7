#include "netfd/netfd.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "netfd/errors.h"
#include "netfd/syscalls.h"
#include "platform/check.h"
#include "platform/clock.h"
#include "poller/poller.h"

namespace netpoll::netfd {

using platform::ErrorKind;
using poller::Mode;
using poller::PollError;

int64_t MonotonicDeadline(absl::Time t) {
  if (t == absl::InfiniteFuture()) return 0;
  if (t == absl::InfinitePast()) return -1;
  int64_t ns = absl::ToInt64Nanoseconds(t - absl::Now());  // Saturates instead of overflowing.
  return poller::DeadlineAfter(ns, platform::MonotonicNanos());
}

Syscalls& syscalls() {
  static Syscalls table;
  return table;
}

CloseHooks& close_hooks() {
  static CloseHooks hooks;
  return hooks;
}

namespace {

// Releases the read or write lock on scope exit, destroying the descriptor if that dropped the
// last reference after a Close. Constructed first in each operation, so it runs last: the return
// value (which may format addresses) is built before the descriptor can go away.
class LockGuard {
 public:
  LockGuard(NetFD* fd, bool read, void (NetFD::*unlock)(bool)) : fd_(fd), read_(read), unlock_(unlock) {}
  ~LockGuard() { (fd_->*unlock_)(read_); }
  LockGuard(const LockGuard&) = delete;
  LockGuard& operator=(const LockGuard&) = delete;

 private:
  NetFD* fd_;
  bool read_;
  void (NetFD::*unlock_)(bool);
};

class RefGuard {
 public:
  RefGuard(NetFD* fd, void (NetFD::*decref)()) : fd_(fd), decref_(decref) {}
  ~RefGuard() { (fd_->*decref_)(); }
  RefGuard(const RefGuard&) = delete;
  RefGuard& operator=(const RefGuard&) = delete;

 private:
  NetFD* fd_;
  void (NetFD::*decref_)();
};

// Some VPN software once made write(2) claim more than it was given (Go #61060): stop with a clear
// message rather than index past the caller's buffer.
void CheckWriteCount(const char* op, size_t got, size_t asked) {
  if (got <= asked) return;
  std::string message = absl::StrCat("invalid return from ", op, ": got ", got, " from a write of ", asked);
  NETPOLL_FATAL(message.c_str());
}

// Go's aLongTimeAgo: a deadline far in the past, used to cancel a pending connect.
constexpr int64_t kLongTimeAgo = -1'000'000'000;

}  // namespace

NetFD::NetFD(platform::SocketHandle handle, platform::SocketType type, std::string net)
    : handle_(handle), type_(type), net_(std::move(net)) {}

absl::StatusOr<std::unique_ptr<NetFD>> NetFD::New(platform::SocketHandle handle, platform::SocketType type,
                                                  std::string net, bool register_now) {
  std::unique_ptr<NetFD> fd(new NetFD(handle, type, std::move(net)));
  if (register_now) {
    if (absl::Status status = fd->Init(); !status.ok()) {
      fd->Close().IgnoreError();  // Closes the handle (blocking mode: nothing to wait for).
      return status;
    }
  }
  return fd;
}

NetFD::~NetFD() {
  if (!mutex_.closed()) Close().IgnoreError();
  NETPOLL_CHECK(mutex_.references() == 0,
                "NetFD destroyed while a call on it is still running in blocking mode");
}

absl::Status NetFD::Init() {
  absl::StatusOr<poller::PollDesc*> pd = poller::Poller::Get().Open(handle_);
  if (!pd.ok()) {
    // Not pollable: behave like a blocking descriptor (Go sets isBlocking when init fails).
    blocking_.store(1, std::memory_order_seq_cst);
    return pd.status();
  }
  pd_ = *pd;
  return absl::OkStatus();
}

void NetFD::SetAddresses(const platform::SocketAddress& local, const platform::SocketAddress& remote) {
  local_ = local;
  remote_ = remote;
}

absl::Status NetFD::Error(const char* op, const absl::Status& cause) const {
  return OpError(op, net_, local_.empty() ? "" : local_.ToString(), remote_.empty() ? "" : remote_.ToString(),
                 cause);
}

absl::Status NetFD::PollErrorStatus(const char* op, PollError error) const {
  switch (error) {
    case PollError::kClosing:
      return Error(op, ClosedError());
    case PollError::kTimeout:
      return Error(op, TimeoutError());
    case PollError::kNotPollable:
      return Error(op, NotPollableError());
    case PollError::kNone:
      break;
  }
  NETPOLL_FATAL("PollErrorStatus called without an error");
}

absl::Status NetFD::OsError(const char* op, platform::ErrorCode code) const {
  return Error(op, platform::ErrorToStatus(code, op));
}

absl::Status NetFD::Prepare(Mode mode, const char* op) {
  if (pd_ == nullptr) return absl::OkStatus();
  PollError e = pd_->Prepare(mode);
  return e == PollError::kNone ? absl::OkStatus() : PollErrorStatus(op, e);
}

absl::Status NetFD::AfterFailure(Mode mode, const char* op, platform::ErrorCode error) {
  ErrorKind kind = platform::ClassifyError(error);
  if (kind == ErrorKind::kInterrupted) return absl::OkStatus();  // Retry at once, never for close.
  if (kind == ErrorKind::kWouldBlock && pd_ != nullptr) {
    // Park until the direction is ready; a spurious wake-up just means one more EAGAIN (R26).
    PollError e = pd_->Wait(mode);
    return e == PollError::kNone ? absl::OkStatus() : PollErrorStatus(op, e);
  }
  return OsError(op, error);
}

void NetFD::DecrefAndMaybeDestroy() {
  if (mutex_.Decref()) Destroy().IgnoreError();
}

void NetFD::UnlockAndMaybeDestroy(bool read) {
  if (mutex_.RwUnlock(read)) Destroy().IgnoreError();
}

absl::Status NetFD::Destroy() {
  // Unregister while the number is still ours (R11), then close it, never retrying (R39).
  if (pd_ != nullptr) {
    poller::Poller::Get().Close(pd_).IgnoreError();
    pd_ = nullptr;
  }
  platform::ErrorCode error = syscalls().close(handle_);
  handle_ = platform::kInvalidSocket;
  absl::Status status = error == 0 ? absl::OkStatus() : OsError("close", error);
  close_done_.Release();  // Last touch of `this` on this thread.
  return status;
}

absl::Status NetFD::Close() {
  if (!mutex_.IncrefAndClose()) return Error("close", ClosedError());
  if (close_hooks().after_mark_closed != nullptr) close_hooks().after_mark_closed();
  // Wake every parked reader and writer with "closed" before anything else (R6).
  if (pd_ != nullptr) pd_->Evict();
  // Our own reference kept destroy from running before the eviction (R10); dropping it may run
  // it now, and then the close(2) result is ours to report (R6: otherwise it is discarded).
  absl::Status status;
  if (mutex_.Decref()) status = Destroy();
  // Wait until the descriptor is really closed, so a listener's port can be reused at once
  // (Go #21856). Not in blocking mode: a reader stuck in the kernel may never return (R12).
  if (blocking_.load(std::memory_order_seq_cst) == 0) close_done_.Acquire("close");
  return status;
}

absl::StatusOr<size_t> NetFD::Read(absl::Span<char> buffer) {
  if (!mutex_.RwLock(true)) return Error("read", ClosedError());
  LockGuard guard(this, true, &NetFD::UnlockAndMaybeDestroy);
  if (buffer.empty()) return 0;
  if (absl::Status s = Prepare(Mode::kRead, "read"); !s.ok()) return s;
  if (stream() && buffer.size() > kMaxReadWrite) buffer = buffer.first(kMaxReadWrite);
  for (;;) {
    platform::SysResult<size_t> r = syscalls().read(handle_, buffer);
    if (r.ok()) {
      if (r.value == 0 && stream()) return EofError();  // R34; a datagram may be empty.
      return r.value;
    }
    if (absl::Status s = AfterFailure(Mode::kRead, "read", r.error); !s.ok()) return s;
  }
}

absl::StatusOr<size_t> NetFD::ReadV(absl::Span<const absl::Span<char>> buffers) {
  if (!mutex_.RwLock(true)) return Error("read", ClosedError());
  LockGuard guard(this, true, &NetFD::UnlockAndMaybeDestroy);
  // As many buffers as one readv takes; a caller with more gets a short read, which is legal.
  constexpr size_t kBatch = 64;
  platform::IoBuffer iov[kBatch];
  size_t count = 0;
  size_t total = 0;
  for (absl::Span<char> b : buffers) {
    if (b.empty()) continue;
    if (count == kBatch || count == platform::MaxIoBuffers()) break;
    size_t size = b.size();
    if (stream() && total + size > kMaxReadWrite) size = kMaxReadWrite - total;
    if (size == 0) break;
    iov[count++] = platform::IoBuffer{b.data(), size};
    total += size;
  }
  if (count == 0) return 0;
  if (absl::Status s = Prepare(Mode::kRead, "read"); !s.ok()) return s;
  for (;;) {
    platform::SysResult<size_t> r = syscalls().readv(handle_, absl::MakeConstSpan(iov, count));
    if (r.ok()) {
      if (r.value == 0 && stream()) return EofError();
      return r.value;
    }
    if (absl::Status s = AfterFailure(Mode::kRead, "readv", r.error); !s.ok()) return s;
  }
}

WriteResult NetFD::Write(absl::Span<const char> data) {
  if (!mutex_.RwLock(false)) return {0, Error("write", ClosedError())};
  LockGuard guard(this, false, &NetFD::UnlockAndMaybeDestroy);
  if (absl::Status s = Prepare(Mode::kWrite, "write"); !s.ok()) return {0, s};
  size_t written = 0;
  for (;;) {
    size_t chunk = data.size() - written;
    if (stream() && chunk > kMaxReadWrite) chunk = kMaxReadWrite;
    platform::SysResult<size_t> r = syscalls().write(handle_, data.subspan(written, chunk));
    if (r.ok()) {
      CheckWriteCount("write", r.value, chunk);
      written += r.value;
      if (written == data.size()) return {written, absl::OkStatus()};  // Also a 0-byte write.
      if (r.value == 0) return {written, Error("write", absl::DataLossError("unexpected EOF"))};
      continue;
    }
    // A wait that fails (deadline, close) reports the bytes already written with it (R35).
    if (absl::Status s = AfterFailure(Mode::kWrite, "write", r.error); !s.ok()) return {written, s};
  }
}

WriteResult NetFD::WriteV(absl::Span<const absl::Span<const char>> buffers) {
  if (!mutex_.RwLock(false)) return {0, Error("write", ClosedError())};
  LockGuard guard(this, false, &NetFD::UnlockAndMaybeDestroy);
  if (absl::Status s = Prepare(Mode::kWrite, "write"); !s.ok()) return {0, s};
  constexpr size_t kBatch = 64;
  const size_t max_batch = kBatch < platform::MaxIoBuffers() ? kBatch : platform::MaxIoBuffers();
  size_t total = 0;
  size_t index = 0;   // First buffer not fully written.
  size_t offset = 0;  // Bytes of buffers[index] already written.
  for (;;) {
    while (index < buffers.size() && offset == buffers[index].size()) {
      ++index;
      offset = 0;
    }
    if (index == buffers.size()) return {total, absl::OkStatus()};
    platform::ConstIoBuffer iov[kBatch];
    size_t count = 0;
    size_t batch_bytes = 0;
    for (size_t i = index; i < buffers.size() && count < max_batch; ++i) {
      absl::Span<const char> b = i == index ? buffers[i].subspan(offset) : buffers[i];
      if (b.empty()) continue;
      size_t size = b.size();
      if (stream() && batch_bytes + size > kMaxReadWrite) size = kMaxReadWrite - batch_bytes;
      iov[count++] = platform::ConstIoBuffer{b.data(), size};
      batch_bytes += size;
      if (batch_bytes == kMaxReadWrite) break;
    }
    platform::SysResult<size_t> r = syscalls().writev(handle_, absl::MakeConstSpan(iov, count));
    if (r.ok()) {
      CheckWriteCount("writev", r.value, batch_bytes);
      if (r.value == 0) return {total, Error("write", absl::DataLossError("unexpected EOF"))};
      total += r.value;
      // Consume the written prefix.
      size_t left = r.value;
      while (left > 0) {
        size_t rest = buffers[index].size() - offset;
        if (left < rest) {
          offset += left;
          left = 0;
        } else {
          left -= rest;
          ++index;
          offset = 0;
        }
      }
      continue;
    }
    // A wait that fails (deadline, close) reports the bytes already written with it (R35).
    if (absl::Status s = AfterFailure(Mode::kWrite, "writev", r.error); !s.ok()) return {total, s};
  }
}

absl::StatusOr<ReadFromResult> NetFD::ReadFrom(absl::Span<char> buffer) {
  if (!mutex_.RwLock(true)) return Error("read", ClosedError());
  LockGuard guard(this, true, &NetFD::UnlockAndMaybeDestroy);
  if (absl::Status s = Prepare(Mode::kRead, "read"); !s.ok()) return s;
  for (;;) {
    ReadFromResult result;
    platform::SysResult<size_t> r = syscalls().recvfrom(handle_, buffer, &result.from);
    if (r.ok()) {
      if (r.value == 0 && stream() && !buffer.empty()) return EofError();
      result.bytes = r.value;
      return result;
    }
    if (absl::Status s = AfterFailure(Mode::kRead, "recvfrom", r.error); !s.ok()) return s;
  }
}

absl::StatusOr<size_t> NetFD::WriteTo(absl::Span<const char> data, const platform::SocketAddress& to) {
  if (!mutex_.RwLock(false)) return Error("write", ClosedError());
  LockGuard guard(this, false, &NetFD::UnlockAndMaybeDestroy);
  if (absl::Status s = Prepare(Mode::kWrite, "write"); !s.ok()) return s;
  for (;;) {
    platform::SysResult<size_t> r = syscalls().sendto(handle_, data, to);
    if (r.ok()) return r.value;  // Datagrams are all or nothing.
    if (absl::Status s = AfterFailure(Mode::kWrite, "sendto", r.error); !s.ok()) return s;
  }
}

platform::SocketAddress NetFD::AcceptedLocalAddress(platform::SocketHandle accepted) const {
  // A listener bound to one IP address and port accepts every connection on exactly that address,
  // so only a wildcard listener (or one whose address is unknown) needs the getsockname.
  const bool ip = local_.family() == platform::AddressFamily::kIPv4 || local_.family() == platform::AddressFamily::kIPv6;
  if (ip && !local_.ip().IsUnspecified() && local_.port() != 0) return local_;
  platform::SysResult<platform::SocketAddress> local = platform::GetLocalAddress(accepted);
  return local.ok() ? local.value : platform::SocketAddress();
}

absl::StatusOr<std::unique_ptr<NetFD>> NetFD::Accept() {
  if (!mutex_.RwLock(true)) return Error("accept", ClosedError());
  LockGuard guard(this, true, &NetFD::UnlockAndMaybeDestroy);
  if (absl::Status s = Prepare(Mode::kRead, "accept"); !s.ok()) return s;
  for (;;) {
    platform::SocketAddress peer;
    platform::SysResult<platform::SocketHandle> r = syscalls().accept(handle_, &peer);
    if (r.ok()) {
      absl::StatusOr<std::unique_ptr<NetFD>> child = New(r.value, type_, net_, /*register_now=*/true);
      if (!child.ok()) return Error("accept", child.status());
      (*child)->SetAddresses(AcceptedLocalAddress(r.value), peer);
      return child;
    }
    // A connection reset while it sat in the queue is not the caller's business (R37).
    if (platform::ClassifyError(r.error) == ErrorKind::kConnectionAborted) continue;
    if (absl::Status s = AfterFailure(Mode::kRead, "accept", r.error); !s.ok()) return s;
  }
}

absl::Status NetFD::Connect(const platform::SocketAddress& remote, int64_t deadline, Canceller* cancel) {
  // The NetFD is not shared yet: no fd-mutex lock is needed, as in Go.
  if (cancel != nullptr && cancel->cancelled()) return CanceledError();
  platform::ErrorCode error = syscalls().connect(handle_, remote);
  ErrorKind kind = platform::ClassifyError(error);
  bool in_progress = kind == ErrorKind::kInProgress || kind == ErrorKind::kAlready ||
                     kind == ErrorKind::kInterrupted;  // EINTR: the connect goes on in the background.
  if (!in_progress && kind != ErrorKind::kNone && kind != ErrorKind::kAlreadyConnected) {
    return platform::ErrorToStatus(error, "connect");
  }
  // Registering after connect(2) loses nothing: EPOLL_CTL_ADD reports readiness that already exists.
  if (absl::Status status = Init(); !status.ok()) return status;
  if (!in_progress) return absl::OkStatus();

  if (deadline != 0) pd_->SetDeadline(deadline, Mode::kWrite);
  uint64_t cancel_id = 0;
  if (cancel != nullptr) {
    poller::PollDesc* pd = pd_;
    cancel_id = cancel->Register([pd] { pd->SetDeadline(kLongTimeAgo, Mode::kWrite); });
  }
  absl::Status result;
  for (;;) {
    if (PollError e = pd_->Wait(Mode::kWrite); e != PollError::kNone) {
      result = e == PollError::kTimeout ? TimeoutError()
               : e == PollError::kClosing ? ClosedError()
                                           : NotPollableError();
      break;
    }
    platform::SysResult<platform::ErrorCode> pending = syscalls().take_pending_error(handle_);
    if (!pending.ok()) {
      result = platform::ErrorToStatus(pending.error, "getsockopt");
      break;
    }
    ErrorKind so = platform::ClassifyError(pending.value);
    if (so == ErrorKind::kInProgress || so == ErrorKind::kAlready || so == ErrorKind::kInterrupted) {
      continue;
    }
    if (so == ErrorKind::kAlreadyConnected) break;
    if (so == ErrorKind::kNone) {
      // SO_ERROR == 0 is not proof: a stale or spurious wake-up looks the same (Go #14548,
      // #19289). getpeername succeeds only once the connection really exists.
      if (syscalls().peer_address(handle_).ok()) break;
      continue;
    }
    result = platform::ErrorToStatus(pending.value, "connect");
    break;
  }
  // A cancel that ran (or is running) counts even if the connect won: its past deadline would
  // poison every later write of this connection (R38, Go #16523).
  bool cancelled = cancel != nullptr && !cancel->Unregister(cancel_id);
  if (cancelled) return CanceledError();
  if (result.ok() && (deadline != 0 || cancel != nullptr)) pd_->SetDeadline(0, Mode::kWrite);
  return result;
}

absl::Status NetFD::Shutdown(platform::ShutdownHow how, const char* op) {
  if (!mutex_.Incref()) return Error(op, ClosedError());
  RefGuard guard(this, &NetFD::DecrefAndMaybeDestroy);
  platform::ErrorCode error = platform::Shutdown(handle_, how);
  return error == 0 ? absl::OkStatus() : OsError(op, error);
}

absl::Status NetFD::CloseRead() { return Shutdown(platform::ShutdownHow::kRead, "shutdown"); }
absl::Status NetFD::CloseWrite() { return Shutdown(platform::ShutdownHow::kWrite, "shutdown"); }

absl::Status NetFD::SetDeadlineImpl(absl::Time t, Mode mode) {
  if (!mutex_.Incref()) return Error("set deadline", ClosedError());
  RefGuard guard(this, &NetFD::DecrefAndMaybeDestroy);
  if (pd_ == nullptr) {
    return Error("set deadline", absl::UnimplementedError("file type does not support deadline"));
  }
  pd_->SetDeadline(MonotonicDeadline(t), mode);
  return absl::OkStatus();
}

absl::Status NetFD::SetDeadline(absl::Time t) { return SetDeadlineImpl(t, Mode::kReadWrite); }
absl::Status NetFD::SetReadDeadline(absl::Time t) { return SetDeadlineImpl(t, Mode::kRead); }
absl::Status NetFD::SetWriteDeadline(absl::Time t) { return SetDeadlineImpl(t, Mode::kWrite); }

absl::Status NetFD::SetBlocking() {
  if (!mutex_.Incref()) return Error("set blocking", ClosedError());
  RefGuard guard(this, &NetFD::DecrefAndMaybeDestroy);
  blocking_.store(1, std::memory_order_seq_cst);
  platform::ErrorCode error = platform::SetNonBlocking(handle_, false);
  return error == 0 ? absl::OkStatus() : OsError("set blocking", error);
}

absl::Status NetFD::Control(const char* op,
                            absl::FunctionRef<platform::ErrorCode(platform::SocketHandle)> fn) {
  if (!mutex_.Incref()) return Error(op, ClosedError());
  RefGuard guard(this, &NetFD::DecrefAndMaybeDestroy);
  platform::ErrorCode error = fn(handle_);
  return error == 0 ? absl::OkStatus() : OsError(op, error);
}

}  // namespace netpoll::netfd
