// @net/@dns selectors (see net_select.h).
#include "shim/engine/net_select.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <cstring>

#include "faultline/glob.h"
#include "policy/net_policy.h"
#include "shim/engine/safe_copy.h"
#include "shim/engine/sock_table.h"
#include "shim/engine/text_buf.h"

namespace faultline::shim {
namespace {

// An IPv6 socket talking to an IPv4 peer sees it as ::ffff:a.b.c.d: match it as IPv4, the
// address the user wrote.
bool unmap_v4(const struct sockaddr_in6* in6, std::uint8_t (&v4)[4]) {
  if (!IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) return false;
  std::memcpy(v4, in6->sin6_addr.s6_addr + 12, 4);
  return true;
}

bool prefix_matches(const std::uint8_t* addr, const std::uint8_t* want, int prefix) {
  int whole = prefix / 8;
  if (std::memcmp(addr, want, static_cast<std::size_t>(whole)) != 0) return false;
  int rest = prefix % 8;
  if (rest == 0) return true;
  auto mask = static_cast<std::uint8_t>(0xff << (8 - rest));
  return (addr[whole] & mask) == (want[whole] & mask);
}

// The path of a unix socket address as a glob sees it: "/run/x.sock", "@name" for an
// abstract one, "" for an unnamed one (socketpair, an unbound client).
std::size_t unix_path(const struct sockaddr_un* un, socklen_t len, char* out, std::size_t size) {
  const std::size_t offset = offsetof(struct sockaddr_un, sun_path);
  std::size_t n = len > offset ? std::min<std::size_t>(len - offset, sizeof un->sun_path) : 0;
  std::size_t at = 0;
  if (n > 0 && un->sun_path[0] == '\0') {
    // Abstract: the name is every byte after the leading NUL (NULs in it shown as '@').
    out[at++] = '@';
    for (std::size_t i = 1; i < n && at + 1 < size; ++i)
      out[at++] = un->sun_path[i] ? un->sun_path[i] : '@';
  } else {
    for (std::size_t i = 0; i < n && un->sun_path[i] && at + 1 < size; ++i)
      out[at++] = un->sun_path[i];
  }
  out[at] = '\0';
  return at;
}

// "a.b.c.d", as inet_ntop writes it.
void put_ipv4(TextBuf& out, const std::uint8_t* bytes) {
  for (int i = 0; i < 4; ++i) {
    if (i) out.put('.');
    out.dec(bytes[i]);
  }
}

// RFC 5952 text, as glibc's inet_ntop writes it: lowercase hex without leading zeros, the
// longest (first) run of two or more zero words as "::", and ::a.b.c.d / ::ffff:a.b.c.d for
// IPv4-compatible and IPv4-mapped addresses.
void put_ipv6(TextBuf& out, const std::uint8_t* bytes) {
  unsigned words[8];
  for (int i = 0; i < 8; ++i) words[i] = (unsigned{bytes[2 * i]} << 8) | bytes[2 * i + 1];
  int best = -1, best_len = 0;
  for (int i = 0; i < 8;) {
    if (words[i] != 0) {
      ++i;
      continue;
    }
    int j = i;
    while (j < 8 && words[j] == 0) ++j;
    if (j - i > best_len) {
      best = i;
      best_len = j - i;
    }
    i = j;
  }
  if (best_len < 2) best = -1;
  for (int i = 0; i < 8; ++i) {
    if (best >= 0 && i >= best && i < best + best_len) {
      if (i == best) out.put(':');
      continue;
    }
    if (i != 0) out.put(':');
    if (i == 6 && best == 0 && (best_len == 6 || (best_len == 5 && words[5] == 0xffff))) {
      put_ipv4(out, bytes + 12);
      return;
    }
    out.hex(words[i]);
  }
  if (best >= 0 && best + best_len == 8) out.put(':');
}

}  // namespace

bool fd_kind_in_scope(const FaultSpec& spec, std::uint32_t call, bool socket) noexcept {
  if (!is_rw_call(call)) return !socket;  // pwrite, sendfile, fwrite... never hit sockets
  return rw_scope_hits(spec, socket);
}

bool is_local_side_call(std::uint32_t call) noexcept {
  return call == kCall_bind || call == kCall_listen || call == kCall_accept ||
         call == kCall_accept4;
}

const struct sockaddr* args_address(const CallArgs& args, NetArgsAddr& cache) noexcept {
  if (cache.state == 0) {
    cache.state = -1;
    auto* out = reinterpret_cast<struct sockaddr*>(&cache.addr);
    if (args.addr && args.addr_len > 0) {
      // The program's pointer (msg_name, sendto's address): read fault-safely; an unreadable
      // address is the kernel's EFAULT to report, and matches no `addr`.
      cache.len = std::min<socklen_t>(args.addr_len, sizeof cache.addr);
      if (safe_read(&cache.addr, args.addr, cache.len) == SafeCopy::kOk) cache.state = 1;
    } else if (args.fd >= 0) {
      socklen_t len = sizeof cache.addr;
      const bool accepting = args.call == kCall_accept || args.call == kCall_accept4;
      if (accepting && (len = sock_peer(args.fd, &cache.addr, &cache.peer_seq, true)) > 0) {
        // A listener's own address, remembered at its first accept: it cannot change while it
        // listens (bind, listen and connect forget it).
        cache.state = 1;
        cache.remembered = true;
        cache.local = true;
      } else if (is_local_side_call(args.call)) {
        len = sizeof cache.addr;
        if (getsockname(args.fd, out, &len) == 0) {
          cache.state = 1;
          if (accepting) sock_set_peer(args.fd, out, len, true);
        }
      } else if ((len = sock_peer(args.fd, &cache.addr, &cache.peer_seq)) > 0) {
        // Remembered: a connected stream socket's, or (waiting at the tarpit, or failed) the
        // peer the program asked for.
        cache.state = 1;
        cache.remembered = true;
      } else {
        len = sizeof cache.addr;
        if (getpeername(args.fd, out, &len) == 0) {
          cache.state = 1;
          // A connected stream socket keeps its peer: remembered, so that the next call on
          // it costs no system call here (sock_table.h). Datagram sockets are asked each time.
          if (!sock_peer_unstable(args.fd)) {
            int type = 0;
            socklen_t size = sizeof type;
            if (FL_REAL(getsockopt)(args.fd, SOL_SOCKET, SO_TYPE, &type, &size) == 0 &&
                type == SOCK_STREAM)
              sock_set_peer(args.fd, out, len);
            else
              sock_mark_peer_unstable(args.fd);
          }
        }
      }
      cache.len = len;
    }
  }
  return cache.state > 0 ? reinterpret_cast<const struct sockaddr*>(&cache.addr) : nullptr;
}

bool addr_selector_matches(const FaultSpec& spec, const struct sockaddr* sa,
                           socklen_t len) noexcept {
  if (!sa || len < sizeof(sa_family_t)) return false;
  const std::uint32_t count = spec.addr_count < kAddrMax ? spec.addr_count : kAddrMax;
  // A list of '!' entries alone matches every other address of the kinds it names: "!10.0.0.1:*"
  // every other IP peer, not the program's unix sockets (and never netlink and the like).
  bool positives = false;
  bool negated_kind[3] = {false, false, false};
  for (std::uint32_t i = 0; i < count; ++i) {
    if (!spec.addr[i].negated)
      positives = true;
    else if (spec.addr[i].kind < 3)
      negated_kind[spec.addr[i].kind] = true;
  }
  if (sa->sa_family == AF_UNIX) {
    char path[sizeof(sockaddr_un::sun_path) + 2];
    unix_path(reinterpret_cast<const struct sockaddr_un*>(sa), len, path, sizeof path);
    const GlobListHits hits =
        glob_list_hits(spec.addr_unix, sizeof spec.addr_unix,
                       [&path](const char* glob) { return glob_match(glob, path); });
    if (hits.negative_hit) return false;
    return hits.positive_hit || (!positives && negated_kind[kAddrUnix]);
  }
  std::uint8_t v4[4];
  const std::uint8_t* bytes = nullptr;
  int family = 0;
  std::uint16_t port = 0;
  if (sa->sa_family == AF_INET && len >= sizeof(sockaddr_in)) {
    const auto* in = reinterpret_cast<const struct sockaddr_in*>(sa);
    std::memcpy(v4, &in->sin_addr, 4);
    bytes = v4;
    family = 4;
    port = ntohs(in->sin_port);
  } else if (sa->sa_family == AF_INET6 && len >= sizeof(sockaddr_in6)) {
    const auto* in6 = reinterpret_cast<const struct sockaddr_in6*>(sa);
    port = ntohs(in6->sin6_port);
    if (unmap_v4(in6, v4)) {
      bytes = v4;
      family = 4;
    } else {
      bytes = in6->sin6_addr.s6_addr;
      family = 6;
    }
  } else {
    return false;
  }
  bool hit = false;
  for (std::uint32_t i = 0; i < count; ++i) {
    const AddrEntry& e = spec.addr[i];
    if (e.kind != kAddrInet || (hit && !e.negated)) continue;
    if (!e.any_port && port != e.port) continue;
    if (e.family != 0 && (family != e.family || !prefix_matches(bytes, e.bytes, e.prefix)))
      continue;
    if (e.negated) return false;
    hit = true;
  }
  return hit || (!positives && negated_kind[kAddrInet]);
}

namespace {

// A socket call whose `addr` is its peer (no address argument, not a local-side call), or
// accept's (its listener's own address): the answer for a remembered address can be kept.
bool peer_call(const FaultSpec& spec, const CallArgs& args) {
  return spec.addr_count != 0 && !spec.host[0] && args.fd >= 0 &&
         !(args.addr && args.addr_len > 0) &&
         (!is_local_side_call(args.call) || args.call == kCall_accept ||
          args.call == kCall_accept4);
}

}  // namespace

int net_selectors_known(const FaultSpec& spec, int fault, std::uint32_t epoch,
                        const CallArgs& args) noexcept {
  if (!peer_call(spec, args)) return -1;
  return sock_addr_answer(args.fd, epoch, fault, is_local_side_call(args.call));
}

bool net_selectors_match(const FaultSpec& spec, int fault, std::uint32_t epoch,
                         const CallArgs& args, NetArgsAddr& cache) noexcept {
  const bool lookup = call_family(args.call) == kFamDns;
  if (spec.host[0] &&
      (!lookup || !args.host || !glob_list_match(spec.host, sizeof spec.host, args.host)))
    return false;
  if (spec.addr_count != 0) {
    if (lookup) return false;
    const struct sockaddr* sa = args_address(args, cache);
    const bool match = addr_selector_matches(spec, sa, cache.len);
    if (sa && cache.remembered && peer_call(spec, args))
      sock_addr_note(args.fd, cache.peer_seq, epoch, fault, match, cache.local);
    return match;
  }
  return true;
}

void net_learn_accept_peer(int fd, const struct sockaddr* addr, socklen_t len) noexcept {
  // accept works on connection-mode sockets only (stream, seqpacket): the peer is fixed.
  if (fd < 0 || !addr || len < sizeof(sa_family_t) || len > sizeof(sockaddr_storage)) return;
  sock_set_peer(fd, addr, len);
}

void net_learn_connect_peer(int fd, const struct sockaddr* addr, socklen_t len) noexcept {
  if (fd < 0 || !addr || !sock_is_stream(fd)) return;
  if (addr->sa_family == AF_INET && len >= sizeof(sockaddr_in)) {
    const auto* in = reinterpret_cast<const struct sockaddr_in*>(addr);
    if (in->sin_addr.s_addr == htonl(INADDR_ANY)) return;
    struct sockaddr_in peer {};  // without the caller's sin_zero bytes, as getpeername says
    peer.sin_family = AF_INET;
    peer.sin_port = in->sin_port;
    peer.sin_addr = in->sin_addr;
    sock_set_peer(fd, reinterpret_cast<const struct sockaddr*>(&peer), sizeof peer);
  } else if (addr->sa_family == AF_INET6 && len >= sizeof(sockaddr_in6)) {
    const auto* in6 = reinterpret_cast<const struct sockaddr_in6*>(addr);
    if (IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr)) return;
    // An IPv4-mapped 0.0.0.0 is the unspecified address too.
    std::uint8_t v4[4];
    if (unmap_v4(in6, v4) && v4[0] == 0 && v4[1] == 0 && v4[2] == 0 && v4[3] == 0) return;
    struct sockaddr_in6 peer {};
    peer.sin6_family = AF_INET6;
    peer.sin6_port = in6->sin6_port;
    peer.sin6_addr = in6->sin6_addr;
    peer.sin6_scope_id = in6->sin6_scope_id;
    sock_set_peer(fd, reinterpret_cast<const struct sockaddr*>(&peer), sizeof peer);
  }
}

