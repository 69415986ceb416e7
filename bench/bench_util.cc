#include "bench/bench_util.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

namespace netpoll_bench {

bool ParseHostPort(const std::string& text, SockAddr* out, std::string* error) {
  std::string host;
  std::string port;
  if (!text.empty() && text[0] == '[') {
    const size_t close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      *error = "expected [IPV6]:PORT, got \"" + text + "\"";
      return false;
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string::npos) {
      *error = "expected HOST:PORT, got \"" + text + "\"";
      return false;
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  char* end = nullptr;
  const long port_number = std::strtol(port.c_str(), &end, 10);
  if (port.empty() || *end != '\0' || port_number < 0 || port_number > 65535) {
    *error = "bad port \"" + port + "\" in \"" + text + "\"";
    return false;
  }
  if (host.empty() || host == "localhost") host = "127.0.0.1";
  *out = SockAddr{};
  auto* v4 = reinterpret_cast<sockaddr_in*>(&out->storage);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&out->storage);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port_number));
    out->len = sizeof(sockaddr_in);
    return true;
  }
  *out = SockAddr{};
  if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port_number));
    out->len = sizeof(sockaddr_in6);
    return true;
  }
  *error = "bad numeric host \"" + host + "\" in \"" + text + "\"";
  return false;
}

std::string FormatHostPort(const SockAddr& addr) {
  char host[INET6_ADDRSTRLEN] = "?";
  if (addr.family() == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&addr.storage);
    inet_ntop(AF_INET, &v4->sin_addr, host, sizeof(host));
    return std::string(host) + ":" + std::to_string(ntohs(v4->sin_port));
  }
  const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&addr.storage);
  inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof(host));
  return "[" + std::string(host) + "]:" + std::to_string(ntohs(v6->sin6_port));
}

uint64_t RaiseFdLimit(uint64_t want) {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return 0;
  if (limit.rlim_max != RLIM_INFINITY && limit.rlim_max < want) {
    uint64_t nr_open = want;
    std::ifstream in("/proc/sys/fs/nr_open");
    if (in >> nr_open && nr_open < want) want = nr_open;
    rlimit raised{want, want};
    // Only root (CAP_SYS_RESOURCE) may raise the hard limit, and a sandbox may refuse even root;
    // either way we fall back to the current hard limit.
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
  }
  limit.rlim_cur = limit.rlim_max;
  setrlimit(RLIMIT_NOFILE, &limit);
  getrlimit(RLIMIT_NOFILE, &limit);
  return limit.rlim_cur;
}

int64_t MonotonicNanos() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

double ProcessCpuSeconds(int pid) {
  char path[64];
  std::snprintf(path, sizeof(path), "/proc/%d/stat", pid);
  std::ifstream in(path);
  std::string line;
  if (!std::getline(in, line)) return -1;
  // The command name (field 2) is parenthesised and may contain spaces; fields after the last ')'
  // start at field 3 (state). utime and stime are fields 14 and 15.
  const size_t paren = line.rfind(')');
  if (paren == std::string::npos) return -1;
  std::istringstream fields(line.substr(paren + 1));
  std::string field;
  unsigned long long utime = 0;
  unsigned long long stime = 0;
  for (int number = 3; number <= 15 && (fields >> field); ++number) {
    if (number == 14) utime = std::strtoull(field.c_str(), nullptr, 10);
    if (number == 15) stime = std::strtoull(field.c_str(), nullptr, 10);
  }
  const long ticks = sysconf(_SC_CLK_TCK);
  return static_cast<double>(utime + stime) / static_cast<double>(ticks > 0 ? ticks : 100);
}

MachineCpu MachineCpuSeconds() {
  std::ifstream in("/proc/stat");
  std::string cpu;
  // user nice system idle iowait irq softirq (guest time is already counted in user).
  unsigned long long user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0;
  MachineCpu result;
  if (!(in >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq) || cpu != "cpu") {
    return result;
  }
  const long ticks = sysconf(_SC_CLK_TCK);
  const double hz = static_cast<double>(ticks > 0 ? ticks : 100);
  result.busy = static_cast<double>(user + nice + system + irq + softirq) / hz;
  result.softirq = static_cast<double>(irq + softirq) / hz;
  return result;
}

std::vector<int> KernelThreadPids() {
  std::vector<int> pids;
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return pids;
  while (dirent* entry = readdir(proc)) {
    char* end = nullptr;
    const long pid = std::strtol(entry->d_name, &end, 10);
    if (pid <= 0 || *end != '\0') continue;
    std::ifstream in("/proc/" + std::string(entry->d_name) + "/stat");
    std::string line;
    if (!std::getline(in, line)) continue;
    const size_t paren = line.rfind(')');
    if (paren == std::string::npos) continue;
    std::istringstream fields(line.substr(paren + 1));
    std::string state;
    long ppid = -1;
    fields >> state >> ppid;
    if (pid == 2 || ppid == 2) pids.push_back(static_cast<int>(pid));  // 2 is kthreadd
  }
  closedir(proc);
  return pids;
}

double TotalCpuSeconds(const std::vector<int>& pids) {
  double total = 0;
  for (int pid : pids) total += std::max(0.0, ProcessCpuSeconds(pid));
  return total;
}

bool ProcessMemoryKib(int pid, int64_t* rss_kib, int64_t* hwm_kib) {
  char path[64];
  std::snprintf(path, sizeof(path), "/proc/%d/status", pid);
  std::ifstream in(path);
  std::string line;
  bool have_rss = false;
  bool have_hwm = false;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      *rss_kib = std::strtoll(line.c_str() + 6, nullptr, 10);
      have_rss = true;
    } else if (line.rfind("VmHWM:", 0) == 0) {
      *hwm_kib = std::strtoll(line.c_str() + 6, nullptr, 10);
      have_hwm = true;
    }
  }
  return have_rss && have_hwm;
}

int EphemeralPortCount() {
  std::ifstream in("/proc/sys/net/ipv4/ip_local_port_range");
  int low = 0;
  int high = 0;
  if (in >> low >> high && high >= low) return high - low + 1;
  return 60999 - 32768 + 1;
}

}  // namespace netpoll_bench
