// faultline::Session, the C++ API for tests (include/faultline/faultline.hpp): a thin owner of
// one launched program and its session, over the same control code the `faultline` command
// runs — launcher.h (resolve, vet, find the shim, environment, spawn), the policy compiler,
// edits.h (enable/disable/set/add/remove) and inspect.h (counters, events). What is its own:
// capturing the program's output on a reader thread (a test that does not read would
// otherwise let the program block on a full pipe), the readiness waits, and stopping the
// process group. The thread lives in the test process, never in the target.
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <string_view>
#include <thread>
#include <utility>

#include "calls/calls.h"
#include "controller/control_error.h"
#include "controller/edits.h"
#include "controller/inspect.h"
#include "controller/launcher.h"
#include "controller/launcher_backend.h"
#include "controller/seccomp/serve_detached.h"
#include "faultline/faultline.hpp"
#include "policy/policy.h"
#include "session/session.h"

#ifndef FAULTLINE_INSTALLED_SHIM
#define FAULTLINE_INSTALLED_SHIM "/usr/local/lib/faultline/libfaultline.so"
#endif

namespace faultline {
inline namespace api_v1 {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr milliseconds kPollSlice{50};
// How long output may still arrive after the program exited (a grandchild holding the pipe).
constexpr milliseconds kExitDrain{200};
constexpr std::size_t kTailBytes = 2000;

Errc public_code(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kUsage:
      return Errc::bad_argument;
    case ErrorKind::kBadPolicy:
      return Errc::bad_policy;
    case ErrorKind::kNoSession:
    case ErrorKind::kSession:
      return Errc::session;
    case ErrorKind::kNoFault:
      return Errc::no_such_fault;
    case ErrorKind::kCommandNotFound:
      return Errc::command_not_found;
    case ErrorKind::kCannotExecute:
      return Errc::cannot_execute;
    case ErrorKind::kUnreachable:
      return Errc::unreachable;
    case ErrorKind::kNoShim:
      return Errc::no_shim;
    case ErrorKind::kSystem:
      return Errc::system;
  }
  return Errc::system;
}

// Runs a control-library operation, turning its ControlError into the public Error.
template <class F>
auto translated(F&& operation) -> decltype(operation()) {
  try {
    return operation();
  } catch (const ControlError& error) {
    throw Error(public_code(error.kind()), error.status(), error.what());
  }
}

[[noreturn]] void fail(Errc code, const std::string& message) {
  throw Error(code, code == Errc::bad_argument ? kStatusUsage : kStatusNothing, message);
}

std::string tail(const std::string& text) {
  return text.size() <= kTailBytes ? text : "..." + text.substr(text.size() - kTailBytes);
}

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

Policy compile(const Options& options, std::vector<std::string>& warnings) {
  if (!options.policy_file.empty() && !options.policy.empty())
    fail(Errc::bad_argument, "give the policy as a file or as text, not both");
  if (options.policy_file.empty() && options.policy.empty()) return Policy{};
  CompileResult result = options.policy_file.empty()
                             ? compile_policy_string(options.policy, "<policy>")
                             : compile_policy_file(options.policy_file);
  if (result.error) throw Error(Errc::bad_policy, kStatusUsage, result.error->to_string());
  warnings.insert(warnings.end(), result.policy->warnings.begin(), result.policy->warnings.end());
  return std::move(*result.policy);
}

// The shim of the first `faultline` on PATH, where that command looks for its own (its
// directory, then ../lib/faultline). A consumer built with pkg-config, which records no shim,
// then preloads the shim of the prefix the packages were installed in, wherever that is,
// and not only the prefix this library was configured for.
void add_path_cli_shims(std::vector<std::string>& defaults) {
  const char* path = std::getenv("PATH");
  if (path == nullptr) return;
  std::string_view rest(path);
  for (;;) {
    const auto colon = rest.find(':');
    const std::string dir(rest.substr(0, colon));
    const std::string cli = (dir.empty() ? std::string(".") : dir) + "/faultline";
    if (access(cli.c_str(), X_OK) == 0) {
      std::error_code error;
      const auto real = std::filesystem::canonical(cli, error);
      if (!error) {
        const std::string bin = real.parent_path().string();
        defaults.push_back(bin + "/libfaultline.so");
        defaults.push_back(bin + "/../lib/faultline/libfaultline.so");
      }
      return;
    }
    if (colon == std::string_view::npos) return;
    rest.remove_prefix(colon + 1);
  }
}

std::string choose_shim(const Options& options, const std::string& recorded_shim) {
  if (!options.shim.empty()) return launch::named_shim(options.shim, "shim ");
  std::vector<std::string> defaults;
  if (!recorded_shim.empty()) defaults.push_back(recorded_shim);
  defaults.emplace_back(FAULTLINE_INSTALLED_SHIM);
  add_path_cli_shims(defaults);
  return launch::find_shim(defaults);
}

// This process's environment with the options' variables set over it.
std::vector<std::string> base_environment(const Environment& overrides) {
  std::vector<std::string> env;
  for (const std::string& entry : launch::current_environment()) {
    const std::string_view key = std::string_view(entry).substr(0, entry.find('='));
    const bool replaced = std::any_of(overrides.begin(), overrides.end(),
                                      [&](const auto& kv) { return kv.first == key; });
    if (!replaced) env.push_back(entry);
  }
  for (const auto& [key, value] : overrides) {
    if (key.empty() || key.find('=') != std::string::npos)
      fail(Errc::bad_argument, "bad environment variable name '" + key + "'");
    env.push_back(key + "=" + value);
  }
  return env;
}

std::string call_text(std::uint32_t id) {
  return id < kCallCount ? std::string(call_info(id).name) : "#" + std::to_string(id);
}

Event public_event(const RingEvent& e) {
  Event out;
  out.seq = e.index;
  out.ts_ns = e.ts_ns;
  out.pid = static_cast<pid_t>(e.pid);
  out.tid = static_cast<pid_t>(e.tid);
  out.process = e.process;
  out.fault = e.fault_name;
  out.call = call_text(e.call);
  out.action = std::string(action_name(e.action));
  if (e.action == kActError) {
    const std::string_view name = errno_name(e.error);
    out.error = name.empty() ? std::to_string(e.error) : std::string(name);
  }
  out.fd = e.fd;
  const std::string_view key = event_text_key(e);
  (key == "addr" ? out.addr : key == "host" ? out.host : out.path) = e.path;
  if (e.present & kEventHasSize) out.size = e.size;
  if (e.present & kEventHasBytes) out.bytes = e.bytes;
  out.delay_ns = e.delay_ns;
  return out;
}

FaultCounters public_counters(const FaultView& view) {
  return {std::string(fixed_text(view.spec.name)), view.enabled, view.seen, view.matched,
          view.injected};
}

// Connects to host:port once, waiting at most `timeout`. True when the connection was made.
bool try_connect(const std::string& host, std::uint16_t port, milliseconds timeout) {
  sockaddr_storage address{};
  socklen_t length = 0;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&address);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&address);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    length = sizeof *v4;
  } else if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    length = sizeof *v6;
  } else {
    fail(Errc::bad_argument, "wait_for_port: '" + host + "' is not a numeric address");
  }
  const int fd = socket(address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw Error(Errc::system, kStatusUsage, std::string("socket: ") + strerror(errno));
  bool connected = connect(fd, reinterpret_cast<sockaddr*>(&address), length) == 0;
  if (!connected && errno == EINPROGRESS) {
    pollfd p{fd, POLLOUT, 0};
    if (poll(&p, 1, static_cast<int>(timeout.count())) == 1) {
      int error = 0;
      socklen_t size = sizeof error;
      connected = getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &size) == 0 && error == 0;
    }
  }
  ::close(fd);
  return connected;
}

}  // namespace

