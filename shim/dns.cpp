// @dns: getaddrinfo, gethostbyname, gethostbyname2, gethostbyname_r, gethostbyname2_r,
// gethostbyaddr, gethostbyaddr_r, getnameinfo. `host` matches the name looked up (the
// numeric address for reverse lookups). `error` fails a lookup the way each function
// reports it: an EAI_* code (getaddrinfo, getnameinfo), h_errno and NULL (gethostbyname*),
// *h_errnop and the glibc return value (the *_r functions). `resolve_to` answers a forward
// lookup with the fault's addresses.
//
// getaddrinfo's fabricated answer is built by the real getaddrinfo itself, one numeric
// address at a time (AI_NUMERICHOST, the program's hints and service): every node is
// allocated exactly as glibc allocates its own, so the program's freeaddrinfo frees it.
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "policy/net_policy.h"
#include "session/session.h"
#include "shim/apply.h"
#include "shim/engine/engine.h"

namespace faultline::shim {
namespace {

bool fault_spec(const Decision& d, FaultSpec& out) {
  ControlBlock* block = g_block.load(std::memory_order_acquire);
  if (!block || d.fault < 0) return false;
  out = read_fault_spec(block->faults[d.fault]);
  return true;
}

int af_of(std::uint8_t family) { return family == 6 ? AF_INET6 : AF_INET; }

// ---- getaddrinfo ----------------------------------------------------------------------------

int resolve_addrinfo(const Decision& d, const char* node, const char* service,
                     const struct addrinfo* hints, struct addrinfo** res) {
  FaultSpec spec;
  if (!fault_spec(d, spec)) return EAI_FAIL;
  struct addrinfo numeric {};
  if (hints) numeric = *hints;
  numeric.ai_flags |= AI_NUMERICHOST;
  numeric.ai_flags &= ~AI_CANONNAME;  // set on the first node below
  struct addrinfo* head = nullptr;
  struct addrinfo** tail = &head;
  int last_error = EAI_NONAME;
  for (std::uint32_t i = 0; i < spec.resolve_count && i < kResolveMax; ++i) {
    char text[INET6_ADDRSTRLEN];
    char mapped[INET6_ADDRSTRLEN + 8];
    const char* host = text;
    const int family = af_of(spec.resolve_family[i]);
    if (!inet_ntop(family, spec.resolve_addr[i], text, sizeof text)) continue;
    if (numeric.ai_family == AF_INET6 && family == AF_INET) {
      // An IPv6-only lookup gets an IPv4 answer only as a mapped address, and only if asked.
      if (!(numeric.ai_flags & AI_V4MAPPED)) {
        last_error = EAI_ADDRFAMILY;
        continue;
      }
      std::snprintf(mapped, sizeof mapped, "::ffff:%s", text);
      host = mapped;
    } else if (numeric.ai_family == AF_INET && family == AF_INET6) {
      last_error = EAI_ADDRFAMILY;
      continue;
    }
    struct addrinfo* part = nullptr;
    int r = FL_REAL(getaddrinfo)(host, service, &numeric, &part);
    if (r != 0) {
      last_error = r;
      continue;
    }
    *tail = part;
    while (*tail) tail = &(*tail)->ai_next;
  }
  if (!head) return last_error;
  if (hints && (hints->ai_flags & AI_CANONNAME) && node) {
    // The canonical name is the name asked for; freeaddrinfo frees it with free().
    head->ai_canonname = strdup(node);
  }
  *res = head;
  return 0;
}

// The shared slow path of the lookups: decide, then apply (apply.h) with the call's own way to
// fail (its row's, fail_as.h; `where` holds the *_r functions' out-parameters) and, as the family's
// own action, an answer from the fault (`answer`, for resolve_to). Events show the resolver's
// code ("EAI_AGAIN"), not an errno (events.cpp).
template <class Real, class Answer>
FL_COLD auto lookup_slow(const CallArgs& args, Real real, Answer answer, FailOut where = {})
    -> decltype(real()) {
  Guard guard;
  if (!guard.entered()) return real();
  Decision d;
  if (!decide(guard, args, d) || !d.inject) return real();
  using Result = decltype(real());
  auto fail = [&](const Decision& dd) { return fail_as<Result>(args.call, cause_of(dd), where); };
  return apply_decision(guard, d, args, real, fail, [&](const Decision& dd, Result& out) {
    if (dd.action != kActResolve) return false;
    emit_event(dd, args, -1);
    out = answer(dd);
    return true;
  });
}

CallArgs lookup_args(std::uint32_t call, const char* host) {
  CallArgs args{call};
  args.host = host ? host : "";
  return args;
}

int getaddrinfo_slow(const char* node, const char* service, const struct addrinfo* hints,
                     struct addrinfo** res) {
  auto real = [=] { return FL_REAL(getaddrinfo)(node, service, hints, res); };
  return lookup_slow(lookup_args(kCall_getaddrinfo, node), real, [=](const Decision& d) {
    return resolve_addrinfo(d, node, service, hints, res);
  });
}

// ---- gethostbyname* -------------------------------------------------------------------------

// Lays out a hostent for `name` with the fault's addresses of family `af` in buf:
// [address pointers + NULL][alias NULL][addresses][name]. Returns 0, ERANGE (buf too small)
// or -1 (no address of that family: NO_DATA).
int fill_hostent(const FaultSpec& spec, int af, const char* name, struct hostent* out, char* buf,
                 std::size_t buflen) {
  const std::size_t addr_len = af == AF_INET6 ? 16 : 4;
  std::size_t count = 0;
  for (std::uint32_t i = 0; i < spec.resolve_count && i < kResolveMax; ++i)
    if (af_of(spec.resolve_family[i]) == af) ++count;
  if (count == 0) return -1;
  const std::size_t name_len = std::strlen(name) + 1;
  const std::size_t align = alignof(char*);
  std::size_t pad = (align - reinterpret_cast<std::uintptr_t>(buf) % align) % align;
  const std::size_t need = pad + (count + 2) * sizeof(char*) + count * addr_len + name_len;
  if (!buf || buflen < need) return ERANGE;
  auto** list = reinterpret_cast<char**>(buf + pad);
  char** aliases = list + count + 1;
  char* addrs = reinterpret_cast<char*>(aliases + 1);
  char* name_copy = addrs + count * addr_len;
  std::size_t n = 0;
  for (std::uint32_t i = 0; i < spec.resolve_count && i < kResolveMax; ++i) {
    if (af_of(spec.resolve_family[i]) != af) continue;
    std::memcpy(addrs + n * addr_len, spec.resolve_addr[i], addr_len);
    list[n] = addrs + n * addr_len;
    ++n;
  }
  list[n] = nullptr;
  aliases[0] = nullptr;
  std::memcpy(name_copy, name, name_len);
  out->h_name = name_copy;
  out->h_aliases = aliases;
  out->h_addrtype = af;
  out->h_length = static_cast<int>(addr_len);
  out->h_addr_list = list;
  return 0;
}

// gethostbyname's answer lives in static storage, as glibc's does (not thread-safe there
// either: that is what gethostbyname_r is for).
struct hostent g_hostent;
alignas(char*) char g_hostent_buf[1024];

template <class Fn>
struct hostent* byname_slow(std::uint32_t call, const char* name, int af, Fn real) {
  return lookup_slow(
      lookup_args(call, name), real, [=](const Decision& d) -> struct hostent* {
        FaultSpec spec;
        int r = fault_spec(d, spec) && name
                    ? fill_hostent(spec, af, name, &g_hostent, g_hostent_buf, sizeof g_hostent_buf)
                    : -1;
        if (r != 0) {
          h_errno = r == ERANGE ? NO_RECOVERY : NO_DATA;
          return nullptr;
        }
        return &g_hostent;
      });
}

// The *_r functions report through (*result, *h_errnop, the return value): fail_as.h's
// herrno_result, which also answers a resolve_to whose addresses do not fit (ERANGE, as
// glibc reports a buffer too small) or have no address of the family asked (NO_DATA).
template <class Fn>
int byname_r_slow(std::uint32_t call, const char* name, int af, struct hostent* ret, char* buf,
                  size_t buflen, struct hostent** result, int* h_errnop, Fn real) {
  return lookup_slow(lookup_args(call, name), real,
                     [=](const Decision& d) {
                       FaultSpec spec;
                       int r = fault_spec(d, spec) && name && ret
                                   ? fill_hostent(spec, af, name, ret, buf, buflen)
                                   : -1;
                       if (r == ERANGE)
                         return herrno_result(NETDB_INTERNAL, ERANGE, result, h_errnop);
                       if (r != 0) return herrno_result(NO_DATA, 0, result, h_errnop);
                       if (result) *result = ret;
                       return 0;
                     },
                     {.result = result, .h_errnop = h_errnop});
}

// ---- reverse lookups ------------------------------------------------------------------------

// The numeric form of an address, which `host` matches for reverse lookups.
const char* numeric_host(int af, const void* addr, char* buf, socklen_t size) {
  if (!addr || !inet_ntop(af, addr, buf, size)) return "";
  return buf;
}

const char* numeric_host(const struct sockaddr* sa, socklen_t len, char* buf, socklen_t size) {
  if (!sa) return "";
  if (sa->sa_family == AF_INET && len >= sizeof(sockaddr_in))
    return numeric_host(AF_INET, &reinterpret_cast<const struct sockaddr_in*>(sa)->sin_addr, buf,
                        size);
  if (sa->sa_family == AF_INET6 && len >= sizeof(sockaddr_in6))
    return numeric_host(AF_INET6, &reinterpret_cast<const struct sockaddr_in6*>(sa)->sin6_addr, buf,
                        size);
  return "";
}

template <class Fn>
struct hostent* byaddr_slow(const void* addr, int type, Fn real) {
  char text[INET6_ADDRSTRLEN];
  return lookup_slow(lookup_args(kCall_gethostbyaddr, numeric_host(type, addr, text, sizeof text)),
                     real, [&](const Decision&) { return real(); });
}

template <class Fn>
int byaddr_r_slow(const void* addr, int type, struct hostent** result, int* h_errnop, Fn real) {
  char text[INET6_ADDRSTRLEN];
  return lookup_slow(
      lookup_args(kCall_gethostbyaddr_r, numeric_host(type, addr, text, sizeof text)), real,
      [&](const Decision&) { return real(); }, {.result = result, .h_errnop = h_errnop});
}

template <class Fn>
int getnameinfo_slow(const struct sockaddr* sa, socklen_t salen, Fn real) {
  char text[INET6_ADDRSTRLEN];
  return lookup_slow(lookup_args(kCall_getnameinfo, numeric_host(sa, salen, text, sizeof text)),
                     real, [&](const Decision&) { return real(); });
}

}  // namespace
}  // namespace faultline::shim

