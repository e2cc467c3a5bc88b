// @net: socket, connect, accept, accept4, bind, listen, send, sendto, sendmsg, sendmmsg, recv,
// recvfrom, recvmsg, recvmmsg. (read, readv, write and writev on sockets are @net calls too;
// their wrappers are in read.cpp/write.cpp.) The byte-moving calls share io.h's slow path;
// connect and accept carry the connection-level actions: a refused or unreachable peer (the
// kernel's way for non-blocking sockets), a reset, a partition (the tarpit). See
// docs/network.md for what a program sees, call by call.
#include <errno.h>
#include <sys/socket.h>

#include "session/session.h"
#include "shim/apply.h"
#include "shim/engine/fd_table.h"
#include "shim/engine/net_core.h"
#include "shim/engine/net_cut.h"
#include "shim/engine/net_hold.h"
#include "shim/engine/net_select.h"
#include "shim/engine/safe_copy.h"
#include "shim/engine/sock_table.h"
#include "shim/errno_call.h"
#include "shim/io_adapters.h"
#include "shim/net_io.h"

namespace faultline::shim {
namespace {

bool is_inet_stream(int fd) {
  int domain = socket_domain(fd);
  return socket_type(fd) == SOCK_STREAM && (domain == AF_INET || domain == AF_INET6);
}

// socket, bind, listen: error (a `limit` arrives here as an error too), delay, crash.
template <class Fn>
int plain_slow(const CallArgs& args, bool makes_fd, Fn real) {
  return errno_call_slow(args, real, makes_fd ? track_new_fd : untracked);
}

// ---- connect --------------------------------------------------------------------------------

// A refused, unreachable or timed-out peer. A blocking connect fails at once; a non-blocking
// TCP connect fails the way the kernel reports it: EINPROGRESS, then poll says writable with
// POLLERR and SO_ERROR (or the next call on the socket) names the error.
int connect_error(const Decision& d, const CallArgs& args) {
  emit_event(d, args, -1);
  if (net_async_connect_error(d.error) && fd_nonblocking(args.fd) && is_inet_stream(args.fd) &&
      net_refuse_connect(args.fd, args.addr, args.addr_len, d.fault, d.error)) {
    errno = EINPROGRESS;
    return -1;
  }
  return fail_as<int>(args.call, cause_of(d));
}

// The peer resets the connection as it is made. Blocking: the connection is really made and
// aborted (the server sees it accepted and reset), connect fails ECONNRESET. Non-blocking
// TCP: EINPROGRESS, then the connect fails with ECONNRESET through SO_ERROR.
template <class Fn>
int connect_reset(const Decision& d, const CallArgs& args, Fn real) {
  emit_event(d, args, -1);
  if (socket_type(args.fd) != SOCK_STREAM) {
    errno = ECONNREFUSED;  // a datagram socket has no connection to reset
    return -1;
  }
  if (fd_nonblocking(args.fd) && is_inet_stream(args.fd) &&
      net_refuse_connect(args.fd, args.addr, args.addr_len, d.fault, ECONNRESET)) {
    errno = EINPROGRESS;
    return -1;
  }
  int r = real();
  if (r != 0) return r;
  net_abort(args.fd);
  net_mark_reset(args.fd, d.fault);
  errno = ECONNRESET;
  return -1;
}

// A partition. Non-blocking TCP: the socket really connects to the tarpit and stays in
// SYN_SENT (never writable; the kernel's own SYN retries end it with ETIMEDOUT). Blocking:
// waits until the fault is lifted (then connects for real), the socket's SO_SNDTIMEO (then
// EINPROGRESS and the socket left connecting, as Linux does), or `timeout` (default 20 s,
// then ETIMEDOUT). A datagram connect sends nothing: it runs as it is.
template <class Fn>
int connect_blackhole(const Guard& guard, const Decision& d, const CallArgs& args, Fn real) {
  emit_event(d, args, -1);
  const int fd = args.fd;
  if (socket_type(fd) != SOCK_STREAM) return real();
  const bool inet = is_inet_stream(fd);
  if (fd_nonblocking(fd)) {
    if (inet && net_tarpit_connect(fd, args.addr, args.addr_len, d.fault)) {
      errno = EINPROGRESS;
      return -1;
    }
    // A unix listener that never accepts: its backlog is full (connect(2): EAGAIN). Also the
    // answer when no tarpit can be made.
    errno = inet ? ETIMEDOUT : EAGAIN;
    return -1;
  }
  const std::int64_t sndtimeo = socket_timeout_ns(fd, SO_SNDTIMEO);
  const std::int64_t limit = d.timeout_ns > 0 ? d.timeout_ns : kDefaultConnectTimeoutNs;
  const bool by_sndtimeo = sndtimeo > 0 && sndtimeo < limit;
  const std::int64_t deadline = monotonic_ns() + (by_sndtimeo ? sndtimeo : limit);
  switch (net_wait_partition(guard, d.fault, args, deadline, sndtimeo > 0)) {
    case WaitEnd::kLifted:
      return real();
    case WaitEnd::kInterrupted:
      errno = EINTR;
      return -1;
    case WaitEnd::kDeadline:
      break;
  }
  if (by_sndtimeo) {
    // Linux: a blocking connect that outlives SO_SNDTIMEO returns EINPROGRESS and keeps
    // connecting in the background; here it keeps "connecting" at the tarpit.
    if (inet && net_tarpit_connect(fd, args.addr, args.addr_len, d.fault)) {
      errno = EINPROGRESS;
      return -1;
    }
    errno = inet ? ETIMEDOUT : EAGAIN;
    return -1;
  }
  errno = ETIMEDOUT;
  return -1;
}

// `latency` on connect (net_hold.h): the real connect is made first (the peer sees it), and
// the program sees it complete `latency` later. Non-blocking: EINPROGRESS, not writable and
// SO_ERROR 0 only from then on. Blocking: waits, bounded by SO_SNDTIMEO (then EINPROGRESS,
// as Linux says, the socket still "connecting").
struct ConnectHold {
  const Guard* guard;
  int fd;
  std::int64_t timeout_deadline;  // SO_SNDTIMEO's, -1 none
};

bool connect_still_held(void* ctx, std::int64_t& deadline_ns) {
  auto& hold = *static_cast<ConnectHold*>(ctx);
  std::int64_t ready = -1;
  if (!net_hold_connecting(*hold.guard, hold.fd, &ready)) return false;
  deadline_ns = hold.timeout_deadline >= 0 ? std::min(ready, hold.timeout_deadline) : ready;
  return true;
}

template <class Fn>
int connect_latency(const Guard& guard, const Decision& d, const CallArgs& args, Fn real) {
  const int fd = args.fd;
  const int r = real();
  if (r != 0 && errno != EINPROGRESS) {  // refused at once (a local peer): said as it is
    emit_event(d, args, -1);
    return r;
  }
  if (!net_hold_connect(guard, d, args)) return r;  // the table is full: not held
  if (r != 0 || fd_nonblocking(fd)) {
    errno = EINPROGRESS;
    return -1;
  }
  const std::int64_t sndtimeo = socket_timeout_ns(fd, SO_SNDTIMEO);
  ConnectHold hold{&guard, fd, sndtimeo > 0 ? monotonic_ns() + sndtimeo : -1};
  std::int64_t deadline = -1;
  if (!connect_still_held(&hold, deadline)) return 0;
  switch (shim_wait(guard, args.call, deadline,
                    sndtimeo > 0 ? OnSignal::kEnd : OnSignal::kEndUnlessRestart, connect_still_held,
                    &hold)) {
    case WaitEnd::kLifted:
      return 0;
    case WaitEnd::kInterrupted:
      errno = EINTR;
      return -1;
    case WaitEnd::kDeadline:
      break;
  }
  if (net_hold_connecting(guard, fd)) {  // SO_SNDTIMEO passed first
    errno = EINPROGRESS;
    return -1;
  }
  return 0;
}

FL_COLD int connect_slow(int fd, const struct sockaddr* addr, socklen_t len) {
  auto real = [=] { return FL_REAL(connect)(fd, addr, len); };
  Guard guard;
  if (!guard.entered()) return real();
  const SockState st = sock_load_verified(fd);
  if (st.flags() & kSockTarpit) {
    // connect() again on a socket waiting at the tarpit: EALREADY from the kernel, or, once
    // the partition was lifted, the answer for a connect now really in progress.
    net_still_held(guard, fd, st);
    return real();
  }
  if (st.flags() & kSockPendingError) {
    ssize_t answered = -1;
    net_io_before(guard, CallArgs{kCall_connect, fd}, true, st, answered);
    return static_cast<int>(answered);
  }
  if ((st.flags() & kSockLatency) && net_hold_connecting(guard, fd)) {
    errno = EALREADY;  // still "connecting" (latency)
    return -1;
  }
  // A new connect: a peer the `addr` selector remembered is not this socket's any more.
  sock_forget_peer(fd);
  // A TCP socket that a reset disconnected may connect again: a new connection, not reset.
  if (st.flags() & kSockReset) sock_store(fd, st, st.flags() & ~kSockReset, 0, 0);
  // The address, copied fault-safely before anything reads it (the selectors, the tarpit's
  // record of the peer): one the kernel would refuse (unreadable: EFAULT; too long: EINVAL)
  // goes to it undecided.
  struct sockaddr_storage copy;
  if (!addr || len == 0 || len > sizeof copy || safe_read(&copy, addr, len) != SafeCopy::kOk)
    return real();
  CallArgs args{kCall_connect, fd};
  args.addr = reinterpret_cast<const struct sockaddr*>(&copy);
  args.addr_len = len;
  Decision d;
  if (!decide(guard, args, d) || !d.inject) {
    // Connected (or on its way): the peer is the address asked for, learned here instead of
    // by a getpeername at the socket's first call (net_learn_connect_peer says when).
    const int r = real();
    if (r == 0 || errno == EINPROGRESS) {
      const int saved = errno;
      net_learn_connect_peer(fd, args.addr, len);
      errno = saved;
    }
    return r;
  }
  apply_delay(guard, d, args);
  if (d.action == kActCrash)
    apply_crash(d, args, [&] {
      real();
      return std::int64_t{-1};
    });
  if (d.action & kActHolds) return connect_latency(guard, d, args, real);
  switch (d.action) {
    case kActError:
      return connect_error(d, args);
    case kActReset:
      return connect_reset(d, args, real);
    case kActBlackhole:
      return connect_blackhole(guard, d, args, real);
    default:
      emit_event(d, args, -1);
      return real();
  }
}

// ---- accept ---------------------------------------------------------------------------------

// `reset` on accept: the connection is accepted and at once aborted — the client sees a
// reset, and the program gets the fd with every receive on it failing ECONNRESET.
template <class Fn>
FL_COLD int accept_slow(std::uint32_t call, int fd, struct sockaddr* addr, socklen_t* len,
                        Fn real_at) {
  Guard guard;
  if (!guard.entered()) return track_new_fd(real_at(addr, len));
  // The new connection's peer comes with it (net_learn_accept_peer): the program's buffer as
  // the kernel filled it, or, when it passed none, ours (the kernel fills it either way), so
  // that no `addr` selector or event asks getpeername for it later.
  struct sockaddr_storage own;
  socklen_t own_len = sizeof own;
  socklen_t room = 0;  // the program's buffer size, read before the call fills in the length
  if (addr && len && safe_read(&room, len, sizeof room) != SafeCopy::kOk) room = 0;
  auto real = [&] {
    const int r =
        addr ? real_at(addr, len) : real_at(reinterpret_cast<struct sockaddr*>(&own), &own_len);
    if (r < 0) return r;
    const int saved = errno;
    const int tracked = track_new_fd(r);
    if (addr) {
      // What the kernel wrote there; an address cut short by the program's buffer (or one
      // that cannot be read back) is left to getpeername.
      socklen_t got = 0;
      own_len = 0;
      if (len && room > 0 && safe_read(&got, len, sizeof got) == SafeCopy::kOk && got <= room &&
          got <= sizeof own && safe_read(&own, addr, got) == SafeCopy::kOk)
        own_len = got;
    }
    net_learn_accept_peer(tracked, reinterpret_cast<const struct sockaddr*>(&own), own_len);
    errno = saved;
    return tracked;
  };
  CallArgs args{call, fd};
  Decision d;
  const bool injected = decide(guard, args, d) && d.inject;
  // `latency` on a listener (net_hold.h): a new connection is reported that much later.
  if (FL_UNLIKELY((injected && (d.action & kActHolds)) ||
                  (!injected && (sock_load(fd).flags() & kSockLatency)))) {
    Decision* taken = injected ? &d : nullptr;
    if (taken && !apply_delay(guard, d, args)) taken = nullptr;
    const HoldAnswer answer = net_hold_receive_gate(guard, args, taken, 1);
    if (answer.gate == HoldGate::kFail) return -1;
    const int r = real();
    net_hold_consumed(args, r);
    return r;
  }
  if (!injected) return real();
  auto run = [&] { return real(); };
  const auto fail = fail_call<int>(args);
  return apply_decision(guard, d, args, run, fail, [&](const Decision& dd, int& out) {
    if (dd.action != kActReset) return false;
    out = run();
    emit_event(dd, args, -1);
    if (out >= 0 && net_abort(out)) net_mark_reset(out, dd.fault);
    return true;
  });
}

// ---- the data calls -------------------------------------------------------------------------

template <class Fn>
FL_COLD ssize_t buf_send_slow(std::uint32_t call, int fd, const void* buf, size_t len, int flags,
                              const struct sockaddr* to, socklen_t tolen, Fn real) {
  Guard guard;
  if (!guard.entered()) return real(buf, len);
  CallArgs args{call, fd};
  args.size = len;
  args.has_size = true;
  args.msg_flags = flags;
  args.addr = to;
  args.addr_len = to ? tolen : 0;
  BufWrite<Fn> io{buf, len, real};
  return io_slow_path(guard, args, io);
}

template <class Fn>
FL_COLD ssize_t buf_recv_slow(std::uint32_t call, int fd, void* buf, size_t len, int flags,
                              Fn real) {
  Guard guard;
  if (!guard.entered()) return real(buf, len);
  CallArgs args{call, fd};
  args.size = len;
  args.has_size = true;
  args.msg_flags = flags;
  BufRead<Fn> io{buf, len, real};
  return io_slow_path(guard, args, io);
}

// sendmsg/recvmsg run over the message's iovec. The msghdr and its iovec are read
// fault-safely first; a message the kernel would refuse (unreadable, msg_iovlen past
// UIO_MAXIOV, a bad iovec) goes to the kernel undecided. The unchanged call gets the caller's
// own msghdr; shortened or corrupted calls get a private copy with the iovec replaced.
FL_COLD ssize_t sendmsg_slow(int fd, const struct msghdr* msg, int flags) {
  Guard guard;
  struct msghdr m;
  if (!guard.entered() || !msg || safe_read(&m, msg, sizeof m) != SafeCopy::kOk ||
      m.msg_iovlen > static_cast<std::size_t>(kIovMax))
    return FL_REAL(sendmsg)(fd, msg, flags);
  const int cnt = static_cast<int>(m.msg_iovlen);
  CallArgs args{kCall_sendmsg, fd};
  if (!iov_total_safe(m.msg_iov, cnt, args.size)) return FL_REAL(sendmsg)(fd, msg, flags);
  args.has_size = true;
  args.msg_flags = flags;
  if (m.msg_name && m.msg_namelen > 0) {  // read fault-safely by the selector (net_select.cpp)
    args.addr = static_cast<const struct sockaddr*>(m.msg_name);
    args.addr_len = m.msg_namelen;
  }
  auto real = [fd, msg, flags, &m](const struct iovec* v, int c) {
    if (v == m.msg_iov && static_cast<std::size_t>(c) == m.msg_iovlen)
      return FL_REAL(sendmsg)(fd, msg, flags);
    struct msghdr copy = m;
    copy.msg_iov = const_cast<struct iovec*>(v);
    copy.msg_iovlen = static_cast<size_t>(c);
    return FL_REAL(sendmsg)(fd, &copy, flags);
  };
  IovWrite<decltype(real)> io{m.msg_iov, cnt, args.size, real};
  return io_slow_path(guard, args, io);
}

FL_COLD ssize_t recvmsg_slow(int fd, struct msghdr* msg, int flags) {
  Guard guard;
  struct msghdr m;
  if (!guard.entered() || !msg || safe_read(&m, msg, sizeof m) != SafeCopy::kOk ||
      m.msg_iovlen > static_cast<std::size_t>(kIovMax))
    return FL_REAL(recvmsg)(fd, msg, flags);
  const int cnt = static_cast<int>(m.msg_iovlen);
  CallArgs args{kCall_recvmsg, fd};
  if (!iov_total_safe(m.msg_iov, cnt, args.size)) return FL_REAL(recvmsg)(fd, msg, flags);
  args.has_size = true;
  args.msg_flags = flags;
  auto real = [fd, msg, flags, &m](const struct iovec* v, int c) {
    if (v == m.msg_iov && static_cast<std::size_t>(c) == m.msg_iovlen)
      return FL_REAL(recvmsg)(fd, msg, flags);
    struct msghdr copy = m;
    copy.msg_iov = const_cast<struct iovec*>(v);
    copy.msg_iovlen = static_cast<size_t>(c);
    ssize_t r = FL_REAL(recvmsg)(fd, &copy, flags);
    // What the kernel reports back about the message belongs in the caller's msghdr, written
    // fault-safely (a read-only msghdr is not the shim's to crash on).
    const int saved = errno;
    safe_write(&msg->msg_namelen, &copy.msg_namelen, sizeof copy.msg_namelen);
    safe_write(&msg->msg_controllen, &copy.msg_controllen, sizeof copy.msg_controllen);
    safe_write(&msg->msg_flags, &copy.msg_flags, sizeof copy.msg_flags);
    errno = saved;
    return r;
  };
  IovRead<decltype(real)> io{m.msg_iov, cnt, args.size, real};
  return io_slow_path(guard, args, io);
}

// A blackholed sendmmsg "sends" every message whole: each msg_len is set to its iovec's total,
// read and written fault-safely. It stops where the kernel would: at the first message it
// could not read (an unreadable first message is the kernel's EFAULT to report:
// kMmsgRunReal, run the real call). At most UIO_MAXIOV messages, as the kernel caps vlen.
constexpr int kMmsgRunReal = -2;
int mmsg_blackhole_send(struct mmsghdr* vec, unsigned vlen) {
  const unsigned n = vlen < static_cast<unsigned>(kIovMax) ? vlen : static_cast<unsigned>(kIovMax);
  unsigned done = 0;
  for (; done < n; ++done) {
    struct mmsghdr one;
    std::uint64_t total = 0;
    if (safe_read(&one, &vec[done], sizeof one) != SafeCopy::kOk ||
        one.msg_hdr.msg_iovlen > static_cast<std::size_t>(kIovMax) ||
        !iov_total_safe(one.msg_hdr.msg_iov, static_cast<long>(one.msg_hdr.msg_iovlen), total))
      break;
    const unsigned len = total > UINT32_MAX ? UINT32_MAX : static_cast<unsigned>(total);
    if (safe_write(&vec[done].msg_len, &len, sizeof len) != SafeCopy::kOk) break;
  }
  return done == 0 && n > 0 ? kMmsgRunReal : static_cast<int>(done);
}

// sendmmsg/recvmmsg: whole batches; error, delay, crash, reset, blackhole.
template <class Fn>
FL_COLD int mmsg_slow(std::uint32_t call, int fd, struct mmsghdr* vec, unsigned vlen, int flags,
                      Fn real) {
  const bool send = call == kCall_sendmmsg;
  Guard guard;
  if (!guard.entered()) return real();
  CallArgs args{call, fd};
  args.msg_flags = flags;
  if (vlen > 0) {
    // The first message, read fault-safely: one the kernel cannot read is its EFAULT.
    struct mmsghdr first;
    if (safe_read(&first, vec, sizeof first) != SafeCopy::kOk) return real();
    if (send && first.msg_hdr.msg_name) {  // read fault-safely by the selector
      args.addr = static_cast<const struct sockaddr*>(first.msg_hdr.msg_name);
      args.addr_len = first.msg_hdr.msg_namelen;
    }
  }
  const SockState st = sock_load_verified(fd);
  if (st.flags() != 0) {
    ssize_t answered = -1;
    switch (net_io_before(guard, args, send, st, answered)) {
      case NetBefore::kAnswered:
        return static_cast<int>(answered);
      case NetBefore::kRunReal:
        return real();
      case NetBefore::kDecide:
        break;
    }
  }
  Decision d;
  const bool decided = decide(guard, args, d);
  if ((st.flags() & kSockPartitioned) && !(decided && d.inject && d.action == kActBlackhole))
    net_heal(guard, fd);
  if (!send) {  // `latency`, `loss`, `bandwidth` (net_hold.h): one visible message at a time
    const bool injected = decided && d.inject;
    if (FL_UNLIKELY((injected && (d.action & kActHolds) && net_hold_applies(d, args)) ||
                    (!injected && (st.flags() & kSockLatency)))) {
      Decision* taken = injected ? &d : nullptr;
      if (taken && !apply_delay(guard, d, args)) taken = nullptr;
      if (net_hold_receive_gate(guard, args, taken, 1).gate == HoldGate::kFail) return -1;
      // The message after the first may not be visible yet: one per call while held.
      const int r = vlen > 1 ? FL_REAL(recvmmsg)(fd, vec, 1, flags, nullptr) : real();
      unsigned len = 0;
      if (r == 1 && safe_read(&len, &vec[0].msg_len, sizeof len) == SafeCopy::kOk)
        net_hold_consumed(args, static_cast<ssize_t>(len));
      return r;
    }
  }
  if (!decided || !d.inject) return real();
  const auto fail = fail_call<int>(args);
  return apply_decision(guard, d, args, real, fail, [&](const Decision& dd, int& out) {
    switch (dd.action) {
      case kActReset:
        emit_event(dd, args, -1);
        out = static_cast<int>(net_reset_io(dd, args));
        return true;
      case kActBlackhole: {
        net_mark_partitioned(dd, fd);
        emit_event(dd, args, -1);
        if (send) {  // swallowed: every message "sent" whole
          const int sent = mmsg_blackhole_send(vec, vlen);
          out = sent == kMmsgRunReal ? real() : sent;
          return true;
        }
        const ssize_t r = net_blackhole_receive(guard, dd, args);
        if (r != kBlackholeLifted) {
          out = static_cast<int>(r);
          return true;
        }
        net_heal(guard, fd);
        out = real();
        return true;
      }
      case kActEof: {  // recvmmsg: one message of end-of-file (net_cut.h)
        net_eof_receive(dd, args);
        const unsigned len = 0;
        out = vlen > 0 && safe_write(&vec[0].msg_len, &len, sizeof len) == SafeCopy::kOk ? 1 : 0;
        return true;
      }
      default:
        return false;
    }
  });
}

}  // namespace
}  // namespace faultline::shim

