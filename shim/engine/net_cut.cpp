// The `eof` action (see net_cut.h).
//
// Why the shim answers later receives itself: shutdown(SHUT_RD) does not make the kernel
// report end-of-file while data is queued. Linux's tcp_recvmsg and unix_stream_read_generic
// both copy what is already in the receive queue and look at RCV_SHUTDOWN only once it is
// empty, and TCP keeps accepting the peer's segments after SHUT_RD. So the socket is marked
// (kSockEof, sock_table.h) and every later receive on it answers 0 without reaching the
// kernel, as a connection that really ended would. The kernel's part is the peer's view and
// poll's: SHUT_WR sends the FIN after anything already queued for sending (TCP) or makes the
// peer's reads return 0 (unix), and SHUT_RD makes poll/epoll report the socket readable
// (POLLIN|POLLRDHUP, with POLLHUP as both directions are shut), so an event loop wakes up to
// read its end-of-file.
#include "shim/engine/net_cut.h"

#include <errno.h>
#include <sys/socket.h>

#include "shim/engine/net_core.h"
#include "shim/engine/sock_table.h"

namespace faultline::shim {

ssize_t net_eof_receive(const Decision& d, const CallArgs& args) noexcept {
  emit_event(d, args, 0);
  const int type = socket_type(args.fd);
  if (type == SOCK_STREAM || type == SOCK_SEQPACKET) {
    const int saved = errno;
    shutdown(args.fd, SHUT_RDWR);  // ENOTCONN on a socket never connected: nothing to end
    errno = saved;
    for (int attempt = 0; attempt < 8; ++attempt) {
      const SockState st = sock_load(args.fd);
      if (sock_store(args.fd, st, st.flags() | kSockEof, d.fault, st.error())) break;
    }
  }
  // A datagram socket has no connection to end: this receive reads an empty datagram.
  return 0;
}

}  // namespace faultline::shim
