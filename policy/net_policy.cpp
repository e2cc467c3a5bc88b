// The @net/@dns parts of the policy compiler (see net_policy.h).
#include "policy/net_policy.h"

#include <arpa/inet.h>
#include <netdb.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>

#include "faultline/glob.h"
#include "policy/policy.h"

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
std::optional<std::string> parse_cidr(std::string_view text, bool v6, AddrEntry& entry) {
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
  entry.kind = kAddrInet;
  entry.family = v6 ? 6 : 4;
  entry.prefix = static_cast<std::uint8_t>(prefix);
  std::memcpy(entry.bytes, bytes, sizeof entry.bytes);
  return std::nullopt;
}

// One inet entry (no '!'): "127.0.0.1:6379", "10.0.0.0/8", "*:5432", "[::1]:*", "::1".
std::optional<std::string> parse_inet_entry(std::string_view text, AddrEntry& entry) {
  const std::string bad = "bad addr " + quoted(text) + std::string(kAddrHelp);
  entry.kind = kAddrInet;
  entry.any_port = 1;
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
    entry.any_port = 0;
    entry.port = *number;
  }
  if (host == "*") return std::nullopt;  // any address of either family (family 0)
  if (host.empty()) return bad;
  std::optional<std::string> problem = parse_cidr(host, v6, entry);
  if (problem && problem->empty()) {
    bool name_like = host.find_first_of("abcdefghijklmnopqrstuvwxyz") != std::string_view::npos;
    if (name_like && !v6)
      return "bad addr " + quoted(text) +
             ": 'addr' takes IP addresses, not host names (use 'host' on @dns calls for names)";
    return bad;
  }
  return problem;
}

// Bytes the unix globs already packed in addr_unix take (each with its NUL).
std::size_t unix_globs_used(const FaultSpec& spec) {
  std::size_t used = 0;
  for (const char* g = glob_list_first(spec.addr_unix, sizeof spec.addr_unix); g;
       g = glob_list_next(spec.addr_unix, sizeof spec.addr_unix, g))
    used = static_cast<std::size_t>(g - spec.addr_unix) + std::strlen(g) + 1;
  return used;
}

// The policy-file text of one entry ("!" included).
std::string entry_text(const AddrEntry& e, const char* unix_glob) {
  if (e.kind == kAddrUnix) return "unix:" + std::string(unix_glob + (unix_glob[0] == '!'));
  const std::string neg = e.negated ? "!" : "";
  const std::string port = e.any_port ? "*" : std::to_string(e.port);
  if (e.family == 0) return neg + (e.any_port ? "*" : "*:" + port);
  const bool v6 = e.family == 6;
  char text[INET6_ADDRSTRLEN] = "";
  inet_ntop(v6 ? AF_INET6 : AF_INET, e.bytes, text, sizeof text);
  std::string host = text;
  if (e.prefix != (v6 ? 128 : 32)) host += "/" + std::to_string(e.prefix);
  if (v6) return neg + "[" + host + "]:" + port;
  return neg + (e.any_port ? host : host + ":" + port);
}

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
  spec.addr_count = 0;
  std::memset(spec.addr, 0, sizeof spec.addr);
  std::memset(spec.addr_unix, 0, sizeof spec.addr_unix);
}

std::optional<std::string> parse_addr_selector(std::string_view text, FaultSpec& spec) {
  clear_addr_selector(spec);
  std::optional<std::string> problem = add_addr_selector(text, spec);
  if (problem) clear_addr_selector(spec);
  return problem;
}

std::optional<std::string> add_addr_selector(std::string_view text, FaultSpec& spec) {
  if (text.empty()) return std::string("'addr' must not be empty") + std::string(kAddrHelp);
  if (text.find('\0') != std::string_view::npos) return "'addr' must not contain a NUL character";
  const bool negated = text.starts_with('!');
  std::string_view body = negated ? text.substr(1) : text;
  if (body.empty())
    return "'addr' entry '!' excludes nothing (write \"!ADDR\" to exclude an address, e.g. "
           "\"!10.0.0.1:5432\")";
  if (spec.addr_count >= kAddrMax)
    return "'addr' takes at most " + std::to_string(kAddrMax) + " entries (use a CIDR such as " +
           "\"10.0.0.0/8\" for a range)";
  AddrEntry entry{};
  entry.negated = negated ? 1 : 0;
  if (body.starts_with("unix:")) {
    std::string_view glob = body.substr(5);
    if (glob.empty()) return "'addr' needs a path glob after 'unix:' (e.g. \"unix:/run/*.sock\")";
    if (auto problem = check_glob(glob)) return problem;
    // Packed with its '!' so that addr_unix is a glob list of its own; a literal leading '!'
    // of a positive path is escaped, as in any glob list.
    std::string packed =
        negated ? "!" + std::string(glob) : (glob.starts_with('!') ? "\\" : "") + std::string(glob);
    const std::size_t used = unix_globs_used(spec);
    if (used + packed.size() + 1 > kUnixGlobMax) {
      if (used == 0)
        return "'addr' unix path glob is too long (at most " + std::to_string(kUnixGlobMax - 1) +
               " characters)";
      return "'addr' unix path globs are too long together: they take " +
             std::to_string(used + packed.size() + 1) +
             " bytes (each glob's length + 1), at most " + std::to_string(kUnixGlobMax) + " fit";
    }
    std::memcpy(spec.addr_unix + used, packed.data(), packed.size());
    spec.addr_unix[used + packed.size()] = '\0';
    entry.kind = kAddrUnix;
  } else if (std::optional<std::string> problem = parse_inet_entry(body, entry)) {
    return problem;
  }
  spec.addr[spec.addr_count++] = entry;
  return std::nullopt;
}

std::vector<std::string> addr_selector_entries(const FaultSpec& spec) {
  std::vector<std::string> out;
  const char* glob = glob_list_first(spec.addr_unix, sizeof spec.addr_unix);
  for (std::uint32_t i = 0; i < spec.addr_count && i < kAddrMax; ++i) {
    const AddrEntry& e = spec.addr[i];
    if (e.kind == kAddrUnix) {
      if (!glob) continue;
      std::string text = entry_text(e, glob);
      if (glob[0] == '!') text.insert(0, "!");
      out.push_back(std::move(text));
      glob = glob_list_next(spec.addr_unix, sizeof spec.addr_unix, glob);
    } else {
      out.push_back(entry_text(e, ""));
    }
  }
  return out;
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
  return selector_list_text(addr_selector_entries(spec));
}

std::string selector_list_text(const std::vector<std::string>& entries) {
  if (entries.empty()) return "";
  if (entries.size() == 1) return entries[0];
  std::string out = "[";
  for (const std::string& entry : entries) {
    if (out.size() > 1) out += ',';
    out += '"';
    for (char c : entry) {  // a TOML basic string: only '"' and '\\' need escaping in a glob
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  return out + "]";
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
    const bool network = net_calls || (spec.rw_scope & kRwSockets) || spec.addr_count != 0 ||
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
  if (spec.addr_count != 0 && !sockets)
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

bool net_errno_plausible(int err) { return kErrNet.contains(err); }

}  // namespace faultline
