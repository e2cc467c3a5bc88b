// The @net/@dns parts of the policy compiler (see net_policy.h).
#include "net_policy.h"

#include <arpa/inet.h>
#include <netdb.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>

#include "policy.h"

namespace faultline {
namespace {

constexpr std::string_view kAddrHelp =
    " (use \"127.0.0.1:6379\", \"10.0.0.0/8\", \"*:5432\", \"[::1]:*\" or \"unix:/run/*.sock\")";

std::string quoted(std::string_view text) { return "'" + std::string(text) + "'"; }

bool has_bit(const std::uint64_t (&mask)[2], std::uint32_t id) {
  return (mask[id / 64] >> (id % 64)) & 1;
}
void clear_bit(std::uint64_t (&mask)[2], std::uint32_t id) {
  mask[id / 64] &= ~(1ull << (id % 64));
}
void set_bit(std::uint64_t (&mask)[2], std::uint32_t id) { mask[id / 64] |= 1ull << (id % 64); }

// Actions only a socket takes (bandwidth also meters files).
constexpr std::uint32_t kSocketOnlyActions =
    kActReset | kActBlackhole | kActLatency | kActLoss | kActEof;

constexpr std::uint32_t kRwCalls[] = {kCall_write, kCall_writev, kCall_read, kCall_readv};

std::optional<std::uint16_t> parse_port(std::string_view text) {
  unsigned value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc{} || end != text.data() + text.size() || value > 65535)
    return std::nullopt;
  return static_cast<std::uint16_t>(value);
}

// "10.0.0.0/8" or "::1" (no brackets, no port): address, family and prefix.
std::optional<std::string> parse_cidr(std::string_view text, bool v6, FaultSpec& spec) {
  std::string_view host = text;
  int prefix = v6 ? 128 : 32;
  if (std::size_t slash = text.find('/'); slash != std::string_view::npos) {
    host = text.substr(0, slash);
    std::string_view bits = text.substr(slash + 1);
    auto [end, ec] = std::from_chars(bits.data(), bits.data() + bits.size(), prefix);
    if (bits.empty() || ec != std::errc{} || end != bits.data() + bits.size() || prefix < 0 ||
        prefix > (v6 ? 128 : 32))
      return "bad CIDR prefix in " + quoted(text) + " (0 to " + (v6 ? "128" : "32") + ")";
  }
  std::string host_text(host);
  std::uint8_t bytes[16] = {};
  if (inet_pton(v6 ? AF_INET6 : AF_INET, host_text.c_str(), bytes) != 1) return std::string();
  // Host bits beyond the prefix are almost always a typo ("10.1.0.0/8"): say so.
  const int length = v6 ? 16 : 4;
  for (int i = 0; i < length; ++i) {
    int keep = std::clamp(prefix - i * 8, 0, 8);
    std::uint8_t mask = static_cast<std::uint8_t>(keep == 0 ? 0 : 0xff << (8 - keep));
    if (bytes[i] & ~mask)
      return "host bits set in " + quoted(text) + " past the /" + std::to_string(prefix) +
             " prefix";
  }
  spec.addr_kind = kAddrInet;
  spec.addr_family = v6 ? 6 : 4;
  spec.addr_prefix = static_cast<std::uint8_t>(prefix);
  std::memcpy(spec.addr_bytes, bytes, sizeof spec.addr_bytes);
  return std::nullopt;
}

struct ResolverName {
  std::string_view name;
  int eai;
};
constexpr std::array kResolverNames = {
    ResolverName{"EAI_AGAIN", EAI_AGAIN},
    ResolverName{"EAI_NONAME", EAI_NONAME},
    ResolverName{"EAI_FAIL", EAI_FAIL},
    ResolverName{"EAI_NODATA", EAI_NODATA},
    ResolverName{"EAI_ADDRFAMILY", EAI_ADDRFAMILY},
    ResolverName{"EAI_FAMILY", EAI_FAMILY},
    ResolverName{"EAI_SOCKTYPE", EAI_SOCKTYPE},
    ResolverName{"EAI_SERVICE", EAI_SERVICE},
    ResolverName{"EAI_MEMORY", EAI_MEMORY},
    ResolverName{"EAI_SYSTEM", EAI_SYSTEM},
    ResolverName{"EAI_OVERFLOW", EAI_OVERFLOW},
    ResolverName{"EAI_BADFLAGS", EAI_BADFLAGS},
    // gethostbyname*'s h_errno names, as the getaddrinfo code with the same meaning.
    ResolverName{"HOST_NOT_FOUND", EAI_NONAME},
    ResolverName{"TRY_AGAIN", EAI_AGAIN},
    ResolverName{"NO_RECOVERY", EAI_FAIL},
    ResolverName{"NO_DATA", EAI_NODATA},
    ResolverName{"NO_ADDRESS", EAI_NODATA},
};

bool fault_has_family(const FaultSpec& spec, Family family) {
  for (const CallInfo& call : all_calls())
    if (call.family == family && has_bit(spec.calls_mask, call.id)) return true;
  return false;
}

bool has_rw_bits(const FaultSpec& spec) {
  for (std::uint32_t id : kRwCalls)
    if (has_bit(spec.calls_mask, id)) return true;
  return false;
}

bool no_calls(const FaultSpec& spec) { return !spec.calls_mask[0] && !spec.calls_mask[1]; }

}  // namespace

