// The policy compiler against docs/policy.md: what a valid policy compiles to, and for each
// kind of mistake the exact file:line:column and message a user sees.
#include "policy/policy.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <string>

#include "calls/calls.h"
#include "faultline/glob.h"
#include "policy/net_policy.h"

namespace faultline {
namespace {

bool has_call(const FaultSpec& spec, std::string_view name) {
  std::uint32_t id = find_call(name).value().id;
  return (spec.calls_mask[id / 64] >> (id % 64)) & 1;
}

Policy compile_ok(std::string_view toml) {
  CompileResult result = compile_policy_string(toml, "p.toml");
  EXPECT_FALSE(result.error) << result.error->to_string();
  EXPECT_TRUE(result.policy);
  return result.policy.value_or(Policy{});
}

struct BadPolicy {
  const char* what;
  const char* toml;
  int line;
  int column;
  const char* message;  // a substring of the error message
};

void expect_refused(const BadPolicy& bad) {
  SCOPED_TRACE(bad.what);
  CompileResult result = compile_policy_string(bad.toml, "p.toml");
  ASSERT_TRUE(result.error);
  EXPECT_FALSE(result.policy);
  EXPECT_EQ(result.error->file, "p.toml");
  EXPECT_EQ(result.error->line, bad.line);
  EXPECT_EQ(result.error->column, bad.column);
  EXPECT_NE(result.error->message.find(bad.message), std::string::npos)
      << "message: " << result.error->message;
}

// ---- a valid policy ---------------------------------------------------------------------

TEST(Policy, FullPolicyCompilesToExpectedRows) {
  Policy policy = compile_ok(R"(version = 1
seed = 42

[log]
path = "events.jsonl"
stderr = true

[safety]
ttl = "10m"
max_faults = 10000

[[fault]]
name = "wal-eio"
calls = ["fsync", "fdatasync"]
path = "/var/lib/db/wal/*"
error = "EIO"
after = 10
times = 1
enabled = false

[[fault]]
name = "slow.short_writes"
calls = ["@write"]
process = "postgres*"
thread = "worker-*"
size = "4KiB..1MiB"
short = "50%"
delay = "1.5ms"
jitter = "250us"
probability = 0.25
every = 3
start_after = "2s"
duration = "1h"

[[fault]]
name = "boom"
calls = ["write"]
crash = "SIGBUS"
when = "after"
probability = 1
)");
  EXPECT_TRUE(policy.has_seed);
  EXPECT_EQ(policy.seed, 42u);
  EXPECT_EQ(policy.log_path, "events.jsonl");
  EXPECT_TRUE(policy.log_stderr);
  EXPECT_EQ(policy.ttl_ns, 600'000'000'000);
  EXPECT_EQ(policy.max_faults, 10000u);
  EXPECT_TRUE(policy.warnings.empty());
  ASSERT_EQ(policy.faults.size(), 3u);

  const FaultSpec& wal = policy.faults[0];
  EXPECT_STREQ(wal.name, "wal-eio");
  EXPECT_TRUE(has_call(wal, "fsync"));
  EXPECT_TRUE(has_call(wal, "fdatasync"));
  EXPECT_FALSE(has_call(wal, "syncfs"));
  EXPECT_EQ(wal.families, kFamFsync);
  EXPECT_EQ(wal.actions, kActError);
  EXPECT_EQ(wal.error, EIO);
  EXPECT_STREQ(wal.path, "/var/lib/db/wal/*");
  EXPECT_EQ(wal.after, 10u);
  EXPECT_EQ(wal.times, 1u);
  EXPECT_EQ(wal.every, 1u);
  EXPECT_EQ(wal.probability, 1.0);
  EXPECT_EQ(wal.enabled_initially, 0);
  EXPECT_EQ(wal.has_size, 0u);
  EXPECT_EQ(wal.size_max, kUnlimited);
  EXPECT_EQ(wal.start_after_ns, 0);
  EXPECT_EQ(wal.duration_ns, kForever);

  const FaultSpec& slow = policy.faults[1];
  EXPECT_EQ(slow.actions, kActShort | kActDelay);
  EXPECT_EQ(slow.short_percent, 50u);
  EXPECT_EQ(slow.short_bytes, 0u);
  EXPECT_EQ(slow.delay_ns, 1'500'000);
  EXPECT_EQ(slow.jitter_ns, 250'000);
  EXPECT_STREQ(slow.process, "postgres*");
  EXPECT_STREQ(slow.thread, "worker-*");
  EXPECT_EQ(slow.has_size, 1u);
  EXPECT_EQ(slow.size_min, 4096u);
  EXPECT_EQ(slow.size_max, 1u << 20);
  EXPECT_EQ(slow.probability, 0.25);
  EXPECT_EQ(slow.every, 3u);
  EXPECT_EQ(slow.times, kUnlimited);
  EXPECT_EQ(slow.start_after_ns, 2'000'000'000);
  EXPECT_EQ(slow.duration_ns, 3'600'000'000'000);
  EXPECT_EQ(slow.enabled_initially, 1);
  EXPECT_EQ(slow.families, kFamWrite);
  // A family keeps only the calls that can take the action: fflush/fclose move no bytes.
  EXPECT_TRUE(has_call(slow, "write"));
  EXPECT_TRUE(has_call(slow, "fwrite"));
  EXPECT_FALSE(has_call(slow, "fflush"));
  EXPECT_FALSE(has_call(slow, "fclose"));

  const FaultSpec& boom = policy.faults[2];
  EXPECT_EQ(boom.actions, kActCrash);
  EXPECT_EQ(boom.crash_signal, SIGBUS);
  EXPECT_EQ(boom.crash_when, kCrashAfter);
}

// The struct is published word by word: every byte not set by the policy must be zero.
TEST(Policy, UnusedBytesAreZero) {
  Policy policy = compile_ok(R"(version = 1
[[fault]]
name = "a"
calls = ["write"]
error = "EIO"
)");
  ASSERT_EQ(policy.faults.size(), 1u);
  FaultSpec expected = default_fault_spec();
  std::strcpy(expected.name, "a");
  expected.calls_mask[kCall_write / 64] = 1ull << (kCall_write % 64);
  expected.families = kFamWrite;
  expected.actions = kActError;
  expected.error = EIO;
  expected.rw_scope = kRwFiles | kRwNamed | kRwResolved;  // write named by a non-network fault
  EXPECT_EQ(std::memcmp(&expected, &policy.faults[0], sizeof(FaultSpec)), 0);
}

TEST(Policy, EmptyPolicyHasDefaults) {
  Policy policy = compile_ok("version = 1\n");
  EXPECT_FALSE(policy.has_seed);
  EXPECT_TRUE(policy.log_path.empty());
  EXPECT_EQ(policy.ttl_ns, kForever);
  EXPECT_EQ(policy.max_faults, kUnlimited);
  EXPECT_TRUE(policy.faults.empty());
}

TEST(Policy, TargetBackend) {
  EXPECT_EQ(compile_ok("version = 1\n").backend, Backend::kAuto);
  EXPECT_EQ(compile_ok("version = 1\n[target]\nbackend = \"auto\"\n").backend, Backend::kAuto);
  EXPECT_EQ(compile_ok("version = 1\n[target]\nbackend = \"preload\"\n").backend,
            Backend::kPreload);
  EXPECT_EQ(compile_ok("version = 1\n[target]\nbackend = \"seccomp\"\n").backend,
            Backend::kSeccomp);
  expect_refused({"an unknown backend", "version = 1\n[target]\nbackend = \"ptrace\"\n", 3, 11,
                  "'backend' must be \"auto\", \"preload\" or \"seccomp\""});
  expect_refused(
      {"an unknown key", "version = 1\n[target]\nbackends = \"auto\"\n", 3, 1, "backends"});
  expect_refused({"not a table", "version = 1\ntarget = \"seccomp\"\n", 2, 10, "a table"});
}

TEST(Policy, ShortTakesBytesAndSizeTakesExactValue) {
  Policy policy = compile_ok(R"(version = 1
[[fault]]
name = "a"
calls = ["read"]
short = 1
size = 100
[[fault]]
name = "b"
calls = ["@read"]
corrupt = 3
size = "..64"
[[fault]]
name = "c"
calls = ["pwrite"]
quota = "10MiB"
[[fault]]
name = "d"
calls = ["fsync"]
lie = true
delay = "1s"
)");
  ASSERT_EQ(policy.faults.size(), 4u);
  EXPECT_EQ(policy.faults[0].short_bytes, 1u);
  EXPECT_EQ(policy.faults[0].short_percent, 0u);
  EXPECT_EQ(policy.faults[0].size_min, 100u);
  EXPECT_EQ(policy.faults[0].size_max, 100u);
  EXPECT_EQ(policy.faults[1].corrupt_bits, 3u);
  EXPECT_EQ(policy.faults[1].size_min, 0u);
  EXPECT_EQ(policy.faults[1].size_max, 64u);
  EXPECT_EQ(policy.faults[1].families, kFamRead);
  EXPECT_EQ(policy.faults[2].quota_bytes, 10u << 20);
  EXPECT_EQ(policy.faults[3].actions, kActLie | kActDelay);
}

TEST(Policy, DelayAloneIsAnAction) {
  Policy policy = compile_ok(R"(version = 1
[[fault]]
name = "slow"
calls = ["@fsync"]
delay = "250ms"
)");
  ASSERT_EQ(policy.faults.size(), 1u);
  EXPECT_EQ(policy.faults[0].actions, kActDelay);
  EXPECT_TRUE(has_call(policy.faults[0], "sync"));  // delay applies to every @fsync call
}

TEST(Policy, ImplausibleErrnoIsAWarningNotAnError) {
  Policy policy = compile_ok(R"(version = 1
[[fault]]
name = "a"
calls = ["fsync"]
error = "EADDRINUSE"
)");
  ASSERT_EQ(policy.warnings.size(), 1u);
  EXPECT_EQ(policy.warnings[0],
            "p.toml:5:9: warning: fsync cannot return EADDRINUSE per its man page");
  EXPECT_EQ(policy.faults.at(0).error, EADDRINUSE);
}

TEST(Policy, FileErrorsCarryThePath) {
  CompileResult result = compile_policy_file("/nonexistent/policy.toml");
  ASSERT_TRUE(result.error);
  EXPECT_EQ(result.error->line, 0);
  EXPECT_EQ(result.error->to_string(),
            "/nonexistent/policy.toml: cannot read policy: No such file or directory");
}

TEST(Policy, ErrorToString) {
  PolicyError error{"p.toml", 3, 7, "bad", ""};
  EXPECT_EQ(error.to_string(), "p.toml:3:7: bad");
}

// ---- refused policies -------------------------------------------------------------------

TEST(PolicyErrors, UnknownKeySuggestsNearest) {
  expect_refused({"fault key", R"(version = 1
[[fault]]
name = "a"
calls = ["write"]
pathh = "/tmp/*"
error = "EIO"
)",
                  5, 1, "unknown key 'pathh' (did you mean 'path'?)"});
  expect_refused({"top-level key", "version = 1\nsed = 4\n", 2, 1,
                  "unknown key 'sed' (did you mean 'seed'?)"});
  expect_refused({"[log] key", "version = 1\n[log]\nstderrr = true\n", 3, 1,
                  "unknown key 'stderrr' (did you mean 'stderr'?)"});
  expect_refused({"[safety] key, transposed", "version = 1\n[safety]\ntlt = \"1m\"\n", 3, 1,
                  "unknown key 'tlt' (did you mean 'ttl'?)"});
  expect_refused({"nothing close", "version = 1\n[safety]\nzzzzzzzz = 1\n", 3, 1,
                  "unknown key 'zzzzzzzz' (valid: ttl, max_faults)"});
}

TEST(PolicyErrors, WrongType) {
  expect_refused({"after", R"(version = 1
[[fault]]
name = "a"
calls = ["write"]
error = "EIO"
after = "ten"
)",
                  6, 9, "'after' must be an integer"});
  expect_refused({"enabled", R"(version = 1
[[fault]]
name = "a"
calls = ["write"]
error = "EIO"
enabled = 1
)",
                  6, 11, "'enabled' must be true or false"});
  expect_refused({"calls", "version = 1\n[[fault]]\nname = \"a\"\ncalls = \"write\"\n", 4, 9,
                  "'calls' must be an array"});
  expect_refused({"calls element", "version = 1\n[[fault]]\nname = \"a\"\ncalls = [\"write\", 3]\n",
                  4, 19, "'calls' must be an array of strings"});
  expect_refused({"log", "version = 1\nlog = \"x\"\n", 2, 7, "'log' must be a table ([log])"});
  expect_refused({"fault", "version = 1\n[fault]\nname = \"a\"\n", 2, 1,
                  "'fault' must be an array of tables ([[fault]])"});
}

TEST(PolicyErrors, BadValues) {
  const std::string head = "version = 1\n[[fault]]\nname = \"a\"\ncalls = [\"write\"]\n";
  auto fault = [&](const std::string& rest) { return head + rest; };
  struct Case {
    const char* what;
    std::string toml;
    int line, column;
    const char* message;
  };
  const Case cases[] = {
      {"unknown errno", fault("error = \"EIOO\"\n"), 5, 9,
       "unknown errno name 'EIOO' (did you mean 'EIO'?)"},
      {"errno not a name or number", fault("error = true\n"), 5, 9,
       "'error' must be an errno name like \"EIO\", or its number"},
      {"errno number out of range", fault("error = 5000\n"), 5, 9,
       "'error' must be an errno from 1 to 4095"},
      {"bad glob", fault("path = \"/tmp/[ab\"\nerror = \"EIO\"\n"), 5, 8,
       "bad glob '/tmp/[ab': unterminated [...] class"},
      {"empty glob", fault("path = \"\"\nerror = \"EIO\"\n"), 5, 8, "'path' must not be empty"},
      {"long glob", fault("process = \"" + std::string(64, 'x') + "\"\nerror = \"EIO\"\n"), 5, 11,
       "'process' is too long (at most 63 characters)"},
      {"bad size", fault("quota = \"10XB\"\n"), 5, 9, "bad size '10XB' (use B, KiB, MiB, GiB)"},
      {"negative size", fault("quota = -1\n"), 5, 9, "'quota' must be >= 0"},
      {"bad size range", fault("size = \"1MiB..1KiB\"\nerror = \"EIO\"\n"), 5, 8,
       "bad size range '1MiB..1KiB'"},
      {"bad duration", fault("delay = \"10x\"\n"), 5, 9, "bad duration '10x' (use us, ms, s, m, h"},
      {"duration not a string", fault("delay = 10\n"), 5, 9,
       "'delay' must be a duration string like \"250ms\""},
      {"probability range", fault("error = \"EIO\"\nprobability = 1.5\n"), 6, 15,
       "'probability' must be between 0 and 1"},
      {"every zero", fault("error = \"EIO\"\nevery = 0\n"), 6, 9, "'every' must be >= 1"},
      {"times zero", fault("error = \"EIO\"\ntimes = 0\n"), 6, 9, "'times' must be >= 1"},
      {"bad short", fault("short = \"150%\"\n"), 5, 9, "bad short '150%'"},
      {"bad crash", fault("crash = \"SIGTERM\"\n"), 5, 9,
       "bad crash signal 'SIGTERM' (use SIGKILL, SIGABRT, SIGSEGV or SIGBUS)"},
      {"bad when", fault("crash = \"SIGKILL\"\nwhen = \"later\"\n"), 6, 8,
       "'when' must be \"before\" or \"after\""},
      {"zero duration", fault("error = \"EIO\"\nduration = \"0s\"\n"), 6, 12,
       "'duration' must be longer than 0"},
  };
  for (const Case& c : cases) expect_refused({c.what, c.toml.c_str(), c.line, c.column, c.message});
}

TEST(PolicyErrors, ActionNotValidForCall) {
  expect_refused({"lie on write", R"(version = 1
[[fault]]
name = "a"
calls = ["write"]
lie = true
)",
                  5, 1,
                  "action 'lie' is not valid for call 'write' (valid: error, delay, short, "
                  "corrupt, quota, crash, bandwidth, powercut)"});
  expect_refused(
      {"error on sync, named", R"(version = 1
[[fault]]
name = "a"
calls = ["fsync", "sync"]
error = "EIO"
)",
       5, 1, "action 'error' is not valid for call 'sync' (valid: delay, lie, crash, powercut)"});
  expect_refused({"family where no call takes it", R"(version = 1
[[fault]]
name = "a"
calls = ["@open"]
short = 1
)",
                  5, 1, "action 'short' is not valid for call 'open'"});
  expect_refused({"network action on a file call", R"(version = 1
[[fault]]
name = "a"
calls = ["fsync"]
reset = true
)",
                  5, 1, "action 'reset' is not valid for call 'fsync'"});
  expect_refused({"limit on a call that makes no fd", R"(version = 1
[[fault]]
name = "a"
calls = ["write"]
limit = 64
)",
                  5, 1, "action 'limit' is not valid for call 'write'"});
}

