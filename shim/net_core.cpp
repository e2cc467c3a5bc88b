// Connection techniques for @net (see net_core.h) and the socket side of the byte-moving slow
// path (net_io.h). Everything here runs inside the Guard and calls the real functions.
#include "shim/engine/net_core.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

#include "session/session.h"
#include "shim/engine/shim.h"
#include "shim/engine/text_buf.h"
#include "shim/net_io.h"

namespace faultline::shim {
namespace {

// A loopback socket of the shim's own (tarpit listener + its filler, or a refuser).
struct LoopbackSocket {
  std::atomic<int> state{0};  // 0 none, 1 being made, 2 ready, 3 cannot be made
  int fd = -1;
  int filler = -1;  // the tarpit's own connection that fills its accept queue
  struct sockaddr_storage addr;
  socklen_t len = 0;
};

LoopbackSocket g_tarpit4, g_tarpit6, g_refuser4, g_refuser6;

// Out of the program's way: low fd numbers are the ones programs expect to get back, and
// select() cannot watch fds past FD_SETSIZE anyway.
int move_high(int fd) {
  if (fd < 0) return fd;
  struct rlimit limit {};
  int floor = 512;
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY &&
      static_cast<rlim_t>(floor) * 2 > limit.rlim_cur)
    floor = static_cast<int>(limit.rlim_cur / 2);
  if (floor <= fd) return fd;
  int high = FL_REAL(fcntl)(fd, F_DUPFD_CLOEXEC, floor);
  if (high < 0) return fd;
  FL_REAL(close)(fd);
  return high;
}

void loopback_address(int family, struct sockaddr_storage& out, socklen_t& len) {
  std::memset(&out, 0, sizeof out);
  if (family == AF_INET6) {
    auto* in6 = reinterpret_cast<struct sockaddr_in6*>(&out);
    in6->sin6_family = AF_INET6;
    in6->sin6_addr = in6addr_loopback;
    len = sizeof(sockaddr_in6);
  } else {
    auto* in = reinterpret_cast<struct sockaddr_in*>(&out);
    in->sin_family = AF_INET;
    in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    len = sizeof(sockaddr_in);
  }
}

// The fd still is the socket we made (the program may have closed it and got the number back
// for something of its own, which we must never touch): same local address, and listening or
// not as we left it.
bool still_ours(const LoopbackSocket& s, bool listening) {
  struct sockaddr_storage now;
  socklen_t len = sizeof now;
  if (getsockname(s.fd, reinterpret_cast<struct sockaddr*>(&now), &len) != 0 || len != s.len ||
      std::memcmp(&now, &s.addr, len) != 0)
    return false;
  int accepting = 0;
  socklen_t size = sizeof accepting;
  if (FL_REAL(getsockopt)(s.fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &size) != 0) return false;
  return (accepting != 0) == listening;
}

bool make_loopback(LoopbackSocket& s, int family, bool tarpit) {
  CancelOff no_cancel;  // shim.h: connect is a cancellation point
  int fd = FL_REAL(socket)(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  loopback_address(family, s.addr, s.len);
  auto* sa = reinterpret_cast<struct sockaddr*>(&s.addr);
  if (FL_REAL(bind)(fd, sa, s.len) != 0 || getsockname(fd, sa, &s.len) != 0 ||
      (tarpit && FL_REAL(listen)(fd, 0) != 0)) {
    FL_REAL(close)(fd);
    return false;
  }
  int filler = -1;
  if (tarpit) {
    // listen(0) leaves room for one connection: ours. Then the accept queue is full and the
    // kernel drops every further SYN (tcp_conn_request: sk_acceptq_is_full).
    filler = FL_REAL(socket)(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (filler < 0 || FL_REAL(connect)(filler, sa, s.len) != 0) {
      if (filler >= 0) FL_REAL(close)(filler);
      FL_REAL(close)(fd);
      return false;
    }
    filler = move_high(filler);
  }
  s.fd = move_high(fd);
  s.filler = filler;
  return true;
}

// The tarpit or refuser for `family`, made on first use. Null if it cannot be made.
const LoopbackSocket* loopback(LoopbackSocket& s, int family, bool tarpit) {
  for (int spins = 0; spins < 100000; ++spins) {
    int state = s.state.load(std::memory_order_acquire);
    if (state == 2) {
      if (still_ours(s, tarpit)) return &s;
      // Closed behind our back: forget it (the number may be the program's now) and remake.
      int expected = 2;
      s.state.compare_exchange_strong(expected, 0, std::memory_order_acq_rel);
      continue;
    }
    if (state == 3) return nullptr;
    if (state == 0) {
      int expected = 0;
      if (!s.state.compare_exchange_strong(expected, 1, std::memory_order_acq_rel)) continue;
      bool ok = make_loopback(s, family, tarpit);
      s.state.store(ok ? 2 : 3, std::memory_order_release);
      if (!ok)
        diag("faultline: cannot make the loopback %s for @net faults (%s)",
             tarpit ? "tarpit" : "refuser", error_text(errno));
      continue;
    }
    sched_yield();  // another thread is making it
  }
  return nullptr;
}

// The loopback target for a socket of `domain`: its own family's, or for an IPv6 socket
// without IPv6 loopback, the IPv4 one as a v4-mapped address.
bool loopback_target(int domain, bool tarpit, struct sockaddr_storage& out, socklen_t& len) {
  if (domain == AF_INET6) {
    if (const LoopbackSocket* s = loopback(tarpit ? g_tarpit6 : g_refuser6, AF_INET6, tarpit)) {
      std::memcpy(&out, &s->addr, s->len);
      len = s->len;
      return true;
    }
  }
  const LoopbackSocket* s = loopback(tarpit ? g_tarpit4 : g_refuser4, AF_INET, tarpit);
  if (!s) return false;
  if (domain != AF_INET6) {
    std::memcpy(&out, &s->addr, s->len);
    len = s->len;
    return true;
  }
  const auto* in = reinterpret_cast<const struct sockaddr_in*>(&s->addr);
  auto* in6 = reinterpret_cast<struct sockaddr_in6*>(&out);
  std::memset(&out, 0, sizeof out);
  in6->sin6_family = AF_INET6;
  in6->sin6_port = in->sin_port;
  in6->sin6_addr.s6_addr[10] = 0xff;
  in6->sin6_addr.s6_addr[11] = 0xff;
  std::memcpy(in6->sin6_addr.s6_addr + 12, &in->sin_addr, 4);
  len = sizeof(sockaddr_in6);
  return true;
}

// connect() without blocking whatever the socket's mode: the kernel goes on in the background.
int connect_nonblocking(int fd, const struct sockaddr* to, socklen_t len) {
  int flags = FL_REAL(fcntl)(fd, F_GETFL);
  if (flags >= 0 && !(flags & O_NONBLOCK)) FL_REAL(fcntl)(fd, F_SETFL, flags | O_NONBLOCK);
  int r = FL_REAL(connect)(fd, to, len);
  int err = errno;
  if (flags >= 0 && !(flags & O_NONBLOCK)) FL_REAL(fcntl)(fd, F_SETFL, flags);
  errno = err;
  return r;
}

bool redirect_connect(int fd, const struct sockaddr* peer, socklen_t len, int fault, bool tarpit,
                      int err) {
  CancelOff no_cancel;  // shim.h: connect is a cancellation point
  struct sockaddr_storage target;
  socklen_t target_len = 0;
  if (!loopback_target(socket_domain(fd), tarpit, target, target_len)) return false;
  SockState before = sock_load(fd);
  int r = connect_nonblocking(fd, reinterpret_cast<struct sockaddr*>(&target), target_len);
  if (r != 0 && errno != EINPROGRESS) return false;
  sock_set_peer(fd, peer, len);
  sock_store(fd, before, tarpit ? kSockTarpit : kSockPendingError, fault, err);
  return true;
}

void consume_socket_error(int fd) {
  int pending = 0;
  socklen_t size = sizeof pending;
  FL_REAL(getsockopt)(fd, SOL_SOCKET, SO_ERROR, &pending, &size);
}

}  // namespace

int socket_type(int fd) noexcept {
  int type = -1;
  socklen_t size = sizeof type;
  if (FL_REAL(getsockopt)(fd, SOL_SOCKET, SO_TYPE, &type, &size) != 0) return -1;
  return type;
}

int socket_domain(int fd) noexcept {
  int domain = -1;
  socklen_t size = sizeof domain;
  if (FL_REAL(getsockopt)(fd, SOL_SOCKET, SO_DOMAIN, &domain, &size) != 0) return -1;
  return domain;
}

bool fd_nonblocking(int fd) noexcept {
  int flags = FL_REAL(fcntl)(fd, F_GETFL);
  return flags >= 0 && (flags & O_NONBLOCK);
}

std::int64_t socket_timeout_ns(int fd, int option) noexcept {
  struct timeval tv {};
  socklen_t size = sizeof tv;
  if (FL_REAL(getsockopt)(fd, SOL_SOCKET, option, &tv, &size) != 0) return 0;
  return static_cast<std::int64_t>(tv.tv_sec) * 1'000'000'000 +
         static_cast<std::int64_t>(tv.tv_usec) * 1'000;
}

bool net_abort(int fd) noexcept {
  CancelOff no_cancel;  // shim.h: connect is a cancellation point
  if (socket_type(fd) != SOCK_STREAM) return false;
  int domain = socket_domain(fd);
  if (domain == AF_INET || domain == AF_INET6) {
    struct sockaddr unspec {};
    unspec.sa_family = AF_UNSPEC;
    FL_REAL(connect)(fd, &unspec, sizeof unspec);
    // tcp_disconnect leaves ECONNRESET pending; we report it ourselves, once, on this call.
    consume_socket_error(fd);
  } else {
    shutdown(fd, SHUT_RDWR);  // a unix stream socket cannot send RST: the peer reads EOF
  }
  return true;
}

void net_mark_reset(int fd, int fault) noexcept {
  for (int attempt = 0; attempt < 8; ++attempt) {
    SockState st = sock_load(fd);
    std::uint32_t flags = (st.flags() & ~(kSockHeld | kSockPendingError)) | kSockReset;
    if (sock_store(fd, st, flags, fault, 0)) return;
  }
}

bool net_tarpit_connect(int fd, const struct sockaddr* peer, socklen_t len, int fault) noexcept {
  return redirect_connect(fd, peer, len, fault, true, 0);
}

bool net_refuse_connect(int fd, const struct sockaddr* peer, socklen_t len, int fault,
                        int err) noexcept {
  return redirect_connect(fd, peer, len, fault, false, err);
}

bool net_async_connect_error(int err) noexcept {
  switch (err) {
    case ECONNREFUSED:
    case ETIMEDOUT:
    case EHOSTUNREACH:
    case EHOSTDOWN:
    case ENETUNREACH:
    case ENETDOWN:
    case ECONNRESET:
    case ECONNABORTED:
    case EPROTO:
      return true;
    default:
      return false;
  }
}

void net_tarpit_heal(int fd) noexcept {
  CancelOff no_cancel;  // shim.h: connect is a cancellation point
  SockState st = sock_load(fd);
  if (!(st.flags() & kSockTarpit)) return;
  struct sockaddr_storage peer;
  socklen_t len = sock_peer(fd, &peer);
  // Claim the heal first: of two threads noticing the lift at once, one reconnects.
  if (!sock_store(fd, st, st.flags() & ~kSockTarpit, 0, 0)) return;
  struct sockaddr unspec {};
  unspec.sa_family = AF_UNSPEC;
  FL_REAL(connect)(fd, &unspec, sizeof unspec);  // leaves SYN_SENT to the tarpit
  if (len > 0) connect_nonblocking(fd, reinterpret_cast<struct sockaddr*>(&peer), len);
}

bool net_still_held(const Guard& guard, int fd, SockState st) noexcept {
  if (st.flags() & kSockTarpit) {
    struct sockaddr_storage peer;
    CallArgs args{kCall_connect, fd};
    args.addr_len = sock_peer(fd, &peer);
    args.addr = reinterpret_cast<struct sockaddr*>(&peer);
    if (fault_still_applies(guard, st.fault(), args)) return true;
    net_tarpit_heal(fd);
    return false;
  }
  if (st.flags() & kSockPartitioned) {
    if (fault_still_applies(guard, st.fault(), CallArgs{kCall_recv, fd})) return true;
    net_heal(guard, fd);
    return false;
  }
  return false;
}

namespace {

struct PartitionHold {
  const Guard* guard;
  int fault;
  const CallArgs* args;
};

bool partition_holds(void* ctx, std::int64_t&) {
  const auto& hold = *static_cast<const PartitionHold*>(ctx);
  return fault_still_applies(*hold.guard, hold.fault, *hold.args);
}

}  // namespace

WaitEnd net_wait_partition(const Guard& guard, int fault, const CallArgs& args,
                           std::int64_t deadline_ns, bool timeout_set) {
  PartitionHold hold{&guard, fault, &args};
  return shim_wait(guard, args.call, deadline_ns,
                   timeout_set ? OnSignal::kEnd : OnSignal::kEndUnlessRestart, partition_holds,
                   &hold);
}

// ---- the socket side of the byte-moving slow path (net_io.h) -------------------------------

NetBefore net_io_before(const Guard& guard, const CallArgs& args, bool send, SockState st,
                        ssize_t& result) noexcept {
  const std::uint32_t flags = st.flags();
  if (flags & kSockPendingError) {
    // The kernel would report the failed connect's error on the next call; it is ours to name.
    consume_socket_error(args.fd);
    sock_store(args.fd, st, flags & ~kSockPendingError, 0, 0);
    errno = st.error();
    result = -1;
    return NetBefore::kAnswered;
  }
  if (flags & kSockReset) {
    if (send) return NetBefore::kRunReal;  // the kernel says EPIPE (and raises SIGPIPE)
    errno = ECONNRESET;
    result = -1;
    return NetBefore::kAnswered;
  }
  if (flags & kSockEof) {                  // `eof` ended the connection (net_cut.h)
    if (send) return NetBefore::kRunReal;  // shut down for writing: the kernel says EPIPE
    result = 0;                            // end of file, even with data still queued
    return NetBefore::kAnswered;
  }
  if (flags & kSockTarpit) net_still_held(guard, args.fd, st);
  return NetBefore::kDecide;
}

void net_heal(const Guard& guard, int fd) noexcept {
  (void)guard;
  for (int attempt = 0; attempt < 8; ++attempt) {
    SockState st = sock_load(fd);
    if (!(st.flags() & kSockPartitioned)) return;
    if (!sock_store(fd, st, st.flags() & ~(kSockPartitioned | kSockParked), 0, st.error()))
      continue;
    int epfd = -1;
    std::uint32_t events = 0;
    std::uint64_t data = 0;
    if ((st.flags() & kSockParked) && sock_epoll_get(fd, epfd, events, data)) {
      struct epoll_event ev {};
      ev.events = events;
      ev.data.u64 = data;
      FL_REAL(epoll_ctl)(epfd, EPOLL_CTL_ADD, fd, &ev);  // back where the program put it
    }
    return;
  }
}

ssize_t net_reset_io(const Decision& d, const CallArgs& args) noexcept {
  if (!net_abort(args.fd)) {
    errno = ECONNREFUSED;  // a datagram socket: what an ICMP port unreachable reports
    return -1;
  }
  net_mark_reset(args.fd, d.fault);
  errno = ECONNRESET;
  return -1;
}

void net_mark_partitioned(const Decision& d, int fd) noexcept {
  for (int attempt = 0; attempt < 8; ++attempt) {
    SockState st = sock_load(fd);
    if (sock_store(fd, st, st.flags() | kSockPartitioned, d.fault, st.error())) return;
  }
}

ssize_t net_blackhole_receive(const Guard& guard, const Decision& d, const CallArgs& args) {
  if ((args.msg_flags & MSG_DONTWAIT) || fd_nonblocking(args.fd)) {
    errno = EAGAIN;
    return -1;
  }
  const std::int64_t timeout = socket_timeout_ns(args.fd, SO_RCVTIMEO);
  const std::int64_t deadline = timeout > 0 ? monotonic_ns() + timeout : -1;
  switch (net_wait_partition(guard, d.fault, args, deadline, timeout > 0)) {
    case WaitEnd::kLifted:
      return kBlackholeLifted;
    case WaitEnd::kDeadline:
      errno = EAGAIN;  // SO_RCVTIMEO expired: what recv(2) says
      return -1;
    case WaitEnd::kInterrupted:
      errno = EINTR;
      return -1;
  }
  return -1;
}

}  // namespace faultline::shim
