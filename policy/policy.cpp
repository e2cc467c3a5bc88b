// The policy compiler (docs/policy.md): TOML in, validated FaultSpec rows out. This file holds
// the public entry points of policy.h (reading a policy file, compiling a file, a string or a
// snippet, `faultline set`); the compiler's parts, by job, are listed in policy_compile.h.
#include "policy/policy.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "policy/net_policy.h"
#include "policy/policy_compile.h"

namespace faultline {

using namespace policy_detail;

namespace {

// What a non-regular file is, for the message that refuses it.
const char* file_kind(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

// `bytes` is 0 when only "more than the limit" is known (standard input, a file that grew).
std::string too_big_message(std::uint64_t bytes) {
  const std::string size = bytes ? std::to_string(bytes) + " bytes, over" : "over";
  return "the policy is " + size + " the limit of 1 MiB (" + std::to_string(kPolicyFileMax) +
         " bytes); a policy holds at most " + std::to_string(kMaxFaults) +
         " faults, which fit in far less: check that this is the policy you meant";
}

// Appends at most kPolicyFileMax + 1 bytes of `fd` to `content` (one more than allowed, so that
// a file that grew since fstat is still caught). Returns errno, or 0.
int read_bounded(int fd, std::string& content) {
  char buffer[8192];
  while (content.size() <= kPolicyFileMax) {
    std::size_t want = std::min(sizeof buffer, kPolicyFileMax + 1 - content.size());
    ssize_t n = ::read(fd, buffer, want);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    if (n == 0) break;
    content.append(buffer, static_cast<std::size_t>(n));
  }
  return 0;
}

std::string_view trim(std::string_view text) {
  constexpr std::string_view kSpace = " \t\r\n";
  std::size_t begin = text.find_first_not_of(kSpace);
  if (begin == std::string_view::npos) return {};
  return text.substr(begin, text.find_last_not_of(kSpace) - begin + 1);
}

// VALUE is TOML when it parses as exactly one value for KEY; anything else (a bare `EIO`,
// `/tmp/*.log`) is taken as a string, so that users need not quote twice for their shell.
// Requiring exactly one key stops a VALUE with a newline from smuggling in a second key.
toml::table parse_setting(const std::string& key, std::string_view value) {
  const std::string line = key + " = " + std::string(value);
  // Only text that toml++ can parse safely is offered to it (see toml_safe.h).
  if (!detail::find_stray_non_ascii(line)) {
    try {
      toml::table parsed = toml::parse(line, std::string_view("set"));
      if (parsed.size() == 1 && parsed.contains(key)) return parsed;
    } catch (const toml::parse_error&) {
      // not TOML: a bare word, taken as a string below
    }
  }
  toml::table as_string;
  as_string.insert(key, std::string(value));
  return as_string;
}

}  // namespace

std::string PolicyError::to_string() const {
  if (line <= 0) return file + ": " + message;
  return file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + message;
}

FaultSpec default_fault_spec() {
  // Value-initialised, and memset too: {} does not promise to clear padding bits, and the
  // spec is published word by word, so any padding a future field adds must be zeros.
  FaultSpec spec{};
  std::memset(&spec, 0, sizeof spec);
  spec.size_max = kUnlimited;
  spec.enabled_initially = 1;
  spec.probability = 1.0;
  spec.every = 1;
  spec.times = kUnlimited;
  spec.duration_ns = kForever;
  return spec;
}

std::optional<std::string> read_policy_text(const std::string& path, std::string& content,
                                            bool allow_stdin) {
  content.clear();
  if (allow_stdin && path == "-") {
    if (int err = read_bounded(STDIN_FILENO, content)) return std::string(std::strerror(err));
    if (content.size() > kPolicyFileMax) return too_big_message(0);
    return std::nullopt;
  }
  // O_NONBLOCK: opening a FIFO nobody writes to must not hang (the shim does this before the
  // program's main). It has no effect on the read of a regular file, the only kind read.
  int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return std::string(std::strerror(errno));
  struct stat st;
  std::optional<std::string> problem;
  if (::fstat(fd, &st) != 0) {
    problem = std::strerror(errno);
  } else if (!S_ISREG(st.st_mode)) {
    problem = std::string("not a regular file (it is ") + file_kind(st.st_mode) +
              "); faultline reads a policy only from a regular file (at most 1 MiB): give "
              "the path of a .toml file";
  } else if (static_cast<std::uint64_t>(st.st_size) > kPolicyFileMax) {
    problem = too_big_message(static_cast<std::uint64_t>(st.st_size));
  } else if (int err = read_bounded(fd, content)) {
    problem = std::strerror(err);
  } else if (content.size() > kPolicyFileMax) {
    problem = too_big_message(0);  // it grew while being read
  }
  ::close(fd);
  if (problem) content.clear();
  return problem;
}

std::string absolute_log_path(const std::string& path) {
  if (path.empty() || path[0] == '/') return path;
  char cwd[4096];
  if (!getcwd(cwd, sizeof cwd)) return path;
  return std::string(cwd) + "/" + path;
}

std::optional<std::string> log_path_problem(const std::string& path, std::string_view what) {
  const std::string name(what);
  if (path.empty()) return name + " must not be empty";
  if (path.find('\0') != std::string::npos) return name + " must not contain a NUL character";
  const std::string absolute = absolute_log_path(path);
  if (absolute.size() < kLogPathMax) return std::nullopt;
  std::string message = name + " is too long: " + std::to_string(absolute.size()) + " characters";
  if (absolute.size() != path.size()) message += " once made absolute";
  return message + ", at most " + std::to_string(kLogPathMax - 1) +
         " fit in the session (give a shorter path; it would otherwise be cut and the log "
         "written to a file of another name)";
}

CompileResult compile_policy_file(const std::string& path) {
  std::string content;
  if (std::optional<std::string> err = read_policy_text(path, content)) {
    PolicyError error{path, 0, 0, "cannot read policy: " + *err, ""};
    return CompileResult{std::nullopt, error, {error}};
  }
  return compile_text(content, path, DocumentKind::kPolicy);
}

CompileResult compile_policy_string(std::string_view toml, const std::string& source_name) {
  return compile_text(toml, source_name, DocumentKind::kPolicy);
}

CompileResult compile_fault_snippet(std::string_view toml, const std::string& source_name) {
  return compile_text(toml, source_name, DocumentKind::kSnippet);
}

std::optional<std::string> apply_fault_setting(FaultSpec& spec, std::string_view key,
                                               std::string_view value) {
  return apply_fault_setting(spec, key, value, nullptr);
}

std::optional<std::string> apply_fault_setting(FaultSpec& spec, std::string_view key,
                                               std::string_view value,
                                               std::vector<std::string>* warnings) {
  std::string name(trim(key));
  if (name == "name" || name == "calls")
    return quoted(name) + " cannot be changed on a loaded fault (remove it and add it again)";
  // Live only: an empty value (`path=` or `path=""`) removes a selector, which a policy file
  // does by leaving the key out. The other keys keep refusing an empty value.
  if (const std::string_view v = trim(value); v.empty() || v == "\"\"" || v == "''") {
    if (name == "path" || name == "process" || name == "thread") {
      char* field = name == "path" ? spec.path : name == "process" ? spec.process : spec.thread;
      std::memset(field, 0, name == "path" ? sizeof spec.path : sizeof spec.process);
      return std::nullopt;
    }
    if (name == "stack") {
      std::memset(spec.stack, 0, sizeof spec.stack);
      return std::nullopt;
    }
    if (name == "site") {
      std::memset(spec.site, 0, sizeof spec.site);
      return std::nullopt;
    }
    if (name == "host") {
      std::memset(spec.host, 0, sizeof spec.host);
      return std::nullopt;
    }
    if (name == "addr") {
      clear_addr_selector(spec);
      return std::nullopt;
    }
    if (name == "size") {
      spec.has_size = 0;
      spec.size_min = 0;
      spec.size_max = kUnlimited;
      return std::nullopt;
    }
  }
  try {
    toml::table holder = parse_setting(name, trim(value));
    const Entry e{name, holder.get(name), Position{}};
    // Nothing is half-applied: the draft replaces `spec` only once every check passed.
    // The space calls a quota implied were not named: a new action they do not take drops
    // them (the quota puts them back) instead of refusing the edit.
    std::uint64_t implied[2];
    implied_space_calls(spec, implied);
    FaultDraft d{spec, {spec.calls_mask[0] & ~implied[0], spec.calls_mask[1] & ~implied[1]}};
    compile_fault_key(d, e);
    validate_fault(d, FaultSource{}, Warnings{nullptr, warnings});
    spec = d.spec;
    return std::nullopt;
  } catch (const CompileError& err) {
    return err.message;
  } catch (const std::exception& err) {
    return std::string("internal error: ") + err.what();
  }
}
}  // namespace faultline