// ---- errors ----------------------------------------------------------------------------------

const char* to_string(Errc code) {
  switch (code) {
    case Errc::bad_policy:
      return "bad_policy";
    case Errc::bad_argument:
      return "bad_argument";
    case Errc::command_not_found:
      return "command_not_found";
    case Errc::cannot_execute:
      return "cannot_execute";
    case Errc::unreachable:
      return "unreachable";
    case Errc::no_shim:
      return "no_shim";
    case Errc::session:
      return "session";
    case Errc::no_such_fault:
      return "no_such_fault";
    case Errc::timeout:
      return "timeout";
    case Errc::exited:
      return "exited";
    case Errc::system:
      return "system";
  }
  return "unknown";
}

Error::Error(Errc code, int exit_status, const std::string& what)
    : std::runtime_error(what), code_(code), exit_status_(exit_status) {}

// ---- the session's state -----------------------------------------------------------------------

struct Session::Impl {
  Options options;
  std::string recorded_shim;  // FAULTLINE_SHIM_PATH of the calling code, or ""
  std::string name;
  std::uint64_t seed = 0;
  std::vector<std::string> warnings;
  std::unique_ptr<ControlSession> control;
  pid_t pid = -1;
  bool seccomp = false;            // the program runs under the seccomp backend
  std::optional<int> exit_status;  // set once reaped
  Clock::time_point exited_at{};