TEST(PolicyErrors, FamilyDropsCallsThatCannotTakeTheAction) {
  Policy policy = compile_ok(R"(version = 1
[[fault]]
name = "a"
calls = ["@fsync"]
error = "EIO"
)");
  ASSERT_EQ(policy.faults.size(), 1u);
  EXPECT_TRUE(has_call(policy.faults[0], "fsync"));
  EXPECT_FALSE(has_call(policy.faults[0], "sync"));  // sync(2) returns void
}

TEST(PolicyErrors, DuplicateName) {
  expect_refused({"duplicate", R"(version = 1
[[fault]]
name = "a"
calls = ["write"]
error = "EIO"
[[fault]]
calls = ["read"]
name = "a"
error = "EIO"
)",
                  8, 8, "duplicate fault name 'a' (first defined at line 3)"});
}

TEST(PolicyErrors, Version) {
  expect_refused({"missing", "[[fault]]\nname = \"a\"\n", 1, 1, "missing 'version = 1'"});
  expect_refused({"two", "version = 2\nfuture_key = 1\n", 1, 11,
                  "unsupported policy version 2 (this faultline reads version 1)"});
  expect_refused({"string", "version = \"1\"\n", 1, 11, "'version' must be an integer"});
}

// Every family of the v1 contract is interposed: none is refused as "not supported yet".
TEST(PolicyErrors, EveryFamilyIsSupported) {
  for (const char* family : {"@write", "@fsync", "@read", "@open", "@net", "@dns", "@memory"}) {
    CompileResult result =
        compile_policy_string(std::string("version = 1\n[[fault]]\nname = \"a\"\ncalls = [\"") +
                                  family + "\"]\ndelay = \"1ms\"\n",
                              "p.toml");
    EXPECT_FALSE(result.error) << family << ": " << result.error->to_string();
  }
}