bool is_rw_call(std::uint32_t call) {
  return call == kCall_write || call == kCall_writev || call == kCall_read || call == kCall_readv;
}

void clear_addr_selector(FaultSpec& spec) {
  spec.addr_kind = kAddrNone;
  spec.addr_family = 0;
  spec.addr_prefix = 0;
  spec.addr_any_port = 0;
  spec.addr_port = 0;
  std::memset(spec.addr_bytes, 0, sizeof spec.addr_bytes);
  std::memset(spec.addr_unix, 0, sizeof spec.addr_unix);
}

std::optional<std::string> parse_addr_selector(std::string_view text, FaultSpec& spec) {
  const std::string bad = "bad addr " + quoted(text) + std::string(kAddrHelp);
  clear_addr_selector(spec);
  spec.addr_any_port = 1;

  if (text.starts_with("unix:")) {
    std::string_view glob = text.substr(5);
    if (glob.empty()) return "'addr' needs a path glob after 'unix:' (e.g. \"unix:/run/*.sock\")";
    if (glob.find('\0') != std::string_view::npos) return "'addr' must not contain a NUL character";
    if (glob.size() >= kUnixGlobMax)
      return "'addr' unix path glob is too long (at most " + std::to_string(kUnixGlobMax - 1) +
             " characters)";
    if (auto problem = check_glob(glob)) return problem;
    spec.addr_kind = kAddrUnix;
    std::memcpy(spec.addr_unix, glob.data(), glob.size());
    return std::nullopt;
  }

  std::string_view host = text;
  std::optional<std::string_view> port;
  bool v6 = false;
  if (text.starts_with('[')) {  // "[v6]" or "[v6]:port"
    std::size_t close = text.find(']');
    if (close == std::string_view::npos) return bad;
    host = text.substr(1, close - 1);
    std::string_view rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (!rest.starts_with(':')) return bad;
      port = rest.substr(1);
    }
    v6 = true;
    if (host == "*") v6 = false;
  } else if (std::count(text.begin(), text.end(), ':') >= 2) {
    v6 = true;  // a bare IPv6 address, which has no room for a port: write [::1]:80 for one
  } else if (std::size_t colon = text.rfind(':'); colon != std::string_view::npos) {
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  if (port && *port != "*") {
    std::optional<std::uint16_t> number = parse_port(*port);
    if (!number) return "bad port in " + quoted(text) + " (0 to 65535, or *)";
    spec.addr_any_port = 0;
    spec.addr_port = *number;
  }
  if (host == "*") {
    spec.addr_kind = kAddrInet;  // any address of either family
    return std::nullopt;
  }
  if (host.empty()) return bad;
  std::optional<std::string> problem = parse_cidr(host, v6, spec);
  if (problem && problem->empty()) {
    bool name_like = host.find_first_of("abcdefghijklmnopqrstuvwxyz") != std::string_view::npos;
    if (name_like && !v6)
      return "bad addr " + quoted(text) +
             ": 'addr' takes IP addresses, not host names (use 'host' on @dns calls for names)";
    return bad;
  }
  return problem;
}

std::optional<std::string> parse_resolve_address(std::string_view text, std::uint8_t& family,
                                                 std::uint8_t (&bytes)[16]) {
  std::string host(text);
  std::memset(bytes, 0, sizeof bytes);
  if (inet_pton(AF_INET, host.c_str(), bytes) == 1) {
    family = 4;
    return std::nullopt;
  }
  if (inet_pton(AF_INET6, host.c_str(), bytes) == 1) {
    family = 6;
    return std::nullopt;
  }
  return "bad address " + quoted(text) +
         " in 'resolve_to' (use IPv4 or IPv6 addresses, e.g. \"127.0.0.2\" or \"::1\")";
}

