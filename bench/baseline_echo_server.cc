// baseline_echo_server: the plain C-style echo server that every netpoll echo figure is divided by.
//
// One thread, one epoll instance, edge-triggered, written as tightly as we know how:
//   - the listener is non-blocking; each readiness edge accepts with accept4 until EAGAIN;
//   - every connection is registered once, for its whole life, with
//     EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET (what Go's netpoll and netpoll register), so a
//     partial write never costs an epoll_ctl: the EPOLLOUT edge simply arrives when there is room;
//   - on readability we read into one reusable 64 KiB buffer until EAGAIN and write each chunk
//     straight back; bytes the kernel does not take go into that connection's pending buffer, and
//     reading stops until the EPOLLOUT edge has flushed them (backpressure, bounded memory);
//   - per-connection state is a small struct in a table indexed by descriptor: no allocation per
//     connection or per read (only a partial write allocates, and frees once flushed);
//   - TCP_NODELAY on every accepted socket, as Go and netpoll do by default.
// SIGINT/SIGTERM (through a signalfd in the same epoll set) close everything and exit 0.
//
// Usage: baseline_echo_server [--addr=127.0.0.1:9090]
// With port 0 the kernel picks a port. The first line on stdout is always
// "listening on HOST:PORT" with the bound address, so scripts can start it on an ephemeral port.
//
// Debug flags for the harness's own tests (never in a benchmark):
//   --corrupt_every=N   alter every Nth chunk echoed (N > 0), per --corrupt_mode:
//       flip        invert one byte of the chunk;
//       duplicate   echo the chunk twice (the client then sees stale bytes in its next message).
//   --mute_connection=K  never echo anything on the K-th accepted connection (K > 0): its client
//                        waits forever, a stall, while every other connection is served.
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "bench/bench_util.h"

ABSL_FLAG(std::string, addr, "127.0.0.1:9090", "HOST:PORT to listen on (port 0: any free port)");
ABSL_FLAG(int, corrupt_every, 0, "debug: alter every Nth echoed chunk (0 = never)");
ABSL_FLAG(std::string, corrupt_mode, "flip", "debug: flip | duplicate (see --corrupt_every)");
ABSL_FLAG(int, mute_connection, 0, "debug: never echo on the K-th accepted connection (0 = none)");

namespace netpoll_bench {
namespace {

constexpr size_t kReadSize = 64 * 1024;
constexpr int kMaxEvents = 1024;
// epoll user data for the two descriptors that are not connections. Connections use their fd.
constexpr uint64_t kListenerKey = ~uint64_t{0};
constexpr uint64_t kSignalKey = ~uint64_t{0} - 1;

struct Connection {
  bool open = false;
  // Set when we stopped reading because `pending` was not empty: after the flush we must read
  // again until EAGAIN, since the read edges that came meanwhile were consumed.
  bool read_suspended = false;
  bool muted = false;  // debug (--mute_connection): read and discard, never echo
  uint32_t pending_offset = 0;
  std::vector<char> pending;  // echo bytes the kernel has not accepted yet
};

enum class CorruptMode { kFlip, kDuplicate };

class EchoServer {
 public:
  EchoServer(int corrupt_every, CorruptMode corrupt_mode, int mute_connection)
      : corrupt_every_(corrupt_every),
        corrupt_mode_(corrupt_mode),
        mute_connection_(static_cast<uint64_t>(mute_connection)),
        buffer_(2 * kReadSize) {}