TEST(PolicyErrors, UnknownCallListsChoices) {
  CompileResult result = compile_policy_string(
      "version = 1\n[[fault]]\nname = \"a\"\ncalls = [\"fsynk\"]\nerror = \"EIO\"\n", "p.toml");
  ASSERT_TRUE(result.error);
  EXPECT_EQ(result.error->line, 4);
  EXPECT_EQ(result.error->column, 10);
  const std::string& message = result.error->message;
  EXPECT_EQ(message.rfind("unknown call 'fsynk' (did you mean 'fsync'?); valid: @write @fsync "
                          "@read @open @net @dns @memory ",
                          0),
            0u)
      << message;
  EXPECT_NE(message.find(" write pwrite "), std::string::npos) << message;
  EXPECT_NE(message.find(" pipe2"), std::string::npos);
  EXPECT_NE(message.find(" connect "), std::string::npos);
}

TEST(PolicyErrors, FaultLevel) {
  expect_refused({"no action, calls that fail differently",
                  "version = 1\n[[fault]]\nname = \"a\"\ncalls = [\"write\", \"malloc\"]\n", 2, 1,
                  "fault 'a' has no action and its calls fail in different ways (EIO for write, "
                  "ENOMEM for malloc): give it an 'error' (or another action), or split it by "
                  "family"});
  expect_refused({"no name", "version = 1\n[[fault]]\ncalls = [\"write\"]\nerror = \"EIO\"\n", 2, 1,
                  "fault has no 'name'"});
  expect_refused({"no calls", "version = 1\n[[fault]]\nname = \"a\"\nerror = \"EIO\"\n", 2, 1,
                  "fault 'a' has no 'calls'"});
  expect_refused({"two actions", R"(version = 1
[[fault]]
name = "a"
calls = ["write"]
error = "EIO"
short = 1
)",
                  6, 1,
                  "fault 'a' has two actions, 'error' and 'short' (one per fault; only 'delay' "
                  "may be added)"});
  expect_refused({"jitter without delay", R"(version = 1
[[fault]]
name = "a"
calls = ["write"]
error = "EIO"
jitter = "5ms"
)",
                  6, 1, "'jitter' needs a 'delay'"});
  expect_refused({"when without crash", R"(version = 1
[[fault]]
name = "a"
calls = ["write"]
when = "after"
error = "EIO"
)",
                  5, 1, "'when' applies only to 'crash' and 'powercut'"});
  expect_refused(
      {"bad name", "version = 1\n[[fault]]\nname = \"a b\"\n", 3, 8, "bad fault name 'a b'"});
  expect_refused({"long name",
                  ("version = 1\n[[fault]]\nname = \"" + std::string(32, 'n') + "\"\n").c_str(), 3,
                  8, "bad fault name"});
}

TEST(PolicyErrors, TomlSyntax) {
  expect_refused({"syntax", "version = 1\n[[fault]]\nname = \n", 3, 8, "TOML syntax error"});
}

TEST(PolicyErrors, FirstErrorInSourceOrderWins) {
  // toml++ orders keys alphabetically; the user reads top to bottom.
  expect_refused({"order", R"(version = 1
[[fault]]
name = "a"
calls = ["write"]
times = 0
after = -1
error = "EIO"
)",
                  5, 9, "'times' must be >= 1"});
}

// ---- snippets ---------------------------------------------------------------------------

TEST(Snippet, OnlyFaultTables) {
  CompileResult ok = compile_fault_snippet(
      "[[fault]]\nname = \"x\"\ncalls = [\"read\"]\nerror = \"EIO\"\n", "snippet.toml");
  ASSERT_TRUE(ok.policy) << ok.error->to_string();
  ASSERT_EQ(ok.policy->faults.size(), 1u);
  EXPECT_STREQ(ok.policy->faults[0].name, "x");

  CompileResult bad = compile_fault_snippet("seed = 1\n[[fault]]\nname = \"x\"\n", "s.toml");
  ASSERT_TRUE(bad.error);
  EXPECT_EQ(bad.error->to_string(),
            "s.toml:1:1: only [[fault]] tables belong in a fault snippet, not 'seed'");

  CompileResult empty = compile_fault_snippet("", "s.toml");
  ASSERT_TRUE(empty.error);
  EXPECT_EQ(empty.error->message, "the snippet has no [[fault]] table");
}

// ---- parsers ----------------------------------------------------------------------------

TEST(Parsers, Size) {
  struct Case {
    const char* text;
    std::optional<std::uint64_t> bytes;
  };
  const Case cases[] = {
      {"0", 0},
      {"512", 512},
      {"512B", 512},
      {"1KiB", 1024},
      {"10MiB", 10ull << 20},
      {"2GiB", 2ull << 30},
      {"18446744073709551615", ~0ull},
      {"18446744073709551616", std::nullopt},  // overflow
      {"17179869184GiB", std::nullopt},        // overflow after scaling
      {"", std::nullopt},
      {"KiB", std::nullopt},
      {"10XB", std::nullopt},
      {"10kb", std::nullopt},
      {"10 MiB", std::nullopt},
      {"-1", std::nullopt},
      {"+1", std::nullopt},
      {"1.5MiB", std::nullopt},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    EXPECT_EQ(parse_size(c.text), c.bytes);
  }
}

