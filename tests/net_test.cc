// End-to-end tests of the net API over loopback (IPv4, IPv6, Unix), run on every kind of user
// thread (plain OS threads and fibers): transfers checked byte for byte, many concurrent
// connections, half-close, resets, deadlines, Close racing blocked calls, UDP, and bad input.
#include "netfd/net.h"

#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "poller/poll_desc_test_peer.h"
#include "tests/util/sync.h"
#include "uthread/test_spawner.h"

namespace netpoll {
namespace {

using testing::Spawner;
using testing::SpawnerKind;

int CountOpenFds() {
  int count = 0;
  DIR* dir = opendir("/proc/self/fd");
  while (dirent* entry = readdir(dir)) count += entry->d_name[0] != '.';
  closedir(dir);
  return count - 1;
}

// A deterministic byte pattern, different for every (seed, offset), so a lost, repeated or
// reordered byte shows up as a mismatch at a precise offset.
char PatternByte(uint64_t seed, uint64_t offset) {
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + offset;
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  return static_cast<char>(x);
}

std::string UnixPath(const char* name) {
  return "/tmp/netpoll_net_test." + std::to_string(getpid()) + "." + name;
}

struct Endpoint {
  const char* network;
  std::string address;
  const char* name;
};

std::vector<Endpoint> StreamEndpoints() {
  return {{"tcp4", "127.0.0.1:0", "ipv4"}, {"tcp6", "[::1]:0", "ipv6"}, {"unix", UnixPath("stream"), "unix"}};
}

std::string DialAddress(const Listener& listener) { return listener.Addr().ToString(); }

// Reads exactly `n` bytes and checks them against the pattern; returns false (with a failure) on
// any error or mismatch.
bool ReadAndCheck(Conn& conn, uint64_t seed, uint64_t n) {
  std::vector<char> buffer(64 * 1024);
  uint64_t offset = 0;
  while (offset < n) {
    size_t want = std::min<uint64_t>(buffer.size(), n - offset);
    absl::StatusOr<size_t> got = conn.Read(absl::MakeSpan(buffer.data(), want));
    if (!got.ok()) {
      ADD_FAILURE() << "read at offset " << offset << ": " << got.status();
      return false;
    }
    for (size_t i = 0; i < *got; ++i) {
      if (buffer[i] != PatternByte(seed, offset + i)) {
        ADD_FAILURE() << "byte mismatch at offset " << offset + i;
        return false;
      }
    }
    offset += *got;
  }
  return true;
}

bool WritePattern(Conn& conn, uint64_t seed, uint64_t n) {
  std::vector<char> buffer(256 * 1024);
  for (uint64_t offset = 0; offset < n;) {
    size_t chunk = std::min<uint64_t>(buffer.size(), n - offset);
    for (size_t i = 0; i < chunk; ++i) buffer[i] = PatternByte(seed, offset + i);
    WriteResult w = conn.Write(absl::MakeConstSpan(buffer.data(), chunk));
    if (!w.ok()) {
      ADD_FAILURE() << "write at offset " << offset << ": " << w.status;
      return false;
    }
    offset += chunk;
  }
  return true;
}

// Echoes everything until EOF.
void Echo(Conn& conn) {
  std::vector<char> buffer(64 * 1024);
  for (;;) {
    absl::StatusOr<size_t> got = conn.Read(absl::MakeSpan(buffer));
    if (!got.ok()) return;
    if (!conn.Write(absl::MakeConstSpan(buffer.data(), *got)).ok()) return;
  }
}

class NetTest : public ::testing::TestWithParam<SpawnerKind> {
 protected:
  void SetUp() override { spawner_ = GetParam().make(); }
  void TearDown() override { spawner_->JoinAll(); }
  std::unique_ptr<Spawner> spawner_;
};

// 1 MiB and 64 MiB echoed over each stream family, written and read concurrently on one Conn.
TEST_P(NetTest, TransfersAreBytePerfect) {
  for (const Endpoint& endpoint : StreamEndpoints()) {
    for (uint64_t size : {uint64_t{1} << 20, uint64_t{64} << 20}) {
      SCOPED_TRACE(std::string(endpoint.name) + " " + std::to_string(size));
      absl::StatusOr<Listener> listener = Listen(endpoint.network, endpoint.address);
      ASSERT_TRUE(listener.ok()) << listener.status();
      spawner_->Spawn([&] {
        absl::StatusOr<Conn> conn = listener->Accept();
        ASSERT_TRUE(conn.ok()) << conn.status();
        Echo(*conn);
      });
      absl::StatusOr<Conn> client = Dial(endpoint.network, DialAddress(*listener));
      ASSERT_TRUE(client.ok()) << client.status();
      const uint64_t seed = size + 17;
      std::atomic<bool> write_ok{false}, read_ok{false};
      std::atomic<int> done{0};
      spawner_->Spawn([&] {
        write_ok = WritePattern(*client, seed, size);
        done.fetch_add(1);
      });
      spawner_->Spawn([&] {
        read_ok = ReadAndCheck(*client, seed, size);
        done.fetch_add(1);
      });
      ASSERT_TRUE(testing::WaitUntil([&] { return done.load() == 2; }));
      EXPECT_TRUE(write_ok.load());
      EXPECT_TRUE(read_ok.load());
      ASSERT_TRUE(client->Close().ok());  // The echo side reads EOF and ends.
      spawner_->JoinAll();
      ASSERT_TRUE(listener->Close().ok());
    }
  }
}

TEST_P(NetTest, AThousandConcurrentConnections) {
  constexpr int kConnections = 1000;
  absl::StatusOr<Listener> listener = Listen("tcp", "127.0.0.1:0");
  ASSERT_TRUE(listener.ok()) << listener.status();
  std::vector<Conn> server_side(kConnections);
  spawner_->Spawn([&] {
    for (int i = 0; i < kConnections; ++i) {
      absl::StatusOr<Conn> conn = listener->Accept();
      ASSERT_TRUE(conn.ok()) << conn.status();
      server_side[i] = std::move(*conn);
      Conn* c = &server_side[i];
      spawner_->Spawn([c] { Echo(*c); });
    }
  });
  std::atomic<int> verified{0};
  const std::string address = DialAddress(*listener);
  for (int i = 0; i < kConnections; ++i) {
    spawner_->Spawn([&, i] {
      absl::StatusOr<Conn> conn = Dial("tcp", address);
      ASSERT_TRUE(conn.ok()) << conn.status();
      if (WritePattern(*conn, i, 4096) && ReadAndCheck(*conn, i, 4096)) verified.fetch_add(1);
      EXPECT_TRUE(conn->Close().ok());
    });
  }
  spawner_->JoinAll();
  EXPECT_EQ(verified.load(), kConnections);
}

TEST_P(NetTest, HalfClose) {
  absl::StatusOr<Listener> listener = Listen("tcp", "127.0.0.1:0");
  ASSERT_TRUE(listener.ok());
  spawner_->Spawn([&] {
    absl::StatusOr<Conn> conn = listener->Accept();
    ASSERT_TRUE(conn.ok());
    ASSERT_TRUE(ReadAndCheck(*conn, 1, 1000));
    char b[4];
    EXPECT_TRUE(IsEOF(conn->Read(absl::MakeSpan(b)).status()));  // The client shut its writes.
    EXPECT_TRUE(conn->Write(absl::string_view("reply")).ok());                      // Ours still work.
    EXPECT_TRUE(conn->Close().ok());
  });
  absl::StatusOr<Conn> client = Dial("tcp", DialAddress(*listener));
  ASSERT_TRUE(client.ok());
  ASSERT_TRUE(WritePattern(*client, 1, 1000));
  ASSERT_TRUE(client->CloseWrite().ok());
  char b[16];
  absl::StatusOr<size_t> n = client->Read(absl::MakeSpan(b));
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(std::string(b, *n), "reply");
  EXPECT_TRUE(IsEOF(client->Read(absl::MakeSpan(b)).status()));
  spawner_->JoinAll();
}

TEST_P(NetTest, PeerReset) {
  absl::StatusOr<Listener> listener = Listen("tcp", "127.0.0.1:0");
  ASSERT_TRUE(listener.ok());
  absl::StatusOr<Conn> client = Dial("tcp", DialAddress(*listener));
  ASSERT_TRUE(client.ok());
  absl::StatusOr<Conn> server = listener->Accept();
  ASSERT_TRUE(server.ok());
  // SO_LINGER 0: close sends a reset instead of a FIN.
  ASSERT_TRUE(server->netfd_for_testing()->Control("linger", [](platform::SocketHandle h) {
    return platform::SetLinger(h, true, 0);
  }).ok());
  ASSERT_TRUE(server->Close().ok());
  char b[4];
  absl::StatusOr<size_t> n = client->Read(absl::MakeSpan(b));
  EXPECT_EQ(OsErrorCode(n.status()), ECONNRESET) << n.status();
  EXPECT_NE(n.status().message().find("read tcp 127.0.0.1:"), absl::string_view::npos) << n.status();
}

TEST_P(NetTest, ReadAndWriteDeadlinesOnASilentPeer) {
  absl::StatusOr<Listener> listener = Listen("tcp", "127.0.0.1:0");
  ASSERT_TRUE(listener.ok());
  absl::StatusOr<Conn> client = Dial("tcp", DialAddress(*listener));
  ASSERT_TRUE(client.ok());
  absl::StatusOr<Conn> silent = listener->Accept();
  ASSERT_TRUE(silent.ok());

  absl::Time deadline = absl::Now() + absl::Milliseconds(50);
  ASSERT_TRUE(client->SetReadDeadline(deadline).ok());
  char b[8];
  absl::StatusOr<size_t> n = client->Read(absl::MakeSpan(b));
  EXPECT_TRUE(IsTimeout(n.status())) << n.status();
  EXPECT_GE(absl::Now(), deadline);
  EXPECT_LT(absl::Now(), deadline + absl::Seconds(10));

  ASSERT_TRUE(client->SetWriteBuffer(16 * 1024).ok());
  std::string big(32 << 20, 'x');
  deadline = absl::Now() + absl::Milliseconds(50);
  ASSERT_TRUE(client->SetWriteDeadline(deadline).ok());
  WriteResult w = client->Write(big);
  EXPECT_TRUE(IsTimeout(w.status)) << w.status;
  EXPECT_GT(w.written, 0u);
  EXPECT_LT(w.written, big.size());
  EXPECT_GE(absl::Now(), deadline);
  // The connection is usable again once the deadline is lifted.
  ASSERT_TRUE(client->SetDeadline(absl::InfiniteFuture()).ok());
  ASSERT_TRUE(silent->Write(absl::string_view("ok")).ok());
  n = client->Read(absl::MakeSpan(b));
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(std::string(b, *n), "ok");
}

TEST_P(NetTest, R16_DeadlineExtendedWhileBlocked) {
  absl::StatusOr<Listener> listener = Listen("tcp", "127.0.0.1:0");
  ASSERT_TRUE(listener.ok());
  absl::StatusOr<Conn> client = Dial("tcp", DialAddress(*listener));
  ASSERT_TRUE(client.ok());
  absl::StatusOr<Conn> server = listener->Accept();
  ASSERT_TRUE(server.ok());
  const absl::Time first = absl::Now() + absl::Milliseconds(100);
  ASSERT_TRUE(client->SetReadDeadline(first).ok());
  absl::StatusOr<size_t> n;
  absl::Time returned_at;
  spawner_->Spawn([&] {
    char b[8];
    n = client->Read(absl::MakeSpan(b));
    returned_at = absl::Now();
  });
  ASSERT_TRUE(client->SetReadDeadline(absl::Now() + absl::Hours(1)).ok());
  // Wait past the first deadline before sending: a reader that timed out at 100 ms fails below.
  spawner_->PollUntil([&] { return absl::Now() > first + absl::Milliseconds(50); });
  ASSERT_TRUE(server->Write(absl::string_view("late")).ok());
  spawner_->JoinAll();
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 4u);
  EXPECT_GT(returned_at, first);
}

TEST_P(NetTest, CloseWhileReaderAndWriterAreBlocked) {
  int fds_before = CountOpenFds();
  {
    absl::StatusOr<Listener> listener = Listen("tcp", "127.0.0.1:0");
    ASSERT_TRUE(listener.ok());
    absl::StatusOr<Conn> client = Dial("tcp", DialAddress(*listener));
    ASSERT_TRUE(client.ok());
    absl::StatusOr<Conn> server = listener->Accept();
    ASSERT_TRUE(server.ok());
    ASSERT_TRUE(client->SetWriteBuffer(16 * 1024).ok());
    absl::Status read_status;
    WriteResult write_result;
    std::atomic<int> started{0};
    spawner_->Spawn([&] {
      started.fetch_add(1);
      char b[8];
      read_status = client->Read(absl::MakeSpan(b)).status();
    });
    spawner_->Spawn([&] {
      started.fetch_add(1);
      std::string big(64 << 20, 'w');
      write_result = client->Write(big);
    });
    // Both are blocked once the writer has filled the buffers and the reader has nothing.
    ASSERT_TRUE(spawner_->PollUntil([&] {
      return started.load() == 2 && client->netfd_for_testing()->fd_mutex_for_testing().references() == 2 &&
             client->netfd_for_testing()->poll_desc_for_testing()->CheckError(poller::kRead) == poller::PollError::kNone;
    }));
    int handle = client->netfd_for_testing()->handle_for_testing();
    absl::Time start = absl::Now();
    ASSERT_TRUE(client->Close().ok());
    EXPECT_FALSE(platform::IsOpenDescriptor(handle));  // Closed when Close returned.
    spawner_->JoinAll();
    EXPECT_LT(absl::Now() - start, absl::Seconds(5));
    EXPECT_TRUE(IsClosed(read_status)) << read_status;
    EXPECT_TRUE(IsClosed(write_result.status)) << write_result.status;
    EXPECT_TRUE(IsClosed(client->Close()));  // A second Close: closed, at once.
  }
  EXPECT_EQ(CountOpenFds(), fds_before);
}

TEST_P(NetTest, CloseListenerWhileAcceptWaits) {
  absl::StatusOr<Listener> listener = Listen("tcp", "127.0.0.1:0");
  ASSERT_TRUE(listener.ok());
  absl::Status accept_status;
  std::atomic<bool> started{false};
  spawner_->Spawn([&] {
    started = true;
    accept_status = listener->Accept().status();
  });
  ASSERT_TRUE(spawner_->PollUntil([&] {
    return started.load() && poller::PollDescTestPeer::State(listener->netfd_for_testing()->poll_desc_for_testing(),
                                                             poller::kRead) == poller::PollDescTestPeer::SemaState::kParked;
  }));
  ASSERT_TRUE(listener->Close().ok());
  spawner_->JoinAll();
  EXPECT_TRUE(IsClosed(accept_status)) << accept_status;
  EXPECT_TRUE(IsClosed(listener->Accept().status()));
}

TEST_P(NetTest, UdpKeepsDatagramBoundaries) {
  absl::StatusOr<Conn> receiver = ListenPacket("udp4", "127.0.0.1:0");
  ASSERT_TRUE(receiver.ok()) << receiver.status();
  absl::StatusOr<Conn> sender = ListenPacket("udp4", "127.0.0.1:0");
  ASSERT_TRUE(sender.ok());
  const SocketAddress to = receiver->LocalAddr();
  for (const char* datagram : {"one", "", "three33"}) {
    absl::StatusOr<size_t> sent = sender->WriteTo(absl::string_view(datagram), to);
    ASSERT_TRUE(sent.ok()) << sent.status();
    EXPECT_EQ(*sent, strlen(datagram));
  }
  for (const char* expected : {"one", "", "three33"}) {
    char b[64];
    absl::StatusOr<ReadFromResult> got = receiver->ReadFrom(absl::MakeSpan(b));
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(std::string(b, got->bytes), expected);  // An empty datagram reads as (0, OK).
    EXPECT_EQ(got->from, sender->LocalAddr());
  }
  // Connected UDP: Dial, then Write/Read exchange datagrams with that peer.
  absl::StatusOr<Conn> connected = Dial("udp", to.ToString());
  ASSERT_TRUE(connected.ok()) << connected.status();
  ASSERT_TRUE(connected->Write(absl::string_view("ping")).ok());
  char b[64];
  absl::StatusOr<ReadFromResult> got = receiver->ReadFrom(absl::MakeSpan(b));
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(std::string(b, got->bytes), "ping");
  ASSERT_TRUE(receiver->WriteTo(absl::string_view("pong"), got->from).ok());
  absl::StatusOr<size_t> n = connected->Read(absl::MakeSpan(b));
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(std::string(b, *n), "pong");
  // A datagram larger than the buffer is truncated to it, as the kernel does.
  ASSERT_TRUE(sender->WriteTo(absl::string_view("0123456789"), to).ok());
  char small[4];
  got = receiver->ReadFrom(absl::MakeSpan(small));
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->bytes, 4u);
}

