// A connection cut mid-stream: the `eof` action and the `after_bytes` trigger on the shared
// byte-moving path (io.h). `eof` ends the connection cleanly for the program and its peer;
// `after_bytes` lets a fault act only once that many bytes have passed on the socket in the
// call's direction, cutting the call that crosses the boundary exactly at it (the counters:
// sock_bytes.h). See docs/network.md, "eof and after_bytes".
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <cstdint>

#include "shim/engine/engine.h"
#include "shim/engine/sock_bytes.h"

namespace faultline::shim {

// Runs the call as it is; when decide() marked it for after_bytes (CallArgs::byte_dir), at
// most up to the boundary, and counts what it moved. A peek (MSG_PEEK) consumes nothing and
// counts nothing.
template <class Io>
ssize_t run_counted(const CallArgs& args, Io& io) {
  if (FL_LIKELY(args.byte_dir < 0)) return io.run();
  const ssize_t r = args.byte_room < io.size() ? io.run_limited(args.byte_room) : io.run();
  if (r > 0 && !(args.msg_flags & MSG_PEEK))
    sock_bytes_add(args.fd, args.byte_dir, ByteCount{args.byte_seen},
                   static_cast<std::uint64_t>(r));
  return r;
}

// `eof` on a receive: the program reads end-of-file (0) now and on every later receive, and a
// stream socket is shut down both ways, so that the peer reads end-of-file too (the FIN) and
// poll reports the socket readable, as after a real close by the peer. Emits the event.
ssize_t net_eof_receive(const Decision& d, const CallArgs& args) noexcept;

}  // namespace faultline::shim