  // Binds, listens and prints the bound address. Returns false (with a message) on failure.
  bool Listen(const SockAddr& addr) {
    listener_ = socket(addr.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (listener_ < 0) return Fail("socket");
    const int one = 1;
    setsockopt(listener_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(listener_, addr.get(), addr.len) != 0) return Fail("bind");
    if (listen(listener_, 65535) != 0) return Fail("listen");  // the kernel caps at somaxconn
    SockAddr bound;
    bound.len = sizeof(bound.storage);
    if (getsockname(listener_, bound.get(), &bound.len) != 0) return Fail("getsockname");

    epoll_ = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_ < 0) return Fail("epoll_create1");
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLET;
    ev.data.u64 = kListenerKey;
    if (epoll_ctl(epoll_, EPOLL_CTL_ADD, listener_, &ev) != 0) return Fail("epoll_ctl(listener)");

    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    if (sigprocmask(SIG_BLOCK, &mask, nullptr) != 0) return Fail("sigprocmask");
    signal_fd_ = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (signal_fd_ < 0) return Fail("signalfd");
    ev.events = EPOLLIN;
    ev.data.u64 = kSignalKey;
    if (epoll_ctl(epoll_, EPOLL_CTL_ADD, signal_fd_, &ev) != 0) return Fail("epoll_ctl(signalfd)");

    std::printf("listening on %s\n", FormatHostPort(bound).c_str());
    std::fflush(stdout);
    return true;
  }

  // Serves until SIGINT or SIGTERM. Returns false on an unexpected epoll failure.
  bool Run() {
    epoll_event events[kMaxEvents];
    while (!stopping_) {
      const int n = epoll_wait(epoll_, events, kMaxEvents, -1);
      if (n < 0) {
        if (errno == EINTR) continue;
        return Fail("epoll_wait");
      }
      for (int i = 0; i < n; ++i) {
        const uint64_t key = events[i].data.u64;
        if (key == kListenerKey) {
          AcceptAll();
        } else if (key == kSignalKey) {
          stopping_ = true;
        } else {
          Serve(static_cast<int>(key), events[i].events);
        }
      }
    }
    return true;
  }

  void Shutdown() {
    int open = 0;
    for (size_t fd = 0; fd < connections_.size(); ++fd) {
      if (connections_[fd].open) {
        CloseConnection(static_cast<int>(fd));
        ++open;
      }
    }
    if (listener_ >= 0) close(listener_);
    if (signal_fd_ >= 0) close(signal_fd_);
    if (epoll_ >= 0) close(epoll_);
    std::fprintf(stderr,
                 "baseline_echo_server: %llu connections accepted (%d open at shutdown), %llu "
                 "bytes echoed, %llu accept errors\n",
                 static_cast<unsigned long long>(accepted_), open,
                 static_cast<unsigned long long>(echoed_bytes_),
                 static_cast<unsigned long long>(accept_errors_));
  }

 private:
  bool Fail(const char* what) {
    std::fprintf(stderr, "baseline_echo_server: %s: %s\n", what, std::strerror(errno));
    return false;
  }

  void AcceptAll() {
    for (;;) {
      const int fd = accept4(listener_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        if (errno == EINTR || errno == ECONNABORTED) continue;
        // EMFILE/ENFILE/ENOBUFS: the connection stays in the backlog until the next edge. A
        // benchmark run that gets here is misconfigured (fd limit); say so once per burst.
        ++accept_errors_;
        std::fprintf(stderr, "baseline_echo_server: accept4: %s\n", std::strerror(errno));
        return;
      }
      const int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      if (static_cast<size_t>(fd) >= connections_.size()) {
        connections_.resize(std::max<size_t>(static_cast<size_t>(fd) + 1, 2 * connections_.size()));
      }
      Connection& c = connections_[fd];
      c.open = true;
      c.read_suspended = false;
      c.muted = mute_connection_ != 0 && accepted_ + 1 == mute_connection_;
      epoll_event ev{};
      ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
      ev.data.u64 = static_cast<uint64_t>(fd);
      if (epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &ev) != 0) {
        Fail("epoll_ctl(connection)");
        CloseConnection(fd);
        continue;
      }
      ++accepted_;
    }
  }

  void Serve(int fd, uint32_t events) {
    Connection& c = connections_[fd];
    if (!c.open) return;  // closed earlier in this batch
    if (events & EPOLLERR) {
      CloseConnection(fd);
      return;
    }
    if (!c.pending.empty()) {
      if (!Flush(fd, c)) return;            // closed
      if (!c.pending.empty()) return;       // still no room; wait for the next EPOLLOUT edge
    } else if (!c.read_suspended && !(events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP))) {
      return;  // an EPOLLOUT edge with nothing to write
    }
    c.read_suspended = false;
    ReadAndEcho(fd, c);
  }