TEST_P(NetTest, AddressesOfBothEnds) {
  absl::StatusOr<Listener> listener = Listen("tcp", "127.0.0.1:0");
  ASSERT_TRUE(listener.ok());
  EXPECT_NE(listener->Addr().port(), 0);
  absl::StatusOr<Conn> client = Dial("tcp", DialAddress(*listener));
  ASSERT_TRUE(client.ok());
  absl::StatusOr<Conn> server = listener->Accept();
  ASSERT_TRUE(server.ok());
  EXPECT_EQ(client->RemoteAddr(), listener->Addr());
  EXPECT_EQ(server->LocalAddr(), listener->Addr());
  EXPECT_EQ(server->RemoteAddr(), client->LocalAddr());
  EXPECT_EQ(client->network(), "tcp");
}

// Go's defaults on both ends of a TCP connection: no Nagle delay, keep-alive probes after 15 s
// idle. (On Linux an accepted socket gets them from its listener, set once in Listen.)
void ExpectTcpDefaults(const Conn& conn) {
  int fd = conn.netfd_for_testing()->handle_for_testing();
  int value = 0;
  socklen_t length = sizeof value;
  ASSERT_EQ(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &value, &length), 0);
  EXPECT_NE(value, 0) << "TCP_NODELAY";
  ASSERT_EQ(getsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &value, &length), 0);
  EXPECT_NE(value, 0) << "SO_KEEPALIVE";
  ASSERT_EQ(getsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &value, &length), 0);
  EXPECT_EQ(value, 15) << "TCP_KEEPIDLE";
  ASSERT_EQ(getsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &value, &length), 0);
  EXPECT_EQ(value, 15) << "TCP_KEEPINTVL";
}