std::size_t format_sockaddr(const struct sockaddr* sa, socklen_t len, char* buf,
                            std::size_t size) noexcept {
  if (!sa || size == 0 || len < sizeof(sa_family_t)) return 0;
  // By hand, as inet_ntop writes them: an event may be recorded in a signal handler on a small
  // sigaltstack, and glibc's inet_ntop and snprintf both go through vfprintf (~2 KiB of stack).
  TextBuf out(buf, size);
  if (sa->sa_family == AF_INET && len >= sizeof(sockaddr_in)) {
    const auto* in = reinterpret_cast<const struct sockaddr_in*>(sa);
    put_ipv4(out, reinterpret_cast<const std::uint8_t*>(&in->sin_addr));
    out.put(':').dec(ntohs(in->sin_port));
  } else if (sa->sa_family == AF_INET6 && len >= sizeof(sockaddr_in6)) {
    const auto* in6 = reinterpret_cast<const struct sockaddr_in6*>(sa);
    out.put('[');
    put_ipv6(out, reinterpret_cast<const std::uint8_t*>(&in6->sin6_addr));
    out.put("]:").dec(ntohs(in6->sin6_port));
  } else if (sa->sa_family == AF_UNIX) {
    char path[sizeof(sockaddr_un::sun_path) + 2];
    unix_path(reinterpret_cast<const struct sockaddr_un*>(sa), len, path, sizeof path);
    out.put("unix:").put(path);
  } else {
    return 0;
  }
  return out.size();
}

std::uint32_t net_event_text(const CallArgs& args, const char* fd_link, char* out,
                             std::size_t size) noexcept {
  if (size == 0) return 0;
  out[0] = '\0';
  const Family family = call_family(args.call);
  if (family == kFamDns) {
    if (!args.host) return 0;
    TextBuf(out, size).put(args.host);
    return kEventHasHost;
  }
  if (family != kFamNet && std::strncmp(fd_link, "socket:", 7) != 0) return 0;
  NetArgsAddr cache;
  const struct sockaddr* sa = args_address(args, cache);
  return format_sockaddr(sa, cache.len, out, size) > 0 ? std::uint32_t{kEventHasAddr} : 0u;
}

}  // namespace faultline::shim
