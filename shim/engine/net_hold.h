// `latency` on @net: "not ready until T", per socket, in the preload. What a socket receives
// becomes visible to the program `latency` after it arrived; a connect completes `latency`
// later; a listener reports a new connection `latency` later. Nothing is delayed in the
// kernel: the shim observes arrivals (the queued byte count, FIONREAD, whenever it looks at a
// held socket: a receive, or a poll-family wait the kernel answers readable), records each as
// a segment of the stream with the time it becomes visible, and then
//
// - a receive takes at most the visible bytes (a short read; a datagram socket's head
//   datagram, a listener's next connection, is one segment); with none visible: EAGAIN on a
//   non-blocking socket, a sliced wait on a blocking one (bounded by SO_RCVTIMEO);
// - the poll family hides readability (and, while a connect is "in progress", writability)
//   until the data is visible, and wakes the program exactly then (net_poll.cpp);
// - epoll registrations lose EPOLLIN while the data is invisible (EPOLL_CTL_MOD) and get the
//   program's registration back at the visible time, which re-arms an edge-triggered one.
//
// The per-socket state is a fixed table of kHoldMax entries, each behind a try-lock: a
// thread (or a signal handler) that finds an entry busy for longer than a few hundred spins
// does not wait for it — it treats the socket as not held for that one call (the data is
// delivered as the kernel has it). No allocation, no blocking lock: async-signal-safe. When
// the table is full, a further socket is not held (one diagnostic says so).
//
// A held socket carries kSockLatency in the socket table (so the poll family's one-load
// fast path sees it) and is released — everything it holds becomes visible at once — as soon
// as its fault no longer holds it (disable, remove, an edit it no longer matches, panic, TTL):
// every wait re-checks between slices of at most kWaitSliceNs.
#pragma once

#include <sys/types.h>

#include <cstdint>

#include "shim/engine/engine.h"
#include "shim/engine/sock_table.h"

