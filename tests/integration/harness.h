// A small harness for integration tests that run real, unmodified programs: run a command with
// fork/execve and capture its stdout and stderr separately under a hard timeout, drive a
// background process line by line over its stdin/stdout, and give each test a private temp
// directory that is removed afterwards. Every wait is bounded in time; a child that outlives
// its deadline is killed with its whole process group and the test fails.
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace fltest {

using namespace std::chrono_literals;
using Env = std::vector<std::pair<std::string, std::string>>;

struct RunResult {
  int exit_code = -1;  // -1 when the process was ended by a signal (or never ran)
  int signal = 0;      // the signal that ended it, 0 if it exited
  bool timed_out = false;
  std::string out;
  std::string err;
  // The shell's convention, which is also `faultline run`'s: status, or 128+signal.
  int status() const { return signal != 0 ? 128 + signal : exit_code; }
};

struct RunOptions {
  Env env;                                // added to (and overriding) the inherited environment
  std::optional<std::string> stdin_text;  // nullopt: stdin is /dev/null
  std::chrono::milliseconds timeout = 20s;
  std::string cwd;  // empty: the test's working directory
};

// Runs argv[0] (an absolute path; no PATH search) to completion. LD_PRELOAD and FAULTLINE_*
// from the test's own environment are never inherited: only `options.env` sets them.
RunResult run(const std::vector<std::string>& argv, const RunOptions& options = {});

// Human-readable command line, for failure messages.
std::string describe(const std::vector<std::string>& argv);
// A failure message with everything a reader needs to reproduce and diagnose.
std::string describe(const std::vector<std::string>& argv, const RunResult& result);

// A process running in the background (its own process group) with pipes on stdin, stdout
// and stderr. Destroying it kills whatever is still running.
class Background {
 public:
  Background() = default;
  ~Background();
  Background(const Background&) = delete;
  Background& operator=(const Background&) = delete;

  bool start(const std::vector<std::string>& argv, const RunOptions& options = {});
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }

  // Writes text to the process's stdin (a whole line: add the '\n' yourself).
  bool write_stdin(const std::string& text);
  void close_stdin();
  // Next full stdout line (without '\n') within the timeout; nullopt on timeout or EOF.
  std::optional<std::string> read_line(std::chrono::milliseconds timeout = 10s);
  // Reads stdout lines until one equals `marker`; returns the lines before it. `ok` reports
  // whether the marker was seen in time.
  std::vector<std::string> read_until(const std::string& marker, bool& ok,
                                      std::chrono::milliseconds timeout = 15s);
  // Closes stdin, waits up to `grace` for a normal exit, then SIGKILLs the group. Returns the
  // result with everything captured that the line reader did not consume.
  RunResult stop(std::chrono::milliseconds grace = 5s);
  const std::string& err() const { return err_; }

 private:
  // Reads whatever arrives within `timeout` into the buffers (closing a pipe at EOF).
  void pump(std::chrono::milliseconds timeout);

  pid_t pid_ = -1;
  int in_ = -1, out_ = -1, err_fd_ = -1;
  std::string out_buf_;
  std::string err_;
  std::string argv_text_;
};

// Creates a fresh directory /tmp/fl-it-XXXXXX; removes it recursively on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

bool write_file(const std::string& path, const std::string& content);
std::optional<std::string> read_file(const std::string& path);
bool file_exists(const std::string& path);
std::optional<std::uintmax_t> file_size(const std::string& path);
std::vector<std::string> split_lines(const std::string& text);
std::size_t count_substr(const std::string& text, const std::string& needle);

// A TCP port free on 127.0.0.1 right now, for a server that takes its port as an argument
// (redis-server, nginx, our own). The OS picks it; a race with another process taking it in
// between is harmless because every test checks its server's readiness before use.
int free_port();

// The INJECTED count of one fault from `faultline run`'s summary table on stderr (the column is
// found by its header, so the table may gain columns); nullopt when there is no such row.
std::optional<std::uint64_t> summary_injected(const std::string& run_stderr,
                                              const std::string& fault);
// The "injected" counter of one fault in `faultline status --json` output.
std::optional<std::uint64_t> status_json_injected(const std::string& json,
                                                  const std::string& fault);

// "fl-it-<tag>-<pid>-<n>": unique across tests and concurrent test processes.
std::string unique_session_name(const std::string& tag);

// Base fixture: a temp dir, the paths of the CLI and shim, and cleanup of the sessions a test
// names (their shared-memory blocks are removed even when the test fails half-way).
class IntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  std::string path(const std::string& name) const { return dir_ / name; }
  // A session name removed from /dev/shm at TearDown.
  std::string session(const std::string& tag);
  // `faultline ARGS...`
  RunResult faultline(const std::vector<std::string>& args, const RunOptions& options = {});

  static std::string cli();
  static std::string shim();

  TempDir dir_;
  std::vector<std::string> sessions_;
};

}  // namespace fltest
