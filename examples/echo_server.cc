// The canonical netpoll example: Go's echo server, line for line, in C++.
//
//   listener := net.Listen("tcp", addr)      ->  netpoll::Listen("tcp", addr)
//   for { conn := listener.Accept()          ->  for (;;) { listener->Accept()
//         go handle(conn) }                  ->             netpoll::Go(...) }
//   handle: for { n := c.Read(buf)           ->  one fiber per connection, plain blocking
//                 c.Write(buf[:n]) }             Read and Write
//
// Flags: --addr=HOST:PORT (default 127.0.0.1:8080), --workers=N (default: one per CPU).
// SIGINT or SIGTERM stops it cleanly: the listener closes, the accept loop ends, and the process
// exits (like Go, open connections are not waited for).
#include <csignal>
#include <cstdio>
#include <memory>
#include <string>
#include <utility>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "netfd/net.h"
#include "uthread/runtime.h"
#include "uthread/signals.h"
#include "uthread/sync.h"

ABSL_FLAG(std::string, addr, "127.0.0.1:8080", "address to listen on, HOST:PORT");
ABSL_FLAG(int, workers, 0, "worker threads (0: one per CPU)");
// Echoes everything the client sends until it goes away. It starts with a small buffer on the
// fiber's stack, so that an idle connection (or one that sends little) costs one stack page;
// a connection whose reads fill that buffer moves to a large heap buffer for bulk transfers.
void Handle(netpoll::Conn conn) {
  char small[2 * 1024];
  absl::Span<char> buffer = absl::MakeSpan(small);
  std::unique_ptr<char[]> large;
  for (;;) {
    absl::StatusOr<size_t> n = conn.Read(buffer);
    if (!n.ok()) return;  // EOF, reset, or closed: the connection is done.
    if (!conn.Write(buffer.first(*n)).ok()) return;
    if (*n == buffer.size() && large == nullptr) {
      large.reset(new char[64 * 1024]);
      buffer = absl::MakeSpan(large.get(), 64 * 1024);
    }
  }
}

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  netpoll::RuntimeOptions options;
  options.workers = absl::GetFlag(FLAGS_workers);
  return netpoll::Run(
      [] {
        absl::StatusOr<netpoll::Listener> listener = netpoll::Listen("tcp", absl::GetFlag(FLAGS_addr));
        if (!listener.ok()) {
          std::fprintf(stderr, "echo_server: %s\n", std::string(listener.status().message()).c_str());
          return 1;
        }
        std::printf("echo server listening on %s\n", listener->Addr().ToString().c_str());
        std::fflush(stdout);

        netpoll::WaitGroup accepting;
        accepting.Add(1);
        netpoll::Go([&] {
          for (;;) {
            absl::StatusOr<netpoll::Conn> conn = listener->Accept();
            if (!conn.ok()) {
              if (netpoll::IsClosed(conn.status())) break;  // Shutting down.
              std::fprintf(stderr, "echo_server: %s\n", std::string(conn.status().message()).c_str());
              continue;  // EMFILE and friends: keep serving the connections we have.
            }
            netpoll::Go([c = std::move(*conn)]() mutable { Handle(std::move(c)); });
          }
          accepting.Done();
        });

        netpoll::Channel<int> signals(1);
        netpoll::NotifySignals(signals, {SIGINT, SIGTERM}).IgnoreError();
        int signal_number = signals.Receive().value_or(0);
        std::printf("echo server: signal %d, shutting down\n", signal_number);
        listener->Close().IgnoreError();
        accepting.Wait();
        return 0;
      },
      options);
}
