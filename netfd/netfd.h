// NetFD: one network descriptor with Go's internal/poll.FD semantics, over the poller.
//
// This is the layer between the user API (netfd/net.h: Conn, Listener) and the poller. Every
// operation follows the same discipline:
//   * take the right reference or lock of the fd mutex (read lock for Read/Accept/ReadFrom, write
//     lock for Write/WriteTo, a plain reference for deadlines, shutdown and options); a closed
//     descriptor fails here, before any syscall (R14);
//   * Prepare the poll direction (an expired deadline fails here, before any syscall, leaving
//     buffered data in place, R18), then try the syscall *first*, and park only on EAGAIN;
//   * retry EINTR, but never around close (R39);
//   * a zero-byte read on a stream is EOF (R34); a write loops until everything is written, and a
//     write that stops early reports the bytes written with the error (R35).
//
// Close is Go's protocol: mark closed (a second Close fails at once, R9), wake every waiter with
// the closed error (R6, R8), unregister from the poller before closing the descriptor (R11), close
// it when the last reference drops, and return only then (R7), except in blocking mode (R12).
//
// Thread-safety: one reader, one writer and any number of Close/SetDeadline/option callers may
// use a NetFD concurrently; a second reader (or writer) waits for the first.
// Lifetime: destroying a NetFD closes it and waits, like Close, for calls in progress to return
// (they fail with the closed error). No call may *start* once destruction has begun.
#ifndef NETPOLL_NETFD_NETFD_H_
#define NETPOLL_NETFD_NETFD_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "netfd/canceller.h"
#include "netfd/fd_mutex.h"
#include "platform/socket.h"
#include "poller/poll_desc.h"
#include "poller/semaphore.h"

namespace netpoll {

// The outcome of a write: how many bytes went out, and, if not all of them did, why. A write that
// stops early (a deadline, a reset peer) still reports the bytes it wrote, as Go's does (R35).
struct WriteResult {
  size_t written = 0;
  absl::Status status;
  bool ok() const { return status.ok(); }
};

// What ReadFrom returns: the datagram's size and its sender.
struct ReadFromResult {
  size_t bytes = 0;
  platform::SocketAddress from;
};

namespace netfd {

// The largest single read or write on a stream (1 GiB): some kernels reject 2 GiB and more.
inline constexpr size_t kMaxReadWrite = size_t{1} << 30;

// An API deadline as a poller deadline: absl::InfiniteFuture() is 0 (none), absl::InfinitePast()
// and every time already past are expired (< 0), anything else absolute monotonic ns. Converted
// once, now, so a later wall-clock step cannot move it (as in Go).
int64_t MonotonicDeadline(absl::Time t);

class NetFD {
 public:
  // Wraps `handle` (non-blocking, owned from now on). `net` ("tcp", "udp", "unix", ...) and the
  // socket type decide error prefixes and EOF rules. With `register_now`, the descriptor is
  // registered with the poller at once (accepted and listening sockets); a dialing socket is
  // registered by Connect, after its connect(2), as Go does. Errors: the poller's registration
  // error (the handle is closed then).
  static absl::StatusOr<std::unique_ptr<NetFD>> New(platform::SocketHandle handle,
                                                    platform::SocketType type, std::string net,
                                                    bool register_now);
  ~NetFD();
  NetFD(const NetFD&) = delete;
  NetFD& operator=(const NetFD&) = delete;

  // Reads up to buffer.size() bytes. An empty buffer returns 0 at once (no syscall, no deadline
  // check). Errors: EOF (stream peer finished), timeout, closed, not pollable, OS errors.
  absl::StatusOr<size_t> Read(absl::Span<char> buffer);
  // Scatter read into `buffers` (one readv). Same results as Read.
  absl::StatusOr<size_t> ReadV(absl::Span<const absl::Span<char>> buffers);
  // Writes all of `data` (looping over partial writes), or stops at the first error.
  WriteResult Write(absl::Span<const char> data);
  // Gather write of every buffer, in order, looping like Write.
  WriteResult WriteV(absl::Span<const absl::Span<const char>> buffers);
  // One datagram (or stream chunk) and its sender. No empty-buffer shortcut: a zero-byte datagram
  // is a datagram.
  absl::StatusOr<ReadFromResult> ReadFrom(absl::Span<char> buffer);
  // Sends one datagram to `to` (or to the connected peer if `to` is empty). Returns its size.
  absl::StatusOr<size_t> WriteTo(absl::Span<const char> data, const platform::SocketAddress& to);

