// faultline's C++ API for tests: start a program under a fault policy in a session of its own,
// wait until it is ready, flip faults live, read the counters and events, stop it.
//
//   faultline::Options options;
//   options.command = {"./server", "--port", "0"};
//   options.policy = R"(version = 1
//                       [[fault]]
//                       name = "refuse"
//                       calls = ["connect"]
//                       error = "ECONNREFUSED"
//                       enabled = false)";
//   faultline::Session server(options);            // started; throws faultline::Error
//   auto m = server.wait_for_match(std::regex(R"(port (\d+))"));
//   server.enable("refuse");                       // live, before enable() returns
//   ...
//   EXPECT_EQ(server.counters("refuse").injected, 3u);
//   // ~Session: SIGTERM, SIGKILL after a grace, the session removed, even when a test fails
//
// The operations are those of the `faultline` command and run the same code (the launcher,
// the policy compiler and the session editor of faultline's control library), so a policy,
// a KEY=VALUE setting or a refusal means exactly what it means on the command line.
// Reference: docs/api.md. Linking: find_package(faultline) and
// target_link_libraries(my_tests faultline::faultline).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <regex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#if defined(__GNUC__)
#define FAULTLINE_API __attribute__((visibility("default")))
#else
#define FAULTLINE_API
#endif

