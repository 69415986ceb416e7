// echo_load: the load generator of the echo benchmark. Epoll-driven, edge-triggered, one thread by
// default (--threads=N splits the connections over N threads, each with its own epoll set).
//
// Modes (--mode):
//   pingpong  --connections=C clients; each sends a --size=S byte message, waits for the whole
//             echo, checks every byte, records the round trip's latency and sends the next one.
//             After --warmup, round trips are counted for --duration.
//   churn     --connections=C slots; each repeatedly connects, sends one message, checks the echo
//             and closes (latency = socket() to verified echo). Counts connections per second.
//   idle      opens --connections=N connections, pings each once (so the server has really accepted
//             and served it), then holds them all for --duration; meant for measuring the server's
//             memory per idle connection.
//
// Payload checking: every message is a window of a 1 MiB random pool at an offset drawn per message
// from a per-connection generator, and the next offset is chosen so that the first min(S, 8) bytes
// differ from the previous message's. So a flipped byte, a chunk echoed twice (stale bytes), or
// chunks in the wrong order all fail a memcmp, and nothing is generated or copied per message:
// sends go straight from the pool. A mismatch is printed on stderr, counted, kills that
// connection, and makes the exit status 1.
//
// Latency goes into a log-linear histogram (bench/latency_histogram.h), no allocation per sample.
//
// --server_pid=PID: the server's CPU time (/proc/PID/stat utime+stime) is read at the start and end
// of the measured window, and its memory (/proc/PID/status) before the first connection and at the
// end of the window (while every connection is still open), giving requests per server
// CPU-second and RSS per connection.
//
// Descriptors and ports: RLIMIT_NOFILE is raised as far as the system allows (and the run refused
// up front if it cannot hold the connections). Every connection to one server address needs its own
// local port per source address, so beyond ~90% of the ephemeral port range the connections are
// spread over several loopback source addresses 127.0.0.1, 127.0.0.2, ... (--source_ips=auto), each
// socket bound with IP_BIND_ADDRESS_NO_PORT so the kernel picks the port at connect time.
//
// Churn and TIME_WAIT: the side that closes first keeps the port in TIME_WAIT for 60 s, which at
// tens of thousands of connections per second exhausts the port range in about a second. By
// default (--churn_close=rst) the client closes with SO_LINGER{on, 0}: the connection ends with a
// RST and leaves no TIME_WAIT on either side (the server sees ECONNRESET or EOF on its next read,
// after it has echoed). --churn_close=fin closes normally; then rely on net.ipv4.tcp_tw_reuse
// (Linux's default 2 allows it on loopback) and/or --source_ips.
//
// Output: one human-readable line, then (with --json, the default) one JSON object on one line.
// Exit status: 0 clean; 1 payload mismatch; 2 other errors (connect failures, resets, unexpected
// EOF, stalled connections); 3 nothing completed in the measured window; 64 bad usage.
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <latch>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "bench/bench_util.h"
#include "bench/latency_histogram.h"

ABSL_FLAG(std::string, addr, "127.0.0.1:9090", "server HOST:PORT");
ABSL_FLAG(std::string, mode, "pingpong", "pingpong | churn | idle");
ABSL_FLAG(int, connections, 10, "pingpong, idle: connections; churn: connections in flight");
ABSL_FLAG(int, size, 64, "message size in bytes");
ABSL_FLAG(absl::Duration, duration, absl::Seconds(5), "measured window (idle: how long to hold)");
ABSL_FLAG(absl::Duration, warmup, absl::Seconds(1), "unmeasured load before the window");
ABSL_FLAG(int, threads, 1, "load threads, each with its own epoll set and share of connections");
ABSL_FLAG(int, connect_concurrency, 512, "setup: connections being opened at once (all threads)");
ABSL_FLAG(absl::Duration, connect_timeout, absl::Seconds(60),
          "setup (opening, and pinging in idle mode, all connections) must finish within this");
ABSL_FLAG(absl::Duration, stall_timeout, absl::Seconds(1),
          "a message (churn: connection) still unanswered at the end of the window after this "
          "long and after 20 times the expected latency (connections / throughput) is an error "
          "(a lost wake-up)");
ABSL_FLAG(std::string, source_ips, "auto",
          "local source addresses: auto (spread over 127.0.0.x only when the ephemeral port range "
          "is too small), none, N (127.0.0.1..127.0.0.N), or a comma-separated list");
ABSL_FLAG(std::string, churn_close, "rst", "churn: rst (SO_LINGER 0, no TIME_WAIT) | fin");
ABSL_FLAG(int, server_pid, 0, "server process to sample CPU time and memory of (0: none)");
ABSL_FLAG(bool, json, true, "print a machine-readable JSON line after the human-readable one");
ABSL_FLAG(uint64_t, seed, 1, "payload seed");

