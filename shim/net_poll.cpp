// @net partition support in the poll family (poll, ppoll, select, pselect, epoll_wait,
// epoll_pwait), epoll_ctl bookkeeping, and getsockopt(SO_ERROR). None of these is ever
// faulted; they make a blackhole look like a partition to programs that wait for readiness:
//
// - a partitioned socket is never readable and reports no hangup or error: data the peer
//   had already sent stays in the kernel buffer, hidden, and is delivered once the fault is
//   lifted. It stays writable (sends are swallowed as if sent, so its send buffer never
//   fills), as a real socket is for a long while after its peer went silent. poll/select
//   leave it out of the kernel call and report it writable themselves if that was asked;
//   epoll_wait takes it out of its epoll set ("parks" it), reports EPOLLOUT for it if it was
//   registered for that, and puts it back with the program's own registration when the
//   partition heals.
// - a socket waiting at the tarpit needs no hiding (the kernel never reports it writable);
//   when its fault is lifted it is reconnected to its peer, so the program's wait completes.
// - while any socket the call waits on is held, the wait is cut into kHealCheckNs slices so
//   that lifting the fault live takes effect within one slice; the program's own timeout is
//   kept exactly.
//
// The fast path of each wrapper is one load: the count of sockets @net has marked, zero
// unless a @net fault acted, and zero again once every marked socket healed or closed.
#include <errno.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <time.h>

#include <cstring>
#include <vector>

#include "session/session.h"
#include "shim/engine/net_core.h"
#include "shim/engine/net_hold.h"
#include "shim/engine/sock_table.h"
#include "shim/net_io.h"

