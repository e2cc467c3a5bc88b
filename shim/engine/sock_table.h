// Per-fd state of the sockets @net faults have acted on: reset, partitioned (a blackhole
// holds it), waiting at the tarpit (a blackholed non-blocking connect), or carrying the error
// of a failed non-blocking connect; plus the peer the program meant to reach (getpeername
// cannot say while the socket waits at the tarpit) and the socket's epoll registration (so
// a partitioned socket can be taken out of its epoll set and put back when the fault lifts).
//
// Lock-free like the fd table: one state word per fd, in chunks mapped on demand, with a
// close generation in its upper half. Every update is a compare-and-swap against the word a
// wrapper loaded before it acted, so a close (or an fd number reused) in between wins and the
// stale update is dropped. Invalidated from fd_invalidate(): close, dup2/dup3, fclose,
// close_range, closefrom, freopen, socketpair and every call that returns a new fd; and,
// for what no wrapper sees, checked against the socket's identity before it is acted on
// (sock_load_verified).
#pragma once

#include <sys/socket.h>

#include <atomic>
#include <cstdint>

namespace faultline::shim {

enum SockFlag : std::uint32_t {
  kSockReset = 1u << 0,         // aborted by `reset`: receives fail ECONNRESET
  kSockPartitioned = 1u << 1,   // a blackhole swallowed a call: the poll family hides it
  kSockTarpit = 1u << 2,        // a blackholed connect waits at the tarpit
  kSockPendingError = 1u << 3,  // a failed non-blocking connect: SO_ERROR says `error`
  kSockParked = 1u << 4,        // taken out of its epoll set while partitioned
  kSockLatency = 1u << 5,       // held by `latency` (net_hold.h): the poll family filters it
  kSockEof = 1u << 7,           // ended by `eof`: receives read end-of-file (net_cut.h)
};
// States the poll family hides or heals.
inline constexpr std::uint32_t kSockHeld = kSockPartitioned | kSockTarpit;
// States the poll family and getsockopt must look at: their wrappers' fast path is one load
// of the count of sockets in one of these.
inline constexpr std::uint32_t kSockMarked = kSockHeld | kSockPendingError | kSockLatency;

// One loaded state word. Zero flags = nothing special (the common case).
struct SockState {
  std::uint64_t word = 0;
  std::uint32_t flags() const { return static_cast<std::uint32_t>(word & 0xff); }
  int fault() const { return static_cast<int>((word >> 8) & 0xff); }
  int error() const { return static_cast<int>((word >> 16) & 0xffff); }
};

SockState sock_load(int fd) noexcept;
// sock_load for a wrapper about to act on the state (fail a receive ECONNRESET, hide the
// socket from poll, park it, name a connect error): when the state is not empty, first checks
// (one statx) that the fd still is the socket the state was set on, and forgets the state if
// not. A reset socket's number reused by a raw socket()/socketpair() must not inherit it.
SockState sock_load_verified(int fd) noexcept;
// Replaces `seen` with the given state; false if the word changed since (a close, or another
// thread's update): the caller's view is stale and nothing was stored.
bool sock_store(int fd, SockState seen, std::uint32_t flags, int fault, int error) noexcept;
// Forgets everything about fd (close, dup2 onto it, a new fd with this number).
void sock_forget(int fd) noexcept;
void sock_forget_range(unsigned first, unsigned last) noexcept;  // close_range

// The peer the program asked connect() for (kept while it waits at the tarpit or carries a
// connect error). Returns its length, 0 if none. `local`: the words hold a listening socket's
// own address instead (what accept's `addr` matches), kept until bind, listen, connect or
// close; sock_peer returns only the kind asked for.
void sock_set_peer(int fd, const struct sockaddr* addr, socklen_t len, bool local = false) noexcept;
// `seq` (optional): the version of the address read, for sock_addr_note.
socklen_t sock_peer(int fd, struct sockaddr_storage* out, std::uint64_t* seq = nullptr,
                    bool local = false) noexcept;

// The `addr` selector's memory of a connected stream socket's peer (net_select.cpp): a TCP
// or unix stream socket's peer does not change once connected, so it is looked up once and
// kept (in the same words as the peer above) until the fd is closed or connects again. A
// datagram socket's peer may change with every connect: it is marked not to be remembered.
void sock_mark_peer_unstable(int fd) noexcept;
bool sock_peer_unstable(int fd) noexcept;
// A new connect on fd: the remembered peer (if any) is no longer its peer.
void sock_forget_peer(int fd) noexcept;
// A socket made by socket(SOCK_STREAM) while @net was armed (the wrapper saw its type): a
// connect to a specific address gives it that peer for good (net_learn_connect_peer).
void sock_mark_stream(int fd) noexcept;
bool sock_is_stream(int fd) noexcept;

// The `addr` selector's answers for a remembered peer: whether fault `fault`'s `addr` list
// matches it, under the rules copy of `epoch` (engine_internal.h, Rules::epoch). The answer
// depends only on the two, so it is kept per fd (one bit per fault slot) until the peer
// changes (any write of the peer moves its version: connect, close, a new fd) or the rules
// are rebuilt. sock_addr_answer: 1 matches, 0 does not, -1 not known. sock_addr_note: records
// an answer found for the peer version `peer_seq` (sock_peer's `seq`). A socket call on a
// connected stream socket then costs the `addr` selector a few loads, no copy of the address
// and no matching.
// `local`: the answers about a listener's own address (accept), as sock_peer's.
int sock_addr_answer(int fd, std::uint32_t epoch, int fault, bool local = false) noexcept;
void sock_addr_note(int fd, std::uint64_t peer_seq, std::uint32_t epoch, int fault, bool match,
                    bool local = false) noexcept;

// epoll_ctl bookkeeping: the last registration of fd (one epoll set per fd is remembered).
void sock_epoll_record(int fd, int epfd, std::uint32_t events, std::uint64_t data) noexcept;
void sock_epoll_forget(int fd, int epfd) noexcept;
bool sock_epoll_get(int fd, int& epfd, std::uint32_t& events, std::uint64_t& data) noexcept;

// Sockets in a marked state: a count the poll family and getsockopt check first (zero almost
// always), and up to kMarkedMax of their fds for epoll_wait, which is not given fds. More
// marked sockets than that are still hidden from poll/select, not from epoll.
inline constexpr int kMarkedMax = 64;
extern std::atomic<int> g_marked_count;
// Inline: the poll family's whole fast path is this load, a test and a tail jump.
// Set once the `addr` selector remembered any socket's peer (sock_set_peer): connect's fast
// path then forgets the fd's peer too.
extern std::atomic<bool> g_peer_remembered;
inline bool sock_any_peer_remembered() noexcept {
  return g_peer_remembered.load(std::memory_order_relaxed);
}

// Set (for good) once any socket was given a state (sock_store): until then every socket's
// flags are zero, without a look at the table.
extern std::atomic<bool> g_sock_state_ever;
inline bool sock_any_state_ever() noexcept {
  return g_sock_state_ever.load(std::memory_order_acquire);
}

inline bool sock_any_marked() noexcept {
  return g_marked_count.load(std::memory_order_relaxed) > 0;
}
int sock_marked_fds(int* out, int max) noexcept;

}  // namespace faultline::shim