namespace netpoll_bench {
namespace {

// Set by SIGINT/SIGTERM. Relaxed everywhere: the flag publishes no data, it only asks the loops
// to end early; they read it at least every 100 ms (their epoll_wait timeout). Lock-free atomics
// are async-signal-safe.
std::atomic<bool> g_stop{false};
static_assert(std::atomic<bool>::is_always_lock_free);

// Rate limit for mismatch details on stderr, shared by the threads. Relaxed: it is a counter
// deciding whether to print, and guards no other data.
std::atomic<int> g_mismatch_reports{0};
constexpr int kMaxMismatchReports = 10;

constexpr size_t kPoolSpan = size_t{1} << 20;  // payload offsets are drawn from [0, kPoolSpan)
constexpr size_t kScratchSize = 64 * 1024;
constexpr int kMaxEvents = 1024;

enum class Mode { kPingPong, kChurn, kIdle };

struct Options {
  Mode mode = Mode::kPingPong;
  SockAddr server;
  int connections = 0;
  size_t size = 0;
  int threads = 1;
  int connect_concurrency = 0;
  int64_t duration_ns = 0;
  int64_t warmup_ns = 0;
  int64_t connect_timeout_ns = 0;
  int64_t stall_timeout_ns = 0;
  std::vector<SockAddr> sources;  // empty: let the kernel choose
  bool churn_rst = true;
  int server_pid = 0;
  uint64_t seed = 1;
};

// The run's time line, set once in the start barrier's completion step and read-only afterwards
// (std::barrier orders the completion step before every arrive_and_wait returns).
struct Timeline {
  int64_t start = 0;    // load begins (warm-up)
  int64_t measure = 0;  // measured window begins
  int64_t end = 0;      // measured window ends
};

uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t XorShift64(uint64_t& state) {
  state ^= state << 13;
  state ^= state >> 7;
  state ^= state << 17;
  return state;
}

struct Counters {
  uint64_t measured = 0;        // round trips (connections in churn) completed in the window
  uint64_t completed = 0;       // ... at any time, warm-up and setup included
  uint64_t connected = 0;       // connections established
  uint64_t ready = 0;           // pingpong: connected; idle: connected and pinged
  uint64_t connect_failed = 0;  // connect refused/unreachable/no address
  uint64_t connect_timeout = 0;  // still not connected (or pinged) when setup timed out
  uint64_t reset = 0;           // ECONNRESET, EPIPE and other socket errors
  uint64_t eof = 0;             // the server closed a connection it should have kept
  uint64_t mismatch = 0;        // echoed bytes differ from what was sent
  uint64_t unexpected = 0;      // idle: data arrived that nobody sent
  uint64_t stalled = 0;         // no echo (or connection) long after it was due, at the end
  uint64_t starved = 0;         // pingpong: live, but no round trip in the window (not an error)
  LatencyHistogram latency;

  void Merge(const Counters& o) {
    measured += o.measured;
    completed += o.completed;
    connected += o.connected;
    ready += o.ready;
    connect_failed += o.connect_failed;
    connect_timeout += o.connect_timeout;
    reset += o.reset;
    eof += o.eof;
    mismatch += o.mismatch;
    unexpected += o.unexpected;
    stalled += o.stalled;
    starved += o.starved;
    latency.Merge(o.latency);
  }
  uint64_t errors() const {
    return connect_failed + connect_timeout + reset + eof + mismatch + unexpected + stalled;
  }
};

class Worker {
 public:
  Worker(int first_connection, int connections, const Options& options, const uint8_t* pool,
         const Timeline& timeline)
      : first_connection_(first_connection),
        options_(options),
        pool_(pool),
        timeline_(timeline),
        conns_(static_cast<size_t>(connections)),
        scratch_(kScratchSize) {
    for (size_t i = 0; i < conns_.size(); ++i) {
      uint64_t seed = options.seed * 0x100000001b3ULL + static_cast<uint64_t>(first_connection) + i;
      conns_[i].rng = SplitMix64(seed) | 1;  // xorshift needs a nonzero state
      conns_[i].offset = static_cast<uint32_t>(XorShift64(conns_[i].rng) & (kPoolSpan - 1));
    }
  }

  bool Init() {
    epoll_ = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_ < 0) {
      std::fprintf(stderr, "echo_load: epoll_create1: %s\n", std::strerror(errno));
      return false;
    }
    return true;
  }

  ~Worker() {
    for (Conn& c : conns_) CloseSocket(c);
    if (epoll_ >= 0) close(epoll_);
  }

  // Opens (and in idle mode pings) every connection, or gives up at the connect timeout.
  void Setup(int concurrency) {
    if (options_.mode == Mode::kChurn) return;
    const int64_t deadline = MonotonicNanos() + options_.connect_timeout_ns;
    size_t next = 0;
    while (settled_ < conns_.size() && !g_stop.load(std::memory_order_relaxed)) {
      while (next < conns_.size() && next - settled_ < static_cast<size_t>(concurrency)) {
        Open(next++);
      }
      const int64_t now = MonotonicNanos();
      if (now >= deadline) {
        for (Conn& c : conns_) {
          if (c.state == State::kConnecting || c.state == State::kBusy || c.state == State::kFree) {
            ++counters_.connect_timeout;
            Kill(c);
          }
        }
        break;
      }
      Poll(std::min<int64_t>((deadline - now) / 1000000 + 1, 100));
    }
  }

