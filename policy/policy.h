// The policy compiler: TOML (docs/policy.md) -> validated, flat FaultSpec rows.
//
// A policy is refused whole: every error found is reported as file:line:col with a message
// (and the nearest valid key for a typo); nothing is half-applied. A fault is skipped after
// its first error (its other keys may depend on the bad one), the next fault is still checked. The
// same key compiler serves `faultline set FAULT KEY=VALUE` and `faultline add -p snippet.toml`.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "faultline/control_block.h"

namespace faultline {

struct PolicyError {
  std::string file;
  int line = 0;  // 1-based; 0 when the error has no position (e.g. unreadable file)
  int column = 0;
  std::string message;
  std::string suggestion;  // the nearest valid word for a typo ("path" for "pathh"), or empty
  // "file:line:col: message" (or "file: message" without a position)
  std::string to_string() const;
};

// [target] backend (policy.md, "Reaching the program"): how `faultline run` reaches CMD.
enum class Backend : std::uint8_t { kAuto, kPreload, kSeccomp };

struct Policy {
  std::uint64_t seed = 0;
  bool has_seed = false;
  std::string log_path;  // empty: no event log
  bool log_stderr = false;
  std::uint64_t log_max_rate = kDefaultLogMaxRate;  // event lines per second per process
  std::uint64_t log_max_size = kDefaultLogMaxSize;  // bytes
  std::int64_t ttl_ns = kForever;
  std::uint64_t max_faults = kUnlimited;
  // [target] io_uring = "deny": `faultline run` makes io_uring_setup fail with ENOSYS in the
  // program (controller/launcher_seccomp.cpp), so that it falls back to calls the shim sees.
  bool deny_io_uring = false;
  Backend backend = Backend::kAuto;
  std::vector<FaultSpec> faults;
  // [durability]: `path` as a packed glob list (faultline/glob.h), "" = nothing tracked.
  struct Durability {
    char path[kGlobMax] = {};
    bool keep_on_fsync_error = false;
    bool torn = false;
  } durability;
  std::vector<std::string> warnings;  // "file:line:col: warning: ..." (e.g. implausible errno)
  // Faults given no action, with the natural error chosen for them (policy.md), in order.
  struct NaturalError {
    std::string fault;
    std::string error;  // "EIO", "EAI_AGAIN"
  };
  std::vector<NaturalError> natural_errors;
};

struct CompileResult {
  std::optional<Policy> policy;      // set iff error is empty
  std::optional<PolicyError> error;  // the first error in the file (errors.front())
  std::vector<PolicyError> errors;   // every error, in file order (`faultline validate`)
};

// Limits on what a policy may ask for (docs/policy.md, "Limits"). A value past one of them is
// refused at compile time with its file:line:col, so that no arithmetic downstream can wrap.
inline constexpr std::size_t kPolicyFileMax = std::size_t{1} << 20;  // bytes of a policy file
// delay, jitter, timeout, start_after, duration and ttl: 100 years of 365 days ("876000h").
inline constexpr std::int64_t kDurationMaxNs = 100ll * 365 * 24 * 3600 * 1'000'000'000;
inline constexpr std::uint64_t kCorruptBitsMax = std::uint64_t{1} << 20;

// Reads a policy or snippet file whole: only a regular file of at most kPolicyFileMax bytes.
// Never blocks on what is not a file: it opens with O_NONBLOCK and refuses a FIFO, a device, a
// socket or a directory before reading a byte. With `allow_stdin`, "-" reads standard input,
// bounded the same way. Returns a message saying what is wrong and what to do, or nullopt.
std::optional<std::string> read_policy_text(const std::string& path, std::string& content,
                                            bool allow_stdin = false);

// The event log path as the control block stores it: made absolute against the cwd, because
// members of a session may chdir. The block holds at most kLogPathMax - 1 characters of it.
std::string absolute_log_path(const std::string& path);
// Why `path` cannot be the event log (empty, a NUL, or too long for the block once absolute),
// or nullopt. `what` names it in the message ("--log", "FAULTLINE_LOG", "'path'").
std::optional<std::string> log_path_problem(const std::string& path, std::string_view what);

CompileResult compile_policy_file(const std::string& path);
// `source_name` is used in error messages in place of a file name.
CompileResult compile_policy_string(std::string_view toml, const std::string& source_name);
// A snippet for `faultline add`: only [[fault]] tables (version not required).
CompileResult compile_fault_snippet(std::string_view toml, const std::string& source_name);

// `faultline set FAULT KEY=VALUE`: apply one key to an existing spec with the same parsing and
// checks as a policy file. VALUE is TOML (`0.5`, `"EIO"`, `["a"]`); a bare word that is not
// valid TOML is taken as a string (`error=EIO`). Returns an error message, or nullopt.
std::optional<std::string> apply_fault_setting(FaultSpec& spec, std::string_view key,
                                               std::string_view value);
// The same, also collecting load-time warnings (implausible errno) as bare messages.
std::optional<std::string> apply_fault_setting(FaultSpec& spec, std::string_view key,
                                               std::string_view value,
                                               std::vector<std::string>* warnings);

// A FaultSpec holding the documented defaults (probability 1, every 1, unlimited times, no
// time window, enabled) and zeros everywhere else, padding included.
FaultSpec default_fault_spec();

// Parsers shared with the CLI and the tests.
std::optional<std::uint64_t> parse_size(std::string_view text);        // "10MiB", "512"
std::optional<std::int64_t> parse_duration_ns(std::string_view text);  // "250ms", "10m"
// "4096..", "..64", "1KiB..1MiB", "100" (exactly)
bool parse_size_range(std::string_view text, std::uint64_t& min, std::uint64_t& max);
// Bad glob: an unterminated [...] class or a trailing backslash. Returns an error message.
std::optional<std::string> check_glob(std::string_view glob);
bool valid_fault_name(std::string_view name);

}  // namespace faultline