using namespace faultline;
using namespace faultline::shim;

FL_EXPORT int socket(int domain, int type, int protocol) {
  if (FL_LIKELY(!armed(kFamNet))) return track_new_fd(FL_REAL(socket)(domain, type, protocol));
  const int fd = plain_slow(CallArgs{kCall_socket}, true,
                            [=] { return FL_REAL(socket)(domain, type, protocol); });
  // Its connect will give it its peer for good (net_learn_connect_peer).
  if (fd >= 0 && (type & 0xf) == SOCK_STREAM) sock_mark_stream(fd);
  return fd;
}

FL_EXPORT int connect(int fd, const struct sockaddr* addr, socklen_t len) {
  // A socket waiting at the tarpit heals on its next connect even after the last @net fault
  // was disarmed (sock_any_marked: one more load, only for connect).
  if (FL_LIKELY(!armed(kFamNet) && !sock_any_marked())) {
    // A socket connected again (after connect(AF_UNSPEC)) while nothing is armed must not keep
    // the peer the `addr` selector remembered: a fault armed later judges its new peer. One
    // more load, once any peer was ever remembered in this process.
    if (FL_UNLIKELY(sock_any_peer_remembered())) sock_forget_peer(fd);
    return FL_REAL(connect)(fd, addr, len);
  }
  return connect_slow(fd, addr, len);
}