  // Drives the load until the window ends.
  void Run() {
    if (options_.mode == Mode::kPingPong) {
      const int64_t now = MonotonicNanos();
      for (Conn& c : conns_) {
        if (c.state != State::kReady) continue;
        StartMessage(c, now);
        Drive(c);
      }
    } else if (options_.mode == Mode::kChurn) {
      for (size_t i = 0; i < conns_.size(); ++i) Open(i);
    }
    for (;;) {
      if (g_stop.load(std::memory_order_relaxed)) break;
      const int64_t now = MonotonicNanos();
      if (now >= timeline_.end) break;
      if (options_.mode != Mode::kChurn && alive_ == 0) break;  // nothing left to drive
      int timeout_ms =
          static_cast<int>(std::min<int64_t>((timeline_.end - now) / 1000000 + 1, 100));
      if (!retry_.empty()) timeout_ms = std::min(timeout_ms, 1);
      Poll(timeout_ms);
      if (!retry_.empty()) {
        std::vector<uint32_t> retry;
        retry.swap(retry_);
        for (uint32_t slot : retry) Open(slot);
      }
    }
    CountStalls();
  }

  // Closes every connection with a RST (SO_LINGER 0), so that repeated runs do not leave
  // thousands of ports in TIME_WAIT behind them.
  void CloseAll() {
    const linger abort{1, 0};
    for (Conn& c : conns_) {
      if (c.fd >= 0) setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &abort, sizeof(abort));
      CloseSocket(c);
    }
  }

  const Counters& counters() const { return counters_; }

 private:
  enum class State : uint8_t {
    kFree,        // no socket
    kConnecting,  // connect() in progress
    kReady,       // pingpong: connected, waiting for the window to open
    kBusy,        // a message is being sent and/or its echo received
    kIdle,        // idle mode: pinged, now held
    kDead,        // failed; never reused (pingpong and idle)
  };

  struct Conn {
    int fd = -1;
    State state = State::kFree;
    uint32_t generation = 0;  // bumped per socket, so late events for a closed socket are ignored
    uint32_t offset = 0;      // pool offset of the current message
    uint32_t sent = 0;
    uint32_t received = 0;
    uint64_t sequence = 0;
    uint64_t rng = 0;
    int64_t start = 0;  // when the current message (churn: connection) started
    uint32_t window_completions = 0;  // round trips completed in the measured window
  };

  // A message (churn: a connection) still outstanding at the end of the window after both
  // --stall_timeout and 20 times the expected latency is stalled, an error: a lost wake-up leaves
  // a connection waiting forever. The expected latency of a closed loop is connections /
  // throughput (Little's law) whatever the server's fairness, while the median or the mean of
  // the completed round trips can be tiny on an unfair server whose other connections wait for
  // seconds; the larger of that mean and Little's figure is used.
  // A live pingpong connection that completed no round trip in the whole window is starved: not
  // an error (its turn may just not have come), but a fairness figure worth reporting.
  void CountStalls() {
    if (options_.mode == Mode::kIdle) return;
    const double window_ns = static_cast<double>(timeline_.end - timeline_.measure);
    const double little_ns =
        counters_.measured > 0 ? conns_.size() * window_ns / counters_.measured : 1e18;
    const double expected_ns = std::max(counters_.latency.mean(), little_ns);
    const int64_t threshold = std::max<int64_t>(
        options_.stall_timeout_ns, static_cast<int64_t>(std::min(20 * expected_ns, 1e18)));
    const int64_t now = MonotonicNanos();
    for (Conn& c : conns_) {
      if (c.state != State::kBusy && c.state != State::kConnecting) continue;
      if (options_.mode == Mode::kPingPong && c.window_completions == 0) ++counters_.starved;
      if (now - c.start <= threshold) continue;
      ++counters_.stalled;
      if (counters_.stalled <= 3) {
        std::fprintf(stderr,
                     "echo_load: connection %d stalled%s: message %llu has had %u of %zu echo "
                     "bytes in %.3f s\n",
                     ConnectionId(c), c.state == State::kConnecting ? " connecting" : "",
                     static_cast<unsigned long long>(c.sequence), c.received, options_.size,
                     (now - c.start) / 1e9);
      }
    }
  }

  int ConnectionId(const Conn& c) const {
    return first_connection_ + static_cast<int>(&c - conns_.data());
  }

  void Poll(int timeout_ms) {
    const int n = epoll_wait(epoll_, events_, kMaxEvents, timeout_ms);
    for (int i = 0; i < n; ++i) {
      const uint64_t token = events_[i].data.u64;
      Conn& c = conns_[token >> 32];
      if (c.generation != static_cast<uint32_t>(token) || c.fd < 0) continue;
      OnEvent(c, events_[i].events);
    }
  }

  void OnEvent(Conn& c, uint32_t events) {
    switch (c.state) {
      case State::kConnecting: {
        if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
        int error = 0;
        socklen_t length = sizeof(error);
        if (getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0) error = errno;
        if (error == 0 && (events & (EPOLLERR | EPOLLHUP))) error = ECONNREFUSED;
        if (error != 0) {
          ConnectFailed(c, error);
          return;
        }
        Connected(c);
        return;
      }
      case State::kBusy:
        Drive(c);
        return;
      case State::kIdle:
        CheckIdle(c);
        return;
      default:
        return;  // kReady: nothing to do until the window opens
    }
  }

