// Bytes that have passed on each socket, per direction (received, sent), for the `after_bytes`
// trigger: a fault acts on a connection once this many bytes have passed on it in the call's
// direction. Counted only for the calls of sockets a rule with `after_bytes` matched (decide()
// marks the CallArgs), so nothing is counted while no such fault is armed or matches.
//
// Lock-free like the socket table (sock_table.h): per fd, one word per direction in chunks
// mapped on demand, with a close generation in its top 16 bits and the count in the low 48
// (256 TiB; it saturates there). An add names the generation it loaded before the call ran, so
// bytes moved before a close (or dup2 onto the number) never count on the socket that has the
// number now. Forgotten from fd_invalidate(); what no wrapper sees (a raw close and a new
// socket on the number) is caught by the socket's identity, checked when a count reaches a
// boundary (sock_bytes_verify), the only moment the count decides anything. No allocation,
// no locks: async-signal-safe.
#pragma once

#include <cstdint>

namespace faultline::shim {

inline constexpr int kBytesReceived = 0;
inline constexpr int kBytesSent = 1;
inline constexpr std::uint64_t kByteCountMax = (1ull << 48) - 1;

// The direction in which a call moves bytes on a socket (kBytesReceived / kBytesSent), or -1
// for a call that moves none (connect, accept...).
int call_byte_dir(std::uint32_t call) noexcept;

// One loaded counter word.
struct ByteCount {
  std::uint64_t word = 0;
  std::uint64_t bytes() const { return word & kByteCountMax; }
  std::uint64_t generation() const { return word >> 48; }
};

ByteCount sock_bytes_load(int fd, int dir) noexcept;
// Adds n bytes to fd's count in `dir`, if the fd is still the one `seen` was loaded from (same
// close generation); concurrent adds on the same socket all count.
void sock_bytes_add(int fd, int dir, ByteCount seen, std::uint64_t n) noexcept;
// Before a count is acted on: is fd still the socket it was counted on? If not (closed and
// reused behind the wrappers' back), forgets its counts and returns false.
bool sock_bytes_verify(int fd) noexcept;
// Forgets fd's counts (close, dup2 onto it, a new fd with this number).
void sock_bytes_forget(int fd) noexcept;
void sock_bytes_forget_range(unsigned first, unsigned last) noexcept;

}  // namespace faultline::shim
