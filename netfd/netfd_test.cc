// NetFD against the race catalogue (R6-R14, R18, R26, R34-R39), each interleaving forced with
// the syscall seam (netfd/syscalls.h) or by waiting until the other side is parked; plus stress
// variants that repeat the close races unforced, for the sanitizers.
#include "netfd/netfd.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <dirent.h>
#include <memory>
#include <string>
#include <utility>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "netfd/errors.h"
#include "netfd/syscalls.h"
#include "platform/clock.h"
#include "poller/poll_desc_test_peer.h"
#include "poller/poller.h"
#include "tests/util/sync.h"

namespace netpoll::netfd {
namespace {

using poller::PollDescTestPeer;
using State = PollDescTestPeer::SemaState;
using testing::BoundedThread;
using testing::Event;
using testing::WaitUntil;

// Open descriptors of this process, for leak checks.
int CountOpenFds() {
  int count = 0;
  DIR* dir = opendir("/proc/self/fd");
  while (dirent* entry = readdir(dir)) count += entry->d_name[0] != '.';
  closedir(dir);
  return count - 1;  // The DIR's own descriptor.
}

std::unique_ptr<NetFD> Wrap(int fd, platform::SocketType type = platform::SocketType::kStream,
                            const char* net = "unix") {
  absl::StatusOr<std::unique_ptr<NetFD>> wrapped = NetFD::New(fd, type, net, /*register_now=*/true);
  EXPECT_TRUE(wrapped.ok()) << wrapped.status();
  return std::move(*wrapped);
}

// A connected pair: `fd` is a NetFD, `peer` a raw descriptor the test drives directly.
struct Pair {
  std::unique_ptr<NetFD> fd;
  int peer = -1;
  Pair() = default;
  Pair(Pair&& other) : fd(std::move(other.fd)), peer(std::exchange(other.peer, -1)) {}
  ~Pair() {
    fd.reset();
    if (peer >= 0) close(peer);
  }
};

Pair MakePair(platform::SocketType type = platform::SocketType::kStream) {
  auto sp = platform::CreateSocketPair(type);
  EXPECT_TRUE(sp.ok());
  Pair pair;
  pair.fd = Wrap(sp.value.first, type);
  pair.peer = sp.value.second;
  return pair;
}

bool Parked(NetFD& fd, poller::Mode mode) {
  return WaitUntil([&] { return PollDescTestPeer::State(fd.poll_desc_for_testing(), mode) == State::kParked; });
}

// Counts close(2) calls per descriptor through the seam.
std::atomic<int> close_calls{0};
std::atomic<int> close_target{-1};
platform::ErrorCode CountingClose(platform::SocketHandle fd) {
  if (fd == close_target.load()) close_calls.fetch_add(1);
  return platform::CloseSocket(fd);
}

// R6: Close while a reader is parked: the reader gets "closed", Close returns after close(2).
TEST(NetFD, R6_CloseWhileReaderParked) {
  ScopedSyscall<decltype(Syscalls::close)> hook(&Syscalls::close, &CountingClose);
  Pair pair = MakePair();
  close_calls = 0;
  close_target = pair.fd->handle_for_testing();
  int handle = pair.fd->handle_for_testing();
  absl::Status read_status;
  BoundedThread reader([&] {
    char buffer[16];
    read_status = pair.fd->Read(absl::MakeSpan(buffer)).status();
  });
  ASSERT_TRUE(Parked(*pair.fd, poller::kRead));
  absl::Status close_status = pair.fd->Close();
  EXPECT_TRUE(close_status.ok()) << close_status;
  EXPECT_EQ(close_calls.load(), 1);  // Close returned only after the descriptor was closed.
  EXPECT_FALSE(platform::IsOpenDescriptor(handle));
  reader.Join();
  EXPECT_TRUE(IsClosed(read_status)) << read_status;
  EXPECT_NE(read_status.message().find("use of closed network connection"), absl::string_view::npos);
  EXPECT_EQ(close_calls.load(), 1);
}

// R7: Close while the reader is inside read(2): the descriptor stays open until the reader leaves,
// Close waits for it, and the reader's next step reports "closed".
Event* r7_in_read = nullptr;
Event* r7_release = nullptr;
platform::SysResult<size_t> BlockingFakeRead(platform::SocketHandle, absl::Span<char>) {
  r7_in_read->Notify();
  EXPECT_TRUE(r7_release->WaitFor());
  return {0, EAGAIN};
}

TEST(NetFD, R7_CloseWhileReaderInsideTheSyscall) {
  Event in_read, release;
  r7_in_read = &in_read;
  r7_release = &release;
  Pair pair = MakePair();
  int handle = pair.fd->handle_for_testing();
  absl::Status read_status;
  std::unique_ptr<BoundedThread> reader;
  {
    ScopedSyscall<decltype(Syscalls::read)> hook(&Syscalls::read, &BlockingFakeRead);
    reader = std::make_unique<BoundedThread>([&] {
      char buffer[16];
      read_status = pair.fd->Read(absl::MakeSpan(buffer)).status();
    });
    ASSERT_TRUE(in_read.WaitFor());
  }
  BoundedThread closer([&] { EXPECT_TRUE(pair.fd->Close().ok()); });
  // Close has marked the descriptor closed, but the number must stay ours while the reader is in
  // the kernel with it: no reuse under the reader's feet.
  ASSERT_TRUE(WaitUntil([&] { return pair.fd->fd_mutex_for_testing().closed(); }));
  EXPECT_TRUE(platform::IsOpenDescriptor(handle));
  EXPECT_FALSE(closer.Finished());
  release.Notify();
  reader->Join();
  closer.Join();
  EXPECT_TRUE(IsClosed(read_status)) << read_status;
  EXPECT_FALSE(platform::IsOpenDescriptor(handle));
}

// R8: a second reader waits for the read lock while the first is parked; Close fails the waiter
// without it ever taking the lock, and wakes the first.
TEST(NetFD, R8_CloseWhileSecondReaderWaitsForTheLock) {
  Pair pair = MakePair();
  absl::Status first, second;
  BoundedThread reader1([&] {
    char b[4];
    first = pair.fd->Read(absl::MakeSpan(b)).status();
  });
  ASSERT_TRUE(Parked(*pair.fd, poller::kRead));
  BoundedThread reader2([&] {
    char b[4];
    second = pair.fd->Read(absl::MakeSpan(b)).status();
  });
  ASSERT_TRUE(WaitUntil([&] { return pair.fd->fd_mutex_for_testing().lock_waiters(true) == 1; }));
  EXPECT_TRUE(pair.fd->Close().ok());
  reader1.Join();
  reader2.Join();
  EXPECT_TRUE(IsClosed(first)) << first;
  EXPECT_TRUE(IsClosed(second)) << second;
}

// R9: two concurrent Closes: one does the work, the other fails at once; closed exactly once.
TEST(NetFD, R9_DoubleClose) {
  ScopedSyscall<decltype(Syscalls::close)> hook(&Syscalls::close, &CountingClose);
  for (int round = 0; round < 200; ++round) {
    Pair pair = MakePair();
    close_calls = 0;
    close_target = pair.fd->handle_for_testing();
    absl::Status a, b;
    std::thread t1([&] { a = pair.fd->Close(); });
    std::thread t2([&] { b = pair.fd->Close(); });
    t1.join();
    t2.join();
    EXPECT_NE(a.ok(), b.ok()) << a << " / " << b;
    EXPECT_TRUE(IsClosed(a.ok() ? b : a));
    EXPECT_EQ(close_calls.load(), 1);
  }
}

// R10: a reader releasing the last other reference while Close is between "mark closed" and
// "evict" must not destroy the descriptor: Close's own reference keeps it alive until evicted.
Event* r10_reader_done = nullptr;
Event* r10_release_reader = nullptr;
Event* r10_reader_in_read = nullptr;
int r10_handle = -1;
std::atomic<bool> r10_open_in_window{false};
void R10Window() {
  r10_release_reader->Notify();
  EXPECT_TRUE(r10_reader_done->WaitFor());
  r10_open_in_window = platform::IsOpenDescriptor(r10_handle);
}
platform::SysResult<size_t> R10Read(platform::SocketHandle, absl::Span<char> b) {
  r10_reader_in_read->Notify();
  EXPECT_TRUE(r10_release_reader->WaitFor());
  b[0] = 'x';
  return {1, 0};  // Data: the reader returns without touching the poller again.
}

TEST(NetFD, R10_DestroyDoesNotRunBeforeEvict) {
  Event reader_done, release_reader, reader_in_read;
  r10_reader_done = &reader_done;
  r10_release_reader = &release_reader;
  r10_reader_in_read = &reader_in_read;
  Pair pair = MakePair();
  r10_handle = pair.fd->handle_for_testing();
  ScopedSyscall<decltype(Syscalls::read)> read_hook(&Syscalls::read, &R10Read);
  close_hooks().after_mark_closed = &R10Window;
  absl::StatusOr<size_t> got;
  BoundedThread reader([&] {
    char b[4];
    got = pair.fd->Read(absl::MakeSpan(b));
    reader_done.Notify();
  });
  ASSERT_TRUE(reader_in_read.WaitFor());  // The reader holds the read lock and a reference.
  EXPECT_TRUE(pair.fd->Close().ok());     // Runs R10Window between mark-closed and evict.
  close_hooks().after_mark_closed = nullptr;
  reader.Join();
  EXPECT_TRUE(r10_open_in_window.load()) << "destroy ran before evict";
  ASSERT_TRUE(got.ok()) << got.status();  // The reader's data is a legal outcome of the race.
  EXPECT_FALSE(platform::IsOpenDescriptor(r10_handle));
}

// R11: destroy unregisters before it closes, so a descriptor that gets the same number right
// after the close keeps its own registration.
std::unique_ptr<NetFD>* r11_reborn = nullptr;
int* r11_reborn_peer = nullptr;
platform::ErrorCode CloseThenReuseTheNumber(platform::SocketHandle fd) {
  platform::ErrorCode error = platform::CloseSocket(fd);
  auto sp = platform::CreateSocketPair(platform::SocketType::kStream);
  EXPECT_EQ(sp.value.first, fd) << "the kernel did not reuse the number";
  *r11_reborn = Wrap(sp.value.first);
  *r11_reborn_peer = sp.value.second;
  return error;
}

TEST(NetFD, R11_UnregisterHappensBeforeClose) {
  std::unique_ptr<NetFD> reborn;
  int reborn_peer = -1;
  r11_reborn = &reborn;
  r11_reborn_peer = &reborn_peer;
  Pair pair = MakePair();
  {
    ScopedSyscall<decltype(Syscalls::close)> hook(&Syscalls::close, &CloseThenReuseTheNumber);
    ASSERT_TRUE(pair.fd->Close().ok());
  }
  ASSERT_NE(reborn, nullptr);
  // The new descriptor's registration must still be in the kernel: a parked reader wakes on data.
  absl::StatusOr<size_t> got;
  BoundedThread reader([&] {
    char b[4];
    got = reborn->Read(absl::MakeSpan(b));
  });
  ASSERT_TRUE(Parked(*reborn, poller::kRead));
  ASSERT_EQ(write(reborn_peer, "z", 1), 1);
  reader.Join();
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, 1u);
  reborn.reset();
  close(reborn_peer);
}

// R12: in blocking mode Close does not wait for a reader stuck in the kernel.
Event* r12_entered = nullptr;
platform::SysResult<size_t> NotifyThenRealRead(platform::SocketHandle fd, absl::Span<char> b) {
  r12_entered->Notify();
  return platform::Read(fd, b);
}

TEST(NetFD, R12_CloseInBlockingModeDoesNotWait) {
  Event entered;
  r12_entered = &entered;
  Pair pair = MakePair();
  ASSERT_TRUE(pair.fd->SetBlocking().ok());
  int handle = pair.fd->handle_for_testing();
  absl::StatusOr<size_t> got;
  std::unique_ptr<BoundedThread> reader;
  {
    ScopedSyscall<decltype(Syscalls::read)> hook(&Syscalls::read, &NotifyThenRealRead);
    reader = std::make_unique<BoundedThread>([&] {
      char b[4];
      got = pair.fd->Read(absl::MakeSpan(b));
    });
    ASSERT_TRUE(entered.WaitFor());
  }
  EXPECT_TRUE(pair.fd->Close().ok());  // Returns although the reader still holds a reference.
  EXPECT_FALSE(reader->Finished());
  EXPECT_TRUE(platform::IsOpenDescriptor(handle));  // Closed later, when the reader leaves.
  ASSERT_EQ(write(pair.peer, "b", 1), 1);
  reader->Join();
  ASSERT_TRUE(got.ok());
  EXPECT_FALSE(platform::IsOpenDescriptor(handle));
}

// R13: SetDeadline racing Close: it fails with "closed" or lands before the close; never a crash,
// never a timer left on a closed descriptor.
TEST(NetFD, R13_SetDeadlineRacingClose) {
  for (int round = 0; round < 300; ++round) {
    Pair pair = MakePair();
    std::thread setter([&] {
      for (int i = 0; i < 20; ++i) {
        absl::Status s = pair.fd->SetReadDeadline(absl::Now() + absl::Seconds(10));
        if (!s.ok()) {
          EXPECT_TRUE(IsClosed(s)) << s;
          break;
        }
      }
    });
    EXPECT_TRUE(pair.fd->Close().ok());
    setter.join();
    EXPECT_TRUE(IsClosed(pair.fd->SetReadDeadline(absl::Now())));
  }
}

// R14: every operation after Close fails with "closed" before any syscall.
std::atomic<int> syscalls_made{0};
platform::SysResult<size_t> CountingRead(platform::SocketHandle fd, absl::Span<char> b) {
  syscalls_made.fetch_add(1);
  return platform::Read(fd, b);
}
platform::SysResult<size_t> CountingWrite(platform::SocketHandle fd, absl::Span<const char> b) {
  syscalls_made.fetch_add(1);
  return platform::Write(fd, b);
}

TEST(NetFD, R14_OperationsAfterClose) {
  ScopedSyscall<decltype(Syscalls::read)> r(&Syscalls::read, &CountingRead);
  ScopedSyscall<decltype(Syscalls::write)> w(&Syscalls::write, &CountingWrite);
  Pair pair = MakePair();
  ASSERT_TRUE(pair.fd->Close().ok());
  syscalls_made = 0;
  char b[4];
  absl::StatusOr<size_t> read = pair.fd->Read(absl::MakeSpan(b));
  EXPECT_TRUE(IsClosed(read.status()));
  EXPECT_EQ(read.status().message(), "read unix: use of closed network connection");
  EXPECT_TRUE(IsClosed(pair.fd->Write(absl::MakeConstSpan("x", 1)).status));
  EXPECT_TRUE(IsClosed(pair.fd->Accept().status()));
  EXPECT_TRUE(IsClosed(pair.fd->ReadFrom(absl::MakeSpan(b)).status()));
  EXPECT_TRUE(IsClosed(pair.fd->WriteTo(absl::MakeConstSpan("x", 1), {}).status()));
  EXPECT_TRUE(IsClosed(pair.fd->SetDeadline(absl::Now())));
  EXPECT_TRUE(IsClosed(pair.fd->CloseWrite()));
  EXPECT_TRUE(IsClosed(pair.fd->Close()));
  EXPECT_EQ(syscalls_made.load(), 0);
}

// R18: an expired deadline fails the read before any syscall and leaves the data in place.
TEST(NetFD, R18_ExpiredDeadlineKeepsBufferedData) {
  ScopedSyscall<decltype(Syscalls::read)> r(&Syscalls::read, &CountingRead);
  Pair pair = MakePair();
  ASSERT_EQ(write(pair.peer, "data", 4), 4);
  ASSERT_TRUE(pair.fd->SetReadDeadline(absl::Now() - absl::Seconds(1)).ok());
  syscalls_made = 0;
  char b[8];
  absl::StatusOr<size_t> read = pair.fd->Read(absl::MakeSpan(b));
  EXPECT_TRUE(IsTimeout(read.status())) << read.status();
  EXPECT_EQ(read.status().message(), "read unix: i/o timeout");
  EXPECT_EQ(syscalls_made.load(), 0);
  // A zero-byte read still succeeds while the deadline is expired (it checks nothing).
  absl::StatusOr<size_t> empty = pair.fd->Read(absl::Span<char>());
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(*empty, 0u);
  ASSERT_TRUE(pair.fd->SetReadDeadline(absl::InfiniteFuture()).ok());
  read = pair.fd->Read(absl::MakeSpan(b));
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(std::string(b, *read), "data");
}

TEST(NetFD, ReadDeadlineOnASilentPeerFiresNotEarly) {
  Pair pair = MakePair();
  absl::Time deadline = absl::Now() + absl::Milliseconds(50);
  ASSERT_TRUE(pair.fd->SetReadDeadline(deadline).ok());
  char b[4];
  absl::StatusOr<size_t> read = pair.fd->Read(absl::MakeSpan(b));
  EXPECT_TRUE(IsTimeout(read.status()));
  EXPECT_GE(absl::Now(), deadline);
  EXPECT_LT(absl::Now(), deadline + absl::Seconds(5));
}

// R16 through the NetFD: extending the deadline while a reader is parked keeps it waiting.
TEST(NetFD, R16_DeadlineExtendedWhileBlocked) {
  Pair pair = MakePair();
  ASSERT_TRUE(pair.fd->SetReadDeadline(absl::Now() + absl::Milliseconds(30)).ok());
  absl::StatusOr<size_t> got;
  BoundedThread reader([&] {
    char b[4];
    got = pair.fd->Read(absl::MakeSpan(b));
  });
  ASSERT_TRUE(Parked(*pair.fd, poller::kRead));
  ASSERT_TRUE(pair.fd->SetReadDeadline(absl::Now() + absl::Hours(1)).ok());
  // Past the first deadline the reader is still parked, on the new one.
  ASSERT_TRUE(WaitUntil([&] {
    return absl::Now() > absl::Now() - absl::Milliseconds(1) &&
           pair.fd->poll_desc_for_testing()->CheckError(poller::kRead) == poller::PollError::kNone;
  }));
  ASSERT_EQ(write(pair.peer, "ok", 2), 2);
  reader.Join();
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, 2u);
}

