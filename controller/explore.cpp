// `faultline explore`: the runner (see explore.h). It starts each run through the launcher,
// polls it and the check, classifies it, and records it in the state directory
// (explore_state.cpp); what is explored and the Config come from explore_targets.cpp.
#include "controller/explore.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>

#include "calls/calls.h"
#include "controller/control_error.h"
#include "controller/explore_powercut.h"
#include "controller/explore_runner.h"
#include "controller/explore_state.h"
#include "controller/explore_targets.h"
#include "controller/inspect.h"
#include "controller/launcher.h"
#include "policy/net_policy.h"
#include "policy/policy.h"
#include "session/session.h"

namespace faultline::explore {

// What controller/explore_powercut.cpp shares with the runner (explore_runner.h).
namespace runner {

std::int64_t now_ns() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

std::string hex64(std::uint64_t value) { return fmt::format("{:016x}", value); }

std::uint64_t file_hash(const std::string& path) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  std::ifstream in(path, std::ios::binary);
  char buffer[65536];
  while (in.read(buffer, sizeof buffer) || in.gcount() > 0) {
    for (std::streamsize i = 0; i < in.gcount(); ++i)
      h = (h ^ static_cast<unsigned char>(buffer[i])) * 0x100000001b3ull;
    if (!in) break;
  }
  return h;
}

bool crash_signal(int sig) {
  return sig == SIGSEGV || sig == SIGBUS || sig == SIGABRT || sig == SIGILL || sig == SIGFPE ||
         sig == SIGTRAP || sig == SIGSYS;
}

void add_note(std::string& note, const std::string& part) {
  note += (note.empty() ? "" : ", ") + part;
}

}  // namespace runner

using runner::CompiledTarget;
using runner::crash_signal;
using runner::file_hash;
using runner::hex64;
using runner::now_ns;

using namespace runner;

std::string ordinal(int n) {
  const int tens = n % 100;
  const char* suffix = (tens >= 11 && tens <= 13) ? "th"
                       : n % 10 == 1              ? "st"
                       : n % 10 == 2              ? "nd"
                       : n % 10 == 3              ? "rd"
                                                  : "th";
  return std::to_string(n) + suffix;
}

namespace {

namespace fs = std::filesystem;

constexpr std::int64_t kPollIntervalNs = 5'000'000;

void sleep_ns(std::int64_t ns) {
  struct timespec ts {
    static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)
  };
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

}  // namespace

// ---- running -----------------------------------------------------------------------------------