namespace faultline::shim {
namespace {

constexpr int kHealCheckMs = static_cast<int>(kHealCheckNs / 1'000'000);

// A deadline on CLOCK_MONOTONIC from a poll-style timeout; -1 = wait forever.
std::int64_t deadline_after_ns(std::int64_t timeout_ns) {
  return timeout_ns < 0 ? -1 : monotonic_ns() + timeout_ns;
}

// The next slice of a wait that ends at `deadline` (-1 = never): at most kHealCheckNs.
std::int64_t slice_ns(std::int64_t deadline) {
  if (deadline < 0) return kHealCheckNs;
  std::int64_t left = deadline - monotonic_ns();
  if (left < 0) left = 0;
  return left < kHealCheckNs ? left : kHealCheckNs;
}

bool expired(std::int64_t deadline) { return deadline >= 0 && monotonic_ns() >= deadline; }

struct timespec to_timespec(std::int64_t ns) {
  return {static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
}

// Looks at one socket the program waits on. Returns true when it must be left out of the
// kernel's wait (a partition still holds it); `held` becomes true when the wait must be
// sliced (a partition or the tarpit still holds it).
bool hide(const Guard& guard, int fd, bool& held) {
  if (fd < 0) return false;
  SockState st = sock_load_verified(fd);
  if (!(st.flags() & kSockHeld)) return false;
  if (!net_still_held(guard, fd, st)) return false;  // lifted: healed just now
  held = true;
  return (st.flags() & kSockPartitioned) != 0;
}

// ---- poll, ppoll ----------------------------------------------------------------------------

constexpr short kPollWritable = POLLOUT | POLLWRNORM | POLLWRBAND;
constexpr short kPollReadable = POLLIN | POLLRDNORM | POLLRDBAND | POLLRDHUP | POLLHUP;

// The earliest of two wake times (-1 = none).
std::int64_t earliest(std::int64_t a, std::int64_t b) {
  if (a < 0) return b;
  if (b < 0) return a;
  return a < b ? a : b;
}

// A wait's next slice: at most kHealCheckNs, the program's deadline and a held socket's
// visible time (so the program wakes exactly then).
std::int64_t slice_until(std::int64_t deadline, std::int64_t wake) {
  std::int64_t slice = slice_ns(deadline);
  if (wake >= 0) slice = std::min(slice, std::max<std::int64_t>(0, wake - monotonic_ns()));
  return slice;
}

// What the poll family hides of a socket `latency` holds (net_hold.h), as poll bits.
short latency_hidden(const HoldView& view) {
  return static_cast<short>((view.hide_in ? kPollReadable : 0) |
                            (view.hide_out ? kPollWritable : 0));
}

template <class Wait>  // int(struct pollfd*, nfds_t, std::int64_t slice_ns)
int poll_loop(struct pollfd* fds, nfds_t n, std::int64_t timeout_ns, Wait wait) {
  Guard guard;
  if (!guard.entered()) return wait(fds, n, timeout_ns);
  const std::int64_t deadline = deadline_after_ns(timeout_ns);
  std::vector<struct pollfd> copy;
  for (;;) {
    bool held = false;
    int writable = 0;  // hidden sockets the program asked writability of: ready now
    std::int64_t wake = -1;
    bool latency = false;  // some socket is held by `latency`: its results are filtered
    struct pollfd* target = fds;
    auto use_copy = [&] {
      if (target == fds) {  // the first hidden socket: wait on a private copy
        copy.assign(fds, fds + n);
        target = copy.data();
      }
    };
    for (nfds_t i = 0; i < n; ++i) {
      const int fd = fds[i].fd;
      if (fd >= 0 && (sock_load(fd).flags() & kSockLatency)) {
        HoldView view;
        if (!net_hold_view(guard, fd, view)) continue;
        held = latency = true;
        wake = earliest(wake, view.wake_ns);
        use_copy();
        copy[i].events = static_cast<short>(fds[i].events & ~latency_hidden(view));
        continue;
      }
      if (!hide(guard, fd, held)) continue;
      use_copy();
      copy[i].fd = -1;  // the kernel skips a negative fd and reports nothing for it
      if (fds[i].events & kPollWritable) ++writable;
    }
    if (!held) {  // nothing (left) to hide or heal among these fds: an ordinary wait
      std::int64_t left = deadline < 0 ? -1 : deadline - monotonic_ns();
      GuardRelease released(guard);
      return wait(fds, n, left < 0 && deadline >= 0 ? 0 : left);
    }
    int r;
    {
      GuardRelease released(guard);
      r = wait(target, n, timeout_ns == 0 || writable ? 0 : slice_until(deadline, wake));
    }
    if (r < 0) return r;
    if (latency && r > 0) {
      // The kernel says readable: an arrival, observed now; hidden until it is visible.
      for (nfds_t i = 0; i < n; ++i) {
        if (target[i].revents == 0 || fds[i].fd < 0 ||
            !(sock_load(fds[i].fd).flags() & kSockLatency))
          continue;
        HoldView view;
        if (!net_hold_view(guard, fds[i].fd, view)) continue;
        target[i].revents = static_cast<short>(target[i].revents & ~latency_hidden(view));
        if (target[i].revents == 0) --r;
      }
    }
    if (r > 0 || writable || timeout_ns == 0 || expired(deadline)) {
      if (target != fds) {
        for (nfds_t i = 0; i < n; ++i) {
          fds[i].revents = copy[i].revents;
          if (copy[i].fd < 0 && fds[i].fd >= 0) fds[i].revents = fds[i].events & kPollWritable;
        }
      }
      return r + writable;
    }
  }
}

FL_COLD int poll_slow(struct pollfd* fds, nfds_t n, int timeout) {
  return poll_loop(fds, n, timeout < 0 ? -1 : std::int64_t{timeout} * 1'000'000,
                   [](struct pollfd* f, nfds_t c, std::int64_t ns) {
                     int ms = ns < 0 ? -1 : static_cast<int>((ns + 999'999) / 1'000'000);
                     return FL_REAL(poll)(f, c, ms);
                   });
}

FL_COLD int ppoll_slow(struct pollfd* fds, nfds_t n, const struct timespec* timeout,
                       const sigset_t* mask) {
  std::int64_t ns = timeout ? std::int64_t{timeout->tv_sec} * 1'000'000'000 + timeout->tv_nsec : -1;
  return poll_loop(fds, n, ns, [mask](struct pollfd* f, nfds_t c, std::int64_t slice) {
    struct timespec ts = to_timespec(slice < 0 ? 0 : slice);
    return FL_REAL(ppoll)(f, c, slice < 0 ? nullptr : &ts, mask);
  });
}

// ---- select, pselect ------------------------------------------------------------------------

// A copy of an fd_set of `n` fds (which may be larger than FD_SETSIZE when the program
// allocated it so).
struct FdSetCopy {
  std::vector<fd_mask> bits;
  void load(const fd_set* set, int n) {
    std::size_t words = (static_cast<std::size_t>(n) + NFDBITS - 1) / NFDBITS;
    bits.assign(words, 0);
    if (set) std::memcpy(bits.data(), set, words * sizeof(fd_mask));
  }
  bool has(int fd) const { return bits[fd / NFDBITS] & (fd_mask{1} << (fd % NFDBITS)); }
  void clear(int fd) { bits[fd / NFDBITS] &= ~(fd_mask{1} << (fd % NFDBITS)); }
  void set(int fd) { bits[fd / NFDBITS] |= fd_mask{1} << (fd % NFDBITS); }
  fd_set* data(const fd_set* original) {
    return original ? reinterpret_cast<fd_set*>(bits.data()) : nullptr;
  }
  void store(fd_set* set) const {
    if (set) std::memcpy(set, bits.data(), bits.size() * sizeof(fd_mask));
  }
};

template <class Wait>  // int(int, fd_set*, fd_set*, fd_set*, std::int64_t slice_ns)
int select_loop(int n, fd_set* rd, fd_set* wr, fd_set* ex, std::int64_t timeout_ns, Wait wait,
                std::int64_t* left_ns) {
  Guard guard;
  if (!guard.entered() || n <= 0) return wait(n, rd, wr, ex, timeout_ns);
  const std::int64_t deadline = deadline_after_ns(timeout_ns);
  FdSetCopy r, w, e;
  for (;;) {
    r.load(rd, n);
    w.load(wr, n);
    e.load(ex, n);
    bool held = false;
    std::vector<int> writable;  // hidden sockets in the write set: ready now
    std::vector<int> latency;   // sockets `latency` holds: their results are filtered
    std::int64_t wake = -1;
    for (int fd = 0; fd < n; ++fd) {
      if (!(r.has(fd) || w.has(fd) || e.has(fd))) continue;
      if (sock_load(fd).flags() & kSockLatency) {
        HoldView view;
        if (!net_hold_view(guard, fd, view)) continue;
        held = true;
        latency.push_back(fd);
        wake = earliest(wake, view.wake_ns);
        if (view.hide_in) r.clear(fd);
        if (view.hide_out) w.clear(fd);
        continue;
      }
      if (hide(guard, fd, held)) {
        if (w.has(fd)) writable.push_back(fd);
        r.clear(fd);
        w.clear(fd);
        e.clear(fd);
      }
    }
    if (!held) {
      std::int64_t left = deadline < 0 ? -1 : deadline - monotonic_ns();
      int res;
      {
        GuardRelease released(guard);
        res = wait(n, rd, wr, ex, left < 0 && deadline >= 0 ? 0 : left);
      }
      if (left_ns)
        *left_ns = deadline < 0 ? -1 : std::max<std::int64_t>(0, deadline - monotonic_ns());
      return res;
    }
    int res;
    {
      GuardRelease released(guard);
      res = wait(n, r.data(rd), w.data(wr), e.data(ex),
                 timeout_ns == 0 || !writable.empty() ? 0 : slice_until(deadline, wake));
    }
    if (res < 0) return res;
    for (int fd : latency) {  // readable: an arrival, observed now; hidden until visible
      if (res <= 0) break;
      if (!(rd && r.has(fd)) && !(wr && w.has(fd))) continue;
      HoldView view;
      if (!net_hold_view(guard, fd, view)) continue;
      if (view.hide_in && rd && r.has(fd)) {
        r.clear(fd);
        --res;
      }
      if (view.hide_out && wr && w.has(fd)) {
        w.clear(fd);
        --res;
      }
    }
    if (res > 0 || !writable.empty() || timeout_ns == 0 || expired(deadline)) {
      for (int fd : writable) w.set(fd);
      res += static_cast<int>(writable.size());
      r.store(rd);
      w.store(wr);
      e.store(ex);
      if (left_ns)
        *left_ns = deadline < 0 ? -1 : std::max<std::int64_t>(0, deadline - monotonic_ns());
      return res;
    }
  }
}

FL_COLD int select_slow(int n, fd_set* rd, fd_set* wr, fd_set* ex, struct timeval* timeout) {
  std::int64_t ns = timeout ? std::int64_t{timeout->tv_sec} * 1'000'000'000 +
                                  std::int64_t{timeout->tv_usec} * 1000
                            : -1;
  std::int64_t left = -1;
  int r = select_loop(
      n, rd, wr, ex, ns,
      [](int c, fd_set* a, fd_set* b, fd_set* x, std::int64_t slice) {
        struct timeval tv = {static_cast<time_t>(slice / 1'000'000'000),
                             static_cast<suseconds_t>(slice % 1'000'000'000 / 1000)};
        return FL_REAL(select)(c, a, b, x, slice < 0 ? nullptr : &tv);
      },
      &left);
  // Linux's select() leaves the time not slept in *timeout; so does this one.
  if (timeout && left >= 0) {
    timeout->tv_sec = static_cast<time_t>(left / 1'000'000'000);
    timeout->tv_usec = static_cast<suseconds_t>(left % 1'000'000'000 / 1000);
  }
  return r;
}

FL_COLD int pselect_slow(int n, fd_set* rd, fd_set* wr, fd_set* ex, const struct timespec* timeout,
                         const sigset_t* mask) {
  std::int64_t ns = timeout ? std::int64_t{timeout->tv_sec} * 1'000'000'000 + timeout->tv_nsec : -1;
  return select_loop(
      n, rd, wr, ex, ns,
      [mask](int c, fd_set* a, fd_set* b, fd_set* x, std::int64_t slice) {
        struct timespec ts = to_timespec(slice < 0 ? 0 : slice);
        return FL_REAL(pselect)(c, a, b, x, slice < 0 ? nullptr : &ts, mask);
      },
      nullptr);
}

// ---- epoll ----------------------------------------------------------------------------------

// Takes a partitioned socket out of epoll set `epfd` (once), so that a level-triggered
// registration stops reporting the data or hangup the partition must hide.
void park(int epfd, int fd) {
  for (int attempt = 0; attempt < 8; ++attempt) {
    SockState st = sock_load(fd);
    if (!(st.flags() & kSockPartitioned) || (st.flags() & kSockParked)) return;
    if (!sock_store(fd, st, st.flags() | kSockParked, st.fault(), st.error())) continue;
    FL_REAL(epoll_ctl)(epfd, EPOLL_CTL_DEL, fd, nullptr);
    return;
  }
}

// Events of sockets `latency` holds: an EPOLLIN the kernel reports is an arrival, observed
// now, and hidden until it is visible (an event left with nothing is dropped). The event is
// mapped back to its fd by the program's data word (sock_epoll_record).
int filter_latency(const Guard& guard, int epfd, struct epoll_event* events, int r, const int* fds,
                   const std::uint64_t* data, int count) {
  constexpr std::uint32_t kIn = EPOLLIN | EPOLLRDNORM | EPOLLRDHUP | EPOLLHUP;
  constexpr std::uint32_t kOut = EPOLLOUT | EPOLLWRNORM;
  int kept = 0;
  for (int e = 0; e < r; ++e) {
    struct epoll_event ev = events[e];
    for (int i = 0; i < count; ++i) {
      if (data[i] != ev.data.u64) continue;
      HoldView view;
      if (!net_hold_view(guard, fds[i], view)) break;
      if (view.hide_in) ev.events &= ~kIn;
      if (view.hide_out) ev.events &= ~kOut;
      int ep = -1;
      std::uint32_t registered = 0;
      std::uint64_t d = 0;
      if (sock_epoll_get(fds[i], ep, registered, d) && ep == epfd)
        net_hold_epoll_apply(epfd, fds[i], registered, d, view);
      break;
    }
    if (ev.events != 0) events[kept++] = ev;
  }
  return kept;
}

template <class Wait>  // int(struct epoll_event*, int, std::int64_t slice_ns)
int epoll_loop(int epfd, struct epoll_event* events, int max, std::int64_t timeout_ns, Wait wait) {
  Guard guard;
  if (!guard.entered()) return wait(events, max, timeout_ns);
  const std::int64_t deadline = deadline_after_ns(timeout_ns);
  for (;;) {
    // epoll_wait is not given fds: look at the marked sockets registered in this set.
    int fds[kMarkedMax];
    int count = sock_marked_fds(fds, kMarkedMax);
    bool held = false;
    struct epoll_event writable[kMarkedMax];  // parked sockets registered for EPOLLOUT
    int ready = 0;
    int latency[kMarkedMax];  // sockets `latency` holds in this set: results filtered
    std::uint64_t latency_data[kMarkedMax];
    int latency_count = 0;
    std::int64_t wake = -1;
    for (int i = 0; i < count; ++i) {
      int ep = -1;
      std::uint32_t registered = 0;
      std::uint64_t data = 0;
      if (!sock_epoll_get(fds[i], ep, registered, data) || ep != epfd) continue;
      if (sock_load(fds[i]).flags() & kSockLatency) {
        HoldView view;
        if (!net_hold_view(guard, fds[i], view)) continue;
        held = true;
        wake = earliest(wake, view.wake_ns);
        // EPOLLIN out of the registration while the data is invisible (a level-triggered
        // set would spin), the program's own back at the visible time (re-arms an edge).
        net_hold_epoll_apply(epfd, fds[i], registered, data, view);
        latency[latency_count] = fds[i];
        latency_data[latency_count++] = data;
        continue;
      }
      if (!hide(guard, fds[i], held)) continue;
      park(epfd, fds[i]);
      if (registered & EPOLLOUT) {
        writable[ready].events = EPOLLOUT;
        writable[ready].data.u64 = data;
        ++ready;
      }
    }
    if (!held) {
      std::int64_t left = deadline < 0 ? -1 : deadline - monotonic_ns();
      GuardRelease released(guard);
      return wait(events, max, left < 0 && deadline >= 0 ? 0 : left);
    }
    int r;
    {
      GuardRelease released(guard);
      r = wait(events, max, timeout_ns == 0 || ready ? 0 : slice_until(deadline, wake));
    }
    if (r < 0) return r;
    if (latency_count > 0 && r > 0)
      r = filter_latency(guard, epfd, events, r, latency, latency_data, latency_count);
    for (int i = 0; i < ready && r < max; ++i) events[r++] = writable[i];
    if (r != 0 || timeout_ns == 0 || expired(deadline)) return r;
  }
}

int epoll_ms(std::int64_t ns) { return ns < 0 ? -1 : static_cast<int>((ns + 999'999) / 1'000'000); }

FL_COLD int epoll_wait_slow(int epfd, struct epoll_event* events, int max, int timeout) {
  return epoll_loop(epfd, events, max, timeout < 0 ? -1 : std::int64_t{timeout} * 1'000'000,
                    [epfd](struct epoll_event* e, int m, std::int64_t ns) {
                      return FL_REAL(epoll_wait)(epfd, e, m, epoll_ms(ns));
                    });
}

FL_COLD int epoll_pwait_slow(int epfd, struct epoll_event* events, int max, int timeout,
                             const sigset_t* mask) {
  return epoll_loop(epfd, events, max, timeout < 0 ? -1 : std::int64_t{timeout} * 1'000'000,
                    [epfd, mask](struct epoll_event* e, int m, std::int64_t ns) {
                      return FL_REAL(epoll_pwait)(epfd, e, m, epoll_ms(ns), mask);
                    });
}

// epoll_ctl on a socket we parked: the program still believes it is registered.
FL_COLD int parked_ctl(int epfd, int op, int fd, struct epoll_event* event) {
  int ep = -1;
  std::uint32_t events = 0;
  std::uint64_t data = 0;
  if (!sock_epoll_get(fd, ep, events, data) || ep != epfd)
    return FL_REAL(epoll_ctl)(epfd, op, fd, event);
  switch (op) {
    case EPOLL_CTL_ADD:
      errno = EEXIST;
      return -1;
    case EPOLL_CTL_MOD:  // takes effect when it is put back
      if (!event) {
        errno = EFAULT;
        return -1;
      }
      sock_epoll_record(fd, epfd, event->events, event->data.u64);
      return 0;
    case EPOLL_CTL_DEL: {
      sock_epoll_forget(fd, epfd);
      for (int attempt = 0; attempt < 8; ++attempt) {
        SockState st = sock_load(fd);
        if (sock_store(fd, st, st.flags() & ~kSockParked, st.fault(), st.error())) break;
      }
      return 0;
    }
    default:
      return FL_REAL(epoll_ctl)(epfd, op, fd, event);
  }
}

// ---- getsockopt -----------------------------------------------------------------------------

FL_COLD int getsockopt_slow(int fd, int level, int name, void* value, socklen_t* len) {
  Guard guard;
  if (!guard.entered() || level != SOL_SOCKET || name != SO_ERROR)
    return FL_REAL(getsockopt)(fd, level, name, value, len);
  SockState st = sock_load_verified(fd);
  if (st.flags() & kSockTarpit) net_still_held(guard, fd, st);  // heals if lifted
  if ((st.flags() & kSockLatency) && net_hold_connecting(guard, fd) && value && len &&
      *len >= sizeof(int)) {
    const int none = 0;  // still "connecting" (latency): no error yet, as the kernel says
    std::memcpy(value, &none, sizeof none);
    *len = sizeof none;
    return 0;
  }
  int r = FL_REAL(getsockopt)(fd, level, name, value, len);
  if (r == 0 && (st.flags() & kSockPendingError) && value && len && *len >= sizeof(int)) {
    // The kernel says ECONNREFUSED (the refuser's RST); the fault said which error it is.
    int err = st.error();
    std::memcpy(value, &err, sizeof err);
    for (int attempt = 0; attempt < 8; ++attempt) {
      if (sock_store(fd, st, st.flags() & ~kSockPendingError, 0, 0)) break;
      st = sock_load(fd);
    }
  }
  return r;
}

}  // namespace
}  // namespace faultline::shim

using namespace faultline;
using namespace faultline::shim;

FL_EXPORT int poll(struct pollfd* fds, nfds_t n, int timeout) {
  if (FL_LIKELY(!sock_any_marked())) return FL_REAL(poll)(fds, n, timeout);
  return poll_slow(fds, n, timeout);
}

FL_EXPORT int ppoll(struct pollfd* fds, nfds_t n, const struct timespec* timeout,
                    const sigset_t* mask) {
  if (FL_LIKELY(!sock_any_marked())) return FL_REAL(ppoll)(fds, n, timeout, mask);
  return ppoll_slow(fds, n, timeout, mask);
}

FL_EXPORT int select(int n, fd_set* rd, fd_set* wr, fd_set* ex, struct timeval* timeout) {
  if (FL_LIKELY(!sock_any_marked())) return FL_REAL(select)(n, rd, wr, ex, timeout);
  return select_slow(n, rd, wr, ex, timeout);
}

FL_EXPORT int pselect(int n, fd_set* rd, fd_set* wr, fd_set* ex, const struct timespec* timeout,
                      const sigset_t* mask) {
  if (FL_LIKELY(!sock_any_marked())) return FL_REAL(pselect)(n, rd, wr, ex, timeout, mask);
  return pselect_slow(n, rd, wr, ex, timeout, mask);
}

FL_EXPORT int epoll_ctl(int epfd, int op, int fd, struct epoll_event* event) {
  // Bookkeeping on every call, like close(): a partitioned socket can only be taken out of
  // its epoll set and put back if we know how the program registered it.
  // (A parked state set on a socket since closed behind our back is dropped, not obeyed.)
  if (FL_UNLIKELY(sock_load(fd).flags() & kSockParked) &&
      (sock_load_verified(fd).flags() & kSockParked))
    return parked_ctl(epfd, op, fd, event);
  int r = FL_REAL(epoll_ctl)(epfd, op, fd, event);
  if (r == 0) {
    if ((op == EPOLL_CTL_ADD || op == EPOLL_CTL_MOD) && event) {
      sock_epoll_record(fd, epfd, event->events, event->data.u64);
      // The kernel has the program's registration again (latency masks it: net_hold.h).
      if (FL_UNLIKELY(sock_load(fd).flags() & kSockLatency)) net_hold_epoll_reset(fd);
    } else if (op == EPOLL_CTL_DEL)
      sock_epoll_forget(fd, epfd);
  }
  return r;
}

FL_EXPORT int epoll_wait(int epfd, struct epoll_event* events, int max, int timeout) {
  if (FL_LIKELY(!sock_any_marked())) return FL_REAL(epoll_wait)(epfd, events, max, timeout);
  return epoll_wait_slow(epfd, events, max, timeout);
}

FL_EXPORT int epoll_pwait(int epfd, struct epoll_event* events, int max, int timeout,
                          const sigset_t* mask) {
  if (FL_LIKELY(!sock_any_marked())) return FL_REAL(epoll_pwait)(epfd, events, max, timeout, mask);
  return epoll_pwait_slow(epfd, events, max, timeout, mask);
}

FL_EXPORT int getsockopt(int fd, int level, int name, void* value, socklen_t* len) {
  if (FL_LIKELY(!sock_any_marked())) return FL_REAL(getsockopt)(fd, level, name, value, len);
  return getsockopt_slow(fd, level, name, value, len);
}
