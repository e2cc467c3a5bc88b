// The integration-test harness: see harness.h. Processes are started with fork/execve in their
// own process group so that a timeout can kill everything they started; all I/O goes through
// non-blocking pipes multiplexed with poll(2), so a child that fills one pipe while we wait on
// the other can never deadlock the test.
#include "harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

extern char** environ;

namespace fltest {
namespace {

using Clock = std::chrono::steady_clock;

// A write to a pipe whose reader has exited must be an EPIPE error, not the end of the test
// process. Children get the default disposition back before exec.
void ignore_sigpipe_once() {
  static std::atomic<bool> done{false};
  if (!done.exchange(true)) signal(SIGPIPE, SIG_IGN);
}

int remaining_ms(Clock::time_point deadline, int cap_ms) {
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  if (left <= 0) return 0;
  return static_cast<int>(left < cap_ms ? left : cap_ms);
}

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

void set_nonblocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

bool inherited_var_dropped(std::string_view entry, const Env& extra) {
  const auto eq = entry.find('=');
  const std::string_view name = entry.substr(0, eq);
  if (name == "LD_PRELOAD" || name.starts_with("FAULTLINE_")) return true;
  for (const auto& [key, value] : extra)
    if (name == key) return true;
  return false;
}

struct Child {
  pid_t pid = -1;
  int in = -1;   // parent's write end of the child's stdin, -1 when stdin is /dev/null
  int out = -1;  // parent's read ends
  int err = -1;
};

// Starts argv with pipes; on failure returns pid -1 and says why in `error`.
Child spawn(const std::vector<std::string>& argv, const RunOptions& options, bool stdin_pipe,
            std::string& error) {
  ignore_sigpipe_once();
  Child child;
  if (argv.empty() || argv[0].empty() || argv[0][0] != '/') {
    error = "argv[0] must be an absolute path: " + describe(argv);
    return child;
  }
  // Everything the child needs is prepared before fork: after fork only async-signal-safe
  // calls are made.
  std::vector<std::string> env_strings;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e)
    if (!inherited_var_dropped(*e, options.env)) env_strings.emplace_back(*e);
  for (const auto& [key, value] : options.env) env_strings.push_back(key + "=" + value);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_copy = argv;
  std::vector<char*> argvp;
  for (auto& s : argv_copy) argvp.push_back(s.data());
  argvp.push_back(nullptr);

  int in_pipe[2] = {-1, -1}, out_pipe[2] = {-1, -1}, err_pipe[2] = {-1, -1},
      exec_pipe[2] = {-1, -1};
  const auto close_all = [&] {
    for (int* p : {in_pipe, out_pipe, err_pipe, exec_pipe}) {
      close_fd(p[0]);
      close_fd(p[1]);
    }
  };
  if ((stdin_pipe && pipe2(in_pipe, O_CLOEXEC) != 0) || pipe2(out_pipe, O_CLOEXEC) != 0 ||
      pipe2(err_pipe, O_CLOEXEC) != 0 || pipe2(exec_pipe, O_CLOEXEC) != 0) {
    error = std::string("pipe2: ") + std::strerror(errno);
    close_all();
    return child;
  }
  const char* cwd = options.cwd.empty() ? nullptr : options.cwd.c_str();