using namespace faultline;
using namespace faultline::shim;

FL_EXPORT int getaddrinfo(const char* node, const char* service, const struct addrinfo* hints,
                          struct addrinfo** res) {
  if (FL_LIKELY(!armed(kFamDns))) return FL_REAL(getaddrinfo)(node, service, hints, res);
  return getaddrinfo_slow(node, service, hints, res);
}

FL_EXPORT struct hostent* gethostbyname(const char* name) {
  if (FL_LIKELY(!armed(kFamDns))) return FL_REAL(gethostbyname)(name);
  return byname_slow(kCall_gethostbyname, name, AF_INET,
                     [=] { return FL_REAL(gethostbyname)(name); });
}

FL_EXPORT struct hostent* gethostbyname2(const char* name, int af) {
  if (FL_LIKELY(!armed(kFamDns))) return FL_REAL(gethostbyname2)(name, af);
  return byname_slow(kCall_gethostbyname2, name, af,
                     [=] { return FL_REAL(gethostbyname2)(name, af); });
}

FL_EXPORT int gethostbyname_r(const char* name, struct hostent* ret, char* buf, size_t buflen,
                              struct hostent** result, int* h_errnop) {
  if (FL_LIKELY(!armed(kFamDns)))
    return FL_REAL(gethostbyname_r)(name, ret, buf, buflen, result, h_errnop);
  return byname_r_slow(
      kCall_gethostbyname_r, name, AF_INET, ret, buf, buflen, result, h_errnop,
      [=] { return FL_REAL(gethostbyname_r)(name, ret, buf, buflen, result, h_errnop); });
}

