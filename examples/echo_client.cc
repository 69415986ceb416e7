// Talks to the echo server: sends each argument (or each line of stdin when there is none) as a
// message, reads the echo back, prints it, and fails if it differs.
//
//   echo_client --addr=127.0.0.1:8080 hello world
//   echo_client --connections=100 --messages=1000 --size=64    (load mode: checks every byte)
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "netfd/net.h"
#include "uthread/runtime.h"
#include "uthread/sync.h"

ABSL_FLAG(std::string, addr, "127.0.0.1:8080", "echo server address, HOST:PORT");
ABSL_FLAG(int, connections, 0, "load mode: concurrent connections (0: send the arguments instead)");
ABSL_FLAG(int, messages, 100, "load mode: messages per connection");
ABSL_FLAG(int, size, 64, "load mode: bytes per message");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(10), "give up on a connection after this long");

namespace {

// Sends `message` and reads exactly as many bytes back.
absl::Status RoundTrip(netpoll::Conn& conn, const std::string& message, std::string* echo) {
  netpoll::WriteResult w = conn.Write(message);
  if (!w.ok()) return w.status;
  echo->resize(message.size());
  size_t got = 0;
  while (got < message.size()) {
    absl::StatusOr<size_t> n = conn.Read(absl::MakeSpan(echo->data() + got, message.size() - got));
    if (!n.ok()) return n.status();
    got += *n;
  }
  return absl::OkStatus();
}

int Interactive(const std::vector<std::string>& messages) {
  absl::StatusOr<netpoll::Conn> conn = netpoll::DialTimeout("tcp", absl::GetFlag(FLAGS_addr), absl::GetFlag(FLAGS_timeout));
  if (!conn.ok()) {
    std::fprintf(stderr, "echo_client: %s\n", std::string(conn.status().message()).c_str());
    return 1;
  }
  conn->SetDeadline(absl::Now() + absl::GetFlag(FLAGS_timeout)).IgnoreError();
  for (const std::string& message : messages) {
    std::string echo;
    if (absl::Status s = RoundTrip(*conn, message, &echo); !s.ok()) {
      std::fprintf(stderr, "echo_client: %s\n", std::string(s.message()).c_str());
      return 1;
    }
    std::printf("%s\n", echo.c_str());
    if (echo != message) {
      std::fprintf(stderr, "echo_client: the echo differs from what was sent\n");
      return 1;
    }
  }
  return 0;
}

int Load() {
  const int connections = absl::GetFlag(FLAGS_connections);
  const int messages = absl::GetFlag(FLAGS_messages);
  const int size = absl::GetFlag(FLAGS_size);
  netpoll::WaitGroup done;
  std::atomic<int> failures{0};
  absl::Time start = absl::Now();
  for (int c = 0; c < connections; ++c) {
    done.Add(1);
    netpoll::Go([&, c] {
      absl::StatusOr<netpoll::Conn> conn = netpoll::DialTimeout("tcp", absl::GetFlag(FLAGS_addr), absl::GetFlag(FLAGS_timeout));
      if (!conn.ok()) {
        std::fprintf(stderr, "echo_client: %s\n", std::string(conn.status().message()).c_str());
        failures.fetch_add(1);
      } else {
        conn->SetDeadline(absl::Now() + absl::GetFlag(FLAGS_timeout)).IgnoreError();
        std::string message(size, '\0'), echo;
        for (int m = 0; m < messages; ++m) {
          for (int i = 0; i < size; ++i) message[i] = static_cast<char>('a' + (c + m + i) % 26);
          if (!RoundTrip(*conn, message, &echo).ok() || echo != message) {
            failures.fetch_add(1);
            break;
          }
        }
      }
      done.Done();
    });
  }
  done.Wait();
  double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  std::printf("%d connections x %d messages of %d bytes: %d failures, %.0f round trips/s\n", connections,
              messages, size, failures.load(), connections * static_cast<double>(messages) / seconds);
  return failures.load() == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  return netpoll::Run([&] {
    if (absl::GetFlag(FLAGS_connections) > 0) return Load();
    std::vector<std::string> messages(args.begin() + 1, args.end());
    if (messages.empty()) {
      for (std::string line; std::getline(std::cin, line);) messages.push_back(line);
    }
    return Interactive(messages);
  });
}
