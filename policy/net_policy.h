// The @net and @dns parts of the policy compiler: the `addr` selector (CIDR, port, unix path
// glob) compiled into integers, `resolve_to` addresses, resolver error names (EAI_* and the
// h_errno names, which map onto them), and which fds read/write/readv/writev apply to.
//
// policy.cpp keeps one compile function per key; the ones for these keys call in here with
// plain values and turn a returned message into a positioned error, so this file needs no
// TOML and the shim-side matcher (shim/engine/net_select.cpp) reads the same integer fields.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "calls/calls.h"
#include "faultline/control_block.h"

namespace faultline {

enum NetAddrKind : std::uint8_t { kAddrNone = 0, kAddrInet = 1, kAddrUnix = 2 };

// FaultSpec::rw_scope. read, readv, write and writev serve @read/@write (files, pipes, ttys)
// and @net (sockets); a fault says which fds its bits of those calls apply to. 0 = files, the
// meaning those calls had before @net existed.
enum NetRwScope : std::uint8_t {
  kRwFiles = 1,    // through @write/@read, or named by a fault that is not a network fault
  kRwSockets = 2,  // through @net, or named by a network fault (addr, reset, blackhole, @net calls)
  kRwNamed = 4,    // named directly in `calls`: resolved by net_validate
  kRwResolved = 8,  // the named ones were given their scope (a live `set` never re-aims them)
};

// The four calls that serve both families.
bool is_rw_call(std::uint32_t call);
// Does this fault's read/write/readv/writev bit hit a socket (or a non-socket) fd?
inline bool rw_scope_hits(const FaultSpec& spec, bool socket) {
  std::uint8_t scope = spec.rw_scope & (kRwFiles | kRwSockets);
  if (scope == 0) scope = kRwFiles;
  return scope & (socket ? kRwSockets : kRwFiles);
}

// `addr`: "127.0.0.1:6379", "10.0.0.0/8", "*:5432", "*", "[::1]:*", "::1", "[fd00::/8]:443",
// "unix:/run/*.sock", each possibly negated ("!10.0.0.1:5432"). parse_addr_selector makes the
// spec's list that one entry; add_addr_selector appends one entry to the list (at most
// kAddrMax; unix globs share addr_unix). Both return what is wrong instead.
std::optional<std::string> parse_addr_selector(std::string_view text, FaultSpec& spec);
std::optional<std::string> add_addr_selector(std::string_view text, FaultSpec& spec);
// No `addr` (`faultline set F addr=`): the list emptied, every byte of it back to zero.
void clear_addr_selector(FaultSpec& spec);
// One `resolve_to` address (an IPv4 or IPv6 literal, no port): family 4 or 6, network order.
std::optional<std::string> parse_resolve_address(std::string_view text, std::uint8_t& family,
                                                 std::uint8_t (&bytes)[16]);

// The policy-file text of a compiled `addr`: its entries ("10.0.0.0/8", "[::1]:*",
// "!unix:/run/*.sock"), one entry as itself and several as a TOML array
// ("[\"127.0.0.2:*\",\"127.0.0.3:*\"]", selector_list_text; "" when none); and of `resolve_to`
// ("[\"127.0.0.2\", \"::1\"]"), for `faultline status`: values it shows can be pasted back
// into `faultline set`.
std::vector<std::string> addr_selector_entries(const FaultSpec& spec);
std::string addr_selector_text(const FaultSpec& spec);
std::string selector_list_text(const std::vector<std::string>& entries);
std::string resolve_to_text(const FaultSpec& spec);

// Resolver error names (dns_error_from_name, dns_error_name): calls/calls.h.
// What gethostbyname* report for an EAI code: h_errno (NETDB_INTERNAL for EAI_SYSTEM/_MEMORY).
int herrno_for_eai(int eai);

// Bookkeeping while `calls` is compiled: a family added (@net brings read/write/readv/writev
// with socket scope, @write/@read give them file scope) or a call named directly.
void net_note_family(FaultSpec& spec, Family family);
void net_note_named_call(FaultSpec& spec, std::uint32_t call);

// Clears the parameters of the @net/@dns actions when another main action replaces them.
void net_clear_action_params(FaultSpec& spec);

// Checks across the keys of a fault, run before the calls are restricted to the action: the
// scope of read/write calls, resolver errors on non-@dns calls (a named one is an error, a
// family's is dropped), `addr`/`host`/`timeout` where they cannot apply. `key` is where the
// problem is reported.
struct NetProblem {
  std::string message;
  std::string_view key;
};
std::optional<NetProblem> net_validate(FaultSpec& spec, const std::uint64_t (&named)[2]);

// Actions a call takes in this fault beyond its row's: read/write calls aimed at sockets take
// the @net data actions (reset, blackhole). 0 for every other call.
std::uint32_t net_extra_actions(const FaultSpec& spec, const CallInfo& call);
// The families to arm: read/write bits aimed only at sockets arm @net, not @write/@read.
std::uint32_t net_families(const FaultSpec& spec);
// Errnos the man pages list for sockets (connect(2), send(2), recv(2), accept(2)...): the
// kErrNet set of the call table (calls.h), also for read/write aimed at a socket.
bool net_errno_plausible(int err);

}  // namespace faultline
