// `faultline experiment run`: services up in order (each in its own session), probes on their
// own threads, the steady state proven, the steps applied on time, the emergency stop watched
// from the probe threads themselves (so it reacts within one probe result, not one main-loop
// tick), then verdicts, measures and the journal. Every process started here is in its own
// process group and is stopped by the Services destructor, however the run ends.
#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <linux/filter.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <set>
#include <thread>

#include "controller/control_error.h"
#include "controller/durability/cut.h"
#include "controller/edits.h"
#include "controller/experiment/experiment.h"
#include "controller/experiment/journal.h"
#include "controller/experiment/probes.h"
#include "controller/inspect.h"
#include "controller/launcher.h"
#include "controller/launcher_backend.h"
#include "controller/seccomp/serve_detached.h"
#include "policy/policy.h"
#include "session/session.h"

namespace faultline::experiment {
namespace {

using json = nlohmann::json;

std::string secs(std::int64_t ns) { return fmt::format("{:.3f}s", ns / 1e9); }

// sigtimedwait on the stop signals for up to `ms`: true when one came.
bool stop_signal(int ms, int& which) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  const timespec wait{0, ms * 1'000'000L};
  which = sigtimedwait(&set, nullptr, &wait);
  return which > 0;
}

struct Result {
  std::int64_t t = 0;  // start, ns since the run began
  std::int64_t latency = 0;
  bool ok = false;
  std::string reason;
};

struct ServiceEvent {
  std::int64_t t;
  std::string service, kind, detail;
};

struct FaultWindow {
  std::string service, fault;
  std::int64_t start = 0, end = -1;
  std::uint64_t injected_at_start = 0, injected = 0;
};

struct Running {
  const Service* spec = nullptr;
  std::unique_ptr<ControlSession> session;
  std::uint64_t seed = 0;
  pid_t pid = -1;
  std::string out_path, err_path;
  std::int64_t restart_at = -1;
  int restarts = 0;
  bool killed_by_step = false;
  std::vector<std::string> policy_enabled;  // faults the policy loads enabled
  bool deny_io_uring = false;               // [target] io_uring = "deny", kept for restarts
  std::string undo_dir;                     // [durability]: where its undo log is kept
  // The seccomp backend's filter (launcher_backend.h), kept for restarts; none: the preload.
  std::optional<launch::SeccompPlan> seccomp;
};

class Runner {
 public:
  Runner(const Experiment& e, const RunOptions& o) : e_(e), o_(o) {}
  ~Runner() { teardown(); }
  int run();

 private:
  std::int64_t now() const { return monotonic_ns() - start_mono_; }
  void line(const std::string& text) {
    if (o_.quiet) return;
    std::lock_guard lock(print_mutex_);
    fmt::print("[{:>9}] {}\n", t0_ >= 0 ? fmt::format("{:+.3f}s", (now() - t0_) / 1e9) : "setup",
               text);
    std::fflush(stdout);
  }
  void event(const std::string& service, const std::string& kind, const std::string& detail) {
    {
      std::lock_guard lock(data_mutex_);
      events_.push_back({now(), service, kind, detail});
    }
    line(fmt::format("{} {}{}", service, kind, detail.empty() ? "" : ": " + detail));
  }

  bool start_service(Running& r, bool restart);
  bool wait_ready(Running& r);
  void probe_loop(std::size_t index);
  void check_stop(std::size_t probe, const Result& r);
  void emergency_stop(const std::string& reason, std::int64_t crossing);
  void reap();
  // A power cut (a step, a `powercut` fault of its policy, `faultline powercut`) ended the
  // service: what is left of its session dies, its tracked files go back to their durable
  // state, and tracking starts afresh for a restart.
  void finish_cut(Running& r);
  void apply_step(std::size_t index);
  // Opens a disruption when the first thing becomes active, closes it (a lift) when the last
  // one ends.
  void update_disruption();
  void sample_faults();
  void open_window(Running& r, const std::string& fault);
  void close_window(const std::string& service, const std::string& fault);
  Running* service(const std::string& name);
  struct Eval {
    bool held = false;
    std::string value;  // "success 0.98, p99 120ms over 42 results"
    double success = 0;
  };
  Eval evaluate(const Clause& c, std::int64_t from, std::int64_t to) const;
  bool steady_at(std::int64_t t) const;
  void teardown();
  void stop_services();
  void run_rollbacks();
  json journal(int exit_code, const std::string& outcome) const;

