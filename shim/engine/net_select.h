// The @net/@dns selectors on the engine's side: which fds read/write calls hit (rw_scope),
// the socket address a call is about (its argument, else the intended or real peer, or the
// local address for bind/listen/accept), `addr` matching (CIDR, port, unix path glob) and
// `host` matching, and the text form of an address for event lines.
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>

#include "faultline/control_block.h"
#include "shim/engine/engine.h"

namespace faultline::shim {

// The address of one call, looked up at most once however many rules ask.
struct NetArgsAddr {
  int state = 0;  // 0 not looked up, 1 known, -1 none (unconnected, not a socket)
  socklen_t len = 0;
  // The address is the socket's remembered peer, as of this version (sock_table.h): an
  // `addr` answer for it may be kept (sock_addr_note).
  bool remembered = false;
  bool local = false;  // ... a listener's own address (accept), not a peer
  std::uint64_t peer_seq = 0;
  struct sockaddr_storage addr;  // filled only when state == 1: never zeroed per call
};

// Does a rule's bit for `call` (a @write/@read call) hit this fd? The four calls that serve
// both families follow the fault's rw_scope; every other @write/@read call skips sockets.
bool fd_kind_in_scope(const FaultSpec& spec, std::uint32_t call, bool socket) noexcept;

// bind, listen, accept, accept4 are about the local address; every other call the peer.
bool is_local_side_call(std::uint32_t call) noexcept;

// The address `addr` is matched against for this call; nullptr when there is none.
const struct sockaddr* args_address(const CallArgs& args, NetArgsAddr& cache) noexcept;

// The `addr` list against one address: some entry without '!' matches it (or the list has
// none and names its kind, inet or unix, in a '!' entry) and no '!' entry does. An address of
// another kind (netlink...) or none matches nothing.
bool addr_selector_matches(const FaultSpec& spec, const struct sockaddr* sa,
                           socklen_t len) noexcept;

// `addr` and `host` of one rule. `addr` never matches a lookup and `host` never matches a
// socket call: a selector that does not apply to a call does not match it. `fault` and
// `epoch` (the rule's slot and its rules copy's epoch) key the answer kept for a socket's
// remembered peer (sock_addr_answer).
bool net_selectors_match(const FaultSpec& spec, int fault, std::uint32_t epoch,
                         const CallArgs& args, NetArgsAddr& cache) noexcept;
// The answer net_selectors_match gave for this rule on this socket's remembered peer, without
// looking at the address: 1 matches, 0 does not, -1 not known (then call net_selectors_match).
// For a call on a connected stream socket without an address argument, after the first.
int net_selectors_known(const FaultSpec& spec, int fault, std::uint32_t epoch,
                        const CallArgs& args) noexcept;

// The peer of a connection, learned from the call that made it instead of a getpeername at
// its first socket call (the `addr` selector's, or an event's): accept/accept4's address (as
// the kernel wrote it: what getpeername would say), and a stream socket's connect to a
// specific IPv4/IPv6 address that succeeded or is in progress (not 0.0.0.0 or ::, which the
// kernel turns into the loopback address; not a unix path, which getpeername names as the
// server bound it). `fd` must be tracked already (track_new_fd forgets the old fd's state).
void net_learn_accept_peer(int fd, const struct sockaddr* addr, socklen_t len) noexcept;
void net_learn_connect_peer(int fd, const struct sockaddr* addr, socklen_t len) noexcept;

// "127.0.0.1:6379", "[::1]:80", "unix:/run/x.sock", "unix:@abstract"; returns the length
// written, 0 when the address is empty or unknown.
std::size_t format_sockaddr(const struct sockaddr* sa, socklen_t len, char* buf,
                            std::size_t size) noexcept;

// For an event: the address of a socket call or the name of a lookup, and which it is
// (kEventHasAddr, kEventHasHost, or 0 when there is neither). `fd_link` is the fd's
// /proc/self/fd link ("socket:[...]" says a read/write was on a socket).
std::uint32_t net_event_text(const CallArgs& args, const char* fd_link, char* out,
                             std::size_t size) noexcept;

}  // namespace faultline::shim