  // Captured output, filled by the reader thread.
  mutable std::mutex mutex;
  std::condition_variable changed;
  std::string out, err;
  std::size_t consumed = 0;  // stdout bytes already looked at by a wait (whole lines)
  bool reader_done = true;
  std::atomic<bool> stop_reader{false};
  std::thread reader;

  ~Impl() { shutdown(options.stop_grace); }

  void start() {
    if (options.command.empty()) fail(Errc::bad_argument, "no command to run");
    Policy policy = compile(options, warnings);  // not const: seccomp widens @fs calls
    translated([&] {
      seed = launch::choose_seed(options.seed, policy);
      name = launch::choose_session_name(options.session);
      const std::string program = launch::resolve_command(options.command.front());
      const std::string shim = choose_shim(options, recorded_shim);
      // The backend as `faultline run` chooses it (launcher_backend.h).
      seccomp = launch::use_seccomp(options.backend, policy, program, "the 'backend' option");
      launch::vet_program(program, shim, warnings, seccomp);
      const std::vector<std::string> base = base_environment(options.env);
      if (!seccomp)
        launch::check_not_disabled(base, !options.policy.empty() || !options.policy_file.empty(),
                                   warnings);
      std::optional<launch::SeccompPlan> plan;
      if (seccomp) plan = launch::plan_seccomp(policy);
      const std::vector<std::string> env =
          seccomp ? launch::seccomp_environment(base) : launch::child_environment(base, shim, name);
      const std::optional<std::string> log =
          launch::log_path_override(options.log, "the 'log' option");
      control = launch::create_session(name, policy);
      control->set_seed(seed);
      if (log) control->set_log_path(*log);
      if (plan) {
        launch::mark_seccomp(*control, *plan);
        if (plan->families == 0)
          warnings.push_back(
              "seccomp backend: the policy names no fault, so no system call is trapped and "
              "none can be faulted in this session (a filter cannot change after the program "
              "started: name the families in the policy, disabled if need be)");
      }
      spawn(program, env, policy.deny_io_uring, plan ? &*plan : nullptr);
      return 0;
    });
  }

  // The descriptors of one spawn; whatever is still held when it ends is closed.
  struct SpawnFds {
    int child_in = -1, child_out = -1, child_err = -1;  // the program's ends
    int out_read = -1, err_read = -1;                   // ours, when captured
    ~SpawnFds() {
      for (int* fd : {&child_in, &child_out, &child_err, &out_read, &err_read}) close_fd(*fd);
    }
  };