  // Creates the socket of slot `slot` and starts connecting.
  void Open(size_t slot) {
    Conn& c = conns_[slot];
    c.start = MonotonicNanos();
    const int fd = socket(options_.server.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      ConnectFailed(c, errno);
      return;
    }
    c.fd = fd;
    ++c.generation;
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (!options_.sources.empty()) {
      const SockAddr& source =
          options_.sources[next_source_++ % options_.sources.size()];
      setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
      if (bind(fd, source.get(), source.len) != 0) {
        ConnectFailed(c, errno);
        return;
      }
    }
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.u64 = (static_cast<uint64_t>(slot) << 32) | c.generation;
    if (epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &ev) != 0) {
      ConnectFailed(c, errno);
      return;
    }
    if (connect(fd, options_.server.get(), options_.server.len) == 0) {
      Connected(c);
      return;
    }
    if (errno != EINPROGRESS && errno != EINTR) {
      ConnectFailed(c, errno);
      return;
    }
    c.state = State::kConnecting;
  }

  void Connected(Conn& c) {
    ++counters_.connected;
    ++alive_;
    switch (options_.mode) {
      case Mode::kPingPong:
        c.state = State::kReady;
        ++counters_.ready;
        ++settled_;
        return;
      case Mode::kIdle:
        StartMessage(c, MonotonicNanos());
        Drive(c);
        return;
      case Mode::kChurn: {
        const int64_t start = c.start;  // churn latency counts from socket()
        StartMessage(c, start);
        Drive(c);
        return;
      }
    }
  }

  void ConnectFailed(Conn& c, int error) {
    ++counters_.connect_failed;
    if (counters_.connect_failed <= 3) {
      std::fprintf(stderr, "echo_load: connect to %s failed: %s\n",
                   FormatHostPort(options_.server).c_str(), std::strerror(error));
    }
    if (c.state != State::kFree && c.state != State::kConnecting) --alive_;
    CloseSocket(c);
    if (options_.mode == Mode::kChurn) {
      c.state = State::kFree;
      retry_.push_back(static_cast<uint32_t>(&c - conns_.data()));  // after a short pause
    } else {
      c.state = State::kDead;
      ++settled_;
    }
  }

  // Connection-level failure after connect: counts `counter` and retires (churn: replaces) it.
  void Kill(Conn& c) {
    const bool was_alive = c.state == State::kReady || c.state == State::kBusy ||
                           c.state == State::kIdle;
    const bool was_settled = c.state == State::kReady || c.state == State::kIdle ||
                             c.state == State::kDead;
    if (was_alive) --alive_;
    CloseSocket(c);
    if (options_.mode == Mode::kChurn) {
      c.state = State::kFree;
      retry_.push_back(static_cast<uint32_t>(&c - conns_.data()));
      return;
    }
    if (!was_settled) ++settled_;
    c.state = State::kDead;
  }

  void CloseSocket(Conn& c) {
    if (c.fd < 0) return;
    close(c.fd);  // also leaves the epoll set
    c.fd = -1;
    ++c.generation;
  }

  // Picks the next message's pool offset: different from the previous one in its first
  // min(size, 8) bytes, so a stale echo of the previous message cannot pass for this one.
  void StartMessage(Conn& c, int64_t now) {
    const size_t check = std::min<size_t>(options_.size, 8);
    const uint32_t previous = c.offset;
    uint32_t next = previous;
    for (int attempt = 0; attempt < 64; ++attempt) {
      next = static_cast<uint32_t>(XorShift64(c.rng) & (kPoolSpan - 1));
      if (std::memcmp(pool_ + next, pool_ + previous, check) != 0) break;
    }
    c.offset = next;
    ++c.sequence;
    c.sent = 0;
    c.received = 0;
    c.start = now;
    c.state = State::kBusy;
  }

  // Sends the current message and receives its echo as far as the socket allows without blocking.
  // After the last byte is sent we return without trying to read: the echo's last bytes can only
  // arrive after that send, and their arrival raises a fresh EPOLLIN edge.
  void Drive(Conn& c) {
    const size_t size = options_.size;
    for (;;) {
      bool progress = false;
      if (c.sent < size) {
        const ssize_t w = send(c.fd, pool_ + c.offset + c.sent, size - c.sent, MSG_NOSIGNAL);
        if (w > 0) {
          c.sent += static_cast<uint32_t>(w);
          if (c.sent == size && c.received < size) return;
          progress = true;
        } else if (w < 0 && errno == EINTR) {
          progress = true;
        } else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
          SocketError(c, errno);
          return;
        }
      }
      if (c.received < c.sent) {
        const size_t want = std::min<size_t>(c.sent - c.received, kScratchSize);
        const ssize_t r = recv(c.fd, scratch_.data(), want, 0);
        if (r > 0) {
          const uint8_t* expected = pool_ + c.offset + c.received;
          if (std::memcmp(scratch_.data(), expected, static_cast<size_t>(r)) != 0) {
            ReportMismatch(c, expected, static_cast<size_t>(r));
            return;
          }
          c.received += static_cast<uint32_t>(r);
          if (c.received == size) {
            if (!Complete(c)) return;
          }
          continue;
        }
        if (r == 0) {
          UnexpectedEof(c);
          return;
        }
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
          SocketError(c, errno);
          return;
        }
      }
      if (!progress) return;
    }
  }

  // The whole echo of the current message arrived and matched. Returns true to keep driving `c`.
  bool Complete(Conn& c) {
    const int64_t now = MonotonicNanos();
    ++counters_.completed;
    if (now >= timeline_.measure && now < timeline_.end) {
      ++counters_.measured;
      ++c.window_completions;
      counters_.latency.Record(static_cast<uint64_t>(now - c.start));
    }
    switch (options_.mode) {
      case Mode::kPingPong:
        StartMessage(c, now);
        return true;
      case Mode::kIdle:
        c.state = State::kIdle;
        ++counters_.ready;
        ++settled_;
        // Bytes beyond the echo (a server echoing twice) may already be here, and would raise no
        // further edge: look once now.
        CheckIdle(c);
        return false;
      case Mode::kChurn: {
        if (options_.churn_rst) {
          const linger abort{1, 0};
          setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &abort, sizeof(abort));
        }
        --alive_;
        CloseSocket(c);
        c.state = State::kFree;
        if (now < timeline_.end && !g_stop.load(std::memory_order_relaxed)) {
          Open(static_cast<size_t>(&c - conns_.data()));
        }
        return false;
      }
    }
    return false;
  }

  void CheckIdle(Conn& c) {
    for (;;) {
      const ssize_t r = recv(c.fd, scratch_.data(), kScratchSize, 0);
      if (r > 0) {
        ++counters_.unexpected;
        std::fprintf(stderr, "echo_load: idle connection %d received %zd unexpected bytes\n",
                     ConnectionId(c), r);
        Kill(c);
        return;
      }
      if (r == 0) {
        UnexpectedEof(c);
        return;
      }
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) SocketError(c, errno);
      return;
    }
  }

  void ReportMismatch(Conn& c, const uint8_t* expected, size_t length) {
    ++counters_.mismatch;
    size_t at = 0;
    while (at < length && scratch_[at] == expected[at]) ++at;
    if (g_mismatch_reports.fetch_add(1, std::memory_order_relaxed) < kMaxMismatchReports) {
      std::fprintf(stderr,
                   "echo_load: MISMATCH on connection %d, message %llu: byte %u of %zu is 0x%02x, "
                   "expected 0x%02x\n",
                   ConnectionId(c), static_cast<unsigned long long>(c.sequence),
                   c.received + static_cast<uint32_t>(at), options_.size, scratch_[at],
                   expected[at]);
    }
    Kill(c);
  }

  void UnexpectedEof(Conn& c) {
    ++counters_.eof;
    if (counters_.eof <= 3) {
      std::fprintf(stderr, "echo_load: server closed connection %d (%u of %zu echo bytes)\n",
                   ConnectionId(c), c.received, options_.size);
    }
    Kill(c);
  }

  void SocketError(Conn& c, int error) {
    ++counters_.reset;
    if (counters_.reset <= 3) {
      std::fprintf(stderr, "echo_load: connection %d: %s\n", ConnectionId(c), std::strerror(error));
    }
    Kill(c);
  }

  const int first_connection_;
  const Options& options_;
  const uint8_t* const pool_;
  const Timeline& timeline_;
  std::vector<Conn> conns_;
  std::vector<uint8_t> scratch_;  // the one receive buffer of this thread
  std::vector<uint32_t> retry_;   // churn: slots to reopen after a failed connect
  int epoll_ = -1;
  size_t settled_ = 0;  // setup: connections ready, idle or dead
  int64_t alive_ = 0;   // connections established and not failed
  size_t next_source_ = 0;
  Counters counters_;
  epoll_event events_[kMaxEvents];
};