FL_EXPORT int gethostbyname2_r(const char* name, int af, struct hostent* ret, char* buf,
                               size_t buflen, struct hostent** result, int* h_errnop) {
  if (FL_LIKELY(!armed(kFamDns)))
    return FL_REAL(gethostbyname2_r)(name, af, ret, buf, buflen, result, h_errnop);
  return byname_r_slow(kCall_gethostbyname2_r, name, af, ret, buf, buflen, result, h_errnop, [=] {
    return FL_REAL(gethostbyname2_r)(name, af, ret, buf, buflen, result, h_errnop);
  });
}

FL_EXPORT struct hostent* gethostbyaddr(const void* addr, socklen_t len, int type) {
  if (FL_LIKELY(!armed(kFamDns))) return FL_REAL(gethostbyaddr)(addr, len, type);
  return byaddr_slow(addr, type, [=] { return FL_REAL(gethostbyaddr)(addr, len, type); });
}

FL_EXPORT int gethostbyaddr_r(const void* addr, socklen_t len, int type, struct hostent* ret,
                              char* buf, size_t buflen, struct hostent** result, int* h_errnop) {
  if (FL_LIKELY(!armed(kFamDns)))
    return FL_REAL(gethostbyaddr_r)(addr, len, type, ret, buf, buflen, result, h_errnop);
  return byaddr_r_slow(addr, type, result, h_errnop, [=] {
    return FL_REAL(gethostbyaddr_r)(addr, len, type, ret, buf, buflen, result, h_errnop);
  });
}

FL_EXPORT int getnameinfo(const struct sockaddr* sa, socklen_t salen, char* host, socklen_t hostlen,
                          char* serv, socklen_t servlen, int flags) {
  if (FL_LIKELY(!armed(kFamDns)))
    return FL_REAL(getnameinfo)(sa, salen, host, hostlen, serv, servlen, flags);
  return getnameinfo_slow(sa, salen, [=] {
    return FL_REAL(getnameinfo)(sa, salen, host, hostlen, serv, servlen, flags);
  });
}