  // The program's end of one output stream; `ours` gets the read end when captured.
  static int output_fd(Output mode, int& ours) {
    if (mode == Output::inherit) return -1;
    int fds[2] = {-1, -1};
    if (mode == Output::discard)
      fds[1] = open("/dev/null", O_WRONLY | O_CLOEXEC);
    else if (pipe2(fds, O_CLOEXEC) == 0)
      ours = fds[0];
    if (fds[1] < 0)
      throw Error(Errc::system, kStatusUsage, std::string("pipe: ") + strerror(errno));
    return fds[1];
  }

  // With `plan`, the program runs under its filter, answered by a server process of its own
  // (seccomp/serve_detached.h): this process may hold several sessions at once, and the
  // engine that answers serves one per process.
  void spawn(const std::string& program, const std::vector<std::string>& env, bool deny_io_uring,
             const launch::SeccompPlan* plan) {
    SpawnFds fds;
    fds.child_in = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fds.child_in < 0)
      throw Error(Errc::system, kStatusUsage, std::string("/dev/null: ") + strerror(errno));
    fds.child_out = output_fd(options.stdout_mode, fds.out_read);
    fds.child_err = output_fd(options.stderr_mode, fds.err_read);
    launch::SpawnOptions spawn_options;
    spawn_options.new_process_group = true;
    spawn_options.stdin_fd = fds.child_in;
    spawn_options.stdout_fd = fds.child_out;
    spawn_options.stderr_fd = fds.child_err;
    spawn_options.cwd = options.cwd;
    spawn_options.deny_io_uring = deny_io_uring;
    sock_fprog filter{};
    launch::SeccompSpawn spawn_filter;
    if (plan != nullptr) {
      filter.len = static_cast<unsigned short>(plan->filter.size());
      filter.filter = const_cast<sock_filter*>(plan->filter.data());
      spawn_filter.filter = &filter;
      spawn_options.seccomp = &spawn_filter;
    }
    pid = launch::spawn(program, options.command, env, spawn_options);
    if (plan != nullptr) serve(spawn_filter);
    if (fds.out_read >= 0 || fds.err_read >= 0) {
      reader_done = false;
      const int out_fd = std::exchange(fds.out_read, -1);
      const int err_fd = std::exchange(fds.err_read, -1);
      reader = std::thread([this, out_fd, err_fd] { read_output(out_fd, err_fd); });
    }
  }

  // Hands the listener to the program's server process. The program's trapped calls wait for
  // it (it may already be making them); without one it cannot run faithfully: it is ended.
  void serve(const launch::SeccompSpawn& spawn_filter) {
    const int member = control->register_pid(pid);
    if (const int error =
            seccomp::serve_in_own_process(spawn_filter.listener, control->block(), member, pid);
        error != 0) {
      kill(-pid, SIGKILL);
      exit_status = launch::exit_status(launch::wait_for(pid, 0));
      exited_at = Clock::now();
      throw Error(
          Errc::system, kStatusUsage,
          std::string("the seccomp backend cannot start its server: fork: ") + strerror(error));
    }
    if (!spawn_filter.wait_killable)
      warnings.push_back(
          "this kernel has no SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (Linux 5.19): a signal "
          "reaching a held call (a delay) cuts the hold short, and the program restarts the "
          "call, which is then decided again");
  }

  // The reader thread: both pipes until EOF (or until told to stop), in 50 ms slices.
  void read_output(int out_fd, int err_fd) {
    char chunk[16384];
    while (!stop_reader.load() && (out_fd >= 0 || err_fd >= 0)) {
      pollfd fds[2];
      int* owners[2];
      nfds_t n = 0;
      for (int* fd : {&out_fd, &err_fd})
        if (*fd >= 0) {
          owners[n] = fd;
          fds[n++] = {*fd, POLLIN, 0};
        }
      if (poll(fds, n, static_cast<int>(kPollSlice.count())) <= 0) continue;
      for (nfds_t i = 0; i < n; ++i) {
        if (fds[i].revents == 0) continue;
        const ssize_t got = ::read(fds[i].fd, chunk, sizeof chunk);
        if (got < 0 && errno == EINTR) continue;
        std::lock_guard lock(mutex);
        if (got > 0)
          (owners[i] == &out_fd ? out : err).append(chunk, static_cast<std::size_t>(got));
        else
          close_fd(*owners[i]);
        changed.notify_all();
      }
    }
    close_fd(out_fd);
    close_fd(err_fd);
    std::lock_guard lock(mutex);
    reader_done = true;
    changed.notify_all();
  }

  // Reaps the program if it has exited. True while it runs.
  // When it has, what is left of its process group (background children) is killed first:
  // while the leader is not yet reaped its pid cannot be reused, so the signal cannot reach
  // an unrelated process group.
  bool poll_running() {
    if (exit_status) return false;
    if (pid <= 0) return false;
    siginfo_t info{};
    int rc;
    do rc = waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT);
    while (rc < 0 && errno == EINTR);
    if (rc == 0 && info.si_pid == 0) return true;  // still running
    kill(-pid, SIGKILL);
    exit_status = launch::exit_status(translated([&] { return launch::wait_for(pid, 0); }));
    exited_at = Clock::now();
    return false;
  }

  std::string exit_text() const {
    std::lock_guard lock(mutex);
    return "the program (" + options.command.front() + ", pid " + std::to_string(pid) +
           ") exited with status " + std::to_string(exit_status.value_or(-1)) +
           (err.empty() ? "" : "; its stderr ended with:\n" + tail(err));
  }

  // True once no more output can be expected from an exited program.
  bool output_finished() {
    if (poll_running()) return false;
    std::lock_guard lock(mutex);
    return reader_done || Clock::now() - exited_at > kExitDrain;
  }

  // The first stdout line after the consumed ones that `matches`; consumes up to it.
  template <class Predicate>
  std::string wait_for_line(Predicate&& matches, milliseconds timeout) {
    if (options.stdout_mode != Output::capture)
      fail(Errc::bad_argument, "waiting for a line needs stdout_mode = Output::capture");
    const auto deadline = Clock::now() + timeout;
    // Bounded: each pass waits at most kPollSlice, until the deadline or the program's end.
    while (true) {
      // Asked before the lines are scanned: once true, everything the program wrote is in.
      const bool finished = output_finished();
      std::unique_lock lock(mutex);
      for (std::size_t nl; (nl = out.find('\n', consumed)) != std::string::npos;) {
        std::string line = out.substr(consumed, nl - consumed);
        consumed = nl + 1;
        if (matches(line)) return line;
      }
      if (finished) {
        // A last line without '\n' counts too: the program has said all it will say.
        std::string line = out.substr(consumed);
        consumed = out.size();
        if (!line.empty() && matches(line)) return line;
        lock.unlock();
        fail(Errc::exited, "waiting for a line on stdout: " + exit_text());
      }
      if (Clock::now() >= deadline)
        throw Error(Errc::timeout, kStatusNothing,
                    "no matching stdout line within " + std::to_string(timeout.count()) +
                        " ms; stdout so far:\n" + tail(out) + "\nstderr so far:\n" + tail(err));
      changed.wait_for(lock, kPollSlice);
    }
  }

  // After the program exited: until the reader has everything it wrote (EOF on the pipes), or
  // kExitDrain passed (a grandchild may hold them open).
  void drain_output() {
    std::unique_lock lock(mutex);
    changed.wait_until(lock, exited_at + kExitDrain, [&] { return reader_done; });
  }

  int stop(milliseconds grace) {
    if (pid <= 0) return exit_status.value_or(-1);
    if (poll_running()) {
      kill(-pid, SIGTERM);
      const auto deadline = Clock::now() + grace;
      while (poll_running() && Clock::now() < deadline)
        std::this_thread::sleep_for(milliseconds(10));
      if (poll_running()) {
        kill(-pid, SIGKILL);
        exit_status = launch::exit_status(launch::wait_for(pid, 0));
        exited_at = Clock::now();
      }
    }
    drain_output();
    return *exit_status;
  }

  void shutdown(milliseconds grace) noexcept {
    try {
      stop(grace);
    } catch (...) {  // a destructor must not throw; waitpid can only fail on a foreign reap
    }
    stop_reader.store(true);
    if (reader.joinable()) reader.join();
    if (control) {
      // The program's process group is gone (stop killed it). A process that left the group
      // (setsid: a daemon) still runs under the session: the faults a test armed must not
      // outlive its Session, so the session is panicked for it, and kept (reachable by
      // `faultline status`, swept by `faultline sessions` once it is gone).
      // Members still in the group were sent SIGKILL and die in moments; wait (bounded) so
      // as not to take them for escaped.
      launch::register_stray_members(*control);
      const auto deadline = Clock::now() + std::chrono::seconds(1);
      const auto dying = [&] {
        for (pid_t member : control->live_pids())
          if (member != getpid() && pid > 0 && getpgid(member) == pid) return true;
        return false;
      };
      while (dying() && Clock::now() < deadline) std::this_thread::sleep_for(milliseconds(5));
      // Under the seccomp backend no process registers itself: one that left the group is no
      // member, yet still holds the filter and its server the block. Panicked, its calls run
      // unfaulted until it ends, as after `faultline run`.
      if (seccomp) control->panic();
      if (!control->leave(getpid()).empty()) control->panic();
      control.reset();
    }
  }
};

