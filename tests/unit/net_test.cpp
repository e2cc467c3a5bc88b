// @net and @dns without a preload: the compiler's addr/host/resolve_to/reset/blackhole/
// timeout keys and resolver error names, which fds read/write calls hit, the engine's `addr`
// and `host` matching (on real loopback sockets for getpeername/getsockname), the check that
// tells a partition was lifted, and the lock-free socket state table.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "calls/calls.h"
#include "policy/net_policy.h"
#include "policy/policy.h"
#include "shim/engine/fd_table.h"
#include "shim/engine/file_rate.h"
#include "shim/engine/net_select.h"
#include "shim/engine/sock_bytes.h"
#include "shim/engine/sock_table.h"
#include "test_session.h"

namespace faultline {
namespace {

using testing::TestSession;

const char* kHeader = "version = 1\nseed = 1\n";

FaultSpec compile_one(const std::string& fault) {
  CompileResult r =
      compile_policy_string(std::string(kHeader) + "[[fault]]\nname = \"f\"\n" + fault, "net.toml");
  EXPECT_FALSE(r.error) << (r.error ? r.error->to_string() : "");
  return r.policy && !r.policy->faults.empty() ? r.policy->faults[0] : FaultSpec{};
}

// The error message for a fault body, "" if it compiles.
std::string refusal(const std::string& fault) {
  CompileResult r =
      compile_policy_string(std::string(kHeader) + "[[fault]]\nname = \"f\"\n" + fault, "net.toml");
  return r.error ? r.error->message : "";
}

bool has(const FaultSpec& spec, std::uint32_t call) {
  return (spec.calls_mask[call / 64] >> (call % 64)) & 1;
}

struct sockaddr_in v4(const char* ip, int port) {
  struct sockaddr_in a {};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  inet_pton(AF_INET, ip, &a.sin_addr);
  return a;
}

struct sockaddr_in6 v6(const char* ip, int port) {
  struct sockaddr_in6 a {};
  a.sin6_family = AF_INET6;
  a.sin6_port = htons(static_cast<std::uint16_t>(port));
  inet_pton(AF_INET6, ip, &a.sin6_addr);
  return a;
}

template <class Addr>
bool addr_hits(const FaultSpec& spec, const Addr& a) {
  return shim::addr_selector_matches(spec, reinterpret_cast<const struct sockaddr*>(&a), sizeof a);
}

// ---- the compiler ---------------------------------------------------------------------------

TEST(NetPolicy, AddrForms) {
  FaultSpec exact =
      compile_one("calls = [\"connect\"]\naddr = \"127.0.0.1:6379\"\nerror = \"ECONNREFUSED\"\n");
  EXPECT_TRUE(addr_hits(exact, v4("127.0.0.1", 6379)));
  EXPECT_FALSE(addr_hits(exact, v4("127.0.0.1", 6380)));
  EXPECT_FALSE(addr_hits(exact, v4("127.0.0.2", 6379)));
  // An IPv6 socket talking to an IPv4 peer sees it v4-mapped: it is the same peer.
  EXPECT_TRUE(addr_hits(exact, v6("::ffff:127.0.0.1", 6379)));

  FaultSpec cidr =
      compile_one("calls = [\"connect\"]\naddr = \"10.0.0.0/8\"\nerror = \"ETIMEDOUT\"\n");
  EXPECT_TRUE(addr_hits(cidr, v4("10.200.1.2", 1)));
  EXPECT_FALSE(addr_hits(cidr, v4("11.0.0.1", 1)));

  FaultSpec port =
      compile_one("calls = [\"connect\"]\naddr = \"*:5432\"\nerror = \"ECONNREFUSED\"\n");
  EXPECT_TRUE(addr_hits(port, v4("192.0.2.1", 5432)));
  EXPECT_TRUE(addr_hits(port, v6("2001:db8::1", 5432)));
  EXPECT_FALSE(addr_hits(port, v4("192.0.2.1", 5433)));

  FaultSpec six =
      compile_one("calls = [\"connect\"]\naddr = \"[::1]:*\"\nerror = \"ECONNREFUSED\"\n");
  EXPECT_TRUE(addr_hits(six, v6("::1", 80)));
  EXPECT_FALSE(addr_hits(six, v4("127.0.0.1", 80)));
  FaultSpec six_net =
      compile_one("calls = [\"connect\"]\naddr = \"[fd00::/8]:443\"\nerror = \"EIO\"\n");
  EXPECT_TRUE(addr_hits(six_net, v6("fd12::5", 443)));
  EXPECT_FALSE(addr_hits(six_net, v6("fe80::5", 443)));
  FaultSpec bare = compile_one("calls = [\"connect\"]\naddr = \"::1\"\nerror = \"EIO\"\n");
  EXPECT_TRUE(addr_hits(bare, v6("::1", 9)));

  FaultSpec any = compile_one("calls = [\"connect\"]\naddr = \"*\"\nerror = \"EIO\"\n");
  EXPECT_TRUE(addr_hits(any, v4("1.2.3.4", 1)));

  FaultSpec unix_glob =
      compile_one("calls = [\"connect\"]\naddr = \"unix:/run/*.sock\"\nerror = \"ECONNREFUSED\"\n");
  struct sockaddr_un un {};
  un.sun_family = AF_UNIX;
  std::strcpy(un.sun_path, "/run/app.sock");
  EXPECT_TRUE(addr_hits(unix_glob, un));
  std::strcpy(un.sun_path, "/tmp/app.sock");
  EXPECT_FALSE(addr_hits(unix_glob, un));
  EXPECT_FALSE(addr_hits(unix_glob, v4("127.0.0.1", 1)));
}

TEST(NetPolicy, AddrPrintsBackAsWritten) {
  for (const char* text : {"127.0.0.1:6379", "10.0.0.0/8", "*:5432", "*", "[::1]:*",
                           "[fd00::/8]:443", "unix:/run/*.sock", "192.168.0.0/16:53"}) {
    FaultSpec s = compile_one(std::string("calls = [\"connect\"]\naddr = \"") + text +
                              "\"\nerror = \"EIO\"\n");
    EXPECT_EQ(addr_selector_text(s), text);
  }
  EXPECT_EQ(
      addr_selector_text(compile_one("calls = [\"connect\"]\naddr = \"::1\"\nerror = \"EIO\"\n")),
      "[::1]:*");
}

TEST(NetPolicy, BadAddrIsRefusedWithItsReason) {
  const std::string tail = "error = \"EIO\"\ncalls = [\"connect\"]\n";
  EXPECT_NE(refusal("addr = \"10.1.0.0/8\"\n" + tail).find("host bits set in '10.1.0.0/8'"),
            std::string::npos);
  EXPECT_NE(refusal("addr = \"10.0.0.0/33\"\n" + tail).find("bad CIDR prefix"), std::string::npos);
  EXPECT_NE(refusal("addr = \"127.0.0.1:99999\"\n" + tail).find("bad port"), std::string::npos);
  EXPECT_NE(refusal("addr = \"db.internal:5432\"\n" + tail).find("not host names"),
            std::string::npos);
  EXPECT_NE(refusal("addr = \"[::1\"\n" + tail).find("bad addr '[::1'"), std::string::npos);
  EXPECT_NE(refusal("addr = \"unix:\"\n" + tail).find("needs a path glob"), std::string::npos);
  EXPECT_NE(refusal("addr = \"unix:/a/[b\"\n" + tail).find("unterminated"), std::string::npos);
  EXPECT_NE(refusal("addr = 5\n" + tail).find("'addr' must be an address or a list of them"),
            std::string::npos);
  // A selector that can never apply is refused, not silently ignored.
  EXPECT_NE(refusal("calls = [\"fsync\"]\naddr = \"*:1\"\nerror = \"EIO\"\n")
                .find("'addr' applies to @net calls"),
            std::string::npos);
  EXPECT_NE(refusal("calls = [\"connect\"]\nhost = \"*.test\"\nerror = \"EIO\"\n")
                .find("'host' applies to @dns calls"),
            std::string::npos);
}

TEST(NetPolicy, ErrorPositionsPointAtTheValue) {
  CompileResult r = compile_policy_string(
      "version = 1\n[[fault]]\nname = \"f\"\ncalls = [\"connect\"]\naddr = \"1.2.3\"\nerror = "
      "\"EIO\"\n",
      "p.toml");
  ASSERT_TRUE(r.error);
  EXPECT_EQ(r.error->line, 5);
  EXPECT_EQ(r.error->column, 8);
}

TEST(NetPolicy, ResolverErrorsBelongToDns) {
  FaultSpec again = compile_one("calls = [\"getaddrinfo\"]\nerror = \"EAI_AGAIN\"\n");
  EXPECT_EQ(again.actions, kActError);
  EXPECT_EQ(again.dns_error, EAI_AGAIN);
  EXPECT_EQ(again.error, 0);
  // gethostbyname*'s names mean the same thing.
  EXPECT_EQ(compile_one("calls = [\"gethostbyname\"]\nerror = \"TRY_AGAIN\"\n").dns_error,
            EAI_AGAIN);
  EXPECT_EQ(compile_one("calls = [\"@dns\"]\nerror = \"HOST_NOT_FOUND\"\n").dns_error, EAI_NONAME);
  // An errno on a lookup: EAI_SYSTEM with that errno (dns_error 0 at compile time).
  FaultSpec sys = compile_one("calls = [\"getaddrinfo\"]\nerror = \"ECONNREFUSED\"\n");
  EXPECT_EQ(sys.dns_error, 0);
  EXPECT_EQ(sys.error, ECONNREFUSED);

  EXPECT_NE(
      refusal("calls = [\"connect\"]\nerror = \"EAI_AGAIN\"\n")
          .find("'EAI_AGAIN' is a resolver error: it applies only to @dns calls, not 'connect'"),
      std::string::npos);
  // From families, the calls that cannot take it are dropped.
  FaultSpec mixed = compile_one("calls = [\"@net\", \"@dns\"]\nerror = \"EAI_FAIL\"\n");
  EXPECT_TRUE(has(mixed, kCall_getaddrinfo));
  EXPECT_FALSE(has(mixed, kCall_connect));
  EXPECT_EQ(mixed.families, std::uint32_t{kFamDns});
  EXPECT_NE(refusal("calls = [\"getaddrinfo\"]\nerror = \"EAI_AGIAN\"\n")
                .find("did you mean 'EAI_AGAIN'"),
            std::string::npos);
  EXPECT_EQ(errno_name(EAI_AGAIN), "EAI_AGAIN");
}

TEST(NetPolicy, ResolveTo) {
  FaultSpec s = compile_one("calls = [\"@dns\"]\nresolve_to = [\"127.0.0.2\", \"::1\"]\n");
  EXPECT_EQ(s.actions, kActResolve);
  ASSERT_EQ(s.resolve_count, 2);
  EXPECT_EQ(s.resolve_family[0], 4);
  EXPECT_EQ(s.resolve_addr[0][3], 2);
  EXPECT_EQ(s.resolve_family[1], 6);
  EXPECT_EQ(s.resolve_addr[1][15], 1);
  // Reverse lookups cannot answer with addresses: dropped from the family.
  EXPECT_TRUE(has(s, kCall_getaddrinfo));
  EXPECT_TRUE(has(s, kCall_gethostbyname_r));
  EXPECT_FALSE(has(s, kCall_getnameinfo));
  EXPECT_FALSE(has(s, kCall_gethostbyaddr));

  EXPECT_NE(
      refusal("calls = [\"@dns\"]\nresolve_to = [\"localhost\"]\n").find("bad address 'localhost'"),
      std::string::npos);
  EXPECT_NE(refusal("calls = [\"@dns\"]\nresolve_to = []\n").find("at least one"),
            std::string::npos);
  EXPECT_NE(refusal("calls = [\"@dns\"]\nresolve_to = \"127.0.0.1\"\n").find("must be an array"),
            std::string::npos);
  EXPECT_NE(refusal("calls = [\"@dns\"]\nresolve_to = [\"1.1.1.1\",\"1.1.1.2\",\"1.1.1.3\","
                    "\"1.1.1.4\",\"1.1.1.5\",\"1.1.1.6\",\"1.1.1.7\",\"1.1.1.8\",\"1.1.1.9\"]\n")
                .find("at most 8"),
            std::string::npos);
  EXPECT_NE(refusal("calls = [\"getnameinfo\"]\nresolve_to = [\"127.0.0.1\"]\n")
                .find("action 'resolve_to' is not valid for call 'getnameinfo'"),
            std::string::npos);
}

TEST(NetPolicy, ResetBlackholeAndTimeout) {
  FaultSpec reset = compile_one("calls = [\"@net\"]\nreset = true\n");
  EXPECT_EQ(reset.actions, kActReset);
  EXPECT_TRUE(has(reset, kCall_send));
  EXPECT_TRUE(has(reset, kCall_accept));
  EXPECT_TRUE(has(reset, kCall_write));  // write on a socket is a @net call
  EXPECT_FALSE(has(reset, kCall_socket));
  EXPECT_FALSE(has(reset, kCall_bind));
  EXPECT_EQ(reset.families, std::uint32_t{kFamNet});  // arms @net, not @write/@read

  FaultSpec hole = compile_one("calls = [\"connect\"]\nblackhole = true\ntimeout = \"2s\"\n");
  EXPECT_EQ(hole.actions, kActBlackhole);
  EXPECT_EQ(hole.timeout_ns, 2'000'000'000);
  EXPECT_NE(refusal("calls = [\"connect\"]\nerror = \"EIO\"\ntimeout = \"2s\"\n")
                .find("'timeout' applies only to 'blackhole'"),
            std::string::npos);
  EXPECT_NE(refusal("calls = [\"connect\"]\nblackhole = true\ntimeout = \"0s\"\n")
                .find("'timeout' must be longer than 0"),
            std::string::npos);
  EXPECT_NE(refusal("calls = [\"accept\"]\nblackhole = true\n")
                .find("action 'blackhole' is not valid for call 'accept'"),
            std::string::npos);
  // false takes the action away: no action is left, so connect's natural error applies.
  EXPECT_EQ(refusal("calls = [\"connect\"]\nreset = false\n"), "");
  EXPECT_NE(refusal("calls = [\"connect\"]\nreset = true\nerror = \"EIO\"\n").find("two actions"),
            std::string::npos);
}

TEST(NetPolicy, WhichFdsReadAndWriteHit) {
  // @write alone: files (what it always meant).
  FaultSpec files = compile_one("calls = [\"@write\"]\nerror = \"EIO\"\n");
  EXPECT_TRUE(rw_scope_hits(files, false));
  EXPECT_FALSE(rw_scope_hits(files, true));
  EXPECT_EQ(files.families, std::uint32_t{kFamWrite});
  // @net alone: sockets, and only @net is armed.
  FaultSpec sockets = compile_one("calls = [\"@net\"]\nerror = \"ECONNRESET\"\n");
  EXPECT_FALSE(rw_scope_hits(sockets, false));
  EXPECT_TRUE(rw_scope_hits(sockets, true));
  EXPECT_EQ(sockets.families, std::uint32_t{kFamNet});
  // Both: both, and both families armed.
  FaultSpec both = compile_one("calls = [\"@write\", \"@net\"]\ndelay = \"1ms\"\n");
  EXPECT_TRUE(rw_scope_hits(both, false));
  EXPECT_TRUE(rw_scope_hits(both, true));
  EXPECT_EQ(both.families, std::uint32_t{kFamWrite | kFamRead | kFamNet});
  // Named directly: a network fault (addr, reset, blackhole, other @net calls) means sockets.
  FaultSpec named_file = compile_one("calls = [\"write\"]\nerror = \"EIO\"\n");
  EXPECT_FALSE(rw_scope_hits(named_file, true));
  FaultSpec named_net = compile_one("calls = [\"write\"]\naddr = \"*:6379\"\nerror = \"EPIPE\"\n");
  EXPECT_TRUE(rw_scope_hits(named_net, true));
  EXPECT_FALSE(rw_scope_hits(named_net, false));
  EXPECT_EQ(named_net.families, std::uint32_t{kFamNet});
  FaultSpec named_reset = compile_one("calls = [\"read\", \"write\"]\nreset = true\n");
  EXPECT_TRUE(rw_scope_hits(named_reset, true));
  // The action narrows: quota is for files, reset and blackhole for sockets.
  FaultSpec quota = compile_one("calls = [\"@write\", \"@net\"]\nquota = \"1MiB\"\n");
  EXPECT_FALSE(rw_scope_hits(quota, true));
  EXPECT_FALSE(has(quota, kCall_send));
  EXPECT_NE(refusal("calls = [\"write\"]\naddr = \"*:1\"\nquota = \"1MiB\"\n")
                .find("action 'quota' is not valid for call 'write' on a socket"),
            std::string::npos);
  FaultSpec hole = compile_one("calls = [\"@write\", \"@net\"]\nblackhole = true\n");
  EXPECT_FALSE(rw_scope_hits(hole, false));
  EXPECT_FALSE(has(hole, kCall_pwrite));
}

struct sockaddr_un unix_addr(const char* path) {
  struct sockaddr_un un {};
  un.sun_family = AF_UNIX;
  std::strcpy(un.sun_path, path);
  return un;
}

TEST(NetPolicy, AddrListsMatchAnyEntryAndNoNegatedOne) {
  // Positive entries only: a partial partition as one fault.
  FaultSpec two = compile_one(
      "calls = [\"connect\"]\naddr = [\"127.0.0.2:5432\", \"127.0.0.3:5432\"]\nerror = \"EIO\"\n");
  EXPECT_EQ(two.addr_count, 2);
  EXPECT_TRUE(addr_hits(two, v4("127.0.0.2", 5432)));
  EXPECT_TRUE(addr_hits(two, v4("127.0.0.3", 5432)));
  EXPECT_FALSE(addr_hits(two, v4("127.0.0.4", 5432)));
  EXPECT_FALSE(addr_hits(two, v4("127.0.0.2", 5433)));
  EXPECT_EQ(addr_selector_text(two), "[\"127.0.0.2:5432\",\"127.0.0.3:5432\"]");

  // Mixed: a range but one address of it.
  FaultSpec mixed = compile_one(
      "calls = [\"connect\"]\naddr = [\"10.0.0.0/8\", \"!10.0.0.7:*\"]\nerror = \"EIO\"\n");
  EXPECT_TRUE(addr_hits(mixed, v4("10.1.2.3", 80)));
  EXPECT_FALSE(addr_hits(mixed, v4("10.0.0.7", 80)));
  EXPECT_FALSE(addr_hits(mixed, v4("11.0.0.1", 80)));

  // Negative only: every other IP peer, of both families; unix sockets are not IP peers.
  FaultSpec others =
      compile_one("calls = [\"connect\"]\naddr = \"!127.0.0.1:6379\"\nerror = \"EIO\"\n");
  EXPECT_FALSE(addr_hits(others, v4("127.0.0.1", 6379)));
  EXPECT_FALSE(addr_hits(others, v6("::ffff:127.0.0.1", 6379)));
  EXPECT_TRUE(addr_hits(others, v4("127.0.0.1", 6380)));
  EXPECT_TRUE(addr_hits(others, v6("::1", 6379)));
  EXPECT_FALSE(addr_hits(others, unix_addr("/run/x.sock")));
  EXPECT_EQ(addr_selector_text(others), "!127.0.0.1:6379");

  // IPv6 entries, one negated.
  FaultSpec six = compile_one(
      "calls = [\"connect\"]\naddr = [\"[fd00::/8]:*\", \"![fd00::1]:*\", \"[::1]:443\"]\n"
      "error = \"EIO\"\n");
  EXPECT_TRUE(addr_hits(six, v6("fd00::2", 1)));
  EXPECT_FALSE(addr_hits(six, v6("fd00::1", 1)));
  EXPECT_TRUE(addr_hits(six, v6("::1", 443)));
  EXPECT_FALSE(addr_hits(six, v6("::1", 444)));
  EXPECT_FALSE(addr_hits(six, v4("127.0.0.1", 443)));

  // inet and unix entries in one list; a negated unix glob.
  FaultSpec both = compile_one(
      "calls = [\"connect\"]\naddr = [\"127.0.0.1:6379\", \"unix:/run/*.sock\", "
      "\"!unix:/run/keep.sock\"]\nerror = \"EIO\"\n");
  EXPECT_EQ(both.addr_count, 3);
  EXPECT_TRUE(addr_hits(both, v4("127.0.0.1", 6379)));
  EXPECT_FALSE(addr_hits(both, v4("127.0.0.1", 6380)));
  EXPECT_TRUE(addr_hits(both, unix_addr("/run/app.sock")));
  EXPECT_FALSE(addr_hits(both, unix_addr("/run/keep.sock")));
  EXPECT_FALSE(addr_hits(both, unix_addr("/tmp/app.sock")));
  EXPECT_EQ(addr_selector_text(both),
            "[\"127.0.0.1:6379\",\"unix:/run/*.sock\",\"!unix:/run/keep.sock\"]");
  // A unix-only negation covers unix sockets, not IP peers.
  FaultSpec not_unix =
      compile_one("calls = [\"connect\"]\naddr = [\"!unix:/run/keep.sock\"]\nerror = \"EIO\"\n");
  EXPECT_TRUE(addr_hits(not_unix, unix_addr("/run/other.sock")));
  EXPECT_FALSE(addr_hits(not_unix, unix_addr("/run/keep.sock")));
  EXPECT_FALSE(addr_hits(not_unix, v4("127.0.0.1", 1)));

  // A one-entry list is the single string.
  FaultSpec one = compile_one("calls = [\"connect\"]\naddr = [\"*:5432\"]\nerror = \"EIO\"\n");
  EXPECT_EQ(addr_selector_text(one), "*:5432");
}

TEST(NetPolicy, BadAddrListsAreRefusedWithTheEntryAtFault) {
  auto error_of = [](const std::string& fault) {
    CompileResult r = compile_policy_string(
        std::string(kHeader) + "[[fault]]\nname = \"f\"\ncalls = [\"connect\"]\nerror = \"EIO\"\n" +
            fault,
        "net.toml");
    return r.error ? r.error->to_string() : std::string();
  };
  // Line 7 is the addr line; the column points at the entry.
  EXPECT_NE(error_of("addr = []\n").find("net.toml:7:8: 'addr' must not be an empty list"),
            std::string::npos)
      << error_of("addr = []\n");
  const std::string bad = error_of("addr = [\"127.0.0.1:1\", \"127.0.0.300:1\"]\n");
  EXPECT_NE(bad.find("net.toml:7:24: bad addr '127.0.0.300:1'"), std::string::npos) << bad;
  const std::string number = error_of("addr = [\"127.0.0.1:1\", 5]\n");
  EXPECT_NE(number.find("net.toml:7:24: 'addr' list entries must be strings"), std::string::npos)
      << number;
  EXPECT_NE(error_of("addr = [\"\"]\n").find("'addr' list entries must not be empty"),
            std::string::npos);
  EXPECT_NE(error_of("addr = \"!\"\n").find("'addr' entry '!' excludes nothing"),
            std::string::npos);
  std::string nine = "addr = [";
  for (int i = 1; i <= 9; ++i)
    nine += (i > 1 ? ", \"127.0.0." : "\"127.0.0.") + std::to_string(i) + "\"";
  const std::string many = error_of(nine + "]\n");
  EXPECT_NE(many.find("'addr' takes at most 8 entries"), std::string::npos) << many;
  const std::string glob(70, 'a');
  const std::string long_unix =
      error_of("addr = [\"unix:/" + glob + "\", \"unix:/" + glob + "\"]\n");
  EXPECT_NE(long_unix.find("unix path globs are too long together"), std::string::npos)
      << long_unix;
  EXPECT_NE(error_of("addr = [\"unix:/run/[x\"]\n").find("unterminated [...] class"),
            std::string::npos);
}

TEST(NetPolicy, LiveSetTakesAnAddrList) {
  FaultSpec net = compile_one("calls = [\"connect\"]\naddr = \"127.0.0.2:80\"\nblackhole = true\n");
  EXPECT_EQ(apply_fault_setting(net, "addr", "[\"127.0.0.3:*\",\"127.0.0.4:*\"]"), std::nullopt);
  EXPECT_FALSE(addr_hits(net, v4("127.0.0.2", 80)));
  EXPECT_TRUE(addr_hits(net, v4("127.0.0.3", 80)));
  EXPECT_TRUE(addr_hits(net, v4("127.0.0.4", 81)));
  EXPECT_EQ(addr_selector_text(net), "[\"127.0.0.3\",\"127.0.0.4\"]");
  // A refused list leaves the loaded one as it was.
  EXPECT_TRUE(apply_fault_setting(net, "addr", "[\"127.0.0.5:*\",\"bogus\"]"));
  EXPECT_TRUE(addr_hits(net, v4("127.0.0.3", 80)));
  EXPECT_FALSE(addr_hits(net, v4("127.0.0.5", 80)));
  // Going back to one string drops the old entries.
  EXPECT_EQ(apply_fault_setting(net, "addr", "127.0.0.5:*"), std::nullopt);
  EXPECT_EQ(net.addr_count, 1);
  EXPECT_FALSE(addr_hits(net, v4("127.0.0.3", 80)));
}

TEST(NetPolicy, LiveSetKeepsTheScopeOfALoadedFault) {
  FaultSpec s = compile_one("calls = [\"write\"]\nerror = \"EIO\"\n");
  // `set reset=true` on a file fault: write is a file call here, and reset is not for files.
  std::optional<std::string> problem = apply_fault_setting(s, "reset", "true");
  ASSERT_TRUE(problem);
  EXPECT_NE(problem->find("not valid for call 'write' on a file"), std::string::npos) << *problem;
  FaultSpec net =
      compile_one("calls = [\"connect\", \"send\", \"recv\"]\nerror = \"ECONNRESET\"\n");
  EXPECT_EQ(apply_fault_setting(net, "blackhole", "true"), std::nullopt);
  EXPECT_EQ(net.actions, kActBlackhole);
  EXPECT_EQ(apply_fault_setting(net, "addr", "\"127.0.0.1:80\""), std::nullopt);
  ASSERT_EQ(net.addr_count, 1);
  EXPECT_EQ(net.addr[0].port, 80);
  EXPECT_EQ(addr_selector_text(net), "127.0.0.1:80");
  // An empty value removes the selector, as for path.
  EXPECT_EQ(apply_fault_setting(net, "addr", ""), std::nullopt);
  EXPECT_EQ(net.addr_count, 0);
  FaultSpec dns =
      compile_one("calls = [\"getaddrinfo\"]\nhost = \"*.test\"\nerror = \"EAI_FAIL\"\n");
  EXPECT_EQ(apply_fault_setting(dns, "host", "\"\""), std::nullopt);
  EXPECT_EQ(dns.host[0], '\0');
  EXPECT_EQ(apply_fault_setting(dns, "resolve_to", "[\"::1\"]"), std::nullopt);
  EXPECT_EQ(dns.actions, kActResolve);
  EXPECT_EQ(dns.dns_error, 0);  // the old action's parameters are gone
  EXPECT_EQ(resolve_to_text(dns), "[\"::1\"]");
}

// ---- the engine -----------------------------------------------------------------------------

bool injects(const shim::CallArgs& args) {
  shim::Guard guard;
  shim::Decision d;
  return shim::decide(guard, args, d) && d.inject;
}

shim::CallArgs connect_args(const struct sockaddr_in& a) {
  shim::CallArgs args{kCall_connect, 99};
  args.addr = reinterpret_cast<const struct sockaddr*>(&a);
  args.addr_len = sizeof a;
  return args;
}

TEST(NetEngine, AddrMatchesTheConnectArgument) {
  TestSession s(std::string(kHeader) +
                "[[fault]]\nname='f'\ncalls=['connect']\naddr='127.0.0.1:6379'\n"
                "error='ECONNREFUSED'\n");
  EXPECT_TRUE(injects(connect_args(v4("127.0.0.1", 6379))));
  EXPECT_FALSE(injects(connect_args(v4("127.0.0.1", 6380))));
  EXPECT_EQ(s.slot("f").seen.load(), 2u);
  EXPECT_EQ(s.slot("f").matched.load(), 1u);
}

TEST(NetEngine, HostMatchesTheNameLookedUp) {
  TestSession s(std::string(kHeader) +
                "[[fault]]\nname='f'\ncalls=['@dns']\nhost='*.db.test'\nerror='EAI_AGAIN'\n");
  shim::CallArgs args{kCall_getaddrinfo};
  args.host = "primary.db.test";
  EXPECT_TRUE(injects(args));
  args.host = "cache.test";
  EXPECT_FALSE(injects(args));
  shim::Guard guard;
  shim::Decision d;
  args.host = "x.db.test";
  ASSERT_TRUE(shim::decide(guard, args, d));
  EXPECT_EQ(d.dns_error, EAI_AGAIN);
}

TEST(NetEngine, HostListExcludesANegatedName) {
  TestSession s(std::string(kHeader) +
                "[[fault]]\nname='f'\ncalls=['@dns']\nhost=['*.db.test', '!primary.db.test']\n"
                "error='EAI_AGAIN'\n");
  shim::CallArgs args{kCall_getaddrinfo};
  args.host = "replica.db.test";
  EXPECT_TRUE(injects(args));
  args.host = "primary.db.test";
  EXPECT_FALSE(injects(args));
  args.host = "cache.test";
  EXPECT_FALSE(injects(args));
}

// A listener and a connected pair on loopback, for getpeername/getsockname.
struct LoopbackPair {
  int listener = -1, client = -1, server = -1;
  int port = 0;
  LoopbackPair() {
    listener = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = v4("127.0.0.1", 0);
    socklen_t len = sizeof a;
    if (bind(listener, reinterpret_cast<struct sockaddr*>(&a), sizeof a) != 0 ||
        listen(listener, 4) != 0 ||
        getsockname(listener, reinterpret_cast<struct sockaddr*>(&a), &len) != 0)
      return;
    port = ntohs(a.sin_port);
    client = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(client, reinterpret_cast<struct sockaddr*>(&a), sizeof a) != 0) return;
    server = accept(listener, nullptr, nullptr);
  }
  ~LoopbackPair() {
    for (int fd : {listener, client, server})
      if (fd >= 0) close(fd);
  }
};

TEST(NetEngine, AddrMatchesThePeerOrTheLocalAddressOfTheSocket) {
  LoopbackPair pair;
  ASSERT_GE(pair.server, 0);
  const std::string addr = "127.0.0.1:" + std::to_string(pair.port);
  TestSession s(std::string(kHeader) + "[[fault]]\nname='f'\ncalls=['@net']\naddr='" + addr +
                "'\nerror='ECONNRESET'\n");
  // The client's peer is the listener's port; the server side's peer is the client's port.
  EXPECT_TRUE(injects(shim::CallArgs{kCall_send, pair.client}));
  EXPECT_TRUE(injects(shim::CallArgs{kCall_write, pair.client}));  // write on a socket: @net
  EXPECT_FALSE(injects(shim::CallArgs{kCall_send, pair.server}));
  // accept and listen look at the local address.
  EXPECT_TRUE(injects(shim::CallArgs{kCall_accept, pair.listener}));
  // A file is not a socket: write to it is not a @net call.
  char path[] = "/tmp/fl-net-XXXXXX";
  int file = mkstemp(path);
  ASSERT_GE(file, 0);
  shim::fd_invalidate(file);
  EXPECT_FALSE(injects(shim::CallArgs{kCall_write, file}));
  close(file);
  unlink(path);
}

// With only @net armed, read/write on a file never reach decide(): not counted, not matched.
TEST(NetEngine, OnlyNetArmedLetsFileIoThroughWithoutDeciding) {
  LoopbackPair pair;
  ASSERT_GE(pair.client, 0);
  TestSession s(std::string(kHeader) + "[[fault]]\nname='f'\ncalls=['@net']\nerror='EIO'\n");
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  shim::Guard guard;
  // (the unit tests' armed word is the zero sentinel: @write/@read count as not armed)
  EXPECT_TRUE(shim::only_net_and_not_socket(guard, kFamWrite, p[1]));
  EXPECT_FALSE(shim::only_net_and_not_socket(guard, kFamWrite, pair.client));
  close(p[0]);
  close(p[1]);
}

TEST(NetEngine, FileFaultsStillSkipSockets) {
  LoopbackPair pair;
  ASSERT_GE(pair.client, 0);
  TestSession s(std::string(kHeader) + "[[fault]]\nname='f'\ncalls=['write']\nerror='EIO'\n");
  EXPECT_FALSE(injects(shim::CallArgs{kCall_write, pair.client}));
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  EXPECT_TRUE(injects(shim::CallArgs{kCall_write, p[1]}));
  close(p[0]);
  close(p[1]);
}

TEST(NetEngine, APartitionHoldsWhileItsFaultIsEnabledAndInItsWindow) {
  TestSession s(std::string(kHeader) +
                "[[fault]]\nname='f'\ncalls=['connect']\naddr='*:7'\nblackhole=true\ntimes=1\n");
  shim::Guard guard;
  const int slot = s.session().find_fault("f");
  auto a = v4("127.0.0.1", 7);
  EXPECT_TRUE(injects(connect_args(a)));
  // `times` is spent, but the partition it made still holds: lifting it is what heals.
  EXPECT_TRUE(shim::fault_still_applies(guard, slot, connect_args(a)));
  EXPECT_FALSE(shim::fault_still_applies(guard, slot, connect_args(v4("127.0.0.1", 8))));
  s.session().set_enabled(slot, false);
  EXPECT_FALSE(shim::fault_still_applies(guard, slot, connect_args(a)));
  s.session().set_enabled(slot, true);
  EXPECT_TRUE(shim::fault_still_applies(guard, slot, connect_args(a)));
  s.session().panic();
  EXPECT_FALSE(shim::fault_still_applies(guard, slot, connect_args(a)));
}

TEST(NetEngine, FormatsAddressesForEvents) {
  char buf[128];
  auto a = v4("10.1.2.3", 443);
  shim::format_sockaddr(reinterpret_cast<struct sockaddr*>(&a), sizeof a, buf, sizeof buf);
  EXPECT_STREQ(buf, "10.1.2.3:443");
  auto b = v6("::1", 80);
  shim::format_sockaddr(reinterpret_cast<struct sockaddr*>(&b), sizeof b, buf, sizeof buf);
  EXPECT_STREQ(buf, "[::1]:80");
  struct sockaddr_un un {};
  un.sun_family = AF_UNIX;
  std::memcpy(un.sun_path, "\0abs", 4);
  shim::format_sockaddr(reinterpret_cast<struct sockaddr*>(&un),
                        offsetof(struct sockaddr_un, sun_path) + 4, buf, sizeof buf);
  EXPECT_STREQ(buf, "unix:@abs");
}

// ---- the socket state table -----------------------------------------------------------------

TEST(SockTable, StoreLoadForget) {
  const int fd = 4000;  // a number this test owns in the table (no real fd needed)
  shim::sock_forget(fd);
  shim::SockState st = shim::sock_load(fd);
  EXPECT_EQ(st.flags(), 0u);
  const bool marked_before = shim::sock_any_marked();
  ASSERT_TRUE(shim::sock_store(fd, st, shim::kSockTarpit, 5, 0));
  st = shim::sock_load(fd);
  EXPECT_EQ(st.flags(), std::uint32_t{shim::kSockTarpit});
  EXPECT_EQ(st.fault(), 5);
  EXPECT_TRUE(shim::sock_any_marked());
  int fds[shim::kMarkedMax];
  int n = shim::sock_marked_fds(fds, shim::kMarkedMax);
  EXPECT_NE(std::find(fds, fds + n, fd), fds + n);

  auto peer = v4("192.0.2.7", 80);
  shim::sock_set_peer(fd, reinterpret_cast<struct sockaddr*>(&peer), sizeof peer);
  struct sockaddr_storage out;
  ASSERT_EQ(shim::sock_peer(fd, &out), sizeof peer);
  EXPECT_EQ(std::memcmp(&out, &peer, sizeof peer), 0);

  // A close between a wrapper's load and its store wins: the stale store is dropped.
  shim::SockState stale = shim::sock_load(fd);
  shim::sock_forget(fd);
  EXPECT_FALSE(shim::sock_store(fd, stale, shim::kSockReset, 1, 0));
  EXPECT_EQ(shim::sock_load(fd).flags(), 0u);
  EXPECT_EQ(shim::sock_peer(fd, &out), 0u);
  EXPECT_EQ(shim::sock_any_marked(), marked_before);
  n = shim::sock_marked_fds(fds, shim::kMarkedMax);
  EXPECT_EQ(std::find(fds, fds + n, fd), fds + n);
}

TEST(SockTable, EpollRegistrationAndRangeForget) {
  const int fd = 4001;
  shim::sock_epoll_record(fd, 17, 0x5, 0xabcdef);
  int ep = -1;
  std::uint32_t events = 0;
  std::uint64_t data = 0;
  ASSERT_TRUE(shim::sock_epoll_get(fd, ep, events, data));
  EXPECT_EQ(ep, 17);
  EXPECT_EQ(events, 0x5u);
  EXPECT_EQ(data, 0xabcdefu);
  shim::sock_epoll_forget(fd, 18);  // another set: kept
  EXPECT_TRUE(shim::sock_epoll_get(fd, ep, events, data));
  shim::SockState st = shim::sock_load(fd);
  ASSERT_TRUE(shim::sock_store(fd, st, shim::kSockPartitioned, 2, 0));
  shim::sock_forget_range(3990, 4010);  // close_range
  EXPECT_FALSE(shim::sock_epoll_get(fd, ep, events, data));
  EXPECT_EQ(shim::sock_load(fd).flags(), 0u);
}

// A reset socket's number taken by another socket behind the table's back (no sock_forget):
// the state is not the new socket's.
TEST(SockTable, VerifiedLoadDropsTheStateOfAReplacedSocket) {
  int sv[2], other[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, other), 0);
  const int fd = sv[0];
  shim::sock_forget(fd);
  ASSERT_TRUE(shim::sock_store(fd, shim::sock_load(fd), shim::kSockReset, 3, 0));
  EXPECT_EQ(shim::sock_load_verified(fd).flags(), std::uint32_t{shim::kSockReset});  // same socket
  ASSERT_EQ(dup2(other[0], fd), fd);  // another socket on the number, unseen
  EXPECT_EQ(shim::sock_load_verified(fd).flags(), 0u);
  EXPECT_EQ(shim::sock_load(fd).flags(), 0u);  // forgotten, not just hidden
  for (int f : {sv[0], sv[1], other[0], other[1]}) close(f);
  shim::sock_forget(fd);
}

// Threads marking and forgetting the same fds: the marked count ends exact (TSan runs this).
TEST(SockTable, ConcurrentMarksKeepTheCountExact) {
  constexpr int kThreads = 4, kRounds = 2000, kBase = 4100;
  const bool marked_before = shim::sock_any_marked();
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([t] {
      for (int i = 0; i < kRounds; ++i) {
        int fd = kBase + (i + t) % 8;
        shim::SockState st = shim::sock_load(fd);
        shim::sock_store(fd, st, st.flags() | shim::kSockPartitioned, t, 0);
        if (i % 3 == 0) shim::sock_forget(fd);
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int fd = kBase; fd < kBase + 8; ++fd) shim::sock_forget(fd);
  EXPECT_EQ(shim::sock_any_marked(), marked_before);
}

// ---- after_bytes: the per-socket byte counters and the boundary ---------------------------

TEST(SockBytes, CountsPerDirectionAndForgetsOnClose) {
  LoopbackPair pair;
  ASSERT_GE(pair.client, 0);
  const int fd = pair.client;
  shim::sock_bytes_forget(fd);
  shim::ByteCount seen = shim::sock_bytes_load(fd, shim::kBytesReceived);
  EXPECT_EQ(seen.bytes(), 0u);
  shim::sock_bytes_add(fd, shim::kBytesReceived, seen, 1000);
  shim::sock_bytes_add(fd, shim::kBytesReceived, seen, 24);  // same generation: both count
  EXPECT_EQ(shim::sock_bytes_load(fd, shim::kBytesReceived).bytes(), 1024u);
  EXPECT_EQ(shim::sock_bytes_load(fd, shim::kBytesSent).bytes(), 0u);
  EXPECT_TRUE(shim::sock_bytes_verify(fd));
  // A close (fd_invalidate) starts a new generation: bytes moved before it never count after.
  shim::fd_invalidate(fd);
  EXPECT_EQ(shim::sock_bytes_load(fd, shim::kBytesReceived).bytes(), 0u);
  shim::sock_bytes_add(fd, shim::kBytesReceived, seen, 500);  // a stale add: dropped
  EXPECT_EQ(shim::sock_bytes_load(fd, shim::kBytesReceived).bytes(), 0u);
  // The count saturates instead of wrapping into the generation.
  seen = shim::sock_bytes_load(fd, shim::kBytesSent);
  shim::sock_bytes_add(fd, shim::kBytesSent, seen, ~0ull);
  shim::sock_bytes_add(fd, shim::kBytesSent, seen, ~0ull);
  EXPECT_EQ(shim::sock_bytes_load(fd, shim::kBytesSent).bytes(), shim::kByteCountMax);
  EXPECT_EQ(shim::sock_bytes_load(fd, shim::kBytesSent).generation(), seen.generation());
  shim::sock_bytes_forget(fd);
}

// A count never outlives its socket on a number reused behind the wrappers' back.
TEST(SockBytes, AReusedNumberIsCaughtAtTheBoundary) {
  int sv[2], other[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, other), 0);
  const int fd = sv[0];
  shim::sock_bytes_forget(fd);
  shim::sock_bytes_add(fd, shim::kBytesSent, shim::sock_bytes_load(fd, shim::kBytesSent), 4096);
  EXPECT_TRUE(shim::sock_bytes_verify(fd));
  ASSERT_EQ(dup2(other[0], fd), fd);  // unseen by any wrapper
  EXPECT_FALSE(shim::sock_bytes_verify(fd));
  EXPECT_EQ(shim::sock_bytes_load(fd, shim::kBytesSent).bytes(), 0u);
  for (int f : {sv[0], sv[1], other[0], other[1]}) close(f);
}

// Threads adding on the same socket: every byte counts (TSan runs this).
TEST(SockBytes, ConcurrentAddsAllCount) {
  LoopbackPair pair;
  ASSERT_GE(pair.client, 0);
  const int fd = pair.client;
  shim::sock_bytes_forget(fd);
  const shim::ByteCount seen = shim::sock_bytes_load(fd, shim::kBytesReceived);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) shim::sock_bytes_add(fd, shim::kBytesReceived, seen, 3);
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(shim::sock_bytes_load(fd, shim::kBytesReceived).bytes(), 12000u);
  shim::sock_bytes_forget(fd);
}

// decide(): before the boundary the call is not matched (nor counted as matched) and is
// marked to be cut exactly at the boundary; at the boundary the fault acts.
TEST(AfterBytes, TheCallCrossingTheBoundaryIsCutAndTheNextInjects) {
  LoopbackPair pair;
  ASSERT_GE(pair.client, 0);
  const int fd = pair.client;
  shim::sock_bytes_forget(fd);
  TestSession s(std::string(kHeader) +
                "[[fault]]\nname='f'\ncalls=['recv']\neof=true\nafter_bytes='64KiB'\n");
  shim::Guard guard;
  shim::Decision d;
  shim::CallArgs first{kCall_recv, fd};
  first.size = 60000;
  first.has_size = true;
  EXPECT_FALSE(shim::decide(guard, first, d));
  EXPECT_EQ(first.byte_dir, shim::kBytesReceived);
  EXPECT_EQ(first.byte_room, 65536u);  // the whole call fits: not cut
  shim::sock_bytes_add(fd, first.byte_dir, shim::ByteCount{first.byte_seen}, 60000);

  shim::CallArgs crossing{kCall_recv, fd};
  crossing.size = 16384;
  crossing.has_size = true;
  EXPECT_FALSE(shim::decide(guard, crossing, d));
  EXPECT_EQ(crossing.byte_room, 5536u);  // cut exactly at the boundary
  shim::sock_bytes_add(fd, crossing.byte_dir, shim::ByteCount{crossing.byte_seen}, 5536);
  EXPECT_EQ(s.slot("f").matched.load(), 0u);
  // Sends count in their own direction: nothing has been sent.
  shim::CallArgs send{kCall_send, fd};
  EXPECT_FALSE(shim::decide(guard, send, d));

  shim::CallArgs next{kCall_recv, fd};
  next.size = 16384;
  next.has_size = true;
  ASSERT_TRUE(shim::decide(guard, next, d));
  EXPECT_TRUE(d.inject);
  EXPECT_EQ(d.action, std::uint32_t{kActEof});
  EXPECT_EQ(next.byte_dir, -1);  // past the boundary: nothing to cut or count
  EXPECT_EQ(s.slot("f").matched.load(), 1u);
  shim::sock_bytes_forget(fd);
}

// With no after_bytes fault, nothing is marked for counting.
TEST(AfterBytes, NothingIsCountedWithoutAnAfterBytesFault) {
  LoopbackPair pair;
  ASSERT_GE(pair.client, 0);
  TestSession s(std::string(kHeader) + "[[fault]]\nname='f'\ncalls=['recv']\neof=true\n");
  shim::Guard guard;
  shim::Decision d;
  shim::CallArgs args{kCall_recv, pair.client};
  ASSERT_TRUE(shim::decide(guard, args, d));
  EXPECT_EQ(args.byte_dir, -1);
}

// ---- bandwidth on files: the shared per-file bucket --------------------------------------

TEST(FileRate, CallsOnOneFileShareItsRate) {
  const std::uint64_t key = 0x5eed0001;
  const std::int64_t now = 1'000'000'000'000;
  // 1 MiB at 1 MiB/s: 1 s; a second 1 MiB right after waits for the first to pass: 2 s.
  EXPECT_EQ(shim::rate_reserve(key, 1 << 20, 1 << 20, now), 1'000'000'000);
  EXPECT_EQ(shim::rate_reserve(key, 1 << 20, 1 << 20, now), 2'000'000'000);
  // Another file has its own budget.
  EXPECT_EQ(shim::rate_reserve(key + 1, 512 << 10, 1 << 20, now), 500'000'000);
  // Once the budget is free again, a call waits for its own bytes only.
  EXPECT_EQ(shim::rate_reserve(key, 1 << 20, 1 << 20, now + 10'000'000'000), 1'000'000'000);
  // Absurd sizes saturate instead of wrapping.
  EXPECT_GT(shim::rate_reserve(key + 2, ~0ull, 1, now), 0);
}

}  // namespace
}  // namespace faultline

namespace faultline {
namespace {

using shim::args_address;
using shim::NetArgsAddr;

// The `addr` selector asks a stream socket's peer once and remembers it (no getpeername on
// later calls: a non-matching `addr` fault costs a receive no system call); closing the fd
// (sock_forget) or a new connect forgets it; a datagram socket is asked every time. A unix
// socketpair is a connected stream (and datagram) pair with a peer getpeername can name.
TEST(SockTable, StreamPeerIsRememberedDatagramPeerIsNot) {
  for (int type : {SOCK_STREAM, SOCK_DGRAM}) {
    SCOPED_TRACE(type);
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, type, 0, sv), 0);
    shim::sock_forget(sv[0]);
    struct sockaddr_storage remembered;
    EXPECT_EQ(shim::sock_peer(sv[0], &remembered), 0u);
    shim::CallArgs args{kCall_recv, sv[0]};
    NetArgsAddr first;
    EXPECT_NE(args_address(args, first), nullptr);
    if (type == SOCK_STREAM) {
      EXPECT_GT(shim::sock_peer(sv[0], &remembered), 0u);
      shim::sock_forget_peer(sv[0]);  // a new connect
      EXPECT_EQ(shim::sock_peer(sv[0], &remembered), 0u);
      NetArgsAddr again;
      EXPECT_NE(args_address(args, again), nullptr);
      EXPECT_GT(shim::sock_peer(sv[0], &remembered), 0u);
    } else {
      EXPECT_EQ(shim::sock_peer(sv[0], &remembered), 0u);
      EXPECT_TRUE(shim::sock_peer_unstable(sv[0]));
    }
    shim::sock_forget(sv[0]);  // close
    EXPECT_EQ(shim::sock_peer(sv[0], &remembered), 0u);
    EXPECT_FALSE(shim::sock_peer_unstable(sv[0]));
    close(sv[0]);
    close(sv[1]);
  }
}

// The `addr` answers kept for a remembered peer hold for that peer version and rules copy only:
// a new peer (connect), a close, or another rules epoch make them unknown, never stale.
TEST(SockTable, AddrAnswersHoldForOnePeerAndOneRulesCopy) {
  const int fd = 4001;  // a number this test owns in the table (no real fd needed)
  shim::sock_forget(fd);
  EXPECT_EQ(shim::sock_addr_answer(fd, 7, 3), -1);
  sockaddr_in peer{};
  peer.sin_family = AF_INET;
  peer.sin_port = htons(6379);
  peer.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  shim::sock_set_peer(fd, reinterpret_cast<sockaddr*>(&peer), sizeof peer);
  struct sockaddr_storage out;
  std::uint64_t seq = 0;
  ASSERT_EQ(shim::sock_peer(fd, &out, &seq), sizeof peer);
  EXPECT_EQ(std::memcmp(&out, &peer, sizeof peer), 0);
  shim::sock_addr_note(fd, seq, 7, 3, false);
  shim::sock_addr_note(fd, seq, 7, 5, true);
  EXPECT_EQ(shim::sock_addr_answer(fd, 7, 3), 0);
  EXPECT_EQ(shim::sock_addr_answer(fd, 7, 5), 1);
  EXPECT_EQ(shim::sock_addr_answer(fd, 7, 4), -1);  // never asked
  EXPECT_EQ(shim::sock_addr_answer(fd, 8, 3), -1);  // another rules copy
  // Another copy's answer replaces the set: the old copy's are gone, not mixed in.
  shim::sock_addr_note(fd, seq, 8, 4, true);
  EXPECT_EQ(shim::sock_addr_answer(fd, 8, 4), 1);
  EXPECT_EQ(shim::sock_addr_answer(fd, 8, 5), -1);
  EXPECT_EQ(shim::sock_addr_answer(fd, 7, 5), -1);
  // A new connect forgets the peer: the answers with it.
  shim::sock_forget_peer(fd);
  EXPECT_EQ(shim::sock_addr_answer(fd, 8, 4), -1);
  shim::sock_set_peer(fd, reinterpret_cast<sockaddr*>(&peer), sizeof peer);
  EXPECT_EQ(shim::sock_addr_answer(fd, 8, 4), -1);  // the same address, a new version
  // An answer noted for a version already gone (a connect raced the lookup) is not kept.
  shim::sock_addr_note(fd, seq, 8, 4, true);
  EXPECT_EQ(shim::sock_addr_answer(fd, 8, 4), -1);
  ASSERT_GT(shim::sock_peer(fd, &out, &seq), 0u);
  shim::sock_addr_note(fd, seq, 8, 4, true);
  EXPECT_EQ(shim::sock_addr_answer(fd, 8, 4), 1);
  shim::sock_forget(fd);  // close
  EXPECT_EQ(shim::sock_addr_answer(fd, 8, 4), -1);
}

// connect and accept hand over the peer: connect only for a socket known to be a stream one
// and a specific address (0.0.0.0 becomes 127.0.0.1 in the kernel: getpeername would differ).
TEST(SockTable, ConnectAndAcceptGiveTheirPeer) {
  const int fd = 4002;
  shim::sock_forget(fd);
  sockaddr_in peer{};
  peer.sin_family = AF_INET;
  peer.sin_port = htons(80);
  peer.sin_addr.s_addr = htonl(0xc0000207);  // 192.0.2.7
  struct sockaddr_storage out;
  shim::net_learn_connect_peer(fd, reinterpret_cast<sockaddr*>(&peer), sizeof peer);
  EXPECT_EQ(shim::sock_peer(fd, &out), 0u) << "not known to be a stream socket";
  shim::sock_mark_stream(fd);
  std::memset(peer.sin_zero, 0x5a, sizeof peer.sin_zero);  // the caller's padding is not kept
  shim::net_learn_connect_peer(fd, reinterpret_cast<sockaddr*>(&peer), sizeof peer);
  ASSERT_EQ(shim::sock_peer(fd, &out), sizeof(sockaddr_in));
  std::memset(peer.sin_zero, 0, sizeof peer.sin_zero);
  EXPECT_EQ(std::memcmp(&out, &peer, sizeof peer), 0);
  shim::sock_forget_peer(fd);
  sockaddr_in any = peer;
  any.sin_addr.s_addr = htonl(INADDR_ANY);
  shim::net_learn_connect_peer(fd, reinterpret_cast<sockaddr*>(&any), sizeof any);
  EXPECT_EQ(shim::sock_peer(fd, &out), 0u);
  shim::sock_forget(fd);  // close: no longer known to be a stream socket
  EXPECT_FALSE(shim::sock_is_stream(fd));
  shim::net_learn_accept_peer(fd, reinterpret_cast<sockaddr*>(&peer), sizeof peer);
  EXPECT_EQ(shim::sock_peer(fd, &out), sizeof(sockaddr_in));
  shim::sock_forget(fd);
}

}  // namespace
}  // namespace faultline