// R17 through the NetFD: a deadline moved into the past wakes a blocked reader at once.
TEST(NetFD, R17_PastDeadlineWakesBlockedReader) {
  Pair pair = MakePair();
  absl::Status status;
  BoundedThread reader([&] {
    char b[4];
    status = pair.fd->Read(absl::MakeSpan(b)).status();
  });
  ASSERT_TRUE(Parked(*pair.fd, poller::kRead));
  ASSERT_TRUE(pair.fd->SetReadDeadline(absl::InfinitePast()).ok());
  reader.Join();
  EXPECT_TRUE(IsTimeout(status)) << status;
}

// R26: spurious readiness: the read retries, gets EAGAIN, and waits again for real data.
TEST(NetFD, R26_SpuriousWakeupsAreRetried) {
  Pair pair = MakePair();
  ScopedSyscall<decltype(Syscalls::read)> r(&Syscalls::read, &CountingRead);
  syscalls_made = 0;
  absl::StatusOr<size_t> got;
  BoundedThread reader([&] {
    char b[4];
    got = pair.fd->Read(absl::MakeSpan(b));
  });
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(Parked(*pair.fd, poller::kRead));
    int before = syscalls_made.load();
    poller::ReadyList ready;
    poller::Poller::Get().InjectEvent(pair.fd->poll_desc_for_testing()->token(), poller::kRead, false, &ready);
    poller::Poller::Get().ReadyAll(ready);
    ASSERT_TRUE(WaitUntil([&] { return syscalls_made.load() > before; }));
  }
  ASSERT_TRUE(Parked(*pair.fd, poller::kRead));
  EXPECT_FALSE(reader.Finished());
  ASSERT_EQ(write(pair.peer, "real", 4), 4);
  reader.Join();
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, 4u);
  EXPECT_GE(syscalls_made.load(), 7);  // First try + one per spurious wake-up + the real one.
}