  // Accepts a connection: a registered NetFD with its local and remote addresses set. Queued
  // connections that were reset (ECONNABORTED) and EINTR are skipped (R37).
  absl::StatusOr<std::unique_ptr<NetFD>> Accept();

  // Connects to `remote`: connect(2), register with the poller, wait until writable, then confirm
  // with SO_ERROR and getpeername, so a spurious wake-up never reports success early (R26).
  // `deadline`: 0 none, else monotonic ns (see poller::DeadlineAfter). `cancel` may be null. A
  // connect that completes at the moment it is cancelled fails as cancelled (R38). Only for a
  // NetFD made with register_now == false, before any other use.
  absl::Status Connect(const platform::SocketAddress& remote, int64_t deadline, Canceller* cancel);

  // Registers a NetFD made with register_now == false with the poller (Go's fd.init): a listening
  // socket after listen(2). Connect does it itself. Errors: the poller's; the NetFD then behaves
  // as a blocking descriptor until closed.
  absl::Status Init();

  // Closes: see the file comment. A second Close returns the closed error at once.
  absl::Status Close();
  // shutdown(SHUT_RD / SHUT_WR).
  absl::Status CloseRead();
  absl::Status CloseWrite();

  // Deadlines. absl::InfiniteFuture() means none; any other time is absolute (a time in the past
  // expires the direction now, waking blocked calls, R17). Errors: closed.
  absl::Status SetDeadline(absl::Time t);
  absl::Status SetReadDeadline(absl::Time t);
  absl::Status SetWriteDeadline(absl::Time t);

  // Puts the descriptor into blocking mode: calls block in the kernel and Close no longer waits for
  // them (R12). There is no way back. Errors: closed, the fcntl error.
  absl::Status SetBlocking();

  // Runs `fn` on the descriptor while holding a reference (socket options). `op` names the
  // operation in errors. Errors: closed, or fn's error code.
  absl::Status Control(const char* op, absl::FunctionRef<platform::ErrorCode(platform::SocketHandle)> fn);

  const std::string& net() const { return net_; }
  const platform::SocketAddress& local_address() const { return local_; }
  const platform::SocketAddress& remote_address() const { return remote_; }
  // Set once, before the NetFD is shared (by Listen, Dial, Accept).
  void SetAddresses(const platform::SocketAddress& local, const platform::SocketAddress& remote);

  // For tests and debug checks.
  platform::SocketHandle handle_for_testing() const { return handle_; }
  poller::PollDesc* poll_desc_for_testing() const { return pd_; }
  const FdMutex& fd_mutex_for_testing() const { return mutex_; }

 private:
  NetFD(platform::SocketHandle handle, platform::SocketType type, std::string net);

  // Runs when the last reference goes after Close: unregister, close(2), wake Close. Returns the
  // close error. Touches nothing of `this` after waking Close.
  absl::Status Destroy();
  void DecrefAndMaybeDestroy();
  void UnlockAndMaybeDestroy(bool read);
  absl::Status SetDeadlineImpl(absl::Time t, poller::Mode mode);
  absl::Status Shutdown(platform::ShutdownHow how, const char* op);

  // Wraps errors in "<op> <net> <local>-><remote>: ...".
  absl::Status Error(const char* op, const absl::Status& cause) const;
  absl::Status PollErrorStatus(const char* op, poller::PollError error) const;
  absl::Status OsError(const char* op, platform::ErrorCode code) const;
  // Before a syscall: the closing/deadline error of `mode`, or OK (having reset its readiness).
  absl::Status Prepare(poller::Mode mode, const char* op);
  // After a syscall in `mode` failed with `error`: OK to retry it (EINTR; EAGAIN once the
  // descriptor is ready again), else the error to return.
  absl::Status AfterFailure(poller::Mode mode, const char* op, platform::ErrorCode error);
  bool stream() const { return type_ != platform::SocketType::kDatagram; }
  // The local address of a socket this listener accepted.
  platform::SocketAddress AcceptedLocalAddress(platform::SocketHandle accepted) const;

  platform::SocketHandle handle_;
  const platform::SocketType type_;
  const std::string net_;
  FdMutex mutex_;
  poller::PollDesc* pd_ = nullptr;  // Null until registered (and in blocking mode after failure).
  // 1 once in blocking mode (Go's isBlocking). seq_cst: read by Close on another thread.
  std::atomic<uint32_t> blocking_{0};
  // Released by Destroy; Close waits on it for the descriptor to be really closed.
  poller::WaiterSemaphore close_done_;
  platform::SocketAddress local_;
  platform::SocketAddress remote_;
};

}  // namespace netfd
}  // namespace netpoll

#endif  // NETPOLL_NETFD_NETFD_H_