FL_EXPORT int accept(int fd, struct sockaddr* addr, socklen_t* len) {
  if (FL_LIKELY(!armed(kFamNet))) return track_new_fd(FL_REAL(accept)(fd, addr, len));
  return accept_slow(kCall_accept, fd, addr, len, [=](struct sockaddr* to, socklen_t* to_len) {
    return FL_REAL(accept)(fd, to, to_len);
  });
}

FL_EXPORT int accept4(int fd, struct sockaddr* addr, socklen_t* len, int flags) {
  if (FL_LIKELY(!armed(kFamNet))) return track_new_fd(FL_REAL(accept4)(fd, addr, len, flags));
  return accept_slow(kCall_accept4, fd, addr, len, [=](struct sockaddr* to, socklen_t* to_len) {
    return FL_REAL(accept4)(fd, to, to_len, flags);
  });
}

FL_EXPORT int bind(int fd, const struct sockaddr* addr, socklen_t len) {
  // A listener's own address that accept's `addr` remembered may be about to change (one
  // more load, once any address was ever remembered in this process).
  if (FL_UNLIKELY(sock_any_peer_remembered())) sock_forget_peer(fd);
  if (FL_LIKELY(!armed(kFamNet))) return FL_REAL(bind)(fd, addr, len);
  CallArgs args{kCall_bind, fd};
  args.addr = addr;
  args.addr_len = len;
  return plain_slow(args, false, [=] { return FL_REAL(bind)(fd, addr, len); });
}