std::string addr_selector_text(const FaultSpec& spec) {
  if (spec.addr_kind == kAddrUnix) return "unix:" + std::string(spec.addr_unix);
  if (spec.addr_kind != kAddrInet) return "";
  const std::string port = spec.addr_any_port ? "*" : std::to_string(spec.addr_port);
  if (spec.addr_family == 0) return spec.addr_any_port ? "*" : "*:" + port;
  const bool v6 = spec.addr_family == 6;
  char text[INET6_ADDRSTRLEN] = "";
  inet_ntop(v6 ? AF_INET6 : AF_INET, spec.addr_bytes, text, sizeof text);
  std::string host = text;
  if (spec.addr_prefix != (v6 ? 128 : 32)) host += "/" + std::to_string(spec.addr_prefix);
  if (v6) return "[" + host + "]:" + port;
  return spec.addr_any_port ? host : host + ":" + port;
}

std::string resolve_to_text(const FaultSpec& spec) {
  std::string out = "[";
  for (std::uint32_t i = 0; i < spec.resolve_count && i < kResolveMax; ++i) {
    char text[INET6_ADDRSTRLEN] = "";
    inet_ntop(spec.resolve_family[i] == 6 ? AF_INET6 : AF_INET, spec.resolve_addr[i], text,
              sizeof text);
    out += (i ? ", \"" : "\"") + std::string(text) + "\"";
  }
  return out + "]";
}

std::optional<int> dns_error_from_name(std::string_view name) {
  for (const ResolverName& r : kResolverNames)
    if (r.name == name) return r.eai;
  return std::nullopt;
}

std::string_view dns_error_name(int eai) {
  for (const ResolverName& r : kResolverNames)
    if (r.eai == eai) return r.name;
  return "";
}

std::vector<std::string_view> dns_error_names() {
  std::vector<std::string_view> names;
  for (const ResolverName& r : kResolverNames) names.push_back(r.name);
  return names;
}

int herrno_for_eai(int eai) {
  switch (eai) {
    case EAI_NONAME:
      return HOST_NOT_FOUND;
    case EAI_AGAIN:
      return TRY_AGAIN;
    case EAI_NODATA:
    case EAI_ADDRFAMILY:
      return NO_DATA;
    case EAI_SYSTEM:
    case EAI_MEMORY:
      return NETDB_INTERNAL;
    default:
      return NO_RECOVERY;
  }
}

void net_note_family(FaultSpec& spec, Family family) {
  if (family == kFamNet) {
    for (std::uint32_t id : kRwCalls) set_bit(spec.calls_mask, id);
    spec.rw_scope |= kRwSockets;
  } else if (family == kFamWrite || family == kFamRead) {
    spec.rw_scope |= kRwFiles;
  }
}

void net_note_named_call(FaultSpec& spec, std::uint32_t call) {
  if (is_rw_call(call)) spec.rw_scope |= kRwNamed;
}

void net_clear_action_params(FaultSpec& spec) {
  spec.dns_error = 0;
  spec.timeout_ns = 0;
  spec.resolve_count = 0;
  std::memset(spec.resolve_family, 0, sizeof spec.resolve_family);
  std::memset(spec.resolve_addr, 0, sizeof spec.resolve_addr);
  // A p99 varied the latency being replaced; a delay's own p99 stays.
  if (spec.latency_ns != 0 && !(spec.actions & kActDelay)) spec.p99_ns = 0;
  spec.latency_ns = 0;
  spec.bandwidth_bps = 0;
  spec.loss = 0;
}