// R34: a zero-byte read on a stream is EOF; an empty datagram is a datagram.
TEST(NetFD, R34_ZeroByteReadIsEofOnStreamsOnly) {
  Pair stream = MakePair();
  ASSERT_EQ(shutdown(stream.peer, SHUT_WR), 0);
  char b[4];
  absl::StatusOr<size_t> eof = stream.fd->Read(absl::MakeSpan(b));
  EXPECT_TRUE(IsEOF(eof.status())) << eof.status();
  EXPECT_EQ(eof.status().message(), "EOF");
  EXPECT_TRUE(IsEOF(stream.fd->ReadV({absl::MakeSpan(b)}).status()));

  Pair datagram = MakePair(platform::SocketType::kDatagram);
  ASSERT_EQ(send(datagram.peer, "", 0, 0), 0);
  absl::StatusOr<size_t> empty = datagram.fd->Read(absl::MakeSpan(b));
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_EQ(*empty, 0u);
}

// R35: a write that times out part-way reports the bytes it wrote and the timeout.
TEST(NetFD, R35_PartialWriteThenTimeout) {
  Pair pair = MakePair();
  ASSERT_TRUE(pair.fd->Control("setsockopt", [](platform::SocketHandle fd) {
    return platform::SetSendBufferSize(fd, 16 * 1024);
  }).ok());
  std::string big(8 << 20, 'w');
  ASSERT_TRUE(pair.fd->SetWriteDeadline(absl::Now() + absl::Milliseconds(50)).ok());
  WriteResult result = pair.fd->Write(big);
  EXPECT_TRUE(IsTimeout(result.status)) << result.status;
  EXPECT_GT(result.written, 0u);
  EXPECT_LT(result.written, big.size());
  // What was reported written is exactly what the peer can read.
  size_t available = 0;
  char sink[65536];
  ssize_t n;
  while ((n = recv(pair.peer, sink, sizeof sink, MSG_DONTWAIT)) > 0) available += n;
  EXPECT_EQ(available, result.written);
}