FL_EXPORT int listen(int fd, int backlog) {
  if (FL_UNLIKELY(sock_any_peer_remembered())) sock_forget_peer(fd);  // as bind
  if (FL_LIKELY(!armed(kFamNet))) return FL_REAL(listen)(fd, backlog);
  return plain_slow(CallArgs{kCall_listen, fd}, false,
                    [=] { return FL_REAL(listen)(fd, backlog); });
}

FL_EXPORT ssize_t send(int fd, const void* buf, size_t len, int flags) {
  if (FL_LIKELY(!armed(kFamNet))) return FL_REAL(send)(fd, buf, len, flags);
  return buf_send_slow(kCall_send, fd, buf, len, flags, nullptr, 0,
                       [=](const void* b, size_t n) { return FL_REAL(send)(fd, b, n, flags); });
}

FL_EXPORT ssize_t sendto(int fd, const void* buf, size_t len, int flags, const struct sockaddr* to,
                         socklen_t tolen) {
  if (FL_LIKELY(!armed(kFamNet))) return FL_REAL(sendto)(fd, buf, len, flags, to, tolen);
  return buf_send_slow(kCall_sendto, fd, buf, len, flags, to, tolen, [=](const void* b, size_t n) {
    return FL_REAL(sendto)(fd, b, n, flags, to, tolen);
  });
}