namespace faultline::shim {

// The actions that hold a socket here.
inline constexpr std::uint32_t kActHolds = kActLatency | kActLoss | kActBandwidth;
// `bandwidth`: the token bucket's size is one second of the rate, or this, if smaller.
inline constexpr double kBandwidthBurstMax = 65536;

inline constexpr int kHoldMax = 64;       // sockets held at once (see above when it is full)
inline constexpr int kHoldSegments = 32;  // arrivals remembered per socket (then merged)

// What a receive or accept on a held socket may do now.
enum class HoldGate {
  kRun,    // run the real call as it is (not held, released, or enough is visible)
  kLimit,  // run it for at most `limit` bytes (a short read of what is visible)
  kFail,   // errno is the answer (EAGAIN, EINTR)
};
struct HoldAnswer {
  HoldGate gate;
  std::uint64_t limit;
};

// A receive (or accept, on a listener) on a socket held by `latency`, or one that a latency
// decision `d` (may be null) just took: holds the socket if it is not yet, observes
// arrivals, and answers with what may be taken now; a blocking call waits here until
// something is visible, the socket's SO_RCVTIMEO (EAGAIN), a signal (EINTR, as the kernel
// would), or the fault's release (then kRun). A cancellation point, like the calls it serves:
// not noexcept, nor may its callers be (wait.h).
HoldAnswer net_hold_receive_gate(const Guard& guard, const CallArgs& args, const Decision* d,
                                 std::uint64_t want);
// The real call took `result` (bytes; or a new fd for accept): counted as consumed.
void net_hold_consumed(const CallArgs& args, ssize_t result) noexcept;

// A connect a latency decision took, after the real connect succeeded or is in progress:
// the socket is "connecting" until now + the latency (poll hides its writability, SO_ERROR
// says 0, connect says EALREADY). Emits the event. False when the socket could not be held.
bool net_hold_connect(const Guard& guard, const Decision& d, const CallArgs& args) noexcept;
// Still "connecting"? Releases it if its fault no longer holds it. `ready_ns` gets the time
// it completes (for a blocking connect's wait).
bool net_hold_connecting(const Guard& guard, int fd, std::int64_t* ready_ns = nullptr) noexcept;

// The poll family's view of a held socket: hide its readability (data queued but not yet
// visible) or writability (connecting), and when to look again (-1: no time of its own).
// Observes arrivals. False when the socket is not held (any more: released just now).
struct HoldView {
  bool hide_in = false;
  bool hide_out = false;
  std::int64_t wake_ns = -1;
};
bool net_hold_view(const Guard& guard, int fd, HoldView& view) noexcept;

// epoll: makes the kernel's registration of fd in epfd what the view allows — the
// program's (`events`, `data`) minus what is hidden — with EPOLL_CTL_MOD when it differs
// from what the kernel has; restoring the program's own re-arms an edge-triggered one.
void net_hold_epoll_apply(int epfd, int fd, std::uint32_t events, std::uint64_t data,
                          const HoldView& view) noexcept;
// The program changed fd's registration itself: the kernel has the program's mask again.
void net_hold_epoll_reset(int fd) noexcept;

// `loss` (docs/network.md, "loss"). On TCP a lost segment is delivered late, as a
// retransmission would be: kLossRtoNs after it arrived, doubling for each further loss of
// the same segment, at most kLossMaxRetries losses; a lost SYN the same from kLossSynRtoNs.
// Every held socket has its own stream of draws, seeded from the decision that held it, so
// the same seed and the same traffic give the same delays.
inline constexpr std::int64_t kLossRtoNs = 200'000'000;
inline constexpr std::int64_t kLossSynRtoNs = 1'000'000'000;
inline constexpr int kLossMaxRetries = 6;
// One transmission: lost? (advances `state`)
bool loss_draw(std::uint64_t& state, double loss) noexcept;
// The delay the losses of one segment add: 0 if its first transmission got through.
std::int64_t loss_extra_ns(std::uint64_t& state, double loss, std::int64_t first_rto_ns) noexcept;
// A datagram send a loss decision took: drawn lost, it is not sent (the caller reports it
// sent, whole) and an event says so. False on a stream socket (TCP retransmits: its losses
// show on the receiving side) or when the draw keeps it.
bool net_loss_drops_send(const Decision& d, const CallArgs& args) noexcept;

// Does this decision's hold action concern this call? `latency` and `loss` exist only on
// sockets; `bandwidth` also limits files (@read/@write), which are not held here.
bool net_hold_applies(const Decision& d, const CallArgs& args) noexcept;

// `bandwidth` on a send (the socket's send bucket): at most what the budget allows now (a
// short send); none: EAGAIN on a non-blocking socket, a wait on a blocking one (bounded by
// SO_SNDTIMEO, then EAGAIN) until some has refilled. A cancellation point.
HoldAnswer net_hold_send_gate(const Guard& guard, const CallArgs& args, const Decision* d,
                              std::uint64_t want);
void net_hold_sent(const CallArgs& args, ssize_t result) noexcept;
// Is fd held with a send budget? (a send no fault takes is still limited by it)
bool net_hold_limits_sends(int fd) noexcept;

// fd closed (or its number reused): its entry goes back to the table.
void net_hold_forget(int fd) noexcept;

// Runs the call as a gate let it: limited to what the budget or the visible data allows, or
// whole.
template <class Io>
ssize_t run_gated(Io& io, const HoldAnswer& answer) {
  return answer.gate == HoldGate::kLimit ? io.run_limited(answer.limit) : io.run();
}

// The send side over an Io adapter (io.h): `loss` drops a datagram, `bandwidth` limits.
template <class Io>
ssize_t net_hold_send(const Guard& guard, const CallArgs& args, Io& io, Decision* d) {
  if (d && !apply_delay(guard, *d, args)) d = nullptr;
  if (d && net_loss_drops_send(*d, args)) return static_cast<ssize_t>(io.size());
  const HoldAnswer answer = net_hold_send_gate(guard, args, d, io.size());
  if (answer.gate == HoldGate::kFail) return -1;
  const ssize_t r = run_gated(io, answer);
  net_hold_sent(args, r);
  return r;
}

// The receive side over an Io adapter (io.h): waits or limits the call to what is visible.
template <class Io>
ssize_t net_hold_receive(const Guard& guard, const CallArgs& args, Io& io, Decision* d) {
  if (d && !apply_delay(guard, *d, args)) d = nullptr;  // lifted while delayed
  const HoldAnswer answer = net_hold_receive_gate(guard, args, d, io.size());
  if (answer.gate == HoldGate::kFail) return -1;
  const ssize_t r = run_gated(io, answer);
  net_hold_consumed(args, r);
  return r;
}

}  // namespace faultline::shim