// R36: a write that claims more than it was given aborts with a clear message.
platform::SysResult<size_t> LyingWrite(platform::SocketHandle, absl::Span<const char> b) {
  return {b.size() + 1, 0};
}

TEST(NetFDDeathTest, R36_WriteReturningMoreThanAskedIsFatal) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  Pair pair = MakePair();
  EXPECT_DEATH(
      {
        ScopedSyscall<decltype(Syscalls::write)> w(&Syscalls::write, &LyingWrite);
        pair.fd->Write(absl::MakeConstSpan("hello", 5));
      },
      "invalid return from write: got 6 from a write of 5");
}

// R37: ECONNABORTED and EINTR from accept are skipped; EAGAIN waits for the next connection.
std::atomic<int> accept_calls{0};
platform::SysResult<platform::SocketHandle> FlakyAccept(platform::SocketHandle fd, platform::SocketAddress* peer) {
  switch (accept_calls.fetch_add(1)) {
    case 0:
      return {platform::kInvalidSocket, ECONNABORTED};
    case 1:
      return {platform::kInvalidSocket, EINTR};
    case 2:
      return {platform::kInvalidSocket, EAGAIN};
    default:
      return platform::Accept(fd, peer);
  }
}

TEST(NetFD, R37_AbortedConnectionsInTheAcceptQueueAreSkipped) {
  auto s = platform::CreateSocket(platform::AddressFamily::kIPv4, platform::SocketType::kStream);
  ASSERT_TRUE(s.ok());
  ASSERT_EQ(platform::Bind(s.value, platform::SocketAddress::FromIP(platform::IPAddress::V4Loopback(), 0)), 0);
  ASSERT_EQ(platform::Listen(s.value, 16), 0);
  platform::SocketAddress address = platform::GetLocalAddress(s.value).value;
  std::unique_ptr<NetFD> listener = Wrap(s.value, platform::SocketType::kStream, "tcp");
  ScopedSyscall<decltype(Syscalls::accept)> hook(&Syscalls::accept, &FlakyAccept);
  accept_calls = 0;
  absl::StatusOr<std::unique_ptr<NetFD>> accepted;
  BoundedThread acceptor([&] { accepted = listener->Accept(); });
  ASSERT_TRUE(WaitUntil([&] { return accept_calls.load() == 3; }));
  ASSERT_TRUE(Parked(*listener, poller::kRead));
  auto client = platform::CreateSocket(platform::AddressFamily::kIPv4, platform::SocketType::kStream);
  platform::Connect(client.value, address);
  acceptor.Join();
  ASSERT_TRUE(accepted.ok()) << accepted.status();
  EXPECT_EQ((*accepted)->remote_address(), platform::GetLocalAddress(client.value).value);
  EXPECT_EQ((*accepted)->local_address(), address);
  close(client.value);
}

