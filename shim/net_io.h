// @net on the shared byte-moving slow path (io.h): what happens to send/recv/read/write on a
// socket that a fault reset, partitioned, left waiting at the tarpit or failed to connect, and
// the two actions only sockets take, `reset` and `blackhole`. The connection techniques
// themselves (abort with connect(AF_UNSPEC), the tarpit, the refuser) are in net_core.cpp.
#pragma once

#include <errno.h>
#include <sys/types.h>

#include <cstdint>

#include "shim/engine/engine.h"
#include "shim/engine/sock_table.h"

namespace faultline::shim {

// Runs before decide() for a socket with a state: receives on a reset socket fail
// ECONNRESET and sends go to the kernel (which says EPIPE); any call on a socket whose
// non-blocking connect an `error` fault failed reports that error once. A socket at the
// tarpit whose fault was lifted is reconnected to its peer, then the call goes on.
enum class NetBefore {
  kDecide,    // go on: decide() as for any call
  kAnswered,  // `result` and errno are the call's answer
  kRunReal,   // run the real call without deciding (a send on a reset socket: EPIPE)
};
NetBefore net_io_before(const Guard& guard, const CallArgs& args, bool send, SockState state,
                        ssize_t& result) noexcept;

// A call on a partitioned socket ran without being blackholed: the partition is over for it
// (heals the socket: back into its epoll set, no longer hidden from poll).
void net_heal(const Guard& guard, int fd) noexcept;

// `reset` on a data call: aborts the connection (the peer sees a reset, or EOF on a unix
// socket), marks the fd, and fails this call with ECONNRESET (ECONNREFUSED on a datagram
// socket, which has no connection to reset).
ssize_t net_reset_io(const Decision& d, const CallArgs& args) noexcept;

// The receive side of `blackhole`: EAGAIN at once on a non-blocking socket (or MSG_DONTWAIT);
// otherwise waits as a real partition would — until the socket's SO_RCVTIMEO (then EAGAIN),
// or forever — and returns kBlackholeLifted as soon as the fault is lifted: the caller then
// heals the socket and runs the real call. A signal interrupts the wait with EINTR when the program
// catches one without SA_RESTART, as the kernel would. A cancellation point (not noexcept, nor may
// its callers be).
inline constexpr ssize_t kBlackholeLifted = -2;  // not -1: that is an error with errno set
ssize_t net_blackhole_receive(const Guard& guard, const Decision& d, const CallArgs& args);
// Records that a blackhole holds this socket (poll hides it until the fault is lifted).
void net_mark_partitioned(const Decision& d, int fd) noexcept;

// `blackhole` on a byte-moving call: sends are swallowed as if sent (the full count), receives
// never get data. Emits the event.
template <class Io>
ssize_t net_blackhole_io(const Guard& guard, const Decision& d, const CallArgs& args, Io& io) {
  net_mark_partitioned(d, args.fd);
  if constexpr (Io::kSend) {
    emit_event(d, args, static_cast<std::int64_t>(io.size()));
    return static_cast<ssize_t>(io.size());
  } else {
    emit_event(d, args, -1);
    ssize_t r = net_blackhole_receive(guard, d, args);
    if (r == kBlackholeLifted) {
      net_heal(guard, args.fd);
      return io.run();
    }
    return r;
  }
}

}  // namespace faultline::shim