  const pid_t pid = fork();
  if (pid < 0) {
    error = std::string("fork: ") + std::strerror(errno);
    close_all();
    return child;
  }
  if (pid == 0) {
    setpgid(0, 0);
    signal(SIGPIPE, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    int stdin_fd = stdin_pipe ? in_pipe[0] : open("/dev/null", O_RDONLY | O_CLOEXEC);
    int child_errno = 0;
    if (stdin_fd < 0 || dup2(stdin_fd, 0) < 0 || dup2(out_pipe[1], 1) < 0 ||
        dup2(err_pipe[1], 2) < 0 || (cwd != nullptr && chdir(cwd) != 0)) {
      child_errno = errno;
    } else {
      execve(argvp[0], argvp.data(), envp.data());
      child_errno = errno;
    }
    ssize_t ignored = ::write(exec_pipe[1], &child_errno, sizeof child_errno);
    (void)ignored;
    _exit(127);
  }
  setpgid(pid, pid);  // also from the parent: no window in which a kill misses the group
  close_fd(in_pipe[0]);
  close_fd(out_pipe[1]);
  close_fd(err_pipe[1]);
  close_fd(exec_pipe[1]);
  int child_errno = 0;
  ssize_t n;
  do {
    n = ::read(exec_pipe[0], &child_errno, sizeof child_errno);
  } while (n < 0 && errno == EINTR);
  close_fd(exec_pipe[0]);
  if (n == static_cast<ssize_t>(sizeof child_errno)) {
    error = "cannot execute " + describe(argv) + ": " + std::strerror(child_errno);
    int status;
    waitpid(pid, &status, 0);
    close_all();
    return child;
  }
  child.pid = pid;
  child.in = in_pipe[1];
  child.out = out_pipe[0];
  child.err = err_pipe[0];
  if (child.in >= 0) set_nonblocking(child.in);
  set_nonblocking(child.out);
  set_nonblocking(child.err);
  return child;
}

// Reads what is available from fd into buf; closes fd on EOF or error.
void drain(int& fd, std::string& buf) {
  char chunk[65536];
  for (int i = 0; i < 1024 && fd >= 0; ++i) {
    const ssize_t n = ::read(fd, chunk, sizeof chunk);
    if (n > 0) {
      buf.append(chunk, static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    close_fd(fd);  // EOF or a real error
  }
}

void record_status(int status, RunResult& result) {
  if (WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.signal = WTERMSIG(status);
  }
}

// Kills the group and reaps the leader (SIGKILL cannot be ignored, so the wait is short).
void kill_and_reap(pid_t pid, RunResult* result) {
  kill(-pid, SIGKILL);
  kill(pid, SIGKILL);
  int status = 0;
  pid_t r;
  do {
    r = waitpid(pid, &status, 0);
  } while (r < 0 && errno == EINTR);
  if (r == pid && result != nullptr) record_status(status, *result);
}

}  // namespace

std::string describe(const std::vector<std::string>& argv) {
  std::string text;
  for (const auto& a : argv) {
    if (!text.empty()) text += ' ';
    const bool plain = !a.empty() && a.find_first_of(" \t\n'\"$;&|<>*?()") == std::string::npos;
    text += plain ? a : "'" + a + "'";
  }
  return text;
}

std::string describe(const std::vector<std::string>& argv, const RunResult& result) {
  std::ostringstream s;
  s << "command: " << describe(argv) << "\n  exit_code=" << result.exit_code
    << " signal=" << result.signal << (result.timed_out ? " TIMED OUT" : "")
    << "\n  --- stdout ---\n"
    << result.out.substr(0, 4000) << "\n  --- stderr ---\n"
    << result.err.substr(0, 4000);
  return s.str();
}

RunResult run(const std::vector<std::string>& argv, const RunOptions& options) {
  RunResult result;
  std::string error;
  Child child = spawn(argv, options, options.stdin_text.has_value(), error);
  if (child.pid < 0) {
    ADD_FAILURE() << error;
    result.err = error;
    return result;
  }
  const std::string input = options.stdin_text.value_or("");
  std::size_t written = 0;
  if (child.in >= 0 && input.empty()) close_fd(child.in);

  const auto deadline = Clock::now() + options.timeout;
  bool reaped = false;
  Clock::time_point drain_deadline{};
  // Bounded: every iteration waits at most 50 ms and the loop ends at the deadline.
  while (true) {
    if (!reaped) {
      int status = 0;
      const pid_t r = waitpid(child.pid, &status, WNOHANG);
      if (r == child.pid) {
        record_status(status, result);
        reaped = true;
        close_fd(child.in);
        // Output still in the pipes is read; a grandchild holding them open is not waited for
        // long.
        drain_deadline = Clock::now() + 2s;
      }
    }
    if (child.out < 0 && child.err < 0 && reaped) break;
    if (reaped && Clock::now() >= drain_deadline) break;
    if (Clock::now() >= deadline) {
      result.timed_out = true;
      break;
    }
    pollfd fds[3];
    int nfds = 0;
    if (child.out >= 0) fds[nfds++] = {child.out, POLLIN, 0};
    if (child.err >= 0) fds[nfds++] = {child.err, POLLIN, 0};
    if (child.in >= 0) fds[nfds++] = {child.in, POLLOUT, 0};
    if (nfds > 0) {
      poll(fds, static_cast<nfds_t>(nfds), remaining_ms(deadline, 50));
    } else {
      std::this_thread::sleep_for(5ms);
    }
    drain(child.out, result.out);
    drain(child.err, result.err);
    if (child.in >= 0) {
      const ssize_t n = ::write(child.in, input.data() + written, input.size() - written);
      if (n > 0) written += static_cast<std::size_t>(n);
      if ((n < 0 && errno != EAGAIN && errno != EINTR) || written == input.size())
        close_fd(child.in);
    }
  }
  if (result.timed_out) {
    kill_and_reap(child.pid, nullptr);
    result.exit_code = -1;
    result.signal = 0;
    ADD_FAILURE() << "timed out after " << options.timeout.count() << " ms, killed\n"
                  << describe(argv, result);
  } else {
    // Stragglers of the group (daemonised grandchildren) must not outlive the test.
    kill(-child.pid, SIGKILL);
  }
  close_fd(child.in);
  close_fd(child.out);
  close_fd(child.err);
  return result;
}

// ---- Background -----------------------------------------------------------------------------

Background::~Background() {
  if (pid_ > 0) kill_and_reap(pid_, nullptr);
  pid_ = -1;
  close_fd(in_);
  close_fd(out_);
  close_fd(err_fd_);
}

bool Background::start(const std::vector<std::string>& argv, const RunOptions& options) {
  if (pid_ > 0) return false;
  std::string error;
  Child child = spawn(argv, options, true, error);
  if (child.pid < 0) {
    ADD_FAILURE() << error;
    return false;
  }
  pid_ = child.pid;
  in_ = child.in;
  out_ = child.out;
  err_fd_ = child.err;
  argv_text_ = describe(argv);
  return true;
}

bool Background::write_stdin(const std::string& text) {
  std::size_t written = 0;
  const auto deadline = Clock::now() + 5s;
  while (in_ >= 0 && written < text.size() && Clock::now() < deadline) {
    const ssize_t n = ::write(in_, text.data() + written, text.size() - written);
    if (n > 0) {
      written += static_cast<std::size_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      pollfd p{in_, POLLOUT, 0};
      poll(&p, 1, remaining_ms(deadline, 50));
      pump(0ms);  // keep the child's output flowing so it can keep reading
    } else {
      return false;
    }
  }
  return written == text.size();
}

void Background::close_stdin() { close_fd(in_); }

void Background::pump(std::chrono::milliseconds timeout) {
  pollfd fds[2];
  int nfds = 0;
  if (out_ >= 0) fds[nfds++] = {out_, POLLIN, 0};
  if (err_fd_ >= 0) fds[nfds++] = {err_fd_, POLLIN, 0};
  if (nfds == 0) return;
  poll(fds, static_cast<nfds_t>(nfds), static_cast<int>(timeout.count()));
  drain(out_, out_buf_);
  drain(err_fd_, err_);
}

std::optional<std::string> Background::read_line(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (true) {
    const auto nl = out_buf_.find('\n');
    if (nl != std::string::npos) {
      std::string line = out_buf_.substr(0, nl);
      out_buf_.erase(0, nl + 1);
      return line;
    }
    if (out_ < 0 || Clock::now() >= deadline) return std::nullopt;
    pump(std::chrono::milliseconds(remaining_ms(deadline, 50)));
  }
}

std::vector<std::string> Background::read_until(const std::string& marker, bool& ok,
                                                std::chrono::milliseconds timeout) {
  std::vector<std::string> lines;
  ok = false;
  const auto deadline = Clock::now() + timeout;
  for (int i = 0; i < 1'000'000; ++i) {
    const auto left = std::chrono::milliseconds(remaining_ms(deadline, 1'000'000));
    if (left.count() == 0) break;
    auto line = read_line(left);
    if (!line) break;
    if (*line == marker) {
      ok = true;
      break;
    }
    lines.push_back(std::move(*line));
  }
  return lines;
}

RunResult Background::stop(std::chrono::milliseconds grace) {
  RunResult result;
  close_stdin();
  if (pid_ <= 0) return result;
  const auto deadline = Clock::now() + grace;
  bool reaped = false;
  while (Clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      record_status(status, result);
      reaped = true;
      break;
    }
    pump(20ms);
  }
  if (!reaped) {
    result.timed_out = true;
    kill_and_reap(pid_, &result);
  }
  // Drain what is left (bounded: the writers are gone or killed).
  for (int i = 0; i < 100 && (out_ >= 0 || err_fd_ >= 0); ++i) pump(20ms);
  kill(-pid_, SIGKILL);
  pid_ = -1;
  close_fd(out_);
  close_fd(err_fd_);
  result.out = std::move(out_buf_);
  result.err = err_;
  out_buf_.clear();
  return result;
}

// ---- files and names ------------------------------------------------------------------------

TempDir::TempDir() {
  char tmpl[] = "/tmp/fl-it-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) {
    ADD_FAILURE() << "mkdtemp: " << std::strerror(errno);
    return;
  }
  path_ = tmpl;
}

TempDir::~TempDir() {
  if (path_.empty() || path_.rfind("/tmp/fl-it-", 0) != 0) return;
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

bool write_file(const std::string& path, const std::string& content) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << content;
  f.close();
  return !f.fail();
}

std::optional<std::string> read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return std::nullopt;
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

bool file_exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

std::optional<std::uintmax_t> file_size(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return std::nullopt;
  return static_cast<std::uintmax_t>(st.st_size);
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::string line;
  std::istringstream s(text);
  while (std::getline(s, line)) lines.push_back(line);
  return lines;
}

int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a {};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  int port = 0;
  if (bind(fd, reinterpret_cast<struct sockaddr*>(&a), sizeof a) == 0 &&
      getsockname(fd, reinterpret_cast<struct sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  close(fd);
  return port;
}

std::size_t count_substr(const std::string& text, const std::string& needle) {
  if (needle.empty()) return 0;
  std::size_t count = 0;
  for (std::size_t pos = text.find(needle); pos != std::string::npos;
       pos = text.find(needle, pos + needle.size()))
    ++count;
  return count;
}

namespace {
std::vector<std::string> tokens(const std::string& line) {
  std::vector<std::string> out;
  std::istringstream s(line);
  std::string word;
  while (s >> word) out.push_back(word);
  return out;
}

std::optional<std::uint64_t> parse_u64(const std::string& text) {
  if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos)
    return std::nullopt;
  return std::stoull(text);
}
}  // namespace

std::optional<std::uint64_t> summary_injected(const std::string& run_stderr,
                                              const std::string& fault) {
  constexpr std::size_t kNone = static_cast<std::size_t>(-1);
  std::size_t column = kNone;  // of INJECTED, once the header line is found
  for (const auto& line : split_lines(run_stderr)) {
    const auto words = tokens(line);
    if (words.empty()) continue;
    if (column == kNone) {
      if (words[0] != "FAULT" && words[0] != "fault") continue;
      for (std::size_t i = 0; i < words.size(); ++i)
        if (words[i] == "INJECTED" || words[i] == "injected") column = i;
      continue;
    }
    if (words[0] == fault && column < words.size()) return parse_u64(words[column]);
  }
  return std::nullopt;
}

std::optional<std::uint64_t> status_json_injected(const std::string& json,
                                                  const std::string& fault) {
  const std::string key = "{\"name\":\"" + fault + "\"";
  const auto start = json.find(key);
  if (start == std::string::npos) return std::nullopt;
  const auto end = json.find('}', start);
  const std::string object = json.substr(start, end == std::string::npos ? end : end - start);
  const std::string field = "\"injected\":";
  const auto at = object.find(field);
  if (at == std::string::npos) return std::nullopt;
  const auto digits_start = at + field.size();
  const auto digits_end = object.find_first_not_of("0123456789", digits_start);
  return parse_u64(object.substr(digits_start, digits_end == std::string::npos
                                                   ? std::string::npos
                                                   : digits_end - digits_start));
}

std::string unique_session_name(const std::string& tag) {
  static std::atomic<int> counter{0};
  return "fl-it-" + tag + "-" + std::to_string(getpid()) + "-" + std::to_string(counter++);
}

// ---- fixture --------------------------------------------------------------------------------

void IntegrationTest::SetUp() {
  ignore_sigpipe_once();
  ASSERT_FALSE(dir_.path().empty());
  ASSERT_TRUE(file_exists(cli())) << "the CLI is not built: " << cli();
  ASSERT_TRUE(file_exists(shim())) << "the shim is not built: " << shim();
}

void IntegrationTest::TearDown() {
  for (const auto& name : sessions_) ::unlink(("/dev/shm/faultline." + name).c_str());
}

std::string IntegrationTest::session(const std::string& tag) {
  sessions_.push_back(unique_session_name(tag));
  return sessions_.back();
}

RunResult IntegrationTest::faultline(const std::vector<std::string>& args,
                                     const RunOptions& options) {
  std::vector<std::string> argv{cli()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv, options);
}

std::string IntegrationTest::cli() { return FAULTLINE_CLI; }
std::string IntegrationTest::shim() { return FAULTLINE_SHIM; }

}  // namespace fltest