TEST_P(NetTest, TcpConnectionsStartWithGoDefaults) {
  for (const char* address : {"127.0.0.1:0", "[::1]:0", ":0"}) {
    SCOPED_TRACE(address);
    absl::StatusOr<Listener> listener = Listen("tcp", address);
    ASSERT_TRUE(listener.ok()) << listener.status();
    absl::StatusOr<Conn> client = Dial("tcp", DialAddress(*listener));
    ASSERT_TRUE(client.ok()) << client.status();
    absl::StatusOr<Conn> server = listener->Accept();
    ASSERT_TRUE(server.ok()) << server.status();
    ExpectTcpDefaults(*client);
    ExpectTcpDefaults(*server);
  }
}

TEST_P(NetTest, DualStackListenerServesIPv4AndIPv6) {
  absl::StatusOr<Listener> listener = Listen("tcp", ":0");
  ASSERT_TRUE(listener.ok()) << listener.status();
  std::string port = std::to_string(listener->Addr().port());
  for (std::string address : {"127.0.0.1:" + port, "[::1]:" + port, "localhost:" + port}) {
    absl::StatusOr<Conn> client = Dial("tcp", address);
    ASSERT_TRUE(client.ok()) << address << ": " << client.status();
    absl::StatusOr<Conn> server = listener->Accept();
    ASSERT_TRUE(server.ok());
    // A wildcard listener's connections report the address they really arrived on (an IPv4 peer
    // appears in its IPv4-mapped IPv6 form on this IPv6 socket).
    EXPECT_FALSE(server->LocalAddr().ip().IsUnspecified()) << server->LocalAddr().ToString();
    EXPECT_TRUE(server->LocalAddr().ip().IsLoopback()) << server->LocalAddr().ToString();
    EXPECT_EQ(server->LocalAddr().port(), client->RemoteAddr().port());
    EXPECT_EQ(server->RemoteAddr().port(), client->LocalAddr().port());
  }
}