namespace faultline {
// The public API lives in a versioned inline namespace: it is spelled faultline::Session by
// users, and a future incompatible revision can sit beside this one.
inline namespace api_v1 {

// What went wrong, for tests that expect a failure. Error::exit_status() is the status the
// `faultline` command ends with for the same failure (2 bad input, 126/127 as a shell).
enum class Errc {
  bad_policy = 1,     // the policy does not compile; what() is "file:line:col: message"
  bad_argument,       // bad options: no command, two policies, a bad session name or seed,
                      // a bad KEY=VALUE, a non-numeric host, use of a moved-from Session
  command_not_found,  // the command does not exist (exit status 127)
  cannot_execute,     // it exists but cannot be run (126)
  unreachable,        // no backend reaches it: set-id, another architecture, or statically
                      // linked under backend "preload"; the seccomp backend cannot start
  no_shim,            // libfaultline.so not found or not usable
  session,            // the session cannot be created (name taken) or edited
  no_such_fault,      // no fault of that name in the session
  timeout,            // a wait ran out of time
  exited,             // the program exited while a wait needed it running
  system,             // a system call failed (fork, pipe, waitpid)
};
FAULTLINE_API const char* to_string(Errc code);

class FAULTLINE_API Error : public std::runtime_error {
 public:
  Error(Errc code, int exit_status, const std::string& what);
  Errc code() const noexcept { return code_; }
  int exit_status() const noexcept { return exit_status_; }

 private:
  Errc code_;
  int exit_status_;
};

using Environment = std::vector<std::pair<std::string, std::string>>;

// Where the program's stdout/stderr go.
enum class Output {
  capture,  // into the Session: stdout_text(), wait_for_line() (read by a thread of the Session,
            // so the program never blocks on a full pipe)
  inherit,  // the test's own
  discard,  // /dev/null
};

struct Options {
  // argv; argv[0] is searched in this process's PATH like a shell would.
  std::vector<std::string> command;
  // The policy: a TOML file, or TOML text (not both). Neither: no faults armed; add() them.
  std::string policy_file;
  std::string policy;
  // The session name; empty: a fresh unique "fl-<pid>-<hex>".
  std::string session;
  // Overrides FAULTLINE_SEED and the policy's seed. None anywhere: a random one (see seed()).
  std::optional<std::uint64_t> seed;
  // Event log (JSON Lines); overrides FAULTLINE_LOG and the policy's [log] path.
  std::string log;
  // Set or replace these in the program's environment (it inherits this process's otherwise).
  // LD_PRELOAD given here is kept after libfaultline.so.
  Environment env;
  std::string cwd;  // empty: this process's
  Output stdout_mode = Output::capture;
  Output stderr_mode = Output::capture;
  // The destructor's SIGTERM -> SIGKILL grace.
  std::chrono::milliseconds stop_grace{2000};
  // How faults reach the program (docs/policy.md, "Reaching the program"): "preload"
  // (libfaultline.so), "seccomp" (a seccomp filter whose trapped system calls a server process
  // of this Session answers: static and Go programs), "auto" (seccomp for a statically linked
  // or Go program, else preload). Empty: the policy's [target] backend (auto by default).
  // Anything else: Errc::bad_argument.
  std::string backend;
  // libfaultline.so to preload. Empty: $FAULTLINE_SHIM, else the library the CMake package
  // recorded (FAULTLINE_SHIM_PATH, see Session(Options)), else the install location this
  // library was built for.
  std::string shim;
};

// The CMake package's faultline::faultline defines FAULTLINE_SHIM_PATH (its prefix's
// libfaultline.so) for the code that includes this header. It is read only in the inline
// Session(Options) below, compiled in that code, never in the library: a struct default
// that differed between the library and its users would break the one-definition rule.
#ifdef FAULTLINE_SHIM_PATH
#define FAULTLINE_RECORDED_SHIM_ FAULTLINE_SHIM_PATH
#else
#define FAULTLINE_RECORDED_SHIM_ ""
#endif

// One fault's counters (docs/cli.md `status`): calls it saw, calls that matched its selectors,
// and injections.
struct FaultCounters {
  std::string name;
  bool enabled = false;
  std::uint64_t seen = 0;
  std::uint64_t matched = 0;
  std::uint64_t injected = 0;
};

// One injected fault, as `faultline events --json` shows it.
struct Event {
  std::uint64_t seq = 0;
  std::int64_t ts_ns = 0;  // CLOCK_REALTIME
  pid_t pid = 0;
  pid_t tid = 0;
  std::string process;  // the process name at the injection
  std::string fault;
  std::string call;    // "connect", "getaddrinfo", ...
  std::string action;  // "error", "delay", "reset", "blackhole", ...
  std::string error;   // for "error": "ECONNREFUSED", "EAI_AGAIN", ...
  int fd = -1;
  std::string path;  // the file, for file calls
  std::string addr;  // the socket address, for @net
  std::string host;  // the name looked up, for @dns
  std::optional<std::uint64_t> size;
  std::optional<std::uint64_t> bytes;
  std::int64_t delay_ns = 0;
};

class FAULTLINE_API Session {
 public:
  // Compiles the policy, checks that the preload can reach the command, creates the session
  // and starts the command in a process group of its own. Throws Error; nothing is left
  // behind when it does.
  explicit Session(Options options) : Session(std::move(options), FAULTLINE_RECORDED_SHIM_) {}
  // stop(stop_grace), then the session is removed. Never throws.
  ~Session();
  Session(Session&& other) noexcept;
  Session& operator=(Session&& other) noexcept;
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  const std::string& name() const;  // for `faultline status NAME` and friends
  pid_t pid() const;                // the program's pid (and its process group)
  std::uint64_t seed() const;       // the seed in use: replay with FAULTLINE_SEED=seed()
  const std::vector<std::string>& warnings() const;  // policy and launch warnings

  // ---- readiness ----------------------------------------------------------------------------
  // Until a TCP connection to host:port succeeds (host numeric: "127.0.0.1", "::1").
  void wait_for_port(std::uint16_t port,
                     std::chrono::milliseconds timeout = std::chrono::seconds(10),
                     const std::string& host = "127.0.0.1");
  // Until a stdout line contains `text`; returns the line. Each wait consumes the lines it
  // read, so a second wait looks at what comes after. Needs stdout_mode == capture.
  std::string wait_for_line(std::string_view text,
                            std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // Until a stdout line matches `pattern` (std::regex_search); returns the match and its
  // groups ([0] the whole match).
  std::vector<std::string> wait_for_match(
      const std::regex& pattern, std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // Everything captured so far.
  std::string stdout_text() const;
  std::string stderr_text() const;

  // ---- live control (each takes effect in every process of the session before it returns)
  void enable(const std::string& fault);
  void disable(const std::string& fault);
  // KEY=VALUE settings with the keys of a policy file: {"probability=0.5", "error=EIO"}.
  // Returns warnings (an errno the call cannot return); a bad setting changes nothing.
  std::vector<std::string> set(const std::string& fault, const std::vector<std::string>& settings);
  std::vector<std::string> set(const std::string& fault, const std::string& key,
                               const std::string& value);
  // [[fault]] tables, as `faultline add -p`.
  void add(std::string_view toml_faults);
  void remove(const std::string& fault);
  void panic();   // every fault off at once
  void resume();  // undoes panic()

  // ---- reading ------------------------------------------------------------------------------
  FaultCounters counters(const std::string& fault) const;
  std::vector<FaultCounters> faults() const;
  std::uint64_t injected_total() const;
  // The injected faults still in the session's event ring (the most recent 512), oldest first.
  std::vector<Event> events() const;
  // Until `fault` has injected at least `count` times; returns its counters.
  FaultCounters wait_for_injections(const std::string& fault, std::uint64_t count,
                                    std::chrono::milliseconds timeout = std::chrono::seconds(10));

  // ---- the program --------------------------------------------------------------------------
  bool running();
  // Its exit status (the shell's convention: 128+N for signal N) once it has exited by itself
  // within `timeout`; nullopt if it is still running.
  std::optional<int> wait(std::chrono::milliseconds timeout);
  // SIGTERM to its process group, SIGKILL after `grace`; returns its exit status. Idempotent.
  int stop(std::chrono::milliseconds grace = std::chrono::seconds(2));

 private:
  Session(Options options, const char* recorded_shim);
  struct Impl;
  Impl& impl() const;
  std::unique_ptr<Impl> impl_;
};

}  // namespace api_v1
}  // namespace faultline