// ---- Session ---------------------------------------------------------------------------------

Session::Session(Options options, const char* recorded_shim) : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
  impl_->recorded_shim = recorded_shim != nullptr ? recorded_shim : "";
  // On a throw, impl_'s destructor stops whatever started and removes the session.
  impl_->start();
}

Session::~Session() = default;
Session::Session(Session&& other) noexcept = default;
Session& Session::operator=(Session&& other) noexcept = default;

Session::Impl& Session::impl() const {
  if (!impl_) fail(Errc::bad_argument, "use of a moved-from faultline::Session");
  return *impl_;
}

const std::string& Session::name() const { return impl().name; }
pid_t Session::pid() const { return impl().pid; }
std::uint64_t Session::seed() const { return impl().seed; }
const std::vector<std::string>& Session::warnings() const { return impl().warnings; }

// ---- readiness ---------------------------------------------------------------------------------

void Session::wait_for_port(std::uint16_t port, milliseconds timeout, const std::string& host) {
  Impl& s = impl();
  const auto deadline = Clock::now() + timeout;
  // Bounded: every attempt takes at most kPollSlice plus a short pause, until the deadline.
  while (true) {
    if (!s.poll_running())
      fail(Errc::exited, "waiting for port " + std::to_string(port) + ": " + s.exit_text());
    if (try_connect(host, port, kPollSlice)) return;
    if (Clock::now() >= deadline)
      throw Error(Errc::timeout, kStatusNothing,
                  "nothing accepted connections on " + host + ":" + std::to_string(port) +
                      " within " + std::to_string(timeout.count()) + " ms");
    std::this_thread::sleep_for(milliseconds(20));
  }
}