TEST_P(NetTest, UnixListenerRemovesItsSocketFile) {
  std::string path = UnixPath("cleanup");
  absl::StatusOr<Listener> listener = Listen("unix", path);
  ASSERT_TRUE(listener.ok()) << listener.status();
  EXPECT_EQ(access(path.c_str(), F_OK), 0);
  ASSERT_TRUE(listener->Close().ok());
  EXPECT_NE(access(path.c_str(), F_OK), 0);
}

TEST_P(NetTest, BadInputIsAClearErrorNotACrash) {
  struct Case {
    const char* network;
    std::string address;
    absl::StatusCode code;
    const char* message;
  };
  std::vector<Case> cases = {
      {"tcp", "127.0.0.1", absl::StatusCode::kInvalidArgument, "missing port in address"},
      {"tcp", "127.0.0.1:99999", absl::StatusCode::kInvalidArgument, "port out of range"},
      {"tcp", "[::1:80", absl::StatusCode::kInvalidArgument, "missing ']' in address"},
      {"foo", "127.0.0.1:80", absl::StatusCode::kInvalidArgument, "unknown network \"foo\""},
      {"tcp4", "[::1]:80", absl::StatusCode::kInvalidArgument, "not an IPv4 address"},
      {"unix", "/" + std::string(200, 'p'), absl::StatusCode::kInvalidArgument, "too long"},
      {"udp", "127.0.0.1:0", absl::StatusCode::kInvalidArgument, "use ListenPacket"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<Listener> listener = Listen(c.network, c.address);
    EXPECT_EQ(listener.status().code(), c.code) << c.network << " " << c.address << ": " << listener.status();
    EXPECT_NE(listener.status().message().find(c.message), absl::string_view::npos) << listener.status();
  }
  EXPECT_EQ(ListenPacket("tcp", "127.0.0.1:0").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Dial("tcp", "127.0.0.1:65536").status().code(), absl::StatusCode::kInvalidArgument);

  // Dial to a port nobody listens on: refused.
  int port;
  {
    absl::StatusOr<Listener> gone = Listen("tcp", "127.0.0.1:0");
    ASSERT_TRUE(gone.ok());
    port = gone->Addr().port();
  }
  absl::StatusOr<Conn> refused = Dial("tcp", "127.0.0.1:" + std::to_string(port));
  EXPECT_EQ(OsErrorCode(refused.status()), ECONNREFUSED) << refused.status();
  EXPECT_NE(refused.status().message().find("dial tcp 127.0.0.1:" + std::to_string(port) + ": connect: "),
            absl::string_view::npos)
      << refused.status();

  // Empty buffers and operations after Close.
  absl::StatusOr<Listener> listener = Listen("tcp", "127.0.0.1:0");
  ASSERT_TRUE(listener.ok());
  absl::StatusOr<Conn> client = Dial("tcp", DialAddress(*listener));
  ASSERT_TRUE(client.ok());
  absl::StatusOr<size_t> empty = client->Read(absl::Span<char>());
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(*empty, 0u);
  ASSERT_TRUE(client->Close().ok());
  char b[4];
  EXPECT_TRUE(IsClosed(client->Read(absl::MakeSpan(b)).status()));
  EXPECT_TRUE(IsClosed(client->Write(absl::string_view("x")).status));
  EXPECT_TRUE(IsClosed(client->SetDeadline(absl::Now())));
  EXPECT_TRUE(IsClosed(client->SetNoDelay(true)));
  ASSERT_TRUE(listener->Close().ok());
  EXPECT_TRUE(IsClosed(listener->Accept().status()));

  // Empty objects.
  Conn nothing;
  EXPECT_EQ(nothing.Read(absl::MakeSpan(b)).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(nothing.Close().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(nothing.LocalAddr().empty());
  Listener no_listener;
  EXPECT_EQ(no_listener.Accept().status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_P(NetTest, DialTimeoutAndCancel) {
  // A listener whose accept queue is full drops further SYNs, so a dial to it stays pending.
  int raw = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(raw, 0);
  ASSERT_EQ(platform::Bind(raw, platform::SocketAddress::FromIP(platform::IPAddress::V4Loopback(), 0)), 0);
  ASSERT_EQ(listen(raw, 0), 0);
  std::string address = platform::GetLocalAddress(raw).value.ToString();
  std::vector<Conn> fillers;
  for (int i = 0; i < 4; ++i) {
    absl::StatusOr<Conn> c = DialTimeout("tcp", address, absl::Milliseconds(100));
    if (c.ok()) fillers.push_back(std::move(*c));
  }
  absl::Time start = absl::Now();
  absl::StatusOr<Conn> timed_out = DialTimeout("tcp", address, absl::Milliseconds(50));
  EXPECT_TRUE(IsTimeout(timed_out.status())) << timed_out.status();
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(50));

  Canceller canceller;
  absl::Status cancelled;
  spawner_->Spawn([&] {
    DialOptions options;
    options.cancel = &canceller;
    cancelled = DialWithOptions("tcp", address, options).status();
  });
  ASSERT_TRUE(spawner_->PollUntil([&] { return absl::Now() - start > absl::Milliseconds(80); }));
  canceller.Cancel();
  spawner_->JoinAll();
  EXPECT_TRUE(IsCanceled(cancelled)) << cancelled;
  close(raw);
}

INSTANTIATE_TEST_SUITE_P(UserThreads, NetTest, ::testing::ValuesIn(testing::AllSpawners()),
                         [](const ::testing::TestParamInfo<SpawnerKind>& info) { return info.param.name; });

}  // namespace
}  // namespace netpoll