TEST(Parsers, Duration) {
  struct Case {
    const char* text;
    std::optional<std::int64_t> ns;
  };
  const Case cases[] = {
      {"0s", 0},
      {"1us", 1'000},
      {"250ms", 250'000'000},
      {"1s", 1'000'000'000},
      {"1.5s", 1'500'000'000},
      {"0.25ms", 250'000},
      {"1.0005us", 1'000},  // below a nanosecond is truncated
      {"10m", 600'000'000'000},
      {"2h", 7'200'000'000'000},
      {"0.5h", 1'800'000'000'000},
      {"9223372036s", 9'223'372'036'000'000'000},
      {"9223372037s", std::nullopt},  // overflows int64 nanoseconds
      {"10", std::nullopt},           // a unit is required
      {"10ns", std::nullopt},
      {"1.s", std::nullopt},
      {".5s", std::nullopt},
      {"1.5", std::nullopt},
      {"-1s", std::nullopt},
      {"", std::nullopt},
      {"1 s", std::nullopt},
      {"10x", std::nullopt},
      // Go-style compounds (policy.md: "compounds such as 1m30s").
      {"1m30s", 90'000'000'000},
      {"1h30m", 5'400'000'000'000},
      {"1h0.5m", 3'630'000'000'000},
      {"2s500ms", 2'500'000'000},
      {"1m30", std::nullopt},  // every piece needs its unit
      {"1m 30s", std::nullopt},
      {"1ms.5s", std::nullopt},
      {"9223372036s1s", std::nullopt},  // the sum overflows
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    EXPECT_EQ(parse_duration_ns(c.text), c.ns);
  }
}

TEST(Parsers, SizeRange) {
  struct Case {
    const char* text;
    bool ok;
    std::uint64_t min, max;
  };
  const Case cases[] = {
      {"4096..", true, 4096, kUnlimited},
      {"..64", true, 0, 64},
      {"1KiB..1MiB", true, 1024, 1u << 20},
      {"100", true, 100, 100},
      {"64..64", true, 64, 64},
      {"..", false, 0, 0},
      {"", false, 0, 0},
      {"1MiB..1KiB", false, 0, 0},
      {"1...2", false, 0, 0},
      {"x..2", false, 0, 0},
      {"1..2..3", false, 0, 0},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    std::uint64_t min = 7;
    std::uint64_t max = 7;
    ASSERT_EQ(parse_size_range(c.text, min, max), c.ok);
    if (c.ok) {
      EXPECT_EQ(min, c.min);
      EXPECT_EQ(max, c.max);
    } else {
      EXPECT_EQ(min, 7u);  // untouched on failure
      EXPECT_EQ(max, 7u);
    }
  }
}

TEST(Parsers, FaultName) {
  EXPECT_TRUE(valid_fault_name("wal-eio"));
  EXPECT_TRUE(valid_fault_name("a.b_c-9"));
  EXPECT_TRUE(valid_fault_name(std::string(31, 'x')));
  EXPECT_FALSE(valid_fault_name(std::string(32, 'x')));
  EXPECT_FALSE(valid_fault_name(""));
  EXPECT_FALSE(valid_fault_name("a b"));
  EXPECT_FALSE(valid_fault_name("a/b"));
  EXPECT_FALSE(valid_fault_name("caf\xc3\xa9"));
}

// ---- faultline set ----------------------------------------------------------------------

FaultSpec compiled_fault(const char* body) {
  CompileResult result = compile_fault_snippet(body, "s.toml");
  EXPECT_TRUE(result.policy) << result.error->to_string();
  return result.policy ? result.policy->faults.at(0) : FaultSpec{};
}

constexpr const char* kShortFault =
    "[[fault]]\nname = \"w\"\ncalls = [\"write\", \"read\"]\nshort = \"50%\"\n";

TEST(ApplySetting, Probability) {
  FaultSpec spec = compiled_fault(kShortFault);
  EXPECT_EQ(apply_fault_setting(spec, "probability", "0.5"), std::nullopt);
  EXPECT_EQ(spec.probability, 0.5);
  EXPECT_EQ(apply_fault_setting(spec, "probability", "1"), std::nullopt);
  EXPECT_EQ(spec.probability, 1.0);
}

TEST(ApplySetting, BareWordReplacesMainAction) {
  FaultSpec spec = compiled_fault(kShortFault);
  EXPECT_EQ(apply_fault_setting(spec, "error", "EIO"), std::nullopt);
  EXPECT_EQ(spec.actions, kActError);
  EXPECT_EQ(spec.error, EIO);
  EXPECT_EQ(spec.short_percent, 0u);  // the old action's parameters are gone
  EXPECT_EQ(apply_fault_setting(spec, "error", "\"ENOSPC\""), std::nullopt);  // TOML string too
  EXPECT_EQ(spec.error, ENOSPC);
}

TEST(ApplySetting, DelayCombines) {
  FaultSpec spec = compiled_fault(kShortFault);
  EXPECT_EQ(apply_fault_setting(spec, "delay", "10ms"), std::nullopt);
  EXPECT_EQ(apply_fault_setting(spec, "jitter", "2ms"), std::nullopt);
  EXPECT_EQ(spec.actions, kActShort | kActDelay);
  EXPECT_EQ(spec.delay_ns, 10'000'000);
  EXPECT_EQ(spec.jitter_ns, 2'000'000);
}

TEST(ApplySetting, SelectorsAndTriggers) {
  FaultSpec spec = compiled_fault(kShortFault);
  EXPECT_EQ(apply_fault_setting(spec, "path", "/tmp/*.log"), std::nullopt);
  EXPECT_STREQ(spec.path, "/tmp/*.log");
  EXPECT_EQ(apply_fault_setting(spec, " times ", " 3 "), std::nullopt);
  EXPECT_EQ(spec.times, 3u);
  EXPECT_EQ(apply_fault_setting(spec, "enabled", "false"), std::nullopt);
  EXPECT_EQ(spec.enabled_initially, 0);
  EXPECT_EQ(apply_fault_setting(spec, "size", "4096.."), std::nullopt);
  EXPECT_EQ(spec.size_min, 4096u);
}

// ---- selector lists (policy.md, "Selectors") -----------------------------------------------

// The entries packed in a glob field, as the shim walks them.
template <std::size_t N>
std::vector<std::string> packed(const char (&field)[N]) {
  std::vector<std::string> out;
  for (const char* e = glob_list_first(field, N); e; e = glob_list_next(field, N, e))
    out.emplace_back(e);
  return out;
}

FaultSpec selector_fault(const std::string& selectors) {
  Policy policy = compile_ok(
      "version = 1\n[[fault]]\nname = 'f'\ncalls = ['@write']\n"
      "error = 'EIO'\n" +
      selectors);
  return policy.faults.empty() ? FaultSpec{} : policy.faults[0];
}

TEST(SelectorLists, ListsArePackedInTheirFieldsInOrder) {
  FaultSpec spec = selector_fault(
      "path = ['/data/*', '!/data/tmp/*']\nprocess = ['py*', '!pytest']\n"
      "thread = ['worker-*']\nstack = ['!sqlite3_backup*']\n");
  EXPECT_EQ(packed(spec.path), (std::vector<std::string>{"/data/*", "!/data/tmp/*"}));
  EXPECT_EQ(packed(spec.process), (std::vector<std::string>{"py*", "!pytest"}));
  EXPECT_EQ(packed(spec.thread), (std::vector<std::string>{"worker-*"}));
  EXPECT_STREQ(spec.thread, "worker-*");  // a one-entry list is the single glob
  EXPECT_EQ(packed(spec.stack), (std::vector<std::string>{"!sqlite3_backup*"}));
  // The single string is stored as before; a '!' string is a negation alone.
  FaultSpec single = selector_fault("path = '!/data/tmp/*'\n");
  EXPECT_STREQ(single.path, "!/data/tmp/*");
  EXPECT_EQ(single.path[std::strlen(single.path) + 1], '\0');
  // A list that fills the field exactly: entries' lengths + their NULs = 256.
  const std::string a(127, 'a'), b(127, 'b');
  FaultSpec full = selector_fault("path = ['" + a + "', '" + b + "']\n");
  EXPECT_EQ(packed(full.path), (std::vector<std::string>{a, b}));
}

TEST(SelectorLists, BadListsAreRefusedAtTheEntry) {
  const char* head = "version = 1\n[[fault]]\nname = 'f'\ncalls = ['@write']\nerror = 'EIO'\n";
  auto refused = [&](const char* what, const std::string& line, int column, const char* message) {
    const std::string toml = head + line + "\n";
    expect_refused(BadPolicy{what, toml.c_str(), 6, column, message});
  };
  refused("empty list", "path = []", 8,
          "'path' must not be an empty list (give a glob or a list of them, e.g. "
          "[\"/data/*\", \"!/data/tmp/*\"]; leave the key out to match everything)");
  refused("empty entry", "path = ['/a/*', '']", 17, "'path' list entries must not be empty");
  refused("only an empty entry", "process = ['']", 12, "'process' list entries must not be empty");
  refused("non-string entry", "thread = ['w-*', 3]", 18,
          "'thread' list entries must be strings (a glob or a list of them, e.g. "
          "[\"worker-*\", \"!worker-0\"])");
  refused("not a string or list", "stack = 3", 9, "'stack' must be a glob or a list of them");
  refused("bang alone", "path = ['/a/*', '!']", 17,
          "'path' entry '!' excludes nothing (write \"!GLOB\" to exclude what GLOB matches, or "
          "'\\!' for a glob that starts with a literal '!')");
  refused("bang alone, single", "path = '!'", 8, "'path' entry '!' excludes nothing");
  refused("bad glob in a list", "path = ['/a/*', '!/a/[tmp']", 17,
          "bad glob '/a/[tmp': unterminated [...] class");
  const std::string a(150, 'a');
  refused("too long together", "path = ['" + a + "', '" + a + "']", 8,
          "'path' list is too long: its 2 entries take 302 bytes (each entry's length + 1), at "
          "most 256 fit");
  refused("thread list too long",
          "thread = ['" + std::string(40, 't') + "', 'x*', '" + std::string(30, 'u') + "']", 10,
          "at most 64 fit");
}

TEST(SelectorLists, LiveSetTakesAListAndShowsItBack) {
  FaultSpec spec = compiled_fault(kShortFault);
  EXPECT_EQ(apply_fault_setting(spec, "path", "[\"/data/*\", \"!/data/tmp/*\"]"), std::nullopt);
  EXPECT_EQ(packed(spec.path), (std::vector<std::string>{"/data/*", "!/data/tmp/*"}));
  EXPECT_EQ(apply_fault_setting(spec, "path", "/other/*"), std::nullopt);  // one bare glob again
  EXPECT_EQ(packed(spec.path), (std::vector<std::string>{"/other/*"}));
  EXPECT_EQ(apply_fault_setting(spec, "path", "!/other/tmp/*"), std::nullopt);  // a negation alone
  EXPECT_EQ(packed(spec.path), (std::vector<std::string>{"!/other/tmp/*"}));
  const FaultSpec before = spec;
  EXPECT_EQ(apply_fault_setting(spec, "path", "[]").value_or(""),
            "'path' must not be an empty list (give a glob or a list of them, e.g. "
            "[\"/data/*\", \"!/data/tmp/*\"]; leave the key out to match everything)");
  EXPECT_EQ(std::memcmp(&spec, &before, sizeof spec), 0);
  EXPECT_EQ(apply_fault_setting(spec, "path", ""), std::nullopt);
  EXPECT_EQ(spec.path[0], '\0');
}

TEST(ApplySetting, ErrorsLeaveTheSpecUntouched) {
  const FaultSpec original = compiled_fault(kShortFault);
  FaultSpec spec = original;
  auto expect_error = [&](std::string_view key, std::string_view value, const char* message) {
    SCOPED_TRACE(std::string(key) + "=" + std::string(value));
    EXPECT_EQ(apply_fault_setting(spec, key, value).value_or("<none>"), message);
    EXPECT_EQ(std::memcmp(&spec, &original, sizeof spec), 0);
  };
  expect_error("pathh", "/tmp", "unknown key 'pathh' (did you mean 'path'?)");
  expect_error("name", "b",
               "'name' cannot be changed on a loaded fault (remove it and add it again)");
  expect_error("calls", "[\"read\"]",
               "'calls' cannot be changed on a loaded fault (remove it and add it again)");
  expect_error("after", "-1", "'after' must be >= 0");
  expect_error("after", "1\nevery = 5", "'after' must be an integer");  // one key only
  expect_error("error", "EIOO", "unknown errno name 'EIOO' (did you mean 'EIO'?)");
  expect_error("lie", "true",
               "action 'lie' is not valid for call 'write' (valid: error, delay, short, corrupt, "
               "quota, crash, bandwidth, powercut)");
  expect_error("jitter", "1ms", "'jitter' needs a 'delay' or a 'latency' to vary");
  expect_error("when", "after", "'when' applies only to 'crash' and 'powercut'");
  expect_error("probability", "2", "'probability' must be between 0 and 1");
}

TEST(ApplySetting, WarningsAreCollected) {
  FaultSpec spec = compiled_fault(kShortFault);
  std::vector<std::string> warnings;
  EXPECT_EQ(apply_fault_setting(spec, "error", "ECONNREFUSED", &warnings), std::nullopt);
  ASSERT_EQ(warnings.size(), 2u);
  EXPECT_EQ(warnings[0], "write cannot return ECONNREFUSED per its man page");
  EXPECT_EQ(warnings[1], "read cannot return ECONNREFUSED per its man page");
}

TEST(ApplySetting, CrashThenWhen) {
  FaultSpec spec = compiled_fault(kShortFault);
  EXPECT_EQ(apply_fault_setting(spec, "crash", "SIGABRT"), std::nullopt);
  EXPECT_EQ(apply_fault_setting(spec, "when", "after"), std::nullopt);
  EXPECT_EQ(spec.actions, kActCrash);
  EXPECT_EQ(spec.crash_signal, SIGABRT);
  EXPECT_EQ(spec.crash_when, kCrashAfter);
}

}  // namespace
}  // namespace faultline

namespace faultline {
namespace {

// docs/policy.md: a @write quota also counts the space ftruncate and the fallocate calls
// reserve, with the fault's selectors; a quota naming @fs calls alone limits those alone.
TEST(PolicyQuota, AWriteQuotaAlsoDrawsFromTheSpaceCalls) {
  Policy p = compile_ok(
      "version = 1\n[[fault]]\nname='q'\ncalls=['@write']\npath='/data/*'\nquota='1MiB'\n");
  const FaultSpec& f = p.faults.at(0);
  for (const char* call : {"ftruncate", "ftruncate64", "fallocate", "fallocate64",
                           "posix_fallocate", "posix_fallocate64"})
    EXPECT_TRUE(has_call(f, call)) << call;
  EXPECT_FALSE(has_call(f, "rename"));
  EXPECT_FALSE(has_call(f, "close"));
  EXPECT_EQ(f.families, std::uint32_t{kFamWrite | kFamFs});
  Policy only = compile_ok("version = 1\n[[fault]]\nname='q'\ncalls=['fallocate']\nquota='1MiB'\n");
  EXPECT_FALSE(has_call(only.faults.at(0), "write"));
  EXPECT_FALSE(has_call(only.faults.at(0), "ftruncate"));
  EXPECT_EQ(only.faults.at(0).families, std::uint32_t{kFamFs});
  // A quota is not an action of the path calls: naming one is refused.
  EXPECT_TRUE(compile_policy_string(
                  "version = 1\n[[fault]]\nname='q'\ncalls=['rename']\nquota='1MiB'\n", "q.toml")
                  .error);
}

// Live: the space calls a @write quota implied follow the action. An edit to an action they do
// not take drops them instead of being refused; back to a quota, they are drawn again.
TEST(PolicyQuota, ALiveEditAwayFromTheQuotaDropsTheImpliedSpaceCalls) {
  FaultSpec spec =
      compile_ok("version = 1\n[[fault]]\nname='q'\ncalls=['@write']\nquota='1MiB'\n").faults.at(0);
  ASSERT_TRUE(has_call(spec, "fallocate"));
  EXPECT_EQ(apply_fault_setting(spec, "short", "1"), std::nullopt);
  EXPECT_FALSE(has_call(spec, "fallocate"));
  EXPECT_FALSE(has_call(spec, "ftruncate"));
  EXPECT_TRUE(has_call(spec, "write"));
  EXPECT_EQ(spec.families, std::uint32_t{kFamWrite});
  EXPECT_EQ(apply_fault_setting(spec, "quota", "2MiB"), std::nullopt);
  EXPECT_TRUE(has_call(spec, "fallocate"));
  // An errno joins a quota (the error it fails with): the space calls stay.
  EXPECT_EQ(apply_fault_setting(spec, "error", "EDQUOT"), std::nullopt);
  EXPECT_TRUE(has_call(spec, "fallocate"));
}

TEST(PolicyFs, ErrnosTheCallsCanReturnLoadWithoutAWarning) {
  Policy ok = compile_ok(
      "version = 1\n[[fault]]\nname='a'\ncalls=['rename','link','mkdir']\nerror='EXDEV'\n"
      "[[fault]]\nname='b'\ncalls=['@fs']\nerror='ENOSPC'\n"
      "[[fault]]\nname='c'\ncalls=['close']\nerror='EIO'\n");
  EXPECT_TRUE(ok.warnings.empty()) << ok.warnings.front();
  Policy odd = compile_ok("version = 1\n[[fault]]\nname='a'\ncalls=['close']\nerror='EXDEV'\n");
  ASSERT_EQ(odd.warnings.size(), 1u);
  EXPECT_NE(odd.warnings[0].find("close cannot return EXDEV"), std::string::npos);
}

TEST(PolicyQuota, AQuotaMayNameItsErrno) {
  CompileResult r = compile_policy_string(
      "version = 1\n[[fault]]\nname='q'\ncalls=['write']\nquota='1MiB'\nerror='EDQUOT'\n",
      "q.toml");
  ASSERT_FALSE(r.error) << r.error->to_string();
  const FaultSpec& f = r.policy->faults.at(0);
  EXPECT_EQ(f.actions & (kActQuota | kActError), kActQuota | kActError);
  EXPECT_EQ(f.error, EDQUOT);
  EXPECT_EQ(f.quota_bytes, 1048576u);
}

}  // namespace
}  // namespace faultline

namespace faultline {
namespace {

// Found by tests/fuzz/policy_fuzz.cpp: toml++ 3.3.0 reaches __builtin_unreachable() on
// U+FEF6 where it expects whitespace. The compiler must answer with an error instead.
TEST(PolicyHostileInput, CodePointTomlCannotHandleIsAnError) {
  const std::string text =
      "version = -\x01"
      "1\xef\xbb\xb6"
      "0\nK# sq[[f";
  CompileResult r = compile_policy_string(text, "bad.toml");
  ASSERT_TRUE(r.error);
  EXPECT_FALSE(r.policy);
}

}  // namespace
}  // namespace faultline

namespace faultline {
namespace {

TEST(PolicyHostileInput, QuoteInsideAMalformedTokenDoesNotHideNonAscii) {
  const std::string text =
      "version = -\x01"
      "1versiorite\"q\xef\xbb\xb6"
      "0\nu]\n";
  CompileResult r = compile_policy_string(text, "bad.toml");
  ASSERT_TRUE(r.error);
  EXPECT_NE(r.error->message.find("non-ASCII"), std::string::npos) << r.error->to_string();
}

// Found by the fuzzer too: after `-1=` toml++ is still reading one bare value, so the quote
// opens no string and it asks its whitespace table about U+FEF6. The same in an array, in
// an inline table, and through `faultline set`; a real string after each stays fine.
TEST(PolicyHostileInput, QuoteAfterAnEqualsInsideAValueDoesNotHideNonAscii) {
  for (const std::string value : {"-1=\"E\xef\xbb\xb6\"", "[1, -1=\"E\xef\xbb\xb6\"]",
                                  "{ a = -1=\"E\xef\xbb\xb6\" }", "1.\"E\xef\xbb\xb6\""}) {
    CompileResult r = compile_policy_string("version = " + value + "\n", "bad.toml");
    ASSERT_TRUE(r.error) << value;
    EXPECT_NE(r.error->message.find("non-ASCII"), std::string::npos) << r.error->to_string();
  }
  FaultSpec spec = default_fault_spec();
  EXPECT_TRUE(apply_fault_setting(spec, "provenablnbaor ",
                                  " -\x01"
                                  "1=\"E\xef\xbb\xb6"
                                  "0\nK# sq[[fy=")
                  .has_value());
  CompileResult ok = compile_policy_string(
      "version = 1\n[[fault]]\nname = \"x\"\ncalls = [\"write\"]\n"
      "path = [\"/tmp/caf\xc3\xa9/*\", \"/tmp/\xef\xbb\xb6/*\"]\nerror = \"EIO\"\n"
      "process = { a = 1 }\n",
      "ok.toml");
  ASSERT_TRUE(ok.error);  // process takes a string: but the error is about that, not bytes
  EXPECT_EQ(ok.error->message.find("non-ASCII"), std::string::npos) << ok.error->to_string();
}

TEST(PolicyHostileInput, NonAsciiInStringsAndCommentsIsFine) {
  CompileResult r = compile_policy_string(
      "version = 1\n# café — ünïcödé\n[[fault]]\nname = \"x\"\ncalls = [\"write\"]\n"
      "path = \"/tmp/café/*\"\nerror = \"EIO\"\n",
      "ok.toml");
  ASSERT_FALSE(r.error) << r.error->to_string();
  EXPECT_STREQ(r.policy->faults.at(0).path, "/tmp/café/*");
}

}  // namespace
}  // namespace faultline

// ---- bad input: limits of each key (docs/policy.md, "Limits") ---------------------------

namespace faultline {
namespace {

const std::string kHead = "version = 1\n[[fault]]\nname = \"a\"\ncalls = [\"write\"]\n";

TEST(PolicyLimits, DurationsUpTo100YearsAreAcceptedAndNoMore) {
  // 100 years of 365 days is 876000h = 3153600000s; one second more is refused, located.
  for (const char* key : {"delay", "timeout", "start_after", "duration"}) {
    SCOPED_TRACE(key);
    const std::string action = std::string(key) == "timeout" ? "blackhole = true\n" : "";
    const std::string calls = std::string(key) == "timeout" ? "[\"connect\"]" : "[\"write\"]";
    const std::string head = "version = 1\n[[fault]]\nname = \"a\"\ncalls = " + calls + "\n";
    const std::string extra = std::string(key) == "delay" ? "" : "error = \"EIO\"\n";
    const std::string ok = head + (action.empty() ? extra : action) + key + " = \"876000h\"\n";
    Policy p = compile_ok(ok);
    ASSERT_EQ(p.faults.size(), 1u);
    const std::string bad = head + (action.empty() ? extra : action) + key + " = \"3153600001s\"\n";
    CompileResult r = compile_policy_string(bad, "p.toml");
    ASSERT_TRUE(r.error);
    EXPECT_EQ(r.error->line, std::string(key) == "delay" ? 5 : 6);
    EXPECT_NE(r.error->message.find("longer than 100 years"), std::string::npos)
        << r.error->message;
  }
  Policy jitter = compile_ok(kHead + "delay = \"1s\"\njitter = \"876000h\"\n");
  EXPECT_EQ(jitter.faults.at(0).jitter_ns, kDurationMaxNs);
  expect_refused({"jitter", (kHead + "delay = \"1s\"\njitter = \"3153600001s\"\n").c_str(), 6, 10,
                  "'jitter' '3153600001s' is longer than 100 years"});
  Policy ttl = compile_ok("version = 1\n[safety]\nttl = \"876000h\"\n");
  EXPECT_EQ(ttl.ttl_ns, kDurationMaxNs);
  expect_refused({"ttl", "version = 1\n[safety]\nttl = \"876001h\"\n", 3, 7,
                  "'ttl' '876001h' is longer than 100 years"});
  EXPECT_EQ(kDurationMaxNs, 3'153'600'000'000'000'000);
}

TEST(PolicyLimits, SetRefusesDurationsPast100Years) {
  FaultSpec spec = compile_ok(kHead + "error = \"EIO\"\n").faults.at(0);
  std::optional<std::string> problem = apply_fault_setting(spec, "start_after", "876001h");
  ASSERT_TRUE(problem);
  EXPECT_NE(problem->find("longer than 100 years"), std::string::npos) << *problem;
  EXPECT_EQ(spec.start_after_ns, 0);
  EXPECT_EQ(apply_fault_setting(spec, "start_after", "876000h"), std::nullopt);
  EXPECT_EQ(spec.start_after_ns, kDurationMaxNs);
}

TEST(PolicyLimits, AbsurdNumbersGetALocatedError) {
  struct Case {
    const char* what;
    std::string toml;
    int line, column;
    const char* message;
  };
  const Case cases[] = {
      {"corrupt past 2^20", kHead + "corrupt = 1048577\n", 5, 11,
       "'corrupt' must be at most 1048576"},
      {"corrupt 2^32-1", kHead + "corrupt = 4294967295\n", 5, 11, "'corrupt' must be at most"},
      {"corrupt 0", kHead + "corrupt = 0\n", 5, 11, "'corrupt' must be >= 1"},
      {"probability below 0", kHead + "error = \"EIO\"\nprobability = -0.5\n", 6, 15,
       "'probability' must be between 0 and 1"},
      {"probability nan", kHead + "error = \"EIO\"\nprobability = nan\n", 6, 15,
       "'probability' must be between 0 and 1"},
      {"short 0%", kHead + "short = \"0%\"\n", 5, 9, "bad short '0%'"},
      {"short 101%", kHead + "short = \"101%\"\n", 5, 9, "bad short '101%'"},
      {"short 0 bytes", kHead + "short = 0\n", 5, 9, "'short' must be >= 1"},
      {"short \"0\"", kHead + "short = \"0\"\n", 5, 9, "bad short '0'"},
      {"quota overflows its unit", kHead + "quota = \"99999999999GiB\"\n", 5, 9,
       "bad size '99999999999GiB'"},
      {"short overflows its unit", kHead + "short = \"99999999999GiB\"\n", 5, 9,
       "bad short '99999999999GiB'"},
      {"size overflows its unit", kHead + "size = \"99999999999GiB..\"\nerror = \"EIO\"\n", 5, 8,
       "bad size range '99999999999GiB..'"},
      {"limit negative", "version = 1\n[[fault]]\nname = \"a\"\ncalls = [\"open\"]\nlimit = -1\n",
       5, 9, "'limit' must be >= 0"},
      {"delay overflows int64", kHead + "delay = \"9999999999999h\"\n", 5, 9,
       "'delay' '9999999999999h' is longer than 100 years"},
      {"delay overflows uint64", kHead + "delay = \"99999999999999999999999s\"\n", 5, 9,
       "is longer than 100 years"},
  };
  for (const Case& c : cases) expect_refused({c.what, c.toml.c_str(), c.line, c.column, c.message});
  expect_refused({"max_faults 0", "version = 1\n[safety]\nmax_faults = 0\n", 3, 14,
                  "'max_faults' must be >= 1"});
  Policy most = compile_ok(kHead + "corrupt = 1048576\n");
  EXPECT_EQ(most.faults.at(0).corrupt_bits, 1u << 20);
}

TEST(PolicyLimits, ImplausibleLimitsAreWarned) {
  const std::string head = "version = 1\n[[fault]]\nname = \"a\"\ncalls = [\"open\"]\n";
  Policy zero = compile_ok(head + "limit = 0\n");
  ASSERT_EQ(zero.warnings.size(), 1u);
  EXPECT_NE(zero.warnings[0].find("p.toml:5:9: warning: 'limit' = 0 fails every"),
            std::string::npos)
      << zero.warnings[0];
  Policy huge = compile_ok(head + "limit = 9223372036854775807\n");
  ASSERT_EQ(huge.warnings.size(), 1u);
  EXPECT_NE(huge.warnings[0].find("is not below this process's fd limit"), std::string::npos)
      << huge.warnings[0];
  EXPECT_TRUE(compile_ok(head + "limit = 3\n").warnings.empty());
}

TEST(PolicyLimits, LogPathMustFitTheBlockOnceAbsolute) {
  const std::string cwd = absolute_log_path("x").substr(0, absolute_log_path("x").size() - 1);
  // Exactly the longest relative path that fits once the cwd is put in front of it.
  const std::string fits(kLogPathMax - 1 - cwd.size(), 'l');
  Policy ok = compile_ok("version = 1\n[log]\npath = \"" + fits + "\"\n");
  EXPECT_EQ(ok.log_path, fits);
  const std::string bad = "version = 1\n[log]\npath = \"" + fits + "l\"\n";
  expect_refused({"relative path too long once absolute", bad.c_str(), 3, 8,
                  "'path' is too long: 512 characters once made absolute, at most 511"});
  const std::string absolute = "version = 1\n[log]\npath = \"/" + std::string(600, 'l') + "\"\n";
  expect_refused({"absolute path too long", absolute.c_str(), 3, 8,
                  "'path' is too long: 601 characters, at most 511"});
  EXPECT_EQ(log_path_problem("/tmp/x.log", "--log"), std::nullopt);
  EXPECT_NE(log_path_problem(std::string(600, 'l'), "--log").value_or("").find("--log is too long"),
            std::string::npos);
}

// ---- reading a policy file ----------------------------------------------------------------

TEST(PolicyFile, OnlyRegularFilesOfAtMost1MiB) {
  std::string text;
  std::optional<std::string> problem = read_policy_text("/dev/null", text);
  ASSERT_TRUE(problem);
  EXPECT_NE(problem->find("not a regular file (it is a character device)"), std::string::npos);
  problem = read_policy_text("/tmp", text);
  ASSERT_TRUE(problem);
  EXPECT_NE(problem->find("not a regular file (it is a directory)"), std::string::npos);

  char name[] = "/tmp/fl-policy-size-XXXXXX";
  int fd = mkstemp(name);
  ASSERT_GE(fd, 0);
  const std::string line = "# " + std::string(1021, 'x') + "\n";  // 1 KiB
  std::string content;
  for (int i = 0; i < 1024; ++i) content += line;  // exactly 1 MiB: accepted
  ASSERT_EQ(write(fd, content.data(), content.size()), static_cast<ssize_t>(content.size()));
  EXPECT_EQ(read_policy_text(name, text), std::nullopt);
  EXPECT_EQ(text.size(), kPolicyFileMax);
  ASSERT_EQ(write(fd, "\n", 1), 1);  // one byte more: refused
  problem = read_policy_text(name, text);
  close(fd);
  unlink(name);
  ASSERT_TRUE(problem);
  EXPECT_NE(problem->find("the policy is 1048577 bytes, over the limit of 1 MiB"),
            std::string::npos)
      << *problem;
  EXPECT_TRUE(text.empty());

  CompileResult r = compile_policy_file("/dev/zero");
  ASSERT_TRUE(r.error);
  EXPECT_EQ(r.error->to_string().rfind("/dev/zero: cannot read policy: not a regular file", 0), 0u)
      << r.error->to_string();
}

// ---- network shapes (latency, bandwidth, loss, eof, after_bytes) and p99 ----------------

TEST(PolicyShapes, CompileTheirValuesAndKeepOnlyTheCallsThatTakeThem) {
  Policy p = compile_ok(R"(version = 1
[[fault]]
name = "slow"
calls = ["@net"]
latency = "200ms"
p99 = "2s"
[[fault]]
name = "thin"
calls = ["@net", "@write"]
bandwidth = "256KiB/s"
[[fault]]
name = "lossy"
calls = ["@net"]
loss = 0.02
[[fault]]
name = "cut"
calls = ["recv", "read"]
eof = true
after_bytes = "64KiB"
)");
  ASSERT_EQ(p.faults.size(), 4u);
  const FaultSpec& slow = p.faults[0];
  EXPECT_EQ(slow.actions, std::uint32_t{kActLatency});
  EXPECT_EQ(slow.latency_ns, 200'000'000);
  EXPECT_EQ(slow.p99_ns, 2'000'000'000);
  // Latency is inbound: connects, accepts and receives; never a send, bind or socket().
  EXPECT_TRUE(has_call(slow, "connect"));
  EXPECT_TRUE(has_call(slow, "accept4"));
  EXPECT_TRUE(has_call(slow, "recvfrom"));
  EXPECT_FALSE(has_call(slow, "send"));
  EXPECT_FALSE(has_call(slow, "bind"));
  const FaultSpec& thin = p.faults[1];
  EXPECT_EQ(thin.bandwidth_bps, 256u * 1024);
  EXPECT_TRUE(has_call(thin, "send"));
  EXPECT_TRUE(has_call(thin, "pwrite"));
  EXPECT_FALSE(has_call(thin, "connect"));
  EXPECT_DOUBLE_EQ(p.faults[2].loss, 0.02);
  EXPECT_TRUE(has_call(p.faults[2], "connect"));
  const FaultSpec& cut = p.faults[3];
  EXPECT_EQ(cut.actions, std::uint32_t{kActEof});
  EXPECT_EQ(cut.after_bytes, 64u * 1024);
  // `read` named with a socket-only action means read on sockets.
  EXPECT_EQ(cut.rw_scope & (kRwSockets | kRwFiles), std::uint32_t{kRwSockets});
}

TEST(PolicyShapes, BadValuesNameTheValidForm) {
  const char* head = "version = 1\n[[fault]]\nname = \"a\"\n";
  struct Case {
    const char* what;
    std::string body;
    int line, column;
    const char* message;
  } cases[] = {
      {"latency on a file call", "calls = [\"write\"]\nlatency = \"1s\"\n", 5, 1,
       "action 'latency' is not valid for call 'write'"},
      {"zero latency", "calls = [\"@net\"]\nlatency = \"0s\"\n", 5, 11,
       "'latency' must be longer than 0"},
      {"bandwidth without a rate", "calls = [\"@net\"]\nbandwidth = \"10MiB\"\n", 5, 13,
       "bad bandwidth '10MiB' (use a size per second"},
      {"zero bandwidth", "calls = [\"@net\"]\nbandwidth = \"0B/s\"\n", 5, 13,
       "lets nothing through"},
      {"loss above one", "calls = [\"@net\"]\nloss = 1.5\n", 5, 8,
       "'loss' must be between 0 and 1"},
      {"negative loss", "calls = [\"@net\"]\nloss = -0.1\n", 5, 8, "between 0 and 1"},
      {"p99 below the median", "calls = [\"@net\"]\nlatency = \"200ms\"\np99 = \"100ms\"\n", 6, 1,
       "'p99' (100ms) is below the median 'latency' (200ms)"},
      {"p99 alone", "calls = [\"@net\"]\nerror = \"EIO\"\np99 = \"1s\"\n", 6, 1,
       "'p99' needs a 'delay' or a 'latency' to vary"},
      {"jitter and p99", "calls = [\"write\"]\ndelay = \"1s\"\njitter = \"1ms\"\np99 = \"2s\"\n", 7,
       1, "exclude each other"},
      {"after_bytes on files", "calls = [\"pwrite\"]\nerror = \"EIO\"\nafter_bytes = 10\n", 6, 1,
       "'after_bytes' applies to @net calls"},
      {"eof on a send", "calls = [\"send\"]\neof = true\n", 5, 1,
       "action 'eof' is not valid for call 'send'"},
  };
  for (const Case& c : cases)
    expect_refused({c.what, (std::string(head) + c.body).c_str(), c.line, c.column, c.message});
}

TEST(PolicyShapes, SetReplacesTheShapeAndItsParameters) {
  Policy p = compile_ok(R"(version = 1
[[fault]]
name = "slow"
calls = ["@net"]
latency = "200ms"
p99 = "1s"
)");
  FaultSpec spec = p.faults[0];
  ASSERT_FALSE(apply_fault_setting(spec, "latency", "\"500ms\""));
  EXPECT_EQ(spec.latency_ns, 500'000'000);
  ASSERT_EQ(apply_fault_setting(spec, "p99", "\"100ms\"").value_or(""),
            "'p99' (100ms) is below the median 'latency' (500ms): the 99th percentile is at "
            "least the median");
  // Another main action replaces latency; its p99 goes with it.
  ASSERT_FALSE(apply_fault_setting(spec, "error", "\"ECONNRESET\""));
  EXPECT_EQ(spec.latency_ns, 0);
  EXPECT_EQ(spec.p99_ns, 0);
  EXPECT_EQ(spec.actions, std::uint32_t{kActError});
}

}  // namespace
}  // namespace faultline

namespace faultline {
namespace {

CompileResult compile_one(const std::string& fault_keys) {
  return compile_policy_string("version = 1\n[[fault]]\nname = \"f\"\n" + fault_keys, "p.toml");
}

TEST(PolicyErrno, EveryNameTheCLibraryKnowsAndNumbers) {
  for (const auto& [text, value] :
       {std::pair{"\"EPROTO\"", EPROTO}, std::pair{"\"ENOLINK\"", ENOLINK},
        std::pair{"\"EWOULDBLOCK\"", EAGAIN}, std::pair{"\"EHWPOISON\"", EHWPOISON},
        std::pair{"71", 71}, std::pair{"\"71\"", 71}}) {
    SCOPED_TRACE(text);
    const CompileResult r = compile_one(std::string("calls = [\"write\"]\nerror = ") + text + "\n");
    ASSERT_FALSE(r.error) << r.error->to_string();
    EXPECT_EQ(r.policy->faults[0].error, value);
  }
  EXPECT_EQ(errno_name(EPROTO), "EPROTO");
  EXPECT_EQ(errno_name(ENOLINK), "ENOLINK");
  for (const char* bad : {"0", "4096", "\"EPROTOX\"", "-5"}) {
    SCOPED_TRACE(bad);
    EXPECT_TRUE(compile_one(std::string("calls = [\"write\"]\nerror = ") + bad + "\n").error);
  }
}

TEST(PolicyNaturalError, AFaultWithoutActionTakesItsCallsNaturalError) {
  struct Case {
    const char* calls;
    const char* error;
  };
  for (const Case& c : {Case{"[\"@write\"]", "EIO"}, Case{"[\"@fsync\", \"read\"]", "EIO"},
                        Case{"[\"malloc\"]", "ENOMEM"}, Case{"[\"connect\"]", "ECONNREFUSED"},
                        Case{"[\"@net\"]", "ECONNRESET"}, Case{"[\"getaddrinfo\"]", "EAI_AGAIN"},
                        Case{"[\"@fs\"]", "EIO"}, Case{"[\"close\", \"@write\"]", "EIO"}}) {
    SCOPED_TRACE(c.calls);
    const CompileResult r = compile_one(std::string("calls = ") + c.calls + "\n");
    ASSERT_FALSE(r.error) << r.error->to_string();
    ASSERT_EQ(r.policy->natural_errors.size(), 1u);
    EXPECT_EQ(r.policy->natural_errors[0].fault, "f");
    EXPECT_EQ(r.policy->natural_errors[0].error, c.error);
    EXPECT_TRUE(r.policy->faults[0].actions & kActError);
  }
  const CompileResult given = compile_one("calls = [\"write\"]\nerror = \"ENOSPC\"\n");
  ASSERT_FALSE(given.error);
  EXPECT_TRUE(given.policy->natural_errors.empty());
}

TEST(PolicyErrors, EveryErrorIsReportedOnePerFault) {
  const CompileResult r = compile_policy_string(R"(version = 1
[[fault]]
name = "a"
calls = ["write"]
error = "ENOPE"
delay = "soon"

[[fault]]
name = "b"
calls = ["nosuchcall"]

[[fault]]
name = "ok"
calls = ["write"]

[[fault]]
name = "ok"
calls = ["read"]

[safety]
ttl = "forever"
max_faults = 0
)",
                                                "p.toml");
  ASSERT_TRUE(r.error);
  ASSERT_EQ(r.errors.size(), 5u);
  // The first-error API is the first of the list.
  EXPECT_EQ(r.error->to_string(), r.errors[0].to_string());
  EXPECT_EQ(r.errors[0].line, 5) << "one error for fault 'a': its delay is not checked";
  EXPECT_EQ(r.errors[0].suggestion, "ENOMEM");
  EXPECT_EQ(r.errors[1].line, 10);
  EXPECT_NE(r.errors[2].message.find("duplicate fault name 'ok'"), std::string::npos);
  EXPECT_EQ(r.errors[3].line, 21);
  EXPECT_EQ(r.errors[4].line, 22);
  EXPECT_FALSE(r.policy);
}

// [target] io_uring (policy.md, "Reaching the program"): "allow" by default, "deny" sets the
// flag the launcher turns into its seccomp filter; anything else is refused where it stands.
TEST(PolicyTarget, IoUringAllowOrDeny) {
  EXPECT_FALSE(compile_ok("version = 1\n").deny_io_uring);
  EXPECT_FALSE(compile_ok("version = 1\n[target]\nio_uring = \"allow\"\n").deny_io_uring);
  EXPECT_TRUE(compile_ok("version = 1\n[target]\nio_uring = \"deny\"\n").deny_io_uring);
  expect_refused({"io_uring value", "version = 1\n[target]\nio_uring = \"off\"\n", 3, 12,
                  "'io_uring' must be \"allow\" or \"deny\""});
  expect_refused({"io_uring type", "version = 1\n[target]\nio_uring = false\n", 3, 12,
                  "'io_uring' must be a string"});
  expect_refused({"[target] key", "version = 1\n[target]\nio_urin = \"deny\"\n", 3, 1,
                  "unknown key 'io_urin' (did you mean 'io_uring'?)"});
  expect_refused({"[target] not a table", "version = 1\ntarget = \"deny\"\n", 2, 10,
                  "'target' must be a table ([target])"});
}

}  // namespace
}  // namespace faultline