  // Reads until EAGAIN, writing every chunk straight back.
  void ReadAndEcho(int fd, Connection& c) {
    char* const buffer = buffer_.data();
    for (;;) {
      const ssize_t r = read(fd, buffer, kReadSize);
      if (r > 0) {
        size_t length = static_cast<size_t>(r);
        if (corrupt_every_ > 0 && ++chunks_ % static_cast<uint64_t>(corrupt_every_) == 0) {
          length = Corrupt(buffer, length);
        }
        if (c.muted) continue;
        ssize_t w = write(fd, buffer, length);
        if (w == static_cast<ssize_t>(length)) {
          echoed_bytes_ += length;
          continue;
        }
        if (w < 0) {
          if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            CloseConnection(fd);
            return;
          }
          w = 0;
        }
        echoed_bytes_ += static_cast<size_t>(w);
        c.pending.assign(buffer + w, buffer + length);
        c.pending_offset = 0;
        c.read_suspended = true;
        return;
      }
      if (r == 0) {
        CloseConnection(fd);  // orderly shutdown by the peer
        return;
      }
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      if (errno == EINTR) continue;
      CloseConnection(fd);  // ECONNRESET and friends
      return;
    }
  }

  // Writes pending bytes. Returns false if the connection was closed.
  bool Flush(int fd, Connection& c) {
    while (c.pending_offset < c.pending.size()) {
      const ssize_t w =
          write(fd, c.pending.data() + c.pending_offset, c.pending.size() - c.pending_offset);
      if (w > 0) {
        c.pending_offset += static_cast<uint32_t>(w);
        echoed_bytes_ += static_cast<size_t>(w);
        continue;
      }
      if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
      if (w < 0 && errno == EINTR) continue;
      CloseConnection(fd);
      return false;
    }
    std::vector<char>().swap(c.pending);  // partial writes are rare: give the memory back
    c.pending_offset = 0;
    return true;
  }

  size_t Corrupt(char* buffer, size_t length) {
    if (corrupt_mode_ == CorruptMode::kDuplicate) {
      std::memcpy(buffer + length, buffer, length);  // buffer_ holds 2 * kReadSize
      return 2 * length;
    }
    buffer[length / 2] = static_cast<char>(buffer[length / 2] ^ 0x5a);
    return length;
  }

  void CloseConnection(int fd) {
    Connection& c = connections_[fd];
    c.open = false;
    c.read_suspended = false;
    c.pending_offset = 0;
    std::vector<char>().swap(c.pending);
    close(fd);  // also removes it from the epoll set (we never dup connection descriptors)
  }

  const int corrupt_every_;
  const CorruptMode corrupt_mode_;
  const uint64_t mute_connection_;
  std::vector<char> buffer_;  // the one read buffer, reused for every read
  std::vector<Connection> connections_;
  int listener_ = -1;
  int epoll_ = -1;
  int signal_fd_ = -1;
  bool stopping_ = false;
  uint64_t accepted_ = 0;
  uint64_t accept_errors_ = 0;
  uint64_t echoed_bytes_ = 0;
  uint64_t chunks_ = 0;
};

int Main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  SockAddr addr;
  std::string error;
  if (!ParseHostPort(absl::GetFlag(FLAGS_addr), &addr, &error)) {
    std::fprintf(stderr, "baseline_echo_server: --addr: %s\n", error.c_str());
    return 2;
  }
  const std::string mode = absl::GetFlag(FLAGS_corrupt_mode);
  CorruptMode corrupt_mode;
  if (mode == "flip") {
    corrupt_mode = CorruptMode::kFlip;
  } else if (mode == "duplicate") {
    corrupt_mode = CorruptMode::kDuplicate;
  } else {
    std::fprintf(stderr, "baseline_echo_server: --corrupt_mode must be flip or duplicate\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  RaiseFdLimit(1 << 20);
  EchoServer server(absl::GetFlag(FLAGS_corrupt_every), corrupt_mode,
                    absl::GetFlag(FLAGS_mute_connection));
  if (!server.Listen(addr)) return 1;
  const bool ok = server.Run();
  server.Shutdown();
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace netpoll_bench

int main(int argc, char** argv) { return netpoll_bench::Main(argc, argv); }