std::vector<std::string> Session::wait_for_match(const std::regex& pattern, milliseconds timeout) {
  std::vector<std::string> groups;
  impl().wait_for_line(
      [&](const std::string& line) {
        std::smatch match;
        if (!std::regex_search(line, match, pattern)) return false;
        groups.assign(match.begin(), match.end());
        return true;
      },
      timeout);
  return groups;
}

std::string Session::wait_for_line(std::string_view text, milliseconds timeout) {
  return impl().wait_for_line(
      [&](const std::string& candidate) { return candidate.find(text) != std::string::npos; },
      timeout);
}

std::string Session::stdout_text() const {
  Impl& s = impl();
  std::lock_guard lock(s.mutex);
  return s.out;
}

std::string Session::stderr_text() const {
  Impl& s = impl();
  std::lock_guard lock(s.mutex);
  return s.err;
}

// ---- live control ------------------------------------------------------------------------------

void Session::enable(const std::string& fault) {
  translated([&] { return edit_faults(*impl().control, FaultEdit::kEnable, {fault}); });
}

void Session::disable(const std::string& fault) {
  translated([&] { return edit_faults(*impl().control, FaultEdit::kDisable, {fault}); });
}

void Session::remove(const std::string& fault) {
  translated([&] { return edit_faults(*impl().control, FaultEdit::kRemove, {fault}); });
}

