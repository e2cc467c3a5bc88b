// The shared slow path of every call that moves bytes (write/read families and the socket
// data calls): one implementation of error, delay, short, corrupt, quota, reset and blackhole
// (a crash through apply.h's apply_crash, like every family) over an `Io` adapter that knows how to
// run the real call whole, shortened or on a copy.
#pragma once

#include <errno.h>

#include <cstdlib>
#include <cstring>

#include "shim/apply.h"
#include "shim/engine/engine.h"
#include "shim/engine/file_rate.h"
#include "shim/engine/net_cut.h"
#include "shim/engine/net_hold.h"
#include "shim/engine/safe_copy.h"
#include "shim/net_io.h"

namespace faultline::shim {

// Io concept:
//   std::uint64_t size() const;                      bytes asked for
//   ssize_t run();                                    the real call, unchanged
//   ssize_t run_limited(std::uint64_t n);             the real call moving at most n bytes
//   ssize_t run_corrupted(const Decision& d);         writes: on a corrupted private copy;
//                                                     reads: then corrupt what was read
//   static constexpr bool kSend;                      moves bytes out (write/send) or in
// A byte count as an event's `bytes` (int64): counts past INT64_MAX saturate instead of
// turning negative.
inline std::int64_t event_bytes(std::uint64_t n) {
  return n > static_cast<std::uint64_t>(INT64_MAX) ? INT64_MAX : static_cast<std::int64_t>(n);
}

// The data calls' form of call_named_by_none (engine.h): io_slow_path also acts, undecided,
// on a socket a fault left in a state (reset, partitioned, held), so the shortcut is taken
// only while no socket ever had one (one load; a session that gave one decides as before).
// No call in it: the slow paths' fronts keep no frame on their way to deciding, which a
// signal handler's stack would pay (docs/reliability.md).
[[gnu::always_inline]] inline bool io_call_named_by_none(std::uint32_t call) noexcept {
  return call_named_by_none(call) && !sock_any_state_ever();
}

// The real call of a front that found the call named by none, out of line: the front's two
// ways out are then both tail calls, and it builds no frame (the lambda's `this` would make
// it spill one on the way to deciding too).
template <class Fn, class Buf>
[[gnu::noinline]] FL_COLD ssize_t run_real(Fn real, Buf buf, size_t count) {
  return real(buf, count);
}

template <class Io>
ssize_t io_slow_path(const Guard& guard, const CallArgs& args, Io& io) {
  // @net: a socket a fault reset, partitioned or failed to connect (net_io.h). One load of
  // the socket table; zero flags for every fd @net never touched.
  const SockState sock = sock_load_verified(args.fd);
  if (FL_UNLIKELY(sock.flags() != 0)) {
    ssize_t answered = -1;
    switch (net_io_before(guard, args, Io::kSend, sock, answered)) {
      case NetBefore::kAnswered:
        return answered;
      case NetBefore::kRunReal:
        return io.run();
      case NetBefore::kDecide:
        break;
    }
  }
  Decision d;
  const bool decided = decide(guard, args, d);
  // A partitioned socket's call that no blackhole took: the partition is over for it.
  if (FL_UNLIKELY(sock.flags() & kSockPartitioned) &&
      !(decided && d.inject && d.action == kActBlackhole))
    net_heal(guard, args.fd);
  // @net `latency`, `loss`, `bandwidth` (net_hold.h): a receive such a fault takes, or one on a
  // socket it holds that no other fault takes, gets only what is visible.
  if constexpr (!Io::kSend) {
    const bool injected = decided && d.inject;
    if (FL_UNLIKELY((injected && (d.action & kActHolds) && net_hold_applies(d, args)) ||
                    (!injected && (sock.flags() & kSockLatency))))
      return net_hold_receive(guard, args, io, injected ? &d : nullptr);
  } else {
    // `loss` drops a datagram sent; `bandwidth` limits a socket's sends.
    const bool injected = decided && d.inject;
    if (FL_UNLIKELY((injected && (d.action & kActHolds) && net_hold_applies(d, args)) ||
                    (!injected && (sock.flags() & kSockLatency) && net_hold_limits_sends(args.fd))))
      return net_hold_send(guard, args, io, injected ? &d : nullptr);
  }
  if (!decided) return run_counted(args, io);  // after_bytes: cut and counted (net_cut.h)
  if (d.quota) {
    std::uint64_t want = io.size();
    std::uint64_t room = quota_reserve(d, want);
    if (room == want) {
      ssize_t r = io.run();
      quota_release(d, want - static_cast<std::uint64_t>(r > 0 ? r : 0));
      return r;
    }
    if (!quota_claim(d)) {  // spent (times, max_faults): the quota no longer limits
      quota_release(d, room);
      return io.run();
    }
    if (!apply_delay(guard, d, args)) {  // lifted while held: the call runs unfaulted
      quota_release(d, room);
      emit_event(d, args, -1);
      return io.run();
    }
    // A full disk: a short write at the boundary, then ENOSPC.
    d.error = d.error ? d.error : ENOSPC;
    if (room == 0) {
      d.action = kActError;
      emit_event(d, args, 0);
      return fail_as<ssize_t>(args.call, cause_of(d));
    }
    d.action = kActQuota;
    emit_event(d, args, event_bytes(room));
    ssize_t r = io.run_limited(room);
    quota_release(d, room - static_cast<std::uint64_t>(r > 0 ? r : 0));
    return r;
  }
  // bandwidth on a file: held, like a delay, as long as its bytes need (file_rate.h).
  if (d.action == kActBandwidth) d.delay_ns += file_bandwidth_ns(d, args.fd, io.size());
  apply_delay(guard, d, args);
  if (d.action == kActCrash) apply_crash(d, args, [&] { return std::int64_t{io.run()}; });
  switch (d.action) {
    case kActError:
      emit_event(d, args, -1);
      return fail_as<ssize_t>(args.call, cause_of(d));
    case kActReset:
      emit_event(d, args, -1);
      return net_reset_io(d, args);
    case kActBlackhole:
      return net_blackhole_io(guard, d, args, io);
    case kActEof:  // receives only (the compiler refuses it elsewhere)
      return net_eof_receive(d, args);
    case kActShort: {
      std::uint64_t n = short_length(d, io.size());
      emit_event(d, args, event_bytes(n));
      return io.run_limited(n);
    }
    case kActCorrupt:
      emit_event(d, args, event_bytes(io.size()));
      return io.run_corrupted(d);
    default:  // delay only; bandwidth on a file (held above)
      emit_event(d, args, -1);
      return run_counted(args, io);
  }
}

// Writes through a private, corrupted copy: the caller's buffer is never touched. The copy
// is mmap'd (no malloc on a path a signal handler reaches) and read fault-safely: a buffer
// the kernel would refuse goes to the kernel as it is, which answers EFAULT.
template <class Fn>
ssize_t write_corrupted_copy(const Decision& d, const void* buf, std::size_t count, Fn&& real) {
  CopyScratch copy(count);
  if (!copy.ok() || safe_read(copy.data(), buf, count) != SafeCopy::kOk) return real(buf, count);
  corrupt_buffer(d, copy.data(), count);
  return real(copy.data(), count);
}

}  // namespace faultline::shim