void OnSignal(int) { g_stop.store(true, std::memory_order_relaxed); }

// Sleeps until `deadline` (CLOCK_MONOTONIC ns) or until a stop is requested.
void SleepUntil(int64_t deadline) {
  while (!g_stop.load(std::memory_order_relaxed)) {
    const int64_t now = MonotonicNanos();
    if (now >= deadline) return;
    const int64_t until = std::min(deadline, now + 100000000);
    timespec ts{static_cast<time_t>(until / 1000000000), static_cast<long>(until % 1000000000)};
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr);
  }
}

double SelfCpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_utime.tv_sec + usage.ru_utime.tv_usec / 1e6 + usage.ru_stime.tv_sec +
         usage.ru_stime.tv_usec / 1e6;
}

bool ParseSources(const std::string& spec, const Options& options, std::vector<SockAddr>* out,
                  std::string* error) {
  out->clear();
  if (spec == "none") return true;
  int count = 0;
  if (spec == "auto") {
    if (options.server.family() != AF_INET) return true;
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&options.server.storage);
    if ((ntohl(v4->sin_addr.s_addr) >> 24) != 127) return true;  // not loopback: leave it alone
    const int per_source = EphemeralPortCount() * 9 / 10;
    if (options.mode == Mode::kChurn || options.connections <= per_source) return true;
    count = (options.connections + per_source - 1) / per_source;
  } else if (spec.find_first_not_of("0123456789") == std::string::npos) {
    count = std::atoi(spec.c_str());
  }
  if (count > 0) {
    if (count > 254) {
      *error = "at most 254 loopback source addresses";
      return false;
    }
    for (int i = 1; i <= count; ++i) {
      SockAddr a;
      if (!ParseHostPort("127.0.0." + std::to_string(i) + ":0", &a, error)) return false;
      out->push_back(a);
    }
    return true;
  }
  for (absl::string_view part : absl::StrSplit(spec, ',', absl::SkipEmpty())) {
    SockAddr a;
    if (!ParseHostPort(std::string(part) + ":0", &a, error)) return false;
    if (a.family() != options.server.family()) {
      *error = "source address family differs from the server's";
      return false;
    }
    out->push_back(a);
  }
  return true;
}