// R26/R38 for Connect: a fake kernel whose connect(2) starts nothing, so the descriptor's first
// readiness report is the spurious EPOLLOUT|EPOLLHUP of an unconnected socket.
std::atomic<int> peer_checks{0};
platform::ErrorCode ConnectLater(platform::SocketHandle, const platform::SocketAddress&) { return EINPROGRESS; }
platform::SysResult<platform::SocketAddress> CountingPeer(platform::SocketHandle fd) {
  peer_checks.fetch_add(1);
  return platform::GetPeerAddress(fd);
}

struct TcpListener {
  int fd = -1;
  platform::SocketAddress address;
  TcpListener() {
    fd = platform::CreateSocket(platform::AddressFamily::kIPv4, platform::SocketType::kStream).value;
    platform::Bind(fd, platform::SocketAddress::FromIP(platform::IPAddress::V4Loopback(), 0));
    platform::Listen(fd, 16);
    address = platform::GetLocalAddress(fd).value;
  }
  ~TcpListener() { close(fd); }
};

std::unique_ptr<NetFD> UnregisteredTcp() {
  auto s = platform::CreateSocket(platform::AddressFamily::kIPv4, platform::SocketType::kStream);
  EXPECT_TRUE(s.ok());
  return std::move(*NetFD::New(s.value, platform::SocketType::kStream, "tcp", /*register_now=*/false));
}

