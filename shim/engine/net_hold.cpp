// The per-socket hold state of `latency` (see net_hold.h): a fixed table of entries, each a
// small ring of observed arrivals ("segments": the stream offset they end at, when they
// arrived, when they become visible), behind a try-lock.
#include "shim/engine/net_hold.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>

#include "session/session.h"
#include "shim/engine/wait.h"

namespace faultline::shim {
namespace {

enum class Kind : std::uint8_t { kStream, kDatagram, kListener };

struct Segment {
  std::uint64_t end;  // stream offset (bytes; datagrams or connections for those kinds)
  std::int64_t arrival_ns;
  std::int64_t visible_ns;
  bool drop;  // a datagram `loss` drew lost: discarded, never seen
};

struct Hold {
  std::atomic<int> owner{0};  // fd + 1; 0 free; -1 being set up
  std::atomic<bool> busy{false};
  int fault = -1;
  std::uint64_t key = 0;
  std::uint64_t generation = 0;
  Kind kind = Kind::kStream;
  std::int64_t latency_ns = 0;  // applied to new arrivals (the last decision's draw)
  std::int64_t base_ns = 0;     // the fault's latency when last checked
  std::int64_t connect_ready_ns = 0;
  std::uint64_t consumed = 0;  // taken by the program
  std::uint64_t arrived = 0;   // recorded as arrived
  int head = 0;
  int count = 0;
  Segment seg[kHoldSegments];
  std::int64_t eof_arrival_ns = 0;  // 0: no FIN/error seen
  std::int64_t eof_visible_ns = 0;
  bool ep_masked = false;  // the kernel's registration is ours, `ep_current`
  std::uint32_t ep_current = 0;
  double loss = 0;        // `loss`: the chance of each transmission
  std::uint64_t rng = 0;  // the socket's stream of loss draws (seeded by the decision)
  Decision event;         // the decision that held it: loss events are written from it
  // `bandwidth`: a token bucket per direction (bytes; 0 bps = not limited that way).
  std::uint64_t rx_bps = 0, tx_bps = 0;
  double rx_tokens = 0, tx_tokens = 0;
  std::int64_t rx_last_ns = 0, tx_last_ns = 0;
};

// The bucket holds at most one second of the rate or 64 KiB, whichever is smaller; the poll
// family reports the socket ready (and a blocking call wakes) once a chunk of 4 KiB (or the
// whole bucket, if smaller) is there, so a program is not woken for a byte at a time.
double bucket_burst(std::uint64_t bps) noexcept {
  return std::min<double>(static_cast<double>(bps), kBandwidthBurstMax);
}
double bucket_chunk(std::uint64_t bps) noexcept { return std::min(bucket_burst(bps), 4096.0); }
void refill(double& tokens, std::int64_t& last, std::uint64_t bps, std::int64_t now) noexcept {
  if (!bps) return;
  if (now > last) {
    tokens = std::min(bucket_burst(bps),
                      tokens + static_cast<double>(now - last) * static_cast<double>(bps) / 1e9);
    last = now;
  }
}
// When the bucket will hold `need` tokens.
std::int64_t refilled_at(double tokens, double need, std::uint64_t bps, std::int64_t now) noexcept {
  if (tokens >= need || !bps) return now;
  return now + static_cast<std::int64_t>((need - tokens) * 1e9 / static_cast<double>(bps)) + 1;
}

bool is_send_call(std::uint32_t call) noexcept {
  return call == kCall_send || call == kCall_sendto || call == kCall_sendmsg ||
         call == kCall_sendmmsg || call == kCall_write || call == kCall_writev;
}

// A decision's bandwidth applies to the direction of its call; a bucket starts full.
void apply_rates(Hold& h, const Decision& d, std::uint32_t call, std::int64_t now) noexcept {
  if (!(d.action & kActBandwidth) || !d.bandwidth_bps) return;
  std::uint64_t& bps = is_send_call(call) ? h.tx_bps : h.rx_bps;
  if (bps == 0) {
    (is_send_call(call) ? h.tx_tokens : h.rx_tokens) = bucket_burst(d.bandwidth_bps);
    (is_send_call(call) ? h.tx_last_ns : h.rx_last_ns) = now;
  }
  bps = d.bandwidth_bps;
}

Hold g_holds[kHoldMax];

// (net_core.cpp has these too; this file lives in the engine library, below it.)
int socket_type(int fd) noexcept {
  int type = -1;
  socklen_t size = sizeof type;
  if (FL_REAL(getsockopt)(fd, SOL_SOCKET, SO_TYPE, &type, &size) != 0) return -1;
  return type;
}

bool fd_nonblocking(int fd) noexcept {
  const long flags = syscall(SYS_fcntl, fd, F_GETFL);
  return flags >= 0 && (flags & O_NONBLOCK);
}

std::int64_t socket_timeout_ns(int fd, int option) noexcept {
  struct timeval tv {};
  socklen_t size = sizeof tv;
  if (FL_REAL(getsockopt)(fd, SOL_SOCKET, option, &tv, &size) != 0) return 0;
  return static_cast<std::int64_t>(tv.tv_sec) * 1'000'000'000 +
         static_cast<std::int64_t>(tv.tv_usec) * 1'000;
}
std::atomic<bool> g_full_said{false};

// A try-lock with a bounded spin: a signal handler interrupting the holder on the same
// thread must not wait for it.
class HoldLock {
 public:
  explicit HoldLock(Hold& h) noexcept : h_(h) {
    for (int spin = 0; spin < 512; ++spin) {
      bool expected = false;
      if (h_.busy.compare_exchange_weak(expected, true, std::memory_order_acquire)) {
        locked_ = true;
        return;
      }
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#elif defined(__aarch64__)
      asm volatile("yield");
#endif
    }
  }
  ~HoldLock() {
    if (locked_) h_.busy.store(false, std::memory_order_release);
  }
  bool locked() const noexcept { return locked_; }
  HoldLock(const HoldLock&) = delete;
  HoldLock& operator=(const HoldLock&) = delete;

