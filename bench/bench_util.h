// Small Linux helpers shared by the echo benchmark binaries (bench/ may use OS headers directly).
#ifndef NETPOLL_BENCH_BENCH_UTIL_H_
#define NETPOLL_BENCH_BENCH_UTIL_H_

#include <sys/socket.h>
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace netpoll_bench {

// An IPv4 or IPv6 socket address.
struct SockAddr {
  sockaddr_storage storage{};
  socklen_t len = 0;

  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
  sockaddr* get() { return reinterpret_cast<sockaddr*>(&storage); }
  int family() const { return storage.ss_family; }
};

// Parses "1.2.3.4:80" or "[::1]:80" (numeric hosts only; "localhost" means 127.0.0.1).
// Returns false and fills *error on a malformed address.
bool ParseHostPort(const std::string& text, SockAddr* out, std::string* error);

// "1.2.3.4:80" / "[::1]:80".
std::string FormatHostPort(const SockAddr& addr);

// Raises RLIMIT_NOFILE: first tries to lift the hard limit to `want` (root may, up to
// /proc/sys/fs/nr_open), then sets the soft limit to the hard limit. Returns the resulting soft
// limit.
uint64_t RaiseFdLimit(uint64_t want);

// CLOCK_MONOTONIC in nanoseconds.
int64_t MonotonicNanos();

// Seconds of CPU (user + system, all threads, dead ones included) used by process `pid`, from
// /proc/PID/stat. Negative if it cannot be read.
double ProcessCpuSeconds(int pid);

// CPU time of the whole machine, summed over all CPUs, from the first line of /proc/stat.
struct MachineCpu {
  // user + nice + system + irq + softirq: all busy time. A process's own utime + stime includes the
  // softirq work that ran in its context (on loopback, most TCP packet processing), which
  // /proc/stat files under softirq, so process times must be compared with this sum.
  double busy = -1;
  double softirq = -1;  // irq + softirq alone
};
MachineCpu MachineCpuSeconds();

// The process ids of the kernel's own threads (kthreadd and its children: ksoftirqd/N, kworkers,
// ...), found by scanning /proc.
std::vector<int> KernelThreadPids();

// Sum of ProcessCpuSeconds over `pids` (unreadable ones count 0).
double TotalCpuSeconds(const std::vector<int>& pids);

// VmRSS and VmHWM of process `pid` in KiB, from /proc/PID/status. False if unreadable.
bool ProcessMemoryKib(int pid, int64_t* rss_kib, int64_t* hwm_kib);

// The local port range of /proc/sys/net/ipv4/ip_local_port_range (number of ports), or 28232
// (Linux's default) if it cannot be read.
int EphemeralPortCount();

}  // namespace netpoll_bench

#endif  // NETPOLL_BENCH_BENCH_UTIL_H_