const char* ModeName(Mode mode) {
  switch (mode) {
    case Mode::kPingPong:
      return "pingpong";
    case Mode::kChurn:
      return "churn";
    case Mode::kIdle:
      return "idle";
  }
  return "?";
}

int Usage(const std::string& message) {
  std::fprintf(stderr, "echo_load: %s\n", message.c_str());
  return 64;
}

int Main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  Options options;
  std::string error;
  const std::string mode = absl::GetFlag(FLAGS_mode);
  if (mode == "pingpong") {
    options.mode = Mode::kPingPong;
  } else if (mode == "churn") {
    options.mode = Mode::kChurn;
  } else if (mode == "idle") {
    options.mode = Mode::kIdle;
  } else {
    return Usage("--mode must be pingpong, churn or idle");
  }
  if (!ParseHostPort(absl::GetFlag(FLAGS_addr), &options.server, &error)) {
    return Usage("--addr: " + error);
  }
  options.connections = absl::GetFlag(FLAGS_connections);
  options.threads = absl::GetFlag(FLAGS_threads);
  const int size = absl::GetFlag(FLAGS_size);
  if (options.connections < 1) return Usage("--connections must be at least 1");
  if (options.threads < 1) return Usage("--threads must be at least 1");
  if (size < 1 || size > (64 << 20)) return Usage("--size must be in [1, 64 MiB]");
  options.size = static_cast<size_t>(size);
  options.threads = std::min(options.threads, options.connections);
  options.connect_concurrency = std::max(1, absl::GetFlag(FLAGS_connect_concurrency));
  options.duration_ns = absl::ToInt64Nanoseconds(absl::GetFlag(FLAGS_duration));
  options.warmup_ns = options.mode == Mode::kIdle
                          ? 0
                          : absl::ToInt64Nanoseconds(absl::GetFlag(FLAGS_warmup));
  options.connect_timeout_ns = absl::ToInt64Nanoseconds(absl::GetFlag(FLAGS_connect_timeout));
  options.stall_timeout_ns = absl::ToInt64Nanoseconds(absl::GetFlag(FLAGS_stall_timeout));
  if (options.duration_ns <= 0 || options.warmup_ns < 0) {
    return Usage("--duration must be positive and --warmup not negative");
  }
  const std::string churn_close = absl::GetFlag(FLAGS_churn_close);
  if (churn_close != "rst" && churn_close != "fin") {
    return Usage("--churn_close must be rst or fin");
  }
  options.churn_rst = churn_close == "rst";
  options.server_pid = absl::GetFlag(FLAGS_server_pid);
  options.seed = absl::GetFlag(FLAGS_seed);
  if (!ParseSources(absl::GetFlag(FLAGS_source_ips), options, &options.sources, &error)) {
    return Usage("--source_ips: " + error);
  }

  // Descriptors: one per connection plus a few per thread.
  const uint64_t needed = static_cast<uint64_t>(options.connections) + 16 + 2 * options.threads;
  const uint64_t limit = RaiseFdLimit(std::max<uint64_t>(needed, 1 << 20));
  if (limit < needed) {
    std::fprintf(stderr,
                 "echo_load: %d connections need %llu descriptors but RLIMIT_NOFILE allows only "
                 "%llu here (raising it further was refused)\n",
                 options.connections, static_cast<unsigned long long>(needed),
                 static_cast<unsigned long long>(limit));
    return 2;
  }

  // The payload pool: offsets up to kPoolSpan, each followed by a whole message.
  std::vector<uint8_t> pool(kPoolSpan + options.size);
  uint64_t state = options.seed;
  for (size_t i = 0; i < pool.size(); i += 8) {
    const uint64_t word = SplitMix64(state);
    std::memcpy(pool.data() + i, &word, std::min<size_t>(8, pool.size() - i));
  }

  struct sigaction action{};
  action.sa_handler = OnSignal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  signal(SIGPIPE, SIG_IGN);

  int64_t server_rss_before = -1;
  int64_t server_hwm_before = -1;
  if (options.server_pid > 0 &&
      !ProcessMemoryKib(options.server_pid, &server_rss_before, &server_hwm_before)) {
    return Usage("--server_pid: cannot read /proc/" + std::to_string(options.server_pid) +
                 "/status");
  }

  const std::vector<int> kernel_threads = KernelThreadPids();

  Timeline timeline;
  const int64_t warmup_ns = options.warmup_ns;
  const int64_t duration_ns = options.duration_ns;
  auto set_timeline = [&timeline, warmup_ns, duration_ns]() noexcept {
    timeline.start = MonotonicNanos();
    timeline.measure = timeline.start + warmup_ns;
    timeline.end = timeline.measure + duration_ns;
  };
  std::barrier start_barrier(options.threads + 1, set_timeline);
  std::latch sampled(1);

  std::vector<std::unique_ptr<Worker>> workers;
  int first = 0;
  for (int t = 0; t < options.threads; ++t) {
    const int share = options.connections / options.threads +
                      (t < options.connections % options.threads ? 1 : 0);
    workers.push_back(
        std::make_unique<Worker>(first, share, options, pool.data(), timeline));
    first += share;
    if (!workers.back()->Init()) return 2;
  }
  const int per_thread_concurrency =
      std::max(1, options.connect_concurrency / options.threads);
  const int64_t setup_begin = MonotonicNanos();
  std::vector<std::thread> threads;
  for (auto& worker : workers) {
    threads.emplace_back([&worker, &start_barrier, &sampled, per_thread_concurrency] {
      worker->Setup(per_thread_concurrency);
      start_barrier.arrive_and_wait();
      worker->Run();
      sampled.wait();  // keep every connection open until the server has been sampled
      worker->CloseAll();
    });
  }

  start_barrier.arrive_and_wait();
  const double setup_seconds = (timeline.start - setup_begin) / 1e9;
  SleepUntil(timeline.measure);
  const int64_t window_begin = MonotonicNanos();
  const double server_cpu_begin =
      options.server_pid > 0 ? ProcessCpuSeconds(options.server_pid) : -1;
  const double client_cpu_begin = SelfCpuSeconds();
  const MachineCpu machine_cpu_begin = MachineCpuSeconds();
  const double kernel_cpu_begin = TotalCpuSeconds(kernel_threads);
  SleepUntil(timeline.end);
  const int64_t window_end = std::min(MonotonicNanos(), timeline.end);
  const double server_cpu_end = options.server_pid > 0 ? ProcessCpuSeconds(options.server_pid) : -1;
  const double client_cpu_end = SelfCpuSeconds();
  const MachineCpu machine_cpu_end = MachineCpuSeconds();
  const double kernel_cpu_end = TotalCpuSeconds(kernel_threads);
  int64_t server_rss_end = -1;
  int64_t server_hwm_end = -1;
  if (options.server_pid > 0) {
    ProcessMemoryKib(options.server_pid, &server_rss_end, &server_hwm_end);
  }
  sampled.count_down();
  for (auto& thread : threads) thread.join();

  Counters total;
  for (auto& worker : workers) total.Merge(worker->counters());
  workers.clear();

  const double seconds = std::max(1e-9, (window_end - window_begin) / 1e9);
  const double rate = total.measured / seconds;
  const double server_cpu =
      options.server_pid > 0 && server_cpu_begin >= 0 && server_cpu_end >= 0
          ? server_cpu_end - server_cpu_begin
          : -1;
  const double client_cpu = client_cpu_end - client_cpu_begin;
  // CPU time every other process on the machine took during the window: a noise indicator (other
  // builds or tests running beside the benchmark on a 2-core machine distort every figure).
  // Clamped at 0: all the figures are counted in clock ticks, so the difference may dip below.
  // Softirq time (mostly loopback TCP processing) is part of the busy time and of the process
  // times alike, since it runs in the context of whichever process sends; and the kernel's own
  // threads mostly do the benchmark's work too (ksoftirqd runs deferred softirqs: 10% of a CPU
  // at 10,000 connections), so neither is noise. Both are also reported apart, for information.
  const bool machine_known = machine_cpu_begin.busy >= 0 && machine_cpu_end.busy >= 0;
  const double kernel_threads_cpu = kernel_cpu_end - kernel_cpu_begin;
  const double other_cpu =
      machine_known ? std::max(0.0, machine_cpu_end.busy - machine_cpu_begin.busy - client_cpu -
                                        std::max(server_cpu, 0.0) - kernel_threads_cpu)
                    : -1;
  const double softirq_cpu =
      machine_known ? machine_cpu_end.softirq - machine_cpu_begin.softirq : -1;
  const double per_server_cpu = server_cpu > 0 ? total.measured / server_cpu : -1;
  const LatencyHistogram& h = total.latency;
  // Memory per connection: the peak (pingpong, churn) or the held RSS (idle) above the server's
  // RSS before our first connection.
  double bytes_per_connection = -1;
  if (options.server_pid > 0 && server_rss_before >= 0 && total.ready > 0) {
    const int64_t after = options.mode == Mode::kIdle ? server_rss_end : server_hwm_end;
    if (after >= 0) {
      bytes_per_connection = (after - server_rss_before) * 1024.0 / total.ready;
    }
  }

  std::string human = absl::StrFormat(
      "%s addr=%s connections=%d size=%zu threads=%d: %s %.0f/s over %.2f s",
      ModeName(options.mode),
      FormatHostPort(options.server), options.connections, options.size, options.threads,
      options.mode == Mode::kChurn ? "connections" : "round trips", rate, seconds);
  if (options.mode == Mode::kIdle) {
    human = absl::StrFormat("idle addr=%s: %llu of %d connections open and pinged, setup %.2f s",
                            FormatHostPort(options.server),
                            static_cast<unsigned long long>(total.ready), options.connections,
                            setup_seconds);
  } else {
    human += absl::StrFormat("; latency p50 %.1f us, p99 %.1f us, p99.9 %.1f us, max %.1f us",
                             h.Percentile(0.5) / 1e3, h.Percentile(0.99) / 1e3,
                             h.Percentile(0.999) / 1e3, h.max() / 1e3);
  }
  human += absl::StrFormat(
      "; errors %llu (connect %llu, connect timeout %llu, reset %llu, eof %llu, mismatch %llu, "
      "unexpected %llu, stalled %llu); client cpu %.2f s",
      static_cast<unsigned long long>(total.errors()),
      static_cast<unsigned long long>(total.connect_failed),
      static_cast<unsigned long long>(total.connect_timeout),
      static_cast<unsigned long long>(total.reset), static_cast<unsigned long long>(total.eof),
      static_cast<unsigned long long>(total.mismatch),
      static_cast<unsigned long long>(total.unexpected),
      static_cast<unsigned long long>(total.stalled), client_cpu);
  if (total.starved > 0) {
    human += absl::StrFormat("; %llu connections starved (no round trip in the window)",
                             static_cast<unsigned long long>(total.starved));
  }
  if (other_cpu >= 0) {
    human += absl::StrFormat(
        "; other processes' cpu %.2f s; softirq cpu %.2f s; kernel threads' cpu %.2f s", other_cpu,
        softirq_cpu, kernel_threads_cpu);
  }
  if (server_cpu >= 0) {
    human += absl::StrFormat("; server cpu %.2f s (%.0f per server cpu-second)", server_cpu,
                             per_server_cpu);
  }
  if (bytes_per_connection >= 0) {
    human += absl::StrFormat("; server %s %.0f bytes per connection",
                             options.mode == Mode::kIdle ? "RSS" : "peak RSS",
                             bytes_per_connection);
  }
  std::printf("%s\n", human.c_str());

  if (absl::GetFlag(FLAGS_json)) {
    std::printf(
        "{\"mode\":\"%s\",\"addr\":\"%s\",\"connections\":%d,\"size\":%zu,\"threads\":%d,"
        "\"source_ips\":%zu,\"setup_seconds\":%.6f,\"seconds\":%.6f,\"requests\":%llu,"
        "\"completed_total\":%llu,\"rate\":%.3f,\"ready\":%llu,"
        "\"latency_ns\":{\"count\":%llu,\"min\":%llu,\"mean\":%.1f,\"p50\":%llu,\"p90\":%llu,"
        "\"p99\":%llu,\"p999\":%llu,\"max\":%llu},"
        "\"errors\":{\"total\":%llu,\"connect_failed\":%llu,\"connect_timeout\":%llu,"
        "\"reset\":%llu,\"eof\":%llu,\"mismatch\":%llu,\"unexpected\":%llu,\"stalled\":%llu},"
        "\"starved\":%llu,"
        "\"client_cpu_seconds\":%.4f,\"other_cpu_seconds\":%.4f,"
        "\"softirq_cpu_seconds\":%.4f,\"kernel_threads_cpu_seconds\":%.4f,"
        "\"server\":{\"pid\":%d,\"cpu_seconds\":%.4f,\"requests_per_cpu_second\":%.3f,"
        "\"rss_before_kib\":%lld,\"rss_end_kib\":%lld,\"hwm_end_kib\":%lld,"
        "\"bytes_per_connection\":%.1f}}\n",
        ModeName(options.mode), FormatHostPort(options.server).c_str(), options.connections,
        options.size,
        options.threads, options.sources.size(), setup_seconds, seconds,
        static_cast<unsigned long long>(total.measured),
        static_cast<unsigned long long>(total.completed), rate,
        static_cast<unsigned long long>(total.ready), static_cast<unsigned long long>(h.count()),
        static_cast<unsigned long long>(h.min()), h.mean(),
        static_cast<unsigned long long>(h.Percentile(0.5)),
        static_cast<unsigned long long>(h.Percentile(0.9)),
        static_cast<unsigned long long>(h.Percentile(0.99)),
        static_cast<unsigned long long>(h.Percentile(0.999)),
        static_cast<unsigned long long>(h.max()), static_cast<unsigned long long>(total.errors()),
        static_cast<unsigned long long>(total.connect_failed),
        static_cast<unsigned long long>(total.connect_timeout),
        static_cast<unsigned long long>(total.reset), static_cast<unsigned long long>(total.eof),
        static_cast<unsigned long long>(total.mismatch),
        static_cast<unsigned long long>(total.unexpected),
        static_cast<unsigned long long>(total.stalled),
        static_cast<unsigned long long>(total.starved), client_cpu, other_cpu, softirq_cpu,
        kernel_threads_cpu, options.server_pid, server_cpu, per_server_cpu,
        static_cast<long long>(server_rss_before),
        static_cast<long long>(server_rss_end), static_cast<long long>(server_hwm_end),
        bytes_per_connection);
  }
  std::fflush(stdout);

  if (total.mismatch > 0) {
    std::fprintf(stderr,
                 "echo_load: *** FAILED: %llu echo MISMATCHES: the server returned bytes it was "
                 "not sent ***\n",
                 static_cast<unsigned long long>(total.mismatch));
    return 1;
  }
  if (total.errors() > 0) {
    std::fprintf(stderr, "echo_load: FAILED: %llu errors (see the counts above)\n",
                 static_cast<unsigned long long>(total.errors()));
    return 2;
  }
  if (options.mode != Mode::kIdle && total.measured == 0) {
    std::fprintf(stderr, "echo_load: FAILED: nothing completed in the measured window\n");
    return 3;
  }
  if (options.mode == Mode::kIdle && total.ready < static_cast<uint64_t>(options.connections)) {
    std::fprintf(stderr, "echo_load: FAILED: only %llu of %d connections were established\n",
                 static_cast<unsigned long long>(total.ready), options.connections);
    return 2;
  }
  return 0;
}

}  // namespace
}  // namespace netpoll_bench

int main(int argc, char** argv) { return netpoll_bench::Main(argc, argv); }
