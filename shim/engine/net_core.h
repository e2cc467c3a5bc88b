// The connection techniques behind @net's actions, shared by the wrappers (net.cpp), the
// poll family (net_poll.cpp) and the byte-moving slow path (net_io.h):
//
// - abort: connect(fd, {AF_UNSPEC}) on an established TCP socket makes the kernel send RST
//   (tcp_disconnect); the peer's next call fails ECONNRESET and the fd stays the program's.
// - the tarpit: a loopback listener owned by the shim with listen(0) and its accept queue
//   filled by one connection of its own; further SYNs are dropped, so a socket connected to
//   it stays in SYN_SENT — never writable, SO_ERROR 0, EALREADY on a second connect, and
//   ETIMEDOUT when the kernel's SYN retries run out: a partition, byte for byte.
// - the refuser: a loopback socket bound but not listening; a SYN to it is answered with RST,
//   so a non-blocking connect fails the kernel's way (EINPROGRESS, then poll reports
//   writable+error and SO_ERROR the error), and getsockopt substitutes the fault's errno.
//
// Both loopback sockets are the shim's own, on this host: no traffic ever goes to an address
// the program did not name. They are created on first use, moved to high fd numbers, close-
// on-exec, and re-made if the program closed them (a reused fd number is never touched).
#pragma once

#include <sys/socket.h>

#include <cstdint>

#include "shim/engine/engine.h"
#include "shim/engine/sock_table.h"
#include "shim/engine/wait.h"

namespace faultline::shim {

// SO_TYPE / SO_DOMAIN of fd (-1 if it is not a socket).
int socket_type(int fd) noexcept;
int socket_domain(int fd) noexcept;
bool fd_nonblocking(int fd) noexcept;

// Aborts the connection (see above; a unix stream socket is shut down, the peer reads EOF).
// False for a datagram socket, which has no connection.
bool net_abort(int fd) noexcept;
// Marks fd reset by fault `fault` (receives then fail ECONNRESET).
void net_mark_reset(int fd, int fault) noexcept;

// Starts a non-blocking connect of fd to the tarpit and records `peer` as the address the
// program asked for. False if no tarpit could be made (the caller falls back).
bool net_tarpit_connect(int fd, const struct sockaddr* peer, socklen_t len, int fault) noexcept;
// Starts a non-blocking connect of fd to the refuser and records `err` as the error it will
// report. False if no refuser could be made.
bool net_refuse_connect(int fd, const struct sockaddr* peer, socklen_t len, int fault,
                        int err) noexcept;
// Errors a real network reports asynchronously to a non-blocking connect (through SO_ERROR);
// the others (EADDRNOTAVAIL, EACCES, EINVAL...) come back from connect() itself.
bool net_async_connect_error(int err) noexcept;

// A held socket (partitioned or at the tarpit), seen by the poll family or a call on it: is
// its fault still holding it? If not, heals it — a tarpit socket is reconnected to its peer
// (non-blocking; the kernel completes it), a partitioned one is put back into its epoll set —
// and returns false.
bool net_still_held(const Guard& guard, int fd, SockState state) noexcept;
void net_tarpit_heal(int fd) noexcept;

// Waits out a partition for a blocking call (shim_wait): until the fault is lifted
// (kLifted), the deadline passes (kDeadline; deadline_ns < 0 = none), or a signal handler
// interrupts it (kInterrupted) when the call would not be restarted: with a socket timeout
// (signal(7)), or a handler installed without SA_RESTART. A cancellation point, like the
// blocking call it stands for: not noexcept, nor may its callers be.
WaitEnd net_wait_partition(const Guard& guard, int fault, const CallArgs& args,
                           std::int64_t deadline_ns, bool timeout_set);
// SO_RCVTIMEO / SO_SNDTIMEO in nanoseconds, 0 when unset.
std::int64_t socket_timeout_ns(int fd, int option) noexcept;

// How often a wait (and the poll family, while a socket is held) looks whether the fault
// was lifted.
inline constexpr std::int64_t kHealCheckNs = kWaitSliceNs;
// A blocking connect into a partition gives up after this without `timeout` or SO_SNDTIMEO.
inline constexpr std::int64_t kDefaultConnectTimeoutNs = 20'000'000'000;

}  // namespace faultline::shim