TEST(NetFD, R26_ConnectDoesNotReportSuccessOnASpuriousWakeup) {
  TcpListener listener;
  std::unique_ptr<NetFD> fd = UnregisteredTcp();
  ScopedSyscall<decltype(Syscalls::connect)> c(&Syscalls::connect, &ConnectLater);
  ScopedSyscall<decltype(Syscalls::peer_address)> p(&Syscalls::peer_address, &CountingPeer);
  peer_checks = 0;
  absl::Status status;
  BoundedThread dialer([&] { status = fd->Connect(listener.address, 0, nullptr); });
  // The spurious wake-up came and was rejected by getpeername; the dialer waits again.
  ASSERT_TRUE(WaitUntil([&] { return peer_checks.load() >= 1; }));
  ASSERT_TRUE(Parked(*fd, poller::kWrite));
  EXPECT_FALSE(dialer.Finished());
  // Now the real connect, whose completion is the real wake-up.
  platform::Connect(fd->handle_for_testing(), listener.address);
  dialer.Join();
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_GE(peer_checks.load(), 2);
}

TEST(NetFD, ConnectRefusedAndTimeout) {
  std::unique_ptr<NetFD> fd = UnregisteredTcp();
  platform::SocketAddress closed_port;
  {
    TcpListener gone;
    closed_port = gone.address;
  }
  absl::Status refused = fd->Connect(closed_port, 0, nullptr);
  EXPECT_EQ(OsErrorCode(refused), ECONNREFUSED) << refused;
  EXPECT_NE(refused.message().find("connect: Connection refused"), absl::string_view::npos) << refused;

  std::unique_ptr<NetFD> slow = UnregisteredTcp();
  ScopedSyscall<decltype(Syscalls::connect)> c(&Syscalls::connect, &ConnectLater);
  ScopedSyscall<decltype(Syscalls::peer_address)> p(&Syscalls::peer_address, &CountingPeer);
  int64_t deadline = platform::MonotonicNanos() + 30'000'000;
  absl::Status timeout = slow->Connect(closed_port, deadline, nullptr);
  EXPECT_TRUE(IsTimeout(timeout)) << timeout;
  EXPECT_GE(platform::MonotonicNanos(), deadline);
}