FL_EXPORT ssize_t sendmsg(int fd, const struct msghdr* msg, int flags) {
  if (FL_LIKELY(!armed(kFamNet))) return FL_REAL(sendmsg)(fd, msg, flags);
  return sendmsg_slow(fd, msg, flags);
}

FL_EXPORT int sendmmsg(int fd, struct mmsghdr* vec, unsigned int vlen, int flags) {
  if (FL_LIKELY(!armed(kFamNet))) return FL_REAL(sendmmsg)(fd, vec, vlen, flags);
  return mmsg_slow(kCall_sendmmsg, fd, vec, vlen, flags,
                   [=] { return FL_REAL(sendmmsg)(fd, vec, vlen, flags); });
}

FL_EXPORT ssize_t recv(int fd, void* buf, size_t len, int flags) {
  if (FL_LIKELY(!armed(kFamNet))) return FL_REAL(recv)(fd, buf, len, flags);
  return buf_recv_slow(kCall_recv, fd, buf, len, flags,
                       [=](void* b, size_t n) { return FL_REAL(recv)(fd, b, n, flags); });
}

FL_EXPORT ssize_t recvfrom(int fd, void* buf, size_t len, int flags, struct sockaddr* from,
                           socklen_t* fromlen) {
  if (FL_LIKELY(!armed(kFamNet))) return FL_REAL(recvfrom)(fd, buf, len, flags, from, fromlen);
  return buf_recv_slow(kCall_recvfrom, fd, buf, len, flags, [=](void* b, size_t n) {
    return FL_REAL(recvfrom)(fd, b, n, flags, from, fromlen);
  });
}

FL_EXPORT ssize_t recvmsg(int fd, struct msghdr* msg, int flags) {
  if (FL_LIKELY(!armed(kFamNet))) return FL_REAL(recvmsg)(fd, msg, flags);
  return recvmsg_slow(fd, msg, flags);
}

FL_EXPORT int recvmmsg(int fd, struct mmsghdr* vec, unsigned int vlen, int flags,
                       struct timespec* timeout) {
  if (FL_LIKELY(!armed(kFamNet))) return FL_REAL(recvmmsg)(fd, vec, vlen, flags, timeout);
  return mmsg_slow(kCall_recvmmsg, fd, vec, vlen, flags,
                   [=] { return FL_REAL(recvmmsg)(fd, vec, vlen, flags, timeout); });
}