namespace runner {

// One [[fault]] failing the k-th call at a site with the target's action, and what it injects.
Explorer::SiteFault Explorer::site_fault(const std::string& name, int site_index, int k) const {
  const Site& site = state_.sites[site_index];
  const Target& t = state_.config.targets[site.target];
  const CompiledTarget& c = compiled_[site.target];
  const CallInfo call = *find_call(site.call);
  // read/write/readv/writev are aimed at sockets or files by the fault's `calls`: keep the
  // target's. Any other call is named alone (the site pins the call anyway).
  const std::string calls = is_rw_call(call.id) ? t.calls : "[" + toml_quote(site.call) + "]";
  std::string action = t.action;
  std::string injected;
  if (action.empty()) {
    injected = t.error.empty()
                   ? std::string(faultline::natural_error(call, c.rw_on_sockets && !c.rw_on_files))
                   : t.error;
    action = "error = " + toml_quote(injected) + "\n";
  } else {
    injected = action;
    std::replace(injected.begin(), injected.end(), '\n', ' ');
    while (!injected.empty() && injected.back() == ' ') injected.pop_back();
  }
  return {
      fmt::format("[[fault]]\nname = \"{}\"\ncalls = {}\n{}site = {}\n{}after = {}\ntimes = 1\n",
                  name, calls, t.selectors, toml_quote(site.site), action, k - 1),
      injected};
}

// The run's policy: a `record` fault per target first (they never inject, so every call still
// reaches the faults after them), then the faults that fail the site.
std::string Explorer::policy_text(const Active& a) const {
  std::string text = "version = 1\nseed = 1\n" + state_.config.durability;
  for (std::size_t i = 0; i < state_.config.targets.size(); ++i) {
    const Target& t = state_.config.targets[i];
    text +=
        fmt::format("\n[[fault]]\nname = \"rec-{}\"\ncalls = {}\n{}record = {}\nsite_depth = {}\n",
                    i, t.calls, t.selectors, toml_quote(a.dir + "/sites.tsv"), state_.config.depth);
  }
  // The policy's own faults last (--powercut): the cut at its call wins over them.
  return text + "\n" + a.site_fault + state_.config.faults;
}

void Explorer::prepare() {
  for (const Target& t : state_.config.targets) compiled_.push_back(compile_target(t));
  for (std::size_t i = 0; i < state_.sites.size(); ++i) {
    const Site& s = state_.sites[i];
    site_index_[site_key(s.target, s.call, s.site)] = static_cast<int>(i);
  }
  for (const Run& r : state_.runs) {
    if (r.site >= 0) {
      tried_.emplace(r.site, r.occurrence);
      next_occurrence_[r.site] = std::max(next_occurrence_[r.site], r.occurrence + 1);
      if (r.injected > 0) reached_.emplace(r.site, r.occurrence);
    }
    next_id_ = std::max(next_id_, r.id + 1);
  }
  // What an interrupted invocation left: runs that never finished are tried again.
  std::error_code error;
  std::set<int> findings;
  for (const Run& r : state_.runs)
    if (is_finding(r.outcome)) findings.insert(r.id);
  for (const auto& entry : fs::directory_iterator(state_.dir + "/runs", error)) {
    const auto id = to_number(entry.path().filename().string());
    if (id && !findings.count(static_cast<int>(*id))) remove_tree(entry.path().string());
    if (id) next_id_ = std::max(next_id_, static_cast<int>(*id) + 1);
  }
  try {
    program_ = launch::resolve_command(state_.config.command.front());
  } catch (const ControlError& e) {
    // `faultline run` reports it as a shell would (127, 126); explore's contract is 2 for a
    // command that cannot be explored.
    throw_control_error(e.kind(), kStatusUsage, e.what());
  }
  std::vector<std::string> warnings;
  launch::vet_program(program_, options_.shim, warnings, false, "`faultline explore`");
  for (auto& w : warnings) state_.warnings.push_back(std::move(w));
}

// What the check, the recover and (with --powercut) `faultline run` get: no session of
// explore's own, and the run's event log named (a check may need to know what failed: "was an
// fsync of the journal failed, and did the program say so?").
std::vector<std::string> shell_environment(const Active& a) {
  std::vector<std::string> env;
  for (const std::string& entry : launch::current_environment())
    if (!entry.starts_with("FAULTLINE_SESSION=") && !entry.starts_with("FAULTLINE_POLICY="))
      env.push_back(entry);
  env.push_back("FAULTLINE_EXPLORE_EVENTS=" + a.dir + "/events.jsonl");
  env.push_back("FAULTLINE_EXPLORE_RUN=" + std::to_string(a.run.id));
  return env;
}

std::unique_ptr<Active> Explorer::start(int site_index, int k) {
  auto a = std::make_unique<Active>();
  a->run.id = site_index < 0 ? 0 : next_id_++;
  a->run.site = site_index;
  a->run.occurrence = k;
  a->dir = run_dir(state_, a->run.id);
  remove_tree(a->dir);
  std::error_code error;
  fs::create_directories(a->dir, error);
  if (error) fail(fmt::format("cannot create {}: {}", a->dir, error.message()));
  if (!state_.config.in_place) {
    a->work = a->dir + "/work";
    fs::create_directories(a->work, error);
  }

  const Site* site = site_index >= 0 ? &state_.sites[site_index] : nullptr;
  a->run.outcome = site ? Outcome::kHandled : Outcome::kBaseline;  // until it shows otherwise
  if (site) {
    // A site first seen on the error path of an earlier run is reached by failing what that
    // run failed again: its faults come first, the site's last.
    const std::vector<int> path = error_path(state_, site_index);
    std::string comment;
    for (std::size_t i = 0; i < path.size(); ++i) {
      const Run& earlier = *find_run(state_, path[i]);
      const SiteFault earlier_fault = site_fault(fmt::format("explore-{}-{}", a->run.id, i + 1),
                                                 earlier.site, earlier.occurrence);
      a->site_fault += earlier_fault.toml + "\n";
      comment += fmt::format("#   first, as in run {}: the {} call of {} at its site fails ({})\n",
                             earlier.id, ordinal(earlier.occurrence),
                             state_.sites[earlier.site].call, earlier_fault.injected);
    }
    a->fault_name = "explore-" + std::to_string(a->run.id);
    SiteFault fault = site_fault(a->fault_name, site_index, k);
    a->site_fault += fault.toml;
    a->run.error = std::move(fault.injected);
    const std::string what =
        state_.config.powercut ? fmt::format("the power is cut {} the {} call of {} at this site.",
                                             powercut::side_of(state_.config.targets[site->target]),
                                             ordinal(k), site->call)
                               : fmt::format("the {} call of {} at this site fails ({}).",
                                             ordinal(k), site->call, a->run.error);
    a->replay_policy =
        fmt::format("# faultline explore, run {} of {}:\n{}# {}\nversion = 1\n{}\n{}{}", a->run.id,
                    state_.dir, comment, what, state_.config.powercut ? "seed = 1\n" : "",
                    state_.config.durability, a->site_fault + state_.config.faults);
  }

  const CompileResult compiled = compile_policy_string(policy_text(*a), a->dir + "/policy");
  if (compiled.error)
    fail(fmt::format("cannot build the policy of run {}: {}", a->run.id,
                     compiled.error->to_string()));
  // A deep --state directory must not have its event log cut short in the session's field.
  if (const auto problem = log_path_problem(a->dir + "/events.jsonl", "the run's event log"))
    fail(fmt::format("--state {}: {}", state_.dir, *problem));
  a->session_name = fmt::format("fl-explore-{}-{}", getpid(), a->run.id);
  if (!state_.config.powercut) {
    a->session = launch::create_session(a->session_name, *compiled.policy);
    a->session->set_seed(1);
    a->session->set_log_path(a->dir + "/events.jsonl");
  } else {
    // `faultline run` makes the session and, after a cut, puts the tracked files back in their
    // durable state (however it does that): the run is what a user's own replay would be.
    write_file(a->dir + "/policy.toml", policy_text(*a));
  }

  launch::SpawnOptions spawn;
  spawn.new_process_group = true;
  const int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
  const int out =
      open((a->dir + "/stdout").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  const int err =
      open((a->dir + "/stderr").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (in < 0 || out < 0 || err < 0)
    fail_system("cannot open the files of run " + std::to_string(a->run.id));
  spawn.stdin_fd = in;
  spawn.stdout_fd = out;
  spawn.stderr_fd = err;
  spawn.cwd = a->work;
  a->started_ns = now_ns();
  try {
    if (state_.config.powercut)
      a->main.pid = launch::spawn(options_.faultline,
                                  powercut::run_arguments(options_.faultline, a->dir,
                                                          a->session_name, state_.config.command),
                                  shell_environment(*a), spawn);
    else
      a->main.pid = launch::spawn(
          program_, state_.config.command,
          launch::child_environment(launch::current_environment(), options_.shim, a->session_name),
          spawn);
  } catch (...) {
    close(in);
    close(out);
    close(err);
    if (!a->session_name.empty()) ControlSession::remove(a->session_name);
    throw;
  }
  close(in);
  close(out);
  close(err);
  a->main.deadline_ns = a->started_ns + options_.timeout_ns;
  return a;
}

// The check (and with --powercut the recover, into recover.out): a plain shell command in the
// run's directory, no preload.
void start_shell(Active& a, Child& child, const std::string& command, const char* output,
                 std::int64_t timeout_ns) {
  launch::SpawnOptions spawn;
  spawn.new_process_group = true;
  const int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
  const int out =
      open((a.dir + "/" + output).c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (in < 0 || out < 0) fail_system("cannot open the files of a check");
  spawn.stdin_fd = in;
  spawn.stdout_fd = out;
  spawn.stderr_fd = out;
  spawn.cwd = a.work;
  try {
    child.pid = launch::spawn("/bin/sh", {"sh", "-c", command}, shell_environment(a), spawn);
  } catch (...) {
    close(in);
    close(out);
    throw;
  }
  close(in);
  close(out);
  child.deadline_ns = now_ns() + timeout_ns;
}

void start_check(Active& a, const State& state, std::int64_t timeout_ns) {
  start_shell(a, a.check, state.config.check, "check.out", timeout_ns);
  a.checking = true;
}

void Explorer::advance(Active& a) {
  if (a.finished) return;
  if (state_.config.powercut && !a.checking) {
    after_cut(a);
    return;
  }
  if (!a.checking) {
    a.main.poll();
    if (!a.main.done) return;
    a.run.duration_ms = (now_ns() - a.started_ns) / 1'000'000;
    // Counters first, then the session goes: nothing of this run may join it any more.
    if (!a.fault_name.empty())
      for (const FaultView& f : read_faults(*a.session))
        if (fixed_text(f.spec.name) == a.fault_name) a.run.injected = f.injected;
    a.session.reset();
    ControlSession::remove(a.session_name);

    const int status = a.main.status;
    a.run.exit_status = launch::exit_status(status);
    a.run.signal = WIFSIGNALED(status) && !a.main.timed_out ? WTERMSIG(status) : 0;
    a.run.stdout_hash = hex64(file_hash(a.dir + "/stdout"));
    const bool baseline = a.run.outcome == Outcome::kBaseline;
    if (a.main.timed_out) {
      a.run.outcome = baseline ? Outcome::kBaseline : Outcome::kHung;
      a.run.note =
          fmt::format("still running after {}s: killed", options_.timeout_ns / 1'000'000'000);
    } else if (a.run.signal || (a.run.exit_status > 128 && crash_signal(a.run.exit_status - 128))) {
      if (!baseline) a.run.outcome = Outcome::kCrashed;
      a.run.note =
          a.run.signal
              ? fmt::format("killed by signal {} ({})", a.run.signal, strsignal(a.run.signal))
              : fmt::format("exit {}: a shell reporting signal {} ({})", a.run.exit_status,
                            a.run.exit_status - 128, strsignal(a.run.exit_status - 128));
    } else if (!baseline && a.run.injected == 0) {
      a.run.outcome = Outcome::kNotReached;
      a.run.note = fmt::format("exit {}: the {} call at the site never came", a.run.exit_status,
                               ordinal(a.run.occurrence));
    } else if (!state_.config.check.empty()) {
      start_check(a, state_, options_.timeout_ns);
      return;
    } else if (!baseline) {
      a.run.outcome = Outcome::kHandled;
    }
  } else {
    a.check.poll();
    if (!a.check.done) return;
    const int status = launch::exit_status(a.check.status);
    if (a.check.timed_out || status != 0) {
      if (a.run.outcome != Outcome::kBaseline) a.run.outcome = Outcome::kCheckFailed;
      runner::add_note(a.run.note, a.check.timed_out ? "the check did not finish: killed"
                                                     : fmt::format("the check exited {}", status));
    } else if (a.run.outcome != Outcome::kBaseline) {
      a.run.outcome = Outcome::kHandled;
      if (state_.config.powercut) runner::add_note(a.run.note, "the check passed");
    }
  }
  a.finished = true;
}

void Explorer::merge_sites(Active& a) {
  // A run that failed kMaxErrorPath calls in a row reveals sites too deep to follow.
  if (a.run.site >= 0 && error_path(state_, a.run.site).size() + 1 >= kMaxErrorPath) return;
  std::ifstream in(a.dir + "/sites.tsv");
  for (std::string line; std::getline(in, line);) {
    const auto fields = split(line, '\t');
    if (fields.size() < 3 || !fields[0].starts_with("rec-")) continue;
    const auto target = to_number(fields[0].substr(4));
    if (!target || *target < 0 || *target >= static_cast<long long>(compiled_.size())) continue;
    const auto call = find_call(fields[1]);
    // A call the target's action cannot fail (`sync` has no error) is not a site to explore.
    if (!call || !has_call(compiled_[*target], call->id)) continue;
    const std::string key = site_key(static_cast<int>(*target), fields[1], fields[2]);
    if (site_index_.count(key)) continue;
    Site site;
    site.target = static_cast<int>(*target);
    site.call = fields[1];
    site.site = fields[2];
    site.frames.assign(fields.begin() + 3, fields.end());
    site.found_in_run = a.run.outcome == Outcome::kBaseline ? 0 : a.run.id;
    std::string text =
        fmt::format("{}\t{}\t{}\t{}", site.found_in_run, site.target, site.call, site.site);
    for (const std::string& frame : site.frames) text += "\t" + field(frame);
    append_line(path_in(state_, kSitesFile), text);
    site_index_[key] = static_cast<int>(state_.sites.size());
    state_.sites.push_back(std::move(site));
    ++a.run.new_sites;
  }
}

// The run is over: its sites and its line go to the state; a finding keeps its directory.
void Explorer::record(Active& a) {
  const Run* baseline = state_.baseline();
  if (a.run.site >= 0) {
    next_occurrence_[a.run.site] = std::max(next_occurrence_[a.run.site], a.run.occurrence + 1);
    if (a.run.injected > 0) reached_.emplace(a.run.site, a.run.occurrence);
  }
  if (a.run.outcome == Outcome::kHandled && baseline && !state_.config.powercut) {
    if (a.run.exit_status != baseline->exit_status)
      a.run.note = fmt::format("exit {} (discovery: {})", a.run.exit_status, baseline->exit_status);
    else if (a.run.stdout_hash != baseline->stdout_hash)
      a.run.note = fmt::format("exit {} as in discovery, other output", a.run.exit_status);
    else
      a.run.note = fmt::format("exit {} as in discovery", a.run.exit_status);
  }
  merge_sites(a);
  append_line(path_in(state_, kRunsFile), run_line(a.run));
  if (is_finding(a.run.outcome)) {
    write_file(a.dir + "/replay.toml", a.replay_policy);
    std::error_code error;
    fs::remove(a.dir + "/sites.tsv", error);
  } else {
    remove_tree(a.dir);
  }
  state_.runs.push_back(a.run);
}

void Explorer::stop_all() {
  for (auto& a : active_) {
    a->main.kill_now();
    a->recover.kill_now();
    a->check.kill_now();
    a->session.reset();
    ControlSession::remove(a->session_name);
    remove_tree(a->dir);
  }
  active_.clear();
}

std::optional<std::pair<int, int>> Explorer::next_trial() {
  if (state_.config.powercut) return next_point();
  // Breadth first: every site's first call before any site's second; and the targets in turn,
  // so that a budget smaller than the sites is shared between the families. Sites are only
  // appended and never untried again, so each (occurrence, target) scan resumes where the
  // last one stopped.
  const int targets = static_cast<int>(state_.config.targets.size());
  for (int k = 1; k <= state_.config.occurrences; ++k)
    for (int j = 0; j < targets; ++j) {
      const int target = (next_target_ + j) % targets;
      std::size_t& i = scan_from_[{k, target}];
      for (; i < state_.sites.size(); ++i)
        if (state_.sites[i].target == target && !tried_.count({static_cast<int>(i), k})) {
          next_target_ = (target + 1) % targets;
          return std::pair(static_cast<int>(i), k);
        }
    }
  return std::nullopt;
}

void Explorer::report_progress(const Run* finished) {
  if (!options_.progress) return;
  const std::size_t untried =
      state_.config.powercut
          ? state_.untried()
          : state_.sites.size() * static_cast<std::size_t>(state_.config.occurrences) -
                tried_.size();
  const std::uint64_t left = options_.max_runs - static_cast<std::uint64_t>(started_);
  Progress p{state_, finished, started_, static_cast<int>(active_.size()),
             static_cast<std::size_t>(started_) + std::min<std::uint64_t>(left, untried)};
  options_.progress(p);
}

void Explorer::discover() {
  if (state_.baseline()) return;
  auto a = start(-1, 0);
  active_.push_back(std::move(a));
  Active& d = *active_.back();
  while (!d.finished) {
    if (stopping()) {
      stop_all();
      fail("interrupted during the discovery run");
    }
    advance(d);
    if (!d.finished) sleep_ns(kPollIntervalNs);
  }
  const std::string& stderr_tail = output_tail(state_, d.run, "stderr", 5);
  const std::string shown = stderr_tail.empty() ? "" : "; its stderr ends with:\n" + stderr_tail;
  auto refuse = [&](const std::string& why) {
    remove_tree(d.dir);
    active_.clear();
    fail(why + shown);
  };
  if (d.main.timed_out)
    refuse(fmt::format("{} did not finish within {}s without any fault: raise --timeout",
                       state_.config.command.front(), options_.timeout_ns / 1'000'000'000));
  if (d.run.signal)
    refuse(
        fmt::format("{} is killed by signal {} ({}) without any fault: explore needs a run "
                    "that ends by itself",
                    state_.config.command.front(), d.run.signal, strsignal(d.run.signal)));
  if (state_.config.powercut && !powercut::injected_total(d.dir + "/run.json"))
    refuse(fmt::format("faultline run could not run {} (exit {})", state_.config.command.front(),
                       d.run.exit_status));
  if (d.recovering && (d.recover.timed_out || launch::exit_status(d.recover.status) != 0))
    refuse(
        fmt::format("the --recover fails after a run without any cut ({}): it must pass on a "
                    "healthy run",
                    d.run.note));
  if (d.checking && (d.check.timed_out || launch::exit_status(d.check.status) != 0))
    refuse(
        fmt::format("the --check fails after a run without any fault ({}): it must pass on a "
                    "healthy run",
                    d.run.note));
  d.run.note.clear();
  if (d.run.exit_status != 0)
    state_.warnings.push_back(fmt::format(
        "{} exits {} without any fault{}; runs are compared with that",
        state_.config.command.front(), d.run.exit_status,
        state_.config.in_place ? ""
                               : " (each run starts in an empty directory: give input files as "
                                 "absolute paths, or use --in-place)"));
  record(d);
  active_.clear();
  report_progress(&state_.runs.back());
}

void Explorer::explore() {
  discover();
  for (;;) {
    if (stopping()) {
      stop_all();
      return;
    }
    while (static_cast<int>(active_.size()) < options_.jobs &&
           static_cast<std::uint64_t>(started_) < options_.max_runs) {
      const auto trial = next_trial();
      if (!trial) break;
      tried_.insert(*trial);
      active_.push_back(start(trial->first, trial->second));
      ++started_;
      report_progress(nullptr);
    }
    if (active_.empty()) return;
    bool any = false;
    for (auto it = active_.begin(); it != active_.end();) {
      advance(**it);
      if ((*it)->finished) {
        record(**it);
        it = active_.erase(it);
        report_progress(&state_.runs.back());
        any = true;
      } else {
        ++it;
      }
    }
    if (!any) sleep_ns(kPollIntervalNs);
  }
}

}  // namespace runner

State run(const Options& options) {
  if (options.jobs < 1) fail("--jobs must be at least 1");
  if (options.timeout_ns <= 0) fail("--timeout must be longer than 0");
  if (options.state_dir.empty()) fail("no state directory (--state DIR)");
  std::vector<std::string> warnings;
  const Config config = runner::make_config(options, warnings);

  State state;
  std::error_code error;
  const std::string dir = fs::absolute(options.state_dir, error).lexically_normal().string();
  if (fs::exists(dir + "/" + kConfigFile)) {
    state = load(dir);
    // A state whose discovery never succeeded holds nothing yet: take the new settings.
    if (state.runs.empty() && state.sites.empty()) {
      state.config = config;
      save_config(state);
    }
    if (!runner::same_exploration(state.config, config))
      fail(
          fmt::format("{} holds an exploration of another command or with other settings "
                      "(command, --calls, -p, --depth, --occurrences, --check, --in-place, "
                      "--powercut, --recover): "
                      "use another --state, or remove it",
                      state.dir));
  } else {
    if (fs::exists(dir) && !fs::is_directory(dir)) fail(dir + " is not a directory");
    if (fs::exists(dir) && !fs::is_empty(dir, error))
      fail(fmt::format("{} is not empty and holds no exploration: pick a new --state", dir));
    fs::create_directories(dir + "/runs", error);
    if (error) fail(fmt::format("cannot create {}: {}", dir, error.message()));
    state.dir = dir;
    if (state.dir.size() > 1 && state.dir.back() == '/') state.dir.pop_back();
    state.config = config;
    save_config(state);
  }
  fs::create_directories(state.dir + "/runs", error);
  state.warnings = std::move(warnings);
  runner::Explorer explorer(options, state);
  try {
    explorer.prepare();
    explorer.explore();
  } catch (...) {
    explorer.stop_all();  // nothing of a failed exploration is left running
    throw;
  }
  return state;
}

}  // namespace faultline::explore