 private:
  Hold& h_;
  bool locked_ = false;
};

Hold* find(int fd) noexcept {
  for (Hold& h : g_holds)
    if (h.owner.load(std::memory_order_acquire) == fd + 1) return &h;
  return nullptr;
}

void set_flags(int fd, std::uint32_t set, std::uint32_t clear, int fault) noexcept {
  for (int attempt = 0; attempt < 8; ++attempt) {
    SockState st = sock_load(fd);
    const std::uint32_t flags = (st.flags() & ~clear) | set;
    if (flags == st.flags()) return;
    if (sock_store(fd, st, flags, set ? fault : st.fault(), st.error())) return;
  }
}

Kind kind_of(int fd) noexcept {
  if (socket_type(fd) != SOCK_STREAM) return Kind::kDatagram;
  int listening = 0;
  socklen_t size = sizeof listening;
  if (FL_REAL(getsockopt)(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &size) == 0 && listening)
    return Kind::kListener;
  return Kind::kStream;
}

// Holds fd for fault `fault` (its entry, set up; nullptr when the table is full).
Hold* claim(int fd, const Decision& d, const CallArgs& args) noexcept {
  if (Hold* h = find(fd)) return h;
  for (Hold& h : g_holds) {
    int expected = 0;
    if (!h.owner.compare_exchange_strong(expected, -1, std::memory_order_acq_rel)) continue;
    h.fault = d.fault;
    h.key = 0;
    h.generation = 0;
    h.kind = kind_of(fd);
    h.latency_ns = d.latency_ns;
    h.base_ns = d.latency_ns;
    h.connect_ready_ns = 0;
    h.consumed = 0;
    h.arrived = 0;
    h.head = 0;
    h.count = 0;
    h.eof_arrival_ns = 0;
    h.eof_visible_ns = 0;
    h.ep_masked = false;
    h.ep_current = 0;
    h.loss = (d.action & kActLoss) ? d.loss : 0.0;
    h.rng = d.draw ^ 0x6c6f7373ull;  // "loss": a stream of its own, from the seeded draw
    h.event = d;
    h.rx_bps = h.tx_bps = 0;
    apply_rates(h, d, args.call, monotonic_ns());
    h.busy.store(false, std::memory_order_relaxed);
    h.owner.store(fd + 1, std::memory_order_release);
    set_flags(fd, kSockLatency, 0, d.fault);
    // Once per socket held, not per arrival or call. `loss` writes one per loss instead.
    if (d.action & (kActLatency | kActBandwidth)) emit_event(d, args, -1);
    return &h;
  }
  if (!g_full_said.exchange(true, std::memory_order_relaxed))
    diag("latency: more than %d sockets held at once; fd %d is not held", kHoldMax, fd);
  return nullptr;
}

// Gives the program its own epoll registration back (if it was masked) and frees the entry.
// Called with the entry locked, or with the fd gone.
void release_locked(Hold& h, int fd) noexcept {
  if (h.ep_masked) {
    int epfd = -1;
    std::uint32_t events = 0;
    std::uint64_t data = 0;
    if (sock_epoll_get(fd, epfd, events, data)) {
      struct epoll_event ev {};
      ev.events = events;
      ev.data.u64 = data;
      FL_REAL(epoll_ctl)(epfd, EPOLL_CTL_MOD, fd, &ev);
    }
    h.ep_masked = false;
  }
  set_flags(fd, 0, kSockLatency, 0);
  h.owner.store(0, std::memory_order_release);
}

// Does its fault still hold the socket? Adapts to a live edit that shortened the latency:
// what was waiting becomes visible no later than arrival + the new latency.
bool still_holds(const Guard& guard, Hold& h, int fd) noexcept {
  CallArgs args{h.kind == Kind::kListener ? static_cast<std::uint32_t>(kCall_accept)
                                          : static_cast<std::uint32_t>(kCall_recv),
                fd};
  HoldSpecNow spec{};
  if (!fault_latency_holds(guard, h.fault, args, h.key, h.generation, spec)) return false;
  const std::int64_t base = spec.latency_ns;
  h.loss = spec.loss;
  if (!spec.bandwidth_bps) h.rx_bps = h.tx_bps = 0;  // edited away: no longer limited
  if (h.rx_bps) h.rx_bps = spec.bandwidth_bps;
  if (h.tx_bps) h.tx_bps = spec.bandwidth_bps;
  if (base < h.base_ns) {
    for (int i = 0; i < h.count; ++i) {
      Segment& s = h.seg[(h.head + i) % kHoldSegments];
      s.visible_ns = std::min(s.visible_ns, s.arrival_ns + base);
    }
    if (h.eof_arrival_ns) h.eof_visible_ns = std::min(h.eof_visible_ns, h.eof_arrival_ns + base);
    if (h.connect_ready_ns)
      h.connect_ready_ns = std::min(h.connect_ready_ns, monotonic_ns() + base);
    h.latency_ns = std::min(h.latency_ns, base);
  }
  h.base_ns = base;
  return true;
}

std::int64_t last_visible(const Hold& h) noexcept {
  return h.count ? h.seg[(h.head + h.count - 1) % kHoldSegments].visible_ns : 0;
}

// A loss, as an event line with the delay it caused (0 for a dropped datagram).
void loss_event(const Hold& h, int fd, std::uint32_t call, std::int64_t extra_ns) noexcept {
  Decision d = h.event;
  d.action = kActLoss;
  d.delay_ns = extra_ns;
  CallArgs args{call, fd};
  emit_event(d, args, -1);
}

void record(Hold& h, int fd, std::uint64_t end, std::int64_t now) noexcept {
  std::int64_t extra = 0;
  bool drop = false;
  if (h.loss > 0) {
    if (h.kind == Kind::kDatagram)
      drop = loss_draw(h.rng, h.loss);
    else if (h.kind == Kind::kStream)
      extra = loss_extra_ns(h.rng, h.loss, kLossRtoNs);
    if (drop || extra > 0) loss_event(h, fd, kCall_recv, extra);
  }
  // In order, as the stream is: never visible before what arrived earlier (a retransmitted
  // segment holds back the ones behind it, as TCP's in-order delivery does).
  const std::int64_t visible = std::max(now + h.latency_ns + extra, last_visible(h));
  if (h.count == kHoldSegments) {  // full: the newest segment grows (its bytes wait longer)
    Segment& last = h.seg[(h.head + h.count - 1) % kHoldSegments];
    last.end = end;
    last.visible_ns = visible;
  } else {
    h.seg[(h.head + h.count) % kHoldSegments] = Segment{end, now, visible, drop};
    ++h.count;
  }
  h.arrived = end;
}

// Pending connections of a TCP listener: tcp_get_info reports the accept queue's length
// in tcpi_unacked for a listening socket. -1 when unknown (a unix listener).
long listener_queue(int fd) noexcept {
  struct tcp_info info {};
  socklen_t size = sizeof info;
  if (FL_REAL(getsockopt)(fd, IPPROTO_TCP, TCP_INFO, &info, &size) != 0) return -1;
  return static_cast<long>(info.tcpi_unacked);
}

// Looks at the socket: new bytes (or a datagram, a connection, a FIN or an error) become a
// segment. Raw system calls: not cancellation points (the poll family calls this noexcept).
void observe(Hold& h, int fd, std::int64_t now) noexcept {
  struct pollfd p = {fd, POLLIN | POLLRDHUP, 0};
  struct timespec zero = {0, 0};
  if (syscall(SYS_ppoll, &p, 1, &zero, nullptr, 0) <= 0) return;
  if (h.arrived < h.consumed) h.arrived = h.consumed;
  switch (h.kind) {
    case Kind::kStream: {
      if (p.revents & POLLIN) {
        int queued = 0;
        if (syscall(SYS_ioctl, fd, FIONREAD, &queued) == 0 && queued > 0) {
          const std::uint64_t end = h.consumed + static_cast<std::uint64_t>(queued);
          if (end > h.arrived) record(h, fd, end, now);
        }
      }
      if ((p.revents & (POLLRDHUP | POLLHUP | POLLERR)) && !h.eof_arrival_ns) {
        h.eof_arrival_ns = now;
        h.eof_visible_ns = std::max(now + h.latency_ns, last_visible(h));
      }
      return;
    }
    case Kind::kListener: {
      if (!(p.revents & POLLIN)) return;
      const long queued = listener_queue(fd);
      const std::uint64_t end = h.consumed + static_cast<std::uint64_t>(queued > 0 ? queued : 1);
      if (end > h.arrived) record(h, fd, end, now);
      return;
    }
    case Kind::kDatagram:
      // The queue's depth is not known: the head datagram is one segment, observed when it
      // is at the head (docs/limits.md).
      if ((p.revents & POLLIN) && h.arrived == h.consumed) record(h, fd, h.consumed + 1, now);
      return;
  }
}

// Datagrams `loss` dropped, once at the head and due: read and discarded (a 1-byte read of a
// datagram discards the rest of it), then the next head is observed.
void discard_dropped(Hold& h, int fd, std::int64_t now) noexcept {
  for (int guard = 0; guard < kHoldSegments && h.count; ++guard) {
    while (h.count && h.seg[h.head].end <= h.consumed) {  // taken already
      h.head = (h.head + 1) % kHoldSegments;
      --h.count;
    }
    if (!h.count) return;
    Segment& head = h.seg[h.head];
    if (!head.drop || head.visible_ns > now || head.end != h.consumed + 1) return;
    char byte;
    if (syscall(SYS_recvfrom, fd, &byte, 1, MSG_DONTWAIT | MSG_TRUNC, nullptr, nullptr) < 0) return;
    h.consumed += 1;
    h.head = (h.head + 1) % kHoldSegments;
    --h.count;
    observe(h, fd, now);
  }
}

// Whether a call may wait, and until when (its socket timeout), learned only once it would
// wait: a call that finds what it wants pays neither system call.
struct CallWait {
  const CallArgs& args;
  int option;  // SO_RCVTIMEO or SO_SNDTIMEO
  bool known = false;
  bool nonblocking = false;
  std::int64_t timeout = 0;
  std::int64_t deadline = -1;
  void learn() noexcept {
    if (known) return;
    known = true;
    nonblocking = (args.msg_flags & MSG_DONTWAIT) || fd_nonblocking(args.fd);
    timeout = nonblocking ? 0 : socket_timeout_ns(args.fd, option);
    deadline = timeout > 0 ? monotonic_ns() + timeout : -1;
  }
};

struct Visible {
  std::uint64_t avail = 0;  // visible and not yet taken
  bool pending = false;     // something arrived that is not visible yet
  bool eof_ready = false;   // a FIN/error is visible and every byte before it was taken
  std::int64_t next_ns = -1;
};

Visible compute(Hold& h, std::int64_t now) noexcept {
  while (h.count && h.seg[h.head].end <= h.consumed) {
    h.head = (h.head + 1) % kHoldSegments;
    --h.count;
  }
  Visible v;
  std::uint64_t visible_end = h.consumed;
  for (int i = 0; i < h.count; ++i) {
    const Segment& s = h.seg[(h.head + i) % kHoldSegments];
    if (s.visible_ns > now) {
      v.pending = true;
      v.next_ns = s.visible_ns;
      break;
    }
    visible_end = s.end;
  }
  v.avail = visible_end - h.consumed;
  if (h.rx_bps && v.avail > 0) {
    // `bandwidth`: what the bucket allows now. A datagram goes whole once the bucket is not
    // empty (its size is charged after, as a debt); a stream takes what the tokens cover, and
    // nothing until a chunk's worth is there.
    refill(h.rx_tokens, h.rx_last_ns, h.rx_bps, now);
    const double need = h.kind == Kind::kStream
                            ? std::min(static_cast<double>(v.avail), bucket_chunk(h.rx_bps))
                            : 1.0;
    if (h.rx_tokens < need) {
      v.avail = 0;
      v.pending = true;
      v.next_ns = refilled_at(h.rx_tokens, need, h.rx_bps, now);
      return v;
    }
    if (h.kind == Kind::kStream)
      v.avail = std::min<std::uint64_t>(v.avail, static_cast<std::uint64_t>(h.rx_tokens));
  }
  if (h.eof_arrival_ns && !v.pending) {
    if (h.eof_visible_ns <= now)
      v.eof_ready = v.avail == 0;
    else {
      v.pending = true;
      v.next_ns = h.eof_visible_ns;
    }
  }
  return v;
}

// How often a blocking receive with invisible data pending looks for more arrivals (their
// recorded arrival is late by at most this much).
std::int64_t observe_interval(const Hold& h) noexcept {
  const std::int64_t ns = h.latency_ns / 16;
  return std::clamp<std::int64_t>(ns, 1'000'000, kWaitSliceNs);
}

}  // namespace

HoldAnswer net_hold_receive_gate(const Guard& guard, const CallArgs& args, const Decision* d,
                                 std::uint64_t want) {
  const int fd = args.fd;
  Hold* h = find(fd);
  if (!h && d && (d->action & kActHolds) && !is_send_call(args.call)) h = claim(fd, *d, args);
  if (!h) return {HoldGate::kRun, 0};
  CallWait wait{args, SO_RCVTIMEO};
  bool fresh_draw = d && (d->action & kActLatency);
  for (;;) {
    Visible v;
    std::int64_t interval = kWaitSliceNs;
    Kind kind;
    {
      HoldLock lock(*h);
      if (!lock.locked() || h->owner.load(std::memory_order_acquire) != fd + 1)
        return {HoldGate::kRun, 0};
      if (!still_holds(guard, *h, fd)) {
        release_locked(*h, fd);
        return {HoldGate::kRun, 0};
      }
      if (fresh_draw) {  // this call's own draw applies to what arrives from now on
        h->latency_ns = d->latency_ns;
        fresh_draw = false;
      }
      if (d) apply_rates(*h, *d, args.call, monotonic_ns());
      const std::int64_t now = monotonic_ns();
      observe(*h, fd, now);
      discard_dropped(*h, fd, now);
      v = compute(*h, now);
      interval = observe_interval(*h);
      kind = h->kind;
    }
    if (v.avail > 0) {
      if (kind != Kind::kStream || v.avail >= want) return {HoldGate::kRun, 0};
      return {HoldGate::kLimit, v.avail};
    }
    if (v.eof_ready) return {HoldGate::kRun, 0};
    wait.learn();
    const std::int64_t now = monotonic_ns();
    const std::int64_t deadline = wait.deadline;
    if (wait.nonblocking || (deadline >= 0 && now >= deadline)) {
      errno = EAGAIN;  // nothing visible; SO_RCVTIMEO expired: what recv(2) says
      return {HoldGate::kFail, 0};
    }
    std::int64_t slice = kWaitSliceNs;
    if (deadline >= 0) slice = std::min(slice, deadline - now);
    if (v.pending) slice = std::min({slice, std::max<std::int64_t>(0, v.next_ns - now), interval});
    struct timespec ts = {static_cast<time_t>(slice / 1'000'000'000),
                          static_cast<long>(slice % 1'000'000'000)};
    // Nothing pending: sleep on the socket itself, so an arrival is seen when it happens.
    struct pollfd p = {fd, POLLIN | POLLRDHUP, 0};
    int r;
    {
      GuardRelease released(guard);
      // The real ppoll: a cancellation point, as the receive is.
      r = FL_REAL(ppoll)(v.pending ? nullptr : &p, v.pending ? 0 : 1, &ts, nullptr);
    }
    if (r < 0 && errno == EINTR && (wait.timeout > 0 || interrupted_without_restart())) {
      errno = EINTR;
      return {HoldGate::kFail, 0};
    }
  }
}

void net_hold_consumed(const CallArgs& args, ssize_t result) noexcept {
  if (result < 0 || (args.msg_flags & MSG_PEEK)) return;
  Hold* h = find(args.fd);
  if (!h) return;
  HoldLock lock(*h);
  if (!lock.locked() || h->owner.load(std::memory_order_acquire) != args.fd + 1) return;
  if (h->kind == Kind::kStream)
    h->consumed += static_cast<std::uint64_t>(result);
  else
    h->consumed += 1;  // a datagram (even an empty one), or a connection
  if (h->rx_bps && h->kind != Kind::kListener) h->rx_tokens -= static_cast<double>(result);
  if (h->arrived < h->consumed) h->arrived = h->consumed;
}

bool net_hold_connect(const Guard& guard, const Decision& d, const CallArgs& args) noexcept {
  (void)guard;
  Hold* h = claim(args.fd, d, args);
  if (!h) return false;
  HoldLock lock(*h);
  if (!lock.locked()) return false;
  // A SYN `loss` drew lost is sent again after 1 s, then 2 s, 4 s... (Linux's initial RTO
  // for a SYN is 1 s).
  std::int64_t extra = 0;
  if (h->loss > 0) {
    extra = loss_extra_ns(h->rng, h->loss, kLossSynRtoNs);
    if (extra > 0) loss_event(*h, args.fd, args.call, extra);
  }
  h->connect_ready_ns = monotonic_ns() + d.latency_ns + extra;
  return true;
}

bool net_hold_applies(const Decision& d, const CallArgs& args) noexcept {
  if (d.action & (kActLatency | kActLoss)) return true;
  if (!(d.action & kActBandwidth)) return false;
  // `bandwidth` serves files too (@read/@write): only sockets are held here.
  switch (args.call) {
    case kCall_read:
    case kCall_readv:
    case kCall_write:
    case kCall_writev:
      return socket_type(args.fd) >= 0;
    default:  // the @net calls are sockets' own; pwrite, preadv, fwrite... are files'
      return call_family(args.call) == kFamNet;
  }
}

HoldAnswer net_hold_send_gate(const Guard& guard, const CallArgs& args, const Decision* d,
                              std::uint64_t want) {
  const int fd = args.fd;
  Hold* h = find(fd);
  if (!h && d && (d->action & kActBandwidth)) h = claim(fd, *d, args);
  if (!h) return {HoldGate::kRun, 0};
  CallWait wait{args, SO_SNDTIMEO};
  for (;;) {
    std::int64_t wake;
    {
      HoldLock lock(*h);
      if (!lock.locked() || h->owner.load(std::memory_order_acquire) != fd + 1)
        return {HoldGate::kRun, 0};
      if (!still_holds(guard, *h, fd)) {
        release_locked(*h, fd);
        return {HoldGate::kRun, 0};
      }
      const std::int64_t now = monotonic_ns();
      if (d) apply_rates(*h, *d, args.call, now);
      if (!h->tx_bps) return {HoldGate::kRun, 0};
      refill(h->tx_tokens, h->tx_last_ns, h->tx_bps, now);
      // Not a byte at a time: a chunk's worth (or all that is asked, if less), as poll says.
      const double need = std::min(static_cast<double>(want), bucket_chunk(h->tx_bps));
      if (h->tx_tokens >= need) {
        const std::uint64_t allowed = static_cast<std::uint64_t>(h->tx_tokens);
        return allowed >= want ? HoldAnswer{HoldGate::kRun, 0}
                               : HoldAnswer{HoldGate::kLimit, allowed};
      }
      wake = refilled_at(h->tx_tokens, need, h->tx_bps, now);
    }
    wait.learn();
    const std::int64_t now = monotonic_ns();
    const std::int64_t deadline = wait.deadline;
    if (wait.nonblocking || (deadline >= 0 && now >= deadline)) {
      errno = EAGAIN;  // the budget is spent; SO_SNDTIMEO expired: what send(2) says
      return {HoldGate::kFail, 0};
    }
    std::int64_t slice = std::min(kWaitSliceNs, std::max<std::int64_t>(0, wake - now));
    if (deadline >= 0) slice = std::min(slice, deadline - now);
    struct timespec ts = {static_cast<time_t>(slice / 1'000'000'000),
                          static_cast<long>(slice % 1'000'000'000)};
    int r;
    {
      GuardRelease released(guard);
      r = FL_REAL(ppoll)(nullptr, 0, &ts, nullptr);  // a cancellation point, as send is
    }
    if (r < 0 && errno == EINTR && (wait.timeout > 0 || interrupted_without_restart())) {
      errno = EINTR;
      return {HoldGate::kFail, 0};
    }
  }
}

void net_hold_sent(const CallArgs& args, ssize_t result) noexcept {
  if (result <= 0) return;
  Hold* h = find(args.fd);
  if (!h) return;
  HoldLock lock(*h);
  if (!lock.locked() || h->owner.load(std::memory_order_acquire) != args.fd + 1) return;
  if (h->tx_bps) h->tx_tokens -= static_cast<double>(result);
}

bool net_hold_limits_sends(int fd) noexcept {
  Hold* h = find(fd);
  return h && h->tx_bps != 0;
}

bool loss_draw(std::uint64_t& state, double loss) noexcept {
  state += 0x9e3779b97f4a7c15ull;  // splitmix64: one step of the socket's stream
  std::uint64_t z = state;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * 0x1.0p-53 < loss;
}

std::int64_t loss_extra_ns(std::uint64_t& state, double loss, std::int64_t first_rto_ns) noexcept {
  std::int64_t extra = 0;
  std::int64_t rto = first_rto_ns;
  for (int lost = 0; lost < kLossMaxRetries && loss_draw(state, loss); ++lost) {
    extra += rto;
    rto *= 2;
  }
  return extra;
}

bool net_loss_drops_send(const Decision& d, const CallArgs& args) noexcept {
  if (!(d.action & kActLoss) || socket_type(args.fd) == SOCK_STREAM) return false;
  std::uint64_t state = d.draw ^ 0x6c6f7373ull;
  if (!loss_draw(state, d.loss)) return false;
  Decision ev = d;
  ev.action = kActLoss;
  emit_event(ev, args, -1);
  return true;
}

bool net_hold_connecting(const Guard& guard, int fd, std::int64_t* ready_ns) noexcept {
  Hold* h = find(fd);
  if (!h) return false;
  HoldLock lock(*h);
  if (!lock.locked() || h->owner.load(std::memory_order_acquire) != fd + 1) return false;
  if (!h->connect_ready_ns) return false;
  if (!still_holds(guard, *h, fd)) {
    release_locked(*h, fd);
    return false;
  }
  if (monotonic_ns() >= h->connect_ready_ns) {
    h->connect_ready_ns = 0;
    return false;
  }
  if (ready_ns) *ready_ns = h->connect_ready_ns;
  return true;
}

bool net_hold_view(const Guard& guard, int fd, HoldView& view) noexcept {
  view = HoldView{};
  Hold* h = find(fd);
  if (!h) {
    set_flags(fd, 0, kSockLatency, 0);  // an entry lost (table reused)
    return false;
  }
  HoldLock lock(*h);
  if (!lock.locked() || h->owner.load(std::memory_order_acquire) != fd + 1) return false;
  if (!still_holds(guard, *h, fd)) {
    release_locked(*h, fd);
    return false;
  }
  const std::int64_t now = monotonic_ns();
  observe(*h, fd, now);
  discard_dropped(*h, fd, now);
  const Visible v = compute(*h, now);
  // Hidden only while something arrived that is not visible: with nothing queued, the kernel
  // may report readability, and the poll family then observes the arrival and filters it.
  view.hide_in = v.pending && v.avail == 0 && !v.eof_ready;
  // While something is hidden the kernel cannot tell us of further arrivals: look again
  // every observe_interval, so that their recorded arrival is late by at most that much.
  view.wake_ns = v.pending ? std::min(v.next_ns, now + observe_interval(*h)) : -1;
  if (h->tx_bps) {  // `bandwidth` on sends: not writable until a chunk's worth refilled
    refill(h->tx_tokens, h->tx_last_ns, h->tx_bps, now);
    const double need = bucket_chunk(h->tx_bps);
    if (h->tx_tokens < need) {
      view.hide_out = true;
      const std::int64_t at = refilled_at(h->tx_tokens, need, h->tx_bps, now);
      if (view.wake_ns < 0 || at < view.wake_ns) view.wake_ns = at;
    }
  }
  if (h->connect_ready_ns) {
    if (now >= h->connect_ready_ns) {
      h->connect_ready_ns = 0;
    } else {
      view.hide_out = true;
      if (view.wake_ns < 0 || h->connect_ready_ns < view.wake_ns)
        view.wake_ns = h->connect_ready_ns;
    }
  }
  return true;
}

void net_hold_epoll_apply(int epfd, int fd, std::uint32_t events, std::uint64_t data,
                          const HoldView& view) noexcept {
  Hold* h = find(fd);
  if (!h) return;
  HoldLock lock(*h);
  if (!lock.locked() || h->owner.load(std::memory_order_acquire) != fd + 1) return;
  std::uint32_t want = events;
  if (view.hide_in) want &= ~std::uint32_t{EPOLLIN | EPOLLRDNORM | EPOLLRDHUP};
  if (view.hide_out) want &= ~std::uint32_t{EPOLLOUT | EPOLLWRNORM};
  const bool masked = want != events;
  if (masked == h->ep_masked && (!masked || want == h->ep_current)) return;
  struct epoll_event ev {};
  ev.events = want;
  ev.data.u64 = data;
  if (FL_REAL(epoll_ctl)(epfd, EPOLL_CTL_MOD, fd, &ev) != 0) return;
  h->ep_masked = masked;
  h->ep_current = want;
}

void net_hold_epoll_reset(int fd) noexcept {
  Hold* h = find(fd);
  if (!h) return;
  HoldLock lock(*h);
  if (lock.locked()) h->ep_masked = false;
}

void net_hold_forget(int fd) noexcept {
  // The fd is gone: nothing to restore. Freed even if another thread holds the lock (it
  // checks the owner again before it acts); every entry of it (two threads may have claimed
  // one each at once).
  for (Hold& h : g_holds) {
    int expected = fd + 1;
    if (h.owner.compare_exchange_strong(expected, 0, std::memory_order_acq_rel))
      h.ep_masked = false;
  }
}

}  // namespace faultline::shim