std::optional<NetProblem> net_validate(FaultSpec& spec, const std::uint64_t (&named)[2]) {
  const bool net_calls = fault_has_family(spec, kFamNet);

  // Named read/write calls: a network fault aims them at sockets, any other at files (what
  // they meant before @net existed).
  if ((spec.rw_scope & kRwNamed) && !(spec.rw_scope & kRwResolved)) {
    const bool network = net_calls || (spec.rw_scope & kRwSockets) || spec.addr_kind != kAddrNone ||
                         (spec.actions & kSocketOnlyActions) || spec.after_bytes != 0;
    spec.rw_scope |= (network ? kRwSockets : kRwFiles) | kRwResolved;
  }
  // The action narrows them: reset, blackhole and the network's shapes exist only on
  // sockets, quota only on files.
  if (spec.actions & kSocketOnlyActions) spec.rw_scope &= ~kRwFiles;
  if (spec.actions & kActQuota) spec.rw_scope &= ~kRwSockets;
  const std::uint32_t narrowing = spec.actions & (kSocketOnlyActions | kActQuota);
  if (narrowing && has_rw_bits(spec) && !(spec.rw_scope & (kRwFiles | kRwSockets))) {
    std::string_view action = action_name(narrowing & (~narrowing + 1));  // the lowest bit
    for (std::uint32_t id : kRwCalls) {
      if (!has_bit(spec.calls_mask, id)) continue;
      if (has_bit(named, id))
        return NetProblem{"action " + quoted(action) + " is not valid for call " +
                              quoted(call_info(id).name) +
                              (spec.actions & kActQuota ? " on a socket (quota is for files)"
                                                        : " on a file (only sockets take it)"),
                          action};
      clear_bit(spec.calls_mask, id);
    }
    if (no_calls(spec))
      return NetProblem{"action " + quoted(action) + " is not valid for any call of this fault",
                        action};
  }

  // Resolver error codes exist only for lookups.
  if ((spec.actions & kActError) && spec.dns_error != 0) {
    const std::string code(dns_error_name(spec.dns_error));
    for (const CallInfo& call : all_calls()) {
      if (call.family == kFamDns || !has_bit(spec.calls_mask, call.id)) continue;
      if (has_bit(named, call.id))
        return NetProblem{quoted(code) +
                              " is a resolver error: it applies only to @dns calls, not " +
                              quoted(call.name) + " (use an errno name such as ECONNREFUSED)",
                          "error"};
      clear_bit(spec.calls_mask, call.id);
    }
    if (no_calls(spec))
      return NetProblem{quoted(code) + " is a resolver error: it applies only to @dns calls",
                        "error"};
  }

  const bool sockets =
      fault_has_family(spec, kFamNet) || (has_rw_bits(spec) && (spec.rw_scope & kRwSockets));
  if (spec.addr_kind != kAddrNone && !sockets)
    return NetProblem{"'addr' applies to @net calls (sockets), and this fault has none", "addr"};
  if (spec.host[0] && !fault_has_family(spec, kFamDns))
    return NetProblem{"'host' applies to @dns calls (lookups), and this fault has none", "host"};
  if (spec.after_bytes != 0 && !sockets)
    return NetProblem{
        "'after_bytes' applies to @net calls (bytes on a connection), and this "
        "fault has none",
        "after_bytes"};
  if (spec.timeout_ns != 0 && !(spec.actions & kActBlackhole))
    return NetProblem{"'timeout' applies only to 'blackhole' (how long a blocking connect waits)",
                      "timeout"};
  return std::nullopt;
}

std::uint32_t net_extra_actions(const FaultSpec& spec, const CallInfo& call) {
  if (!is_rw_call(call.id) || !(spec.rw_scope & kRwSockets)) return 0;
  return call.family == kFamRead ? kActNetRecv : kActNetSend;
}

std::uint32_t net_families(const FaultSpec& spec) {
  std::uint32_t families = 0;
  for (const CallInfo& call : all_calls()) {
    if (!has_bit(spec.calls_mask, call.id)) continue;
    if (!is_rw_call(call.id)) {
      families |= call.family;
      continue;
    }
    if (rw_scope_hits(spec, false)) families |= call.family;
    if (rw_scope_hits(spec, true)) families |= kFamNet;
  }
  return families;
}

bool net_errno_plausible(int err) {
  switch (err) {
    case EACCES:
    case EPERM:
    case EADDRINUSE:
    case EADDRNOTAVAIL:
    case EAFNOSUPPORT:
    case EAGAIN:
    case EALREADY:
    case EBADF:
    case ECONNREFUSED:
    case EFAULT:
    case EINPROGRESS:
    case EINTR:
    case EISCONN:
    case ENETUNREACH:
    case ENOTSOCK:
    case EPROTOTYPE:
    case ETIMEDOUT:
    case EHOSTUNREACH:
    case EHOSTDOWN:
    case ENETDOWN:
    case ENETRESET:
    case ECONNRESET:
    case ECONNABORTED:
    case EMFILE:
    case ENFILE:
    case ENOBUFS:
    case ENOMEM:
    case EPROTO:
    case EINVAL:
    case EOPNOTSUPP:
    case EPIPE:
    case EMSGSIZE:
    case ENOTCONN:
    case EDESTADDRREQ:
    case EPROTONOSUPPORT:
    case ELOOP:
    case ENAMETOOLONG:
    case ENOENT:
    case ENOTDIR:
    case EROFS:
    case EIO:
      return true;
    default:
      return false;
  }
}

}  // namespace faultline
