// OS and architecture detection for netpoll.
//
// Exactly one NETPOLL_OS_* macro is defined to 1 (LINUX, MACOS, FREEBSD, NETBSD, OPENBSD,
// DRAGONFLY, WINDOWS), plus NETPOLL_OS_BSD_FAMILY for every kqueue system and NETPOLL_OS_POSIX
// for everything but Windows. Exactly one NETPOLL_ARCH_* macro is defined (X86_64, AARCH64), or
// the build stops: the fiber context switch is written per architecture.
//
// This header includes nothing, so portable code may use it to choose between implementations
// without pulling in an OS header.
#ifndef NETPOLL_PLATFORM_OS_H_
#define NETPOLL_PLATFORM_OS_H_

#if defined(__linux__)
#define NETPOLL_OS_LINUX 1
#elif defined(__APPLE__) && defined(__MACH__)
#define NETPOLL_OS_MACOS 1
#define NETPOLL_OS_BSD_FAMILY 1
#elif defined(__FreeBSD__)
#define NETPOLL_OS_FREEBSD 1
#define NETPOLL_OS_BSD_FAMILY 1
#elif defined(__NetBSD__)
#define NETPOLL_OS_NETBSD 1
#define NETPOLL_OS_BSD_FAMILY 1
#elif defined(__OpenBSD__)
#define NETPOLL_OS_OPENBSD 1
#define NETPOLL_OS_BSD_FAMILY 1
#elif defined(__DragonFly__)
#define NETPOLL_OS_DRAGONFLY 1
#define NETPOLL_OS_BSD_FAMILY 1
#elif defined(_WIN32)
#define NETPOLL_OS_WINDOWS 1
#else
#error "netpoll: unsupported operating system (Linux, macOS, the BSDs and Windows are supported)"
#endif

#if !defined(NETPOLL_OS_WINDOWS)
#define NETPOLL_OS_POSIX 1
#endif

#if defined(__x86_64__) || defined(_M_X64)
#define NETPOLL_ARCH_X86_64 1
#elif defined(__aarch64__) || defined(_M_ARM64)
#define NETPOLL_ARCH_AARCH64 1
#else
#error "netpoll: unsupported architecture (x86-64 and AArch64 are supported)"
#endif

// Sanitizers, detected the same way under GCC and Clang.
#if defined(__SANITIZE_ADDRESS__)
#define NETPOLL_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NETPOLL_ASAN 1
#endif
#endif

#if defined(__SANITIZE_THREAD__)
#define NETPOLL_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define NETPOLL_TSAN 1
#endif
#endif

namespace netpoll::platform {

// Names of the OS and architecture this binary was built for, for logs and benchmark reports.
inline constexpr const char* kOsName =
#if defined(NETPOLL_OS_LINUX)
    "linux";
#elif defined(NETPOLL_OS_MACOS)
    "macos";
#elif defined(NETPOLL_OS_FREEBSD)
    "freebsd";
#elif defined(NETPOLL_OS_NETBSD)
    "netbsd";
#elif defined(NETPOLL_OS_OPENBSD)
    "openbsd";
#elif defined(NETPOLL_OS_DRAGONFLY)
    "dragonfly";
#else
    "windows";
#endif

inline constexpr const char* kArchName =
#if defined(NETPOLL_ARCH_X86_64)
    "x86_64";
#else
    "aarch64";
#endif

}  // namespace netpoll::platform

#endif  // NETPOLL_PLATFORM_OS_H_