// R38: the connect completes at the same moment the dial is cancelled: the dial fails as
// cancelled instead of handing out a connection whose writes would time out at once.
Canceller* r38_canceller = nullptr;
platform::SysResult<platform::SocketAddress> CancelAtTheMomentOfSuccess(platform::SocketHandle fd) {
  platform::SysResult<platform::SocketAddress> peer = platform::GetPeerAddress(fd);
  if (peer.ok()) r38_canceller->Cancel();
  return peer;
}

TEST(NetFD, R38_CancelRacingASuccessfulConnect) {
  TcpListener listener;
  Canceller canceller;
  r38_canceller = &canceller;
  std::unique_ptr<NetFD> fd = UnregisteredTcp();
  ScopedSyscall<decltype(Syscalls::peer_address)> p(&Syscalls::peer_address, &CancelAtTheMomentOfSuccess);
  absl::Status status = fd->Connect(listener.address, 0, &canceller);
  EXPECT_TRUE(IsCanceled(status)) << status;
}

TEST(NetFD, R38_CancelWakesAPendingConnect) {
  Canceller canceller;
  std::unique_ptr<NetFD> fd = UnregisteredTcp();
  ScopedSyscall<decltype(Syscalls::connect)> c(&Syscalls::connect, &ConnectLater);
  ScopedSyscall<decltype(Syscalls::peer_address)> p(&Syscalls::peer_address, &CountingPeer);
  absl::Status status;
  TcpListener unused;
  peer_checks = 0;
  BoundedThread dialer([&] { status = fd->Connect(unused.address, 0, &canceller); });
  // Registered, woken once spuriously (the unconnected socket's EPOLLHUP), now parked.
  ASSERT_TRUE(WaitUntil([&] { return peer_checks.load() >= 1; }));
  ASSERT_TRUE(Parked(*fd, poller::kWrite));
  canceller.Cancel();
  dialer.Join();
  EXPECT_TRUE(IsCanceled(status)) << status;
  Canceller already;
  already.Cancel();
  std::unique_ptr<NetFD> fd2 = UnregisteredTcp();
  EXPECT_TRUE(IsCanceled(fd2->Connect(unused.address, 0, &already)));
}

// R27: the writer is parked on a full socket and the reader closes its end: the writer wakes and
// gets EPIPE instead of hanging (epoll reports EPOLLHUP|EPOLLERR to both directions; kqueue needs
// EV_EOF on the read filter to wake writers, Go #22114).
TEST(NetFD, R27_PeerCloseWakesAParkedWriter) {
  Pair pair = MakePair();
  ASSERT_TRUE(pair.fd->Control("setsockopt", [](platform::SocketHandle fd) {
    return platform::SetSendBufferSize(fd, 4096);
  }).ok());
  WriteResult result;
  BoundedThread writer([&] {
    std::string big(4 << 20, 'w');
    result = pair.fd->Write(big);
  });
  ASSERT_TRUE(Parked(*pair.fd, poller::kWrite));
  close(pair.peer);
  pair.peer = -1;
  writer.Join();
  EXPECT_EQ(OsErrorCode(result.status), EPIPE) << result.status;
  EXPECT_GT(result.written, 0u);
}

// R39: close(2) returning EINTR is reported and never retried.
std::atomic<int> eintr_closes{0};
platform::ErrorCode CloseWithEintr(platform::SocketHandle fd) {
  eintr_closes.fetch_add(1);
  platform::CloseSocket(fd);  // Linux closes the descriptor even when it reports EINTR.
  return EINTR;
}

TEST(NetFD, R39_CloseEintrIsNotRetried) {
  Pair pair = MakePair();
  eintr_closes = 0;
  ScopedSyscall<decltype(Syscalls::close)> hook(&Syscalls::close, &CloseWithEintr);
  absl::Status status = pair.fd->Close();
  EXPECT_EQ(OsErrorCode(status), EINTR) << status;
  EXPECT_NE(status.message().find("close unix"), absl::string_view::npos) << status;
  EXPECT_EQ(eintr_closes.load(), 1);
}

