// Selected by //backends:native when the backend is epoll: the poller's NativeBackend.
#ifndef NETPOLL_BACKENDS_NATIVE_H_
#define NETPOLL_BACKENDS_NATIVE_H_

#include "backends/epoll/epoll_backend.h"

namespace netpoll::backends {
using NativeBackend = EpollBackend;
}  // namespace netpoll::backends

#endif  // NETPOLL_BACKENDS_NATIVE_H_