  const Experiment& e_;
  const RunOptions& o_;
  std::int64_t start_mono_ = monotonic_ns();
  std::int64_t start_real_ = realtime_ns();
  std::atomic<std::int64_t> t0_{-1};  // the steady state first held (read by probe threads)
  std::int64_t probes_start_ = 0;
  std::string logs_;
  std::vector<Running> services_;
  std::vector<std::vector<Result>> results_;
  std::vector<ServiceEvent> events_;
  std::vector<json> steps_done_;
  std::vector<FaultWindow> windows_;
  std::vector<json> samples_;
  std::vector<std::pair<std::int64_t, std::int64_t>> disruptions_;  // [start, end)
  std::set<std::string> active_;  // "svc:fault", "paused:svc", "down:svc"
  std::vector<std::pair<std::size_t, std::int64_t>> lifts_;  // (step index or npos, t)
  std::vector<std::thread> probe_threads_, throttles_;
  std::vector<std::pair<std::int64_t, std::string>> resumes_;  // pause ends: (t, service)
  mutable std::mutex data_mutex_;
  std::mutex print_mutex_, session_mutex_, wake_mutex_;
  std::condition_variable wake_;
  std::atomic<bool> finishing_{false};  // probes end
  std::atomic<bool> stopped_{false};
  std::string stop_reason_;
  std::int64_t stop_t_ = -1, stop_reaction_ = -1;
  bool torn_down_ = false;
  std::vector<json> rollback_results_;
};

Running* Runner::service(const std::string& name) {
  for (auto& r : services_)
    if (r.spec->name == name) return &r;
  return nullptr;
}

// Names of the [[fault]] tables that say `enabled` themselves: the rest start disabled.
std::vector<std::string> explicitly_enabled(const std::string& path) {
  std::vector<std::string> names;
  try {
    const toml::table root = toml::parse_file(path);
    if (const auto* faults = root["fault"].as_array())
      for (const auto& f : *faults)
        if (const auto* t = f.as_table(); t && t->get("enabled") && t->get("name"))
          if (t->get("enabled")->value<bool>().value_or(false))
            names.push_back(t->get("name")->value<std::string>().value_or(""));
  } catch (const std::exception&) {
  }
  return names;
}

bool Runner::start_service(Running& r, bool restart) {
  const Service& s = *r.spec;
  try {
    // A relative path with a slash ("./server") names a file in the experiment's folder,
    // where the service runs; made absolute, since the child changes directory first.
    std::string command = s.command.front();
    if (command.find('/') != std::string::npos && command.front() != '/')
      command = std::filesystem::absolute(std::filesystem::path(s.cwd) / command)
                    .lexically_normal()
                    .string();
    const std::string program = launch::resolve_command(command);
    const std::string shim = launch::find_shim(launch::executable_shim_defaults());
    if (!restart) {
      Policy policy;
      if (!s.policy_path.empty()) {
        const CompileResult c = compile_policy_file(s.policy_path);
        if (c.error) throw std::runtime_error(c.error->to_string());
        policy = *c.policy;
        r.deny_io_uring = policy.deny_io_uring;
        r.policy_enabled = explicitly_enabled(s.policy_path);
        for (auto& f : policy.faults) {
          const std::string name(fixed_text(f.name));
          f.enabled_initially = std::find(r.policy_enabled.begin(), r.policy_enabled.end(), name) !=
                                r.policy_enabled.end();
        }
      }
      // The backend as `faultline run` chooses it: the policy's [target] backend, `auto` the
      // seccomp backend for a static or Go service (launcher_backend.h).
      const bool seccomp = launch::use_seccomp("", policy, program);
      std::vector<std::string> warnings;
      launch::vet_program(program, shim, warnings, seccomp);
      for (const auto& w : warnings) line(fmt::format("{} warning: {}", s.name, w));
      if (seccomp) {
        r.seccomp = launch::plan_seccomp(policy);
        if (r.seccomp->families == 0)
          line(
              fmt::format("{} warning: seccomp backend: its policy names no fault, so no system "
                          "call is trapped and no step can fault it",
                          s.name));
      }
      r.seed = e_.has_seed ? e_.seed : launch::random_u64();
      // A block of the same name whose members are all gone (a runner killed with SIGKILL
      // took its services along) is stale: replaced, as `faultline sessions` would sweep it.
      std::string ignored;
      if (auto stale = ControlSession::attach(s.name, ignored)) stale->remove_if_dead();
      r.session = launch::create_session(s.name, policy);
      r.session->set_seed(r.seed);
      if (policy.durability.path[0]) {
        const durability::UndoArea area = durability::make_undo_area(
            policy.durability.path, sizeof policy.durability.path, s.name);
        // Said only when tracking is impaired: that is never silent.
        if (area.dir.empty() || !area.hard_links)
          line(fmt::format("{} warning: {}", s.name, area.note));
        r.undo_dir = area.dir;
        if (!area.dir.empty()) r.session->set_undo_dir(area.dir);
      }
      if (r.seccomp) launch::mark_seccomp(*r.session, *r.seccomp);
      r.out_path = fmt::format("{}/{}.stdout", logs_, s.name);
      r.err_path = fmt::format("{}/{}.stderr", logs_, s.name);
    }
    const int out = open(r.out_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    const int err = open(r.err_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    const int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
    sigset_t empty;
    sigemptyset(&empty);
    launch::SpawnOptions options;
    options.child_mask = &empty;
    options.new_process_group = true;
    options.die_with_parent = true;
    options.stdin_fd = in;
    options.stdout_fd = out;
    options.stderr_fd = err;
    options.cwd = s.cwd;
    options.deny_io_uring = r.deny_io_uring;
    sock_fprog filter{};
    launch::SeccompSpawn spawn_filter;
    if (r.seccomp) {
      filter.len = static_cast<unsigned short>(r.seccomp->filter.size());
      filter.filter = r.seccomp->filter.data();
      spawn_filter.filter = &filter;
      options.seccomp = &spawn_filter;
    }
    try {
      r.pid = launch::spawn(
          program, s.command,
          r.seccomp ? launch::seccomp_environment(launch::current_environment())
                    : launch::child_environment(launch::current_environment(), shim, s.name),
          options);
    } catch (...) {
      close(out), close(err), close(in);
      throw;
    }
    close(out), close(err), close(in);
    if (r.seccomp) {
      // A server process of its own per service (seccomp/serve_detached.h): the engine that
      // answers serves one session per process, and an experiment runs several.
      const int member = r.session->register_pid(r.pid);
      if (const int error = seccomp::serve_in_own_process(spawn_filter.listener, r.session->block(),
                                                          member, r.pid);
          error != 0) {
        kill(-r.pid, SIGKILL);
        waitpid(r.pid, nullptr, 0);
        r.pid = -1;
        throw std::runtime_error(fmt::format(
            "the seccomp backend cannot start its server: fork: {}", std::strerror(error)));
      }
    }
    event(s.name, restart ? "restarted" : "started", fmt::format("pid {}", r.pid));
    if (!restart)
      for (const auto& f : r.policy_enabled) {
        open_window(r, f);
        active_.insert(s.name + ":" + f);
      }
    return true;
  } catch (const std::exception& error) {
    event(s.name, "failed to start", error.what());
    return false;
  }
}

bool Runner::wait_ready(Running& r) {
  const Readiness& ready = r.spec->ready;
  const std::int64_t deadline = now() + ready.timeout_ns;
  std::optional<std::regex> pattern;
  if (ready.kind == Readiness::Kind::kLog) {
    try {
      pattern.emplace(ready.target, std::regex::extended);
    } catch (const std::regex_error& e) {
      event(r.spec->name, "not ready", fmt::format("bad regex '{}': {}", ready.target, e.what()));
      return false;
    }
  }
  for (;;) {
    int status = 0;
    if (waitpid(r.pid, &status, WNOHANG) == r.pid) {
      r.pid = -1;
      event(r.spec->name, "exited",
            fmt::format("status {} before it was ready", launch::exit_status(status)));
      return false;
    }
    // Ctrl-C while a service is slow to become ready stops the run now, not at the timeout.
    if (int sig = 0; stop_signal(0, sig)) emergency_stop(strsignal(sig), now());
    if (stopped_) return false;
    const std::int64_t left = std::max<std::int64_t>(deadline - now(), 1'000'000);
    bool ok = false;
    switch (ready.kind) {
      case Readiness::Kind::kNone:
        ok = true;
        break;
      case Readiness::Kind::kTcp:
        ok = tcp_probe(ready.target, std::min<std::int64_t>(left, 1'000'000'000)).ok;
        break;
      case Readiness::Kind::kHttp:
        ok = http_probe(ready.target, std::min<std::int64_t>(left, 1'000'000'000), 0, "").ok;
        break;
      case Readiness::Kind::kCommand:
        ok = command_probe(ready.command, r.spec->cwd, left).ok;
        break;
      case Readiness::Kind::kLog:
        for (const auto& path : {r.out_path, r.err_path}) {
          std::ifstream in(path);
          std::string text((std::istreambuf_iterator<char>(in)), {});
          ok |= std::regex_search(text, *pattern);
        }
        break;
    }
    if (ok) {
      event(r.spec->name, "ready", "");
      return true;
    }
    if (now() >= deadline) {
      event(r.spec->name, "not ready", fmt::format("not ready within {}", secs(ready.timeout_ns)));
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

void Runner::probe_loop(std::size_t index) {
  const Probe& p = e_.probes[index];
  std::int64_t next = now();
  while (!finishing_) {
    {
      std::unique_lock lock(wake_mutex_);
      const auto deadline =
          std::chrono::steady_clock::time_point(std::chrono::nanoseconds(next + start_mono_));
      wake_.wait_until(lock, deadline, [&] { return finishing_.load(); });
    }
    if (finishing_) break;
    Result r;
    r.t = now();
    ProbeOutcome out;
    switch (p.kind) {
      case Probe::Kind::kHttp:
        out = http_probe(p.target, p.timeout_ns, p.status.value_or(0), p.body_contains);
        break;
      case Probe::Kind::kTcp:
        out = tcp_probe(p.target, p.timeout_ns);
        break;
      case Probe::Kind::kCommand:
        out = command_probe(p.command, e_.dir, p.timeout_ns);
        break;
    }
    r.latency = now() - r.t;
    r.ok = out.ok;
    r.reason = out.reason;
    {
      std::lock_guard lock(data_mutex_);
      results_[index].push_back(r);
    }
    check_stop(index, r);
    // On schedule: the next tick of the grid; ticks a slow result overran are skipped, not
    // bunched (a probe never runs twice at once, and never fires a burst to catch up).
    next += p.every_ns;
    if (next < now()) next += ((now() - next) / p.every_ns + 1) * p.every_ns;
  }
}

Runner::Eval Runner::evaluate(const Clause& c, std::int64_t from, std::int64_t to) const {
  const auto probe = std::find_if(e_.probes.begin(), e_.probes.end(),
                                  [&](const Probe& p) { return p.name == c.probe; });
  std::vector<std::int64_t> latencies;
  std::size_t ok = 0;
  {
    std::lock_guard lock(data_mutex_);
    for (const Result& r : results_[static_cast<std::size_t>(probe - e_.probes.begin())])
      if (r.t > from && r.t <= to) {
        latencies.push_back(r.latency);
        ok += r.ok;
      }
  }
  Eval out;
  if (latencies.empty()) {
    out.value = "no results";
    return out;
  }
  std::sort(latencies.begin(), latencies.end());
  out.success = static_cast<double>(ok) / static_cast<double>(latencies.size());
  out.held = !c.success_rate || out.success >= *c.success_rate;
  std::string parts = fmt::format("success {:.3f}", out.success);
  for (const auto& [p, limit] : c.percentile_max_ns) {
    // Nearest rank: the smallest latency at or above p% of the results.
    const std::size_t rank =
        static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(latencies.size())));
    const std::int64_t value = latencies[std::max<std::size_t>(rank, 1) - 1];
    out.held &= value <= limit;
    parts += fmt::format(", p{} {:.0f}ms", p, value / 1e6);
  }
  out.value = fmt::format("{} over {} results", parts, latencies.size());
  return out;
}

// The steady state holds at t: every clause over its window ending at t, the window full.
bool Runner::steady_at(std::int64_t t) const {
  for (const Clause& c : e_.steady_state)
    if (t - probes_start_ < c.window_ns || !evaluate(c, t - c.window_ns, t).held) return false;
  return true;
}

void Runner::check_stop(std::size_t index, const Result& r) {
  if (t0_ < 0 || stopped_ || finishing_) return;
  const std::int64_t end = r.t + r.latency;
  for (const StopClause& s : e_.stop) {
    if (s.probe != e_.probes[index].name) continue;
    std::size_t count = 0, ok = 0;
    {
      std::lock_guard lock(data_mutex_);
      for (const Result& x : results_[index])
        if (x.t > r.t - s.window_ns && x.t <= r.t) ++count, ok += x.ok;
    }
    // Judged once the window holds 3 results: one early failure is not a rate.
    if (count < 3) continue;
    const double rate = static_cast<double>(ok) / static_cast<double>(count);
    if (rate < s.success_rate_below)
      emergency_stop(fmt::format("probe {}: success rate {:.3f} below {} over {}", s.probe, rate,
                                 s.success_rate_below, secs(s.window_ns)),
                     end);
  }
}

void Runner::emergency_stop(const std::string& reason, std::int64_t crossing) {
  if (stopped_.exchange(true)) return;
  {
    std::lock_guard lock(session_mutex_);
    for (auto& r : services_)
      if (r.session) r.session->panic();
  }
  const std::int64_t done = now();
  {
    std::lock_guard lock(data_mutex_);
    stop_reason_ = reason;
    stop_t_ = crossing;
    stop_reaction_ = done - crossing;
  }
  line(fmt::format("STOP: {}: every fault off in every session ({:.1f} ms after the crossing)",
                   reason, (done - crossing) / 1e6));
  wake_.notify_all();
}

void Runner::open_window(Running& r, const std::string& fault) {
  for (const auto& w : windows_)
    if (w.service == r.spec->name && w.fault == fault && w.end < 0) return;
  FaultWindow w{r.spec->name, fault, now(), -1, 0, 0};
  for (const FaultView& f : read_faults(*r.session))
    if (fixed_text(f.spec.name) == fault) w.injected_at_start = f.injected;
  windows_.push_back(w);
}

void Runner::close_window(const std::string& service_name, const std::string& fault) {
  Running* r = service(service_name);
  for (auto& w : windows_)
    if (w.service == service_name && w.fault == fault && w.end < 0) {
      w.end = now();
      if (r && r->session)
        for (const FaultView& f : read_faults(*r->session))
          if (fixed_text(f.spec.name) == fault) w.injected = f.injected - w.injected_at_start;
    }
}

void Runner::update_disruption() {
  const bool open = !disruptions_.empty() && disruptions_.back().second < 0;
  if (!active_.empty() && !open) disruptions_.push_back({now(), -1});
  if (active_.empty() && open) {
    disruptions_.back().second = now();
    lifts_.push_back({steps_done_.size(), now()});
  }
}

void Runner::apply_step(std::size_t index) {
  const Step& s = e_.steps[index];
  json done = {{"index", index}, {"at", s.at_ns / 1e9}, {"t", now() / 1e9}, {"action", s.text}};
  std::string error;
  try {
    std::lock_guard lock(session_mutex_);
    auto session_of = [&](const std::string& name) -> Running& {
      Running* r = service(name);
      if (r == nullptr || !r->session) throw std::runtime_error("no session for " + name);
      return *r;
    };
    switch (s.kind) {
      case Step::Kind::kEnable:
      case Step::Kind::kDisable:
      case Step::Kind::kRemove:
        for (const auto& [svc, fault] : s.targets) {
          Running& r = session_of(svc);
          const FaultEdit edit = s.kind == Step::Kind::kEnable    ? FaultEdit::kEnable
                                 : s.kind == Step::Kind::kDisable ? FaultEdit::kDisable
                                                                  : FaultEdit::kRemove;
          if (edit != FaultEdit::kEnable) close_window(svc, fault);
          edit_faults(*r.session, edit, {fault});
          if (edit == FaultEdit::kEnable) {
            open_window(r, fault);
            active_.insert(svc + ":" + fault);
          } else {
            active_.erase(svc + ":" + fault);
          }
        }
        break;
      case Step::Kind::kSet:
        for (std::size_t i = 0; i < s.targets.size(); ++i) {
          Running& r = session_of(s.targets[i].first);
          const SetOutcome out = set_fault(*r.session, s.targets[i].second, s.settings[i]);
          const int slot = r.session->find_fault(s.targets[i].second);
          const bool on = slot >= 0 && r.session->block().faults[slot].enabled.load() != 0;
          const std::string key = s.targets[i].first + ":" + s.targets[i].second;
          if (on) {
            open_window(r, s.targets[i].second);
            active_.insert(key);
          } else {
            close_window(s.targets[i].first, s.targets[i].second);
            active_.erase(key);
          }
        }
        break;
      case Step::Kind::kAdd:
        for (std::size_t i = 0; i < s.targets.size(); ++i) {
          Running& r = session_of(s.targets[i].first);
          std::string content;
          if (auto problem = read_policy_text(s.snippets[i], content))
            throw std::runtime_error(*problem);
          const CompileResult c = compile_fault_snippet(content, s.snippets[i]);
          if (c.error) throw std::runtime_error(c.error->to_string());
          for (const auto& name : add_faults(*r.session, c.policy->faults)) {
            const int slot = r.session->find_fault(name);
            if (slot >= 0 && r.session->block().faults[slot].enabled.load() != 0) {
              open_window(r, name);
              active_.insert(s.targets[i].first + ":" + name);
            }
          }
        }
        break;
      case Step::Kind::kKill: {
        Running& r = session_of(s.service);
        if (r.pid > 0) {
          r.killed_by_step = true;
          kill(-r.pid, s.signal);
          active_.insert("down:" + s.service);
        }
        break;
      }
      case Step::Kind::kPowercut: {
        // As `faultline powercut` does: the cut is marked before anyone dies, so the reaper
        // (finish_cut) knows a cut, not a crash, ended the service.
        Running& r = session_of(s.service);
        if (r.pid > 0) {
          r.killed_by_step = true;
          durability::pull_cut(r.session->block());
          kill(-r.pid, SIGKILL);
          for (pid_t pid : r.session->live_pids())
            if (pid != getpid()) kill(pid, SIGKILL);
          active_.insert("down:" + s.service);
        }
        break;
      }
      case Step::Kind::kPause: {
        Running& r = session_of(s.service);
        if (r.pid > 0) kill(-r.pid, SIGSTOP);
        active_.insert("paused:" + s.service);
        resumes_.push_back({now() + s.for_ns, s.service});
        break;
      }
      case Step::Kind::kThrottle: {
        Running& r = session_of(s.service);
        const pid_t group = r.pid;
        active_.insert("throttled:" + s.service);
        const std::int64_t end = now() + s.for_ns;
        const double cpu = s.cpu;
        throttles_.emplace_back([this, group, end, cpu, name = s.service] {
          // 100 ms cycles: run for cpu x 100 ms, stopped for the rest.
          while (now() < end && !stopped_ && !finishing_ && group > 0) {
            kill(-group, SIGCONT);
            std::this_thread::sleep_for(std::chrono::microseconds(static_cast<int>(cpu * 1e5)));
            kill(-group, SIGSTOP);
            std::this_thread::sleep_for(
                std::chrono::microseconds(static_cast<int>((1 - cpu) * 1e5)));
          }
          if (group > 0) kill(-group, SIGCONT);
          std::lock_guard lock(session_mutex_);
          resumes_.push_back({now(), "throttled:" + name});
        });
        break;
      }
    }
  } catch (const std::exception& e) {
    error = e.what();
  }
  done["ok"] = error.empty();
  if (!error.empty()) done["error"] = error;
  steps_done_.push_back(done);
  line(fmt::format("step {}: {}{}", index + 1, s.text, error.empty() ? "" : " FAILED: " + error));
  update_disruption();
}

void Runner::reap() {
  for (auto& r : services_) {
    if (r.pid > 0) {
      int status = 0;
      if (waitpid(r.pid, &status, WNOHANG) != r.pid) continue;
      // The group may hold children of the service: they go with it.
      kill(-r.pid, SIGKILL);
      r.pid = -1;
      const int code = launch::exit_status(status);
      event(r.spec->name, "exited", fmt::format("status {}", code));
      if (r.session->block().header.flags.load(std::memory_order_acquire) & kFlagPowercut)
        finish_cut(r);
      const bool again = r.spec->restart == Service::Restart::kAlways ||
                         (r.spec->restart == Service::Restart::kOnFailure && code != 0);
      if (again && !finishing_ && !stopped_) r.restart_at = now() + r.spec->restart_delay_ns;
    } else if (r.restart_at >= 0 && now() >= r.restart_at && !stopped_ && !finishing_) {
      r.restart_at = -1;
      ++r.restarts;
      if (start_service(r, true) && r.killed_by_step) {
        r.killed_by_step = false;
        std::lock_guard lock(session_mutex_);
        active_.erase("down:" + r.spec->name);
        update_disruption();
      }
    }
  }
}

void Runner::finish_cut(Running& r) {
  ControlBlock& block = r.session->block();
  const std::vector<pid_t> left = durability::kill_members(block, 0);
  durability::CutReport cut = durability::revert_session(block);
  if (!left.empty())
    cut.problems.push_back(fmt::format("{} process{} still alive after 2 s: reverted anyway",
                                       left.size(), left.size() == 1 ? "" : "es"));
  std::string detail =
      r.undo_dir.empty()
          ? std::string("nothing tracked ([durability] names no path of it): a SIGKILL")
          : fmt::format("{} bytes lost in {} file{}, {} entr{} undone", cut.bytes_lost(),
                        cut.files.size(), cut.files.size() == 1 ? "" : "s", cut.entries.size(),
                        cut.entries.size() == 1 ? "y" : "ies");
  for (const auto& f : cut.files)
    detail += fmt::format("; {} size {} -> {}", f.path, f.size_before, f.size_after);
  for (const auto& e : cut.entries) detail += "; " + e;
  for (const auto& p : cut.problems) detail += "; " + p;
  event(r.spec->name, "power cut", detail);
  durability::clear_cut(block);
}

void Runner::sample_faults() {
  std::lock_guard lock(session_mutex_);
  for (auto& r : services_) {
    if (!r.session) continue;
    for (const FaultView& f : read_faults(*r.session))
      samples_.push_back({{"t", now() / 1e9},
                          {"service", r.spec->name},
                          {"fault", std::string(fixed_text(f.spec.name))},
                          {"seen", f.seen},
                          {"matched", f.matched},
                          {"injected", f.injected}});
  }
}

void Runner::run_rollbacks() {
  for (const auto& command : e_.rollbacks) {
    const ProbeOutcome out = command_probe(command, e_.dir, 30'000'000'000);
    rollback_results_.push_back({{"command", command}, {"ok", out.ok}, {"reason", out.reason}});
    line(fmt::format("rollback {}: {}", fmt::join(command, " "), out.ok ? "ok" : out.reason));
  }
}

void Runner::stop_services() {
  // Continue what a pause or a throttle left stopped, so that SIGTERM is acted on.
  for (auto& r : services_)
    if (r.pid > 0) {
      kill(-r.pid, SIGCONT);
      kill(-r.pid, SIGTERM);
    }
  const std::int64_t deadline = monotonic_ns() + 3'000'000'000;
  for (auto& r : services_) {
    while (r.pid > 0) {
      int status = 0;
      if (waitpid(r.pid, &status, WNOHANG) == r.pid) {
        kill(-r.pid, SIGKILL);  // whatever of its group is left
        event(r.spec->name, "stopped", fmt::format("status {}", launch::exit_status(status)));
        r.pid = -1;
      } else if (monotonic_ns() >= deadline) {
        kill(-r.pid, SIGKILL);
        waitpid(r.pid, &status, 0);
        event(r.spec->name, "stopped", "killed after 3s");
        r.pid = -1;
      } else {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    }
    r.restart_at = -1;
  }
  // Members of a session that left the group (a daemon that called setsid) go too.
  for (auto& r : services_)
    if (r.session) {
      launch::register_stray_members(*r.session);
      for (pid_t pid : r.session->live_pids())
        if (pid != getpid()) kill(pid, SIGKILL);
      // A cut the reaper had not finished yet still loses what it would have lost.
      if (r.session->block().header.flags.load(std::memory_order_acquire) & kFlagPowercut)
        finish_cut(r);
    }
}

void Runner::teardown() {
  if (torn_down_) return;
  torn_down_ = true;
  finishing_ = true;
  wake_.notify_all();
  for (auto& t : probe_threads_) t.join();
  for (auto& t : throttles_) t.join();
  probe_threads_.clear();
  throttles_.clear();
  {
    std::lock_guard lock(session_mutex_);
    for (auto& w : windows_)
      if (w.end < 0) close_window(w.service, w.fault);
  }
  stop_services();
  for (auto& r : services_)
    if (r.session) {
      // Under the seccomp backend no process of the service registers itself: one that left
      // its group (setsid) is not a member, yet still holds the filter and its server the
      // block. Panicked, its calls run unfaulted until it ends, as after `faultline run`.
      if (r.seccomp) r.session->panic();
      // The undo area goes with the session (a kept one keeps it: `powercut` may need it).
      if (r.session->leave(getpid()).empty()) durability::remove_undo_area(r.undo_dir);
      r.session.reset();
    }
}

}  // namespace

namespace {

json Runner::journal(int exit_code, const std::string& outcome) const {
  std::lock_guard lock(data_mutex_);
  json j;
  j["version"] = 1;
  j["title"] = e_.title;
  j["file"] = e_.file;
  j["seed"] = std::to_string(services_.empty() ? e_.seed : services_.front().seed);
  j["time"] = iso_time(start_real_);
  j["ts_ns"] = std::to_string(start_real_);
  j["t0"] = t0_ >= 0 ? json(t0_ / 1e9) : json(nullptr);
  j["end"] = now() / 1e9;
  j["replay"] = o_.replay;
  j["outcome"] = outcome;
  j["exit"] = exit_code;
  j["services"] = json::array();
  for (const auto& r : services_) {
    json s = {{"name", r.spec->name},       {"session", r.spec->name},
              {"command", r.spec->command}, {"seed", std::to_string(r.seed)},
              {"restarts", r.restarts},     {"stdout", r.out_path},
              {"stderr", r.err_path},       {"policy_file", r.spec->policy_path}};
    std::string text;
    if (!r.spec->policy_path.empty()) read_policy_text(r.spec->policy_path, text);
    s["policy"] = text;
    j["services"].push_back(s);
  }
  j["service_events"] = json::array();
  for (const auto& ev : events_)
    j["service_events"].push_back(
        {{"t", ev.t / 1e9}, {"service", ev.service}, {"kind", ev.kind}, {"detail", ev.detail}});
  j["probes"] = json::array();
  for (std::size_t i = 0; i < e_.probes.size(); ++i) {
    const Probe& p = e_.probes[i];
    json results = json::array();
    for (const Result& r : results_[i]) {
      json x = {{"t", r.t / 1e9}, {"ok", r.ok}, {"latency_ms", r.latency / 1e6}};
      if (!r.ok) x["reason"] = r.reason;
      results.push_back(x);
    }
    j["probes"].push_back(
        {{"name", p.name},
         {"target", p.kind == Probe::Kind::kCommand ? fmt::format("{}", fmt::join(p.command, " "))
                                                    : p.target},
         {"every_ms", p.every_ns / 1e6},
         {"results", results}});
  }
  j["steps"] = steps_done_;
  j["faults"] = json::array();
  for (const auto& w : windows_)
    j["faults"].push_back({{"service", w.service},
                           {"fault", w.fault},
                           {"start", w.start / 1e9},
                           {"end", w.end >= 0 ? json(w.end / 1e9) : json(nullptr)},
                           {"injected", w.injected}});
  j["fault_samples"] = samples_;
  j["disruptions"] = json::array();
  for (const auto& [a, b] : disruptions_)
    j["disruptions"].push_back({{"start", a / 1e9}, {"end", b >= 0 ? json(b / 1e9) : json()}});
  j["rollbacks"] = rollback_results_;
  if (stopped_)
    j["stop"] = {{"reason", stop_reason_},
                 {"t", stop_t_ / 1e9},
                 {"reaction_ms", stop_reaction_ >= 0 ? json(stop_reaction_ / 1e6) : json()}};
  else
    j["stop"] = nullptr;
  return j;
}

std::string clause_limits(const Clause& c) {
  std::vector<std::string> parts;
  if (c.success_rate) parts.push_back(fmt::format("success_rate >= {}", *c.success_rate));
  for (const auto& [p, limit] : c.percentile_max_ns)
    parts.push_back(fmt::format("p{} <= {:.0f}ms", p, limit / 1e6));
  if (c.window_ns > 0) parts.push_back(fmt::format("over {}", secs(c.window_ns)));
  return fmt::format("{}", fmt::join(parts, ", "));
}

int Runner::run() {
  std::error_code ec;
  logs_ = o_.logs.empty()
              ? (std::filesystem::path(e_.file).replace_extension("").string() + "-logs")
              : o_.logs;
  std::filesystem::create_directories(logs_, ec);
  if (ec) {
    fmt::print(stderr, "faultline: cannot create {}: {}\n", logs_, ec.message());
    return kBadInput;
  }
  results_.resize(e_.probes.size());
  json clauses = json::array();
  int signal = 0;
  bool bad_input = false;
  std::string outcome;

  // Services, in order.
  for (const Service& s : e_.services) {
    services_.push_back(Running{});
    services_.back().spec = &s;
  }
  for (auto& r : services_) {
    if (stop_signal(0, signal)) emergency_stop(fmt::format("signal {}", strsignal(signal)), now());
    if (stopped_ || !start_service(r, false) || !wait_ready(r)) {
      bad_input = !stopped_;
      break;
    }
  }
  if (!bad_input && !stopped_) {
    probes_start_ = now();
    for (std::size_t i = 0; i < e_.probes.size(); ++i)
      probe_threads_.emplace_back([this, i] { probe_loop(i); });
    std::int64_t max_window = 0;
    for (const Clause& c : e_.steady_state) max_window = std::max(max_window, c.window_ns);
    // The steady state, before anything is injected: given a window and a half plus 30 s.
    const std::int64_t steady_deadline = now() + max_window * 3 / 2 + 30'000'000'000;
    std::int64_t next_sample = 0;
    const std::int64_t max_end = e_.max_duration_ns ? start_mono_ + *e_.max_duration_ns : INT64_MAX;
    while (!stopped_) {
      if (stop_signal(5, signal)) emergency_stop(fmt::format("{}", strsignal(signal)), now());
      if (monotonic_ns() >= max_end)
        emergency_stop(fmt::format("max_duration {} reached", secs(*e_.max_duration_ns)), now());
      reap();
      if (steady_at(now())) break;
      if (now() >= steady_deadline) break;
    }
    const bool steady = steady_at(now());
    for (const Clause& c : e_.steady_state) {
      const Eval v = evaluate(c, now() - c.window_ns, now());
      clauses.push_back({{"kind", "steady_state.before"},
                         {"probe", c.probe},
                         {"limits", clause_limits(c)},
                         {"held", v.held},
                         {"value", v.value}});
      line(fmt::format("steady state before: {} {}: {} ({})", c.probe, clause_limits(c),
                       v.held ? "held" : "NOT HELD", v.value));
    }
    if (!steady && !stopped_) {
      outcome = "the steady state never held before the first step";
      line(outcome);
    } else if (!stopped_) {
      t0_ = now();
      line("steady state holds: the method starts");
      std::size_t next_step = 0;
      std::int64_t method_end = -1, wait_until = -1, lifted = -1;
      for (;;) {
        if (stop_signal(2, signal)) emergency_stop(strsignal(signal), now());
        if (monotonic_ns() >= max_end)
          emergency_stop(fmt::format("max_duration {} reached", secs(*e_.max_duration_ns)), now());
        if (stopped_) break;
        reap();
        while (next_step < e_.steps.size() && now() >= t0_ + e_.steps[next_step].at_ns)
          apply_step(next_step++);
        {
          std::lock_guard lock(session_mutex_);
          for (auto it = resumes_.begin(); it != resumes_.end();) {
            if (now() < it->first) {
              ++it;
              continue;
            }
            if (it->second.starts_with("throttled:")) {
              active_.erase(it->second);
              event(it->second.substr(10), "throttle ended", "");
            } else {
              if (Running* r = service(it->second); r && r->pid > 0) kill(-r->pid, SIGCONT);
              active_.erase("paused:" + it->second);
              event(it->second, "resumed", "SIGCONT");
            }
            it = resumes_.erase(it);
            update_disruption();
          }
        }
        if (now() >= next_sample) {
          sample_faults();
          next_sample = now() + 500'000'000;
        }
        bool pending = next_step < e_.steps.size();
        {
          std::lock_guard lock(session_mutex_);
          pending |= !resumes_.empty();
          for (const auto& a : active_) pending |= a.starts_with("throttled:");
        }
        if (pending) continue;
        if (method_end < 0) {
          method_end = now();
          if (e_.steady_state.empty()) break;
        }
        // A killed service restarting after the last step lifts later: the wait follows it.
        lifted = lifts_.empty() ? method_end : lifts_.back().second;
        wait_until = std::max(method_end, lifted) + (e_.recover_within_ns
                                                         ? *e_.recover_within_ns + 500'000'000
                                                         : max_window + 10'000'000'000);
        // The end verdict is judged over a window wholly after the last lift.
        if (active_.empty() && now() >= lifted + max_window && steady_at(now())) break;
        if (now() >= wait_until) break;
      }
    }
  }
  // The end: faults lifted (a stop already panicked every session), rollbacks, services.
  finishing_ = true;
  wake_.notify_all();
  for (auto& t : probe_threads_) t.join();
  probe_threads_.clear();
  for (auto& t : throttles_) t.join();
  throttles_.clear();
  const std::int64_t end = now();
  bool held = !bad_input && !stopped_ && outcome.empty();
  json measures = {{"impact", json::array()}, {"recovery", json::array()}};
  // A stopped run is not judged (exit 3 says why), but its impact and recovery are measured.
  if (t0_ >= 0) {
    if (!stopped_)
      for (const Clause& c : e_.steady_state) {
        const Eval v = evaluate(c, end - c.window_ns, end);
        held &= v.held;
        clauses.push_back({{"kind", "steady_state.end"},
                           {"probe", c.probe},
                           {"limits", clause_limits(c)},
                           {"held", v.held},
                           {"value", v.value}});
        line(fmt::format("steady state at the end: {} {}: {} ({})", c.probe, clause_limits(c),
                         v.held ? "held" : "NOT HELD", v.value));
      }
    if (!stopped_)
      for (const Clause& c : e_.during) {
        // Every result while a fault was on, over all the disruption windows.
        std::size_t total = 0, ok_count = 0;
        std::vector<std::int64_t> latencies;
        {
          std::lock_guard lock(data_mutex_);
          const auto probe = std::find_if(e_.probes.begin(), e_.probes.end(),
                                          [&](const Probe& p) { return p.name == c.probe; });
          for (const Result& r : results_[probe - e_.probes.begin()])
            for (const auto& [a, b] : disruptions_)
              if (r.t >= a && (b < 0 || r.t < b)) {
                ++total;
                ok_count += r.ok;
                latencies.push_back(r.latency);
              }
        }
        bool ok = total > 0;
        std::string value = "no results while a fault was on";
        if (total > 0) {
          std::sort(latencies.begin(), latencies.end());
          const double rate = static_cast<double>(ok_count) / static_cast<double>(total);
          ok = !c.success_rate || rate >= *c.success_rate;
          value = fmt::format("success {:.3f}", rate);
          for (const auto& [p, limit] : c.percentile_max_ns) {
            const std::size_t rank =
                static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(total)));
            const std::int64_t v = latencies[std::max<std::size_t>(rank, 1) - 1];
            ok &= v <= limit;
            value += fmt::format(", p{} {:.0f}ms", p, v / 1e6);
          }
          value += fmt::format(" over {} results", total);
        }
        held &= ok;
        clauses.push_back({{"kind", "expect.during"},
                           {"probe", c.probe},
                           {"limits", clause_limits(c)},
                           {"held", ok},
                           {"value", value}});
        line(fmt::format("expect during: {} {}: {} ({})", c.probe, clause_limits(c),
                         ok ? "held" : "NOT HELD", value));
      }
    // Impact: each disruptive step to the first failed probe result that came back after it
    // and before the next disruptive step (a failure is charged to the latest disruption).
    auto disruptive = [&](const json& s) {
      const Step::Kind kind = e_.steps[s["index"].get<std::size_t>()].kind;
      return kind != Step::Kind::kDisable && kind != Step::Kind::kRemove;
    };
    for (std::size_t k = 0; k < steps_done_.size(); ++k) {
      const json& s = steps_done_[k];
      const Step& step = e_.steps[s["index"].get<std::size_t>()];
      if (!disruptive(s)) continue;
      const std::int64_t t = static_cast<std::int64_t>(s["t"].get<double>() * 1e9);
      std::int64_t until = INT64_MAX;
      for (std::size_t n = k + 1; n < steps_done_.size() && until == INT64_MAX; ++n)
        if (disruptive(steps_done_[n]))
          until = static_cast<std::int64_t>(steps_done_[n]["t"].get<double>() * 1e9);
      std::int64_t first = -1;
      std::string probe;
      {
        std::lock_guard lock(data_mutex_);
        for (std::size_t i = 0; i < results_.size(); ++i)
          for (const Result& r : results_[i])
            // Detected when the failed result came back, not when its request left.
            if (!r.ok && r.t + r.latency >= t && r.t + r.latency < until &&
                (first < 0 || r.t + r.latency < first)) {
              first = r.t + r.latency;
              probe = e_.probes[i].name;
            }
      }
      measures["impact"].push_back({{"step", s["index"]},
                                    {"action", step.text},
                                    {"t", t / 1e9},
                                    {"impact_ms", first >= 0 ? json((first - t) / 1e6) : json()},
                                    {"probe", probe}});
      line(fmt::format("impact of step {} ({}): {}", s["index"].get<int>() + 1, step.text,
                       first >= 0 ? fmt::format("first failed probe {} after {:.0f} ms", probe,
                                                (first - t) / 1e6)
                                  : "no failed probe"));
    }
    // Recovery: from each lift to the steady state holding over its window again.
    std::optional<std::int64_t> last_recovery;
    for (std::size_t k = 0; k < lifts_.size(); ++k) {
      const std::int64_t lift = lifts_[k].second;
      const std::int64_t limit = k + 1 < disruptions_.size() ? disruptions_[k + 1].first : end;
      std::vector<std::int64_t> candidates{lift};
      {
        std::lock_guard lock(data_mutex_);
        for (const auto& rs : results_)
          for (const Result& r : rs)
            if (r.t >= lift && r.t <= limit) candidates.push_back(r.t);
      }
      std::sort(candidates.begin(), candidates.end());
      std::optional<std::int64_t> at;
      if (!e_.steady_state.empty())
        for (std::int64_t t : candidates)
          if (steady_at(t)) {
            at = t;
            break;
          }
      measures["recovery"].push_back(
          {{"lifted_at", lift / 1e9}, {"recovery_ms", at ? json((*at - lift) / 1e6) : json()}});
      line(fmt::format("recovery from {:+.3f}s: {}", (lift - t0_) / 1e9,
                       at ? fmt::format("steady state again after {:.0f} ms", (*at - lift) / 1e6)
                          : "the steady state did not hold again"));
      last_recovery = at ? std::optional(*at - lift) : std::nullopt;
    }
    if (e_.recover_within_ns && !stopped_) {
      // A disruption still open at the end (a service killed for good) was never recovered.
      const bool open = !disruptions_.empty() && disruptions_.back().second < 0;
      std::string still;
      for (const auto& a : active_) still += (still.empty() ? "" : ", ") + a;
      const bool ok =
          !open && !lifts_.empty() && last_recovery && *last_recovery <= *e_.recover_within_ns;
      held &= ok;
      const std::string value = open ? fmt::format("still disrupted at the end ({})", still)
                                : lifts_.empty() ? std::string("no fault was lifted")
                                : last_recovery
                                    ? fmt::format("recovered in {:.0f} ms", *last_recovery / 1e6)
                                    : std::string("did not recover");
      clauses.push_back({{"kind", "expect.recover_within"},
                         {"probe", ""},
                         {"limits", fmt::format("<= {}", secs(*e_.recover_within_ns))},
                         {"held", ok},
                         {"value", value}});
      line(fmt::format("recover within {}: {} ({})", secs(*e_.recover_within_ns),
                       ok ? "held" : "NOT HELD", value));
    }
  }
  if (stopped_) {
    // A stop already panicked every session; rollbacks now.
    held = false;
  }
  {
    std::lock_guard lock(session_mutex_);
    for (auto& w : windows_)
      if (w.end < 0) close_window(w.service, w.fault);
    // Every fault off before the rollbacks run.
    for (auto& r : services_)
      if (r.session) r.session->panic();
  }
  run_rollbacks();
  teardown();
  const int code = stopped_ ? kStopped : bad_input ? kBadInput : held ? kHeld : kNotHeld;
  if (outcome.empty())
    outcome = code == kStopped    ? "stopped: " + stop_reason_
              : code == kBadInput ? "a service did not start or never became ready"
              : code == kHeld     ? "the hypothesis held"
                                  : "the hypothesis did not hold";
  json j = journal(code, outcome);
  j["clauses"] = clauses;
  j["measures"] = measures;
  // The summary table.
  if (!o_.quiet) {
    fmt::print("\n{:<30} {:<9} {:<44} {}\n", "CLAUSE", "RESULT", "LIMITS", "MEASURED");
    for (const json& c : clauses)
      fmt::print(
          "{:<30} {:<9} {:<44} {}\n",
          c["kind"].get<std::string>() +
              (c["probe"].get<std::string>().empty() ? "" : " " + c["probe"].get<std::string>()),
          c["held"].get<bool>() ? "held" : "NOT HELD", c["limits"].get<std::string>(),
          c["value"].get<std::string>());
    fmt::print("outcome: {} (exit {})\n", outcome, code);
    std::fflush(stdout);
  }
  // A file that cannot be written is said; the run's outcome stands, and the others are written.
  auto write_or_say = [](const std::string& file, const std::string& text) {
    try {
      write_text(file, text);
    } catch (const ControlError& e) {
      fmt::print(stderr, "faultline: {}\n", e.what());
    }
  };
  if (!o_.json.empty())
    write_or_say(o_.json, j.dump(1, ' ', false, json::error_handler_t::replace) + "\n");
  if (!o_.report.empty()) write_or_say(o_.report, html_report(j));
  if (!o_.junit.empty()) write_or_say(o_.junit, junit_report(j));
  return code;
}

}  // namespace

int run_experiment(const Experiment& experiment, const RunOptions& options) {
  // SIGINT and SIGTERM are taken synchronously by the main loop (every thread started later
  // inherits the mask); services start with an empty mask.
  sigset_t set, previous;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, &previous);
  int code;
  {
    Runner runner(experiment, options);
    code = runner.run();
  }
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  return code;
}

}  // namespace faultline::experiment