std::vector<std::string> Session::set(const std::string& fault,
                                      const std::vector<std::string>& settings) {
  if (settings.empty()) fail(Errc::bad_argument, "set: no KEY=VALUE settings");
  return translated([&] { return set_fault(*impl().control, fault, settings).warnings; });
}

std::vector<std::string> Session::set(const std::string& fault, const std::string& key,
                                      const std::string& value) {
  return set(fault, std::vector<std::string>{key + "=" + value});
}

void Session::add(std::string_view toml_faults) {
  Impl& s = impl();
  CompileResult result = compile_fault_snippet(toml_faults, "<faults>");
  if (result.error) throw Error(Errc::bad_policy, kStatusUsage, result.error->to_string());
  if (result.policy->faults.empty()) fail(Errc::bad_argument, "add: no [[fault]] tables");
  s.warnings.insert(s.warnings.end(), result.policy->warnings.begin(),
                    result.policy->warnings.end());
  translated([&] { return add_faults(*s.control, result.policy->faults); });
}

void Session::panic() { impl().control->panic(); }
void Session::resume() { impl().control->resume(); }

// ---- reading -----------------------------------------------------------------------------------

FaultCounters Session::counters(const std::string& fault) const {
  const ControlSession& control = *impl().control;
  for (const FaultView& view : read_faults(control))
    if (fixed_text(view.spec.name) == fault) return public_counters(view);
  return translated([&] {
    require_fault(control, fault);  // throws with the CLI's message
    return FaultCounters{};
  });
}

std::vector<FaultCounters> Session::faults() const {
  std::vector<FaultCounters> out;
  for (const FaultView& view : read_faults(*impl().control)) out.push_back(public_counters(view));
  return out;
}

std::uint64_t Session::injected_total() const {
  return read_state(impl().control->block()).injected_total;
}

std::vector<Event> Session::events() const {
  const ControlBlock& block = impl().control->block();
  EventCursor cursor;
  const std::uint64_t head = block.header.event_head.load(std::memory_order_acquire);
  cursor.next = head > kEventSlots ? head - kEventSlots : 0;
  std::vector<RingEvent> raw;
  read_new_events(block, cursor, true, raw);
  std::vector<Event> out;
  for (const auto& e : raw) out.push_back(public_event(e));
  return out;
}

FaultCounters Session::wait_for_injections(const std::string& fault, std::uint64_t count,
                                           milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (true) {
    const FaultCounters now = counters(fault);
    if (now.injected >= count) return now;
    if (Clock::now() >= deadline)
      throw Error(Errc::timeout, kStatusNothing,
                  "fault '" + fault + "' injected " + std::to_string(now.injected) +
                      " times, not " + std::to_string(count) + ", within " +
                      std::to_string(timeout.count()) + " ms (seen " + std::to_string(now.seen) +
                      ", matched " + std::to_string(now.matched) + ")");
    if (!impl().poll_running())
      fail(Errc::exited, "waiting for injections of '" + fault + "': " + impl().exit_text());
    std::this_thread::sleep_for(milliseconds(10));
  }
}

// ---- the program -------------------------------------------------------------------------------

bool Session::running() { return impl().poll_running(); }

std::optional<int> Session::wait(milliseconds timeout) {
  Impl& s = impl();
  const auto deadline = Clock::now() + timeout;
  while (s.poll_running()) {
    if (Clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(milliseconds(10));
  }
  s.drain_output();
  return s.exit_status;
}

int Session::stop(milliseconds grace) { return impl().stop(grace); }

}  // namespace api_v1
}  // namespace faultline