TEST(NetFD, ScatterGatherRoundTrip) {
  Pair pair = MakePair();
  std::string a = "alpha-", b(100000, 'b'), c = "-gamma";
  std::vector<absl::Span<const char>> out = {a, absl::Span<const char>(), b, c};
  std::string received;
  BoundedThread reader([&] {
    char first[3], rest[4096];
    while (received.size() < a.size() + b.size() + c.size()) {
      std::vector<absl::Span<char>> in = {absl::MakeSpan(first), absl::MakeSpan(rest)};
      absl::StatusOr<size_t> n = pair.fd->ReadV(in);
      ASSERT_TRUE(n.ok()) << n.status();
      size_t from_first = std::min<size_t>(*n, sizeof first);
      received.append(first, from_first);
      received.append(rest, *n - from_first);
    }
  });
  auto peer = Wrap(dup(pair.peer));
  WriteResult w = peer->WriteV(out);
  ASSERT_TRUE(w.ok()) << w.status;
  EXPECT_EQ(w.written, a.size() + b.size() + c.size());
  reader.Join();
  EXPECT_EQ(received, a + b + c);
}

TEST(NetFD, EmptyWriteAndRead) {
  Pair pair = MakePair();
  WriteResult w = pair.fd->Write(absl::Span<const char>());
  EXPECT_TRUE(w.ok());
  EXPECT_EQ(w.written, 0u);
  absl::StatusOr<size_t> r = pair.fd->Read(absl::Span<char>());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, 0u);
}

TEST(NetFD, PeerResetIsAnOsError) {
  auto s = platform::CreateSocket(platform::AddressFamily::kIPv4, platform::SocketType::kStream);
  TcpListener listener;
  std::unique_ptr<NetFD> client = UnregisteredTcp();
  ASSERT_TRUE(client->Connect(listener.address, 0, nullptr).ok());
  int server = accept(listener.fd, nullptr, nullptr);
  ASSERT_GE(server, 0);
  platform::SetLinger(server, true, 0);  // close() sends RST.
  close(server);
  char b[4];
  absl::StatusOr<size_t> r = client->Read(absl::MakeSpan(b));
  EXPECT_EQ(OsErrorCode(r.status()), ECONNRESET) << r.status();
  close(s.value);
}

TEST(NetFD, ClosingWithReaderAndWriterBlockedLeaksNothing) {
  int fds_before = CountOpenFds();
  for (int round = 0; round < 50; ++round) {
    Pair pair = MakePair();
    ASSERT_TRUE(pair.fd->Control("setsockopt", [](platform::SocketHandle fd) {
      return platform::SetSendBufferSize(fd, 4096);
    }).ok());
    absl::Status read_status;
    WriteResult write_result;
    BoundedThread reader([&] {
      char b[16];
      read_status = pair.fd->Read(absl::MakeSpan(b)).status();
    });
    BoundedThread writer([&] {
      std::string big(1 << 20, 'x');
      write_result = pair.fd->Write(big);
    });
    ASSERT_TRUE(Parked(*pair.fd, poller::kRead));
    ASSERT_TRUE(Parked(*pair.fd, poller::kWrite));
    absl::Time start = absl::Now();
    ASSERT_TRUE(pair.fd->Close().ok());
    reader.Join();
    writer.Join();
    EXPECT_LT(absl::Now() - start, absl::Seconds(5));
    EXPECT_TRUE(IsClosed(read_status));
    EXPECT_TRUE(IsClosed(write_result.status));
    EXPECT_GT(write_result.written, 0u);
  }
  EXPECT_EQ(CountOpenFds(), fds_before);
}

// Stress: Read, Write and Close from different threads, repeatedly, unforced (R6/R7/R10).
TEST(NetFDStress, ConcurrentReadWriteClose) {
  int fds_before = CountOpenFds();
  for (int round = 0; round < 300; ++round) {
    Pair pair = MakePair();
    std::thread reader([&] {
      char b[64];
      while (pair.fd->Read(absl::MakeSpan(b)).ok()) {
      }
    });
    std::thread writer([&] {
      while (pair.fd->Write(absl::MakeConstSpan("0123456789", 10)).ok()) {
      }
    });
    std::thread echo([&] {
      char b[64];
      ssize_t n;
      while ((n = read(pair.peer, b, sizeof b)) > 0) {
        if (send(pair.peer, b, n, MSG_NOSIGNAL) < 0) break;
      }
    });
    for (int i = 0; i < round % 7; ++i) std::this_thread::yield();
    EXPECT_TRUE(pair.fd->Close().ok());
    reader.join();
    writer.join();
    shutdown(pair.peer, SHUT_RDWR);
    echo.join();
  }
  EXPECT_EQ(CountOpenFds(), fds_before);
}

}  // namespace
}  // namespace netpoll::netfd
