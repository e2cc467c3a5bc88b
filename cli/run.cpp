// `faultline run`: compile the policy, make sure the preload can actually reach CMD, create the
// session, run CMD with the shim preloaded, forward signals to it, report what was injected and
// remove the session (or keep it, and say so, while processes CMD left behind still run). CMD is
// refused rather than run unfaulted when no preload could reach it (statically linked, set-id,
// another architecture): a fault test that silently injects nothing is worse than no test. The
// launch itself (command resolution, vetting, finding the shim, the environment, fork+exec) is
// controller/launcher.cpp, shared with the C++ API.
#include <fmt/format.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <optional>

#include "calls/calls.h"
#include "cli/cli.h"
#include "cli/doctor.h"
#include "cli/output.h"
#include "cli/powercut.h"
#include "controller/launcher.h"
#include "controller/launcher_backend.h"
#include "controller/seccomp/supervisor.h"
#include "policy/seccomp_filter.h"
#include "session/session.h"

namespace faultline::cli {
namespace {

// A power cut ends `run` as the SIGKILL it is (docs/policy.md, "Durability: power cuts").
constexpr int kPowercutStatus = 128 + SIGKILL;

constexpr int kForwardedSignals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};

std::string errno_message(int err) { return std::strerror(err); }

// Restores the signal mask on every way out of spawn_and_wait, errors included.
class SignalMask {
 public:
  explicit SignalMask(const sigset_t& block) { sigprocmask(SIG_BLOCK, &block, &previous_); }
  ~SignalMask() { sigprocmask(SIG_SETMASK, &previous_, nullptr); }
  SignalMask(const SignalMask&) = delete;
  SignalMask& operator=(const SignalMask&) = delete;
  const sigset_t& previous() const { return previous_; }

 private:
  sigset_t previous_;
};

using launch::exit_status;
using launch::wait_for;

// A terminal's ^C, ^\ or hangup goes to the whole foreground process group (si_code SI_KERNEL):
// CMD, in our group, already has its copy, and a second ^C means "force quit" to many programs.
// A signal CMD sent to its own group is not echoed back to it either.
bool child_already_has(const siginfo_t& info, pid_t child) {
  if (info.si_code == SI_KERNEL) return getpgid(child) == getpgrp();
  return info.si_code == SI_USER && info.si_pid == child;
}

// Waits for CMD with the forwarded signals and SIGCHLD blocked and taken synchronously: no
// handler runs at an awkward moment and no signal is lost between fork and wait.
int wait_forwarding(pid_t child, const sigset_t& waited) {
  for (;;) {
    siginfo_t info;
    const int sig = sigwaitinfo(&waited, &info);
    if (sig < 0) {
      if (errno == EINTR) continue;  // e.g. resumed by SIGCONT
      fail(kExitUsage, fmt::format("sigwaitinfo: {}", errno_message(errno)));
    }
    if (sig == SIGCHLD) {
      if (const int status = wait_for(child, WNOHANG); status != -1) return status;
    } else if (!child_already_has(info, child)) {
      kill(child, sig);
    }
  }
}

std::string families_text(std::uint32_t families) {
  std::string text;
  for (Family f : {kFamWrite, kFamRead, kFamFsync, kFamOpen, kFamNet, kFamFs})
    if (families & f) text += (text.empty() ? "" : ", ") + std::string(family_name(f));
  return text.empty() ? "none" : text;
}

// The seccomp backend's part of a run: the filter for the policy's families.
struct SeccompRun {
  launch::SeccompPlan plan;
  bool quiet = false;
};

// Returns CMD's wait status. With `seccomp`, CMD runs under the filter and a supervisor
// thread answers its trapped calls until CMD has ended.
int spawn_and_wait(const std::string& path, const std::vector<std::string>& args,
                   const std::vector<std::string>& env, const std::vector<int>& inherited_fds,
                   ControlSession& session, const SeccompRun* seccomp, bool deny_io_uring) {
  sigset_t waited;
  sigemptyset(&waited);
  sigaddset(&waited, SIGCHLD);
  for (int sig : kForwardedSignals) sigaddset(&waited, sig);
  const SignalMask mask(waited);

  launch::SpawnOptions options;
  options.child_mask = &mask.previous();
  options.inherited_fds = &inherited_fds;
  options.deny_io_uring = deny_io_uring;
  sock_fprog program{};
  launch::SeccompSpawn spawn_filter;
  if (seccomp != nullptr) {
    program.len = static_cast<unsigned short>(seccomp->plan.filter.size());
    program.filter = const_cast<sock_filter*>(seccomp->plan.filter.data());
    spawn_filter.filter = &program;
    options.seccomp = &spawn_filter;
  }
  const pid_t child = launch::spawn(path, args, env, options);
  if (seccomp == nullptr) return wait_forwarding(child, waited);
  // Started with the forwarded signals blocked (the mask above), like this thread.
  seccomp::Supervisor supervisor(spawn_filter.listener, session.block(),
                                 session.register_pid(child), child);
  if (!seccomp->quiet && seccomp->plan.families == 0)
    fmt::print(stderr,
               "faultline: seccomp backend: the policy names no fault, so no system call is "
               "trapped and none can be faulted in this run (a filter cannot change after "
               "the program started: name the families in the policy, disabled if need be)\n");
  else if (!seccomp->quiet)
    fmt::print(stderr,
               "faultline: seccomp backend: the system calls of {} are trapped (faults of "
               "other families cannot be added live)\n",
               families_text(seccomp->plan.families));
  if (!spawn_filter.wait_killable && !seccomp->quiet)
    fmt::print(stderr,
               "faultline: warning: this kernel has no SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV "
               "(Linux 5.19): a signal reaching a held call (a delay) cuts the hold short, and "
               "the program restarts the call, which is then decided again\n");
  const int status = wait_forwarding(child, waited);
  if (supervisor.finish() && !seccomp->quiet)
    fmt::print(stderr,
               "faultline: processes of CMD's tree still run under the seccomp filter: their "
               "system calls now run unfaulted (a helper process lets them through until they "
               "end)\n");
  return status;
}

// ---- after CMD -------------------------------------------------------------------------------

// Injection times relative to the session start: "+1.234s".
std::string since_start(std::int64_t realtime_ns, std::int64_t start_ns) {
  if (realtime_ns == 0) return "-";
  return "+" + human_age(std::max<std::int64_t>(0, realtime_ns - start_ns));
}

// Never silent: why an enabled fault saw no call at all, from what the program's ELF says
// and whether the run denied it io_uring (doctor.cpp). "" when the fault saw calls, is
// disabled, or the program could not be read.
struct RunFacts {
  std::optional<ProgramFacts> program;
  bool io_uring_denied = false;
};

std::string silent_hint(const RunFacts& facts, const FaultView& f) {
  if (!facts.program) return "";
  return silent_fault_hint(*facts.program, f, facts.io_uring_denied);
}

void print_summary(const ControlSession& session, int wait_status, const RunFacts& facts,
                   const std::optional<durability::CutReport>& cut) {
  const SessionState state = read_state(session.block());
  const auto faults = read_faults(session);
  std::string ending = fmt::format("exit status {}", exit_status(wait_status));
  if (WIFSIGNALED(wait_status)) ending += fmt::format(" ({})", signal_text(WTERMSIG(wait_status)));
  const std::string flags =
      state.flags != 0 ? fmt::format(", session {}", state_name(state.flags, 0)) : "";
  fmt::print(stderr, "faultline: session {}, seed {}: {}, {} injected{}\n", session.name(),
             state.seed, ending, state.injected_total, flags);
  if (cut) print_cut(*cut, stderr);
  if (faults.empty()) return;
  const std::int64_t start = session.block().header.start_real_ns.load(std::memory_order_relaxed);
  Table table({"FAULT", "SEEN", "MATCHED", "INJECTED", "FIRST", "LAST"},
              {false, true, true, true, false, false});
  for (const FaultView& f : faults)
    table.add_row({std::string(fixed_text(f.spec.name)), std::to_string(f.seen),
                   std::to_string(f.matched), std::to_string(f.injected),
                   since_start(f.first_injection_ns, start),
                   since_start(f.last_injection_ns, start)});
  table.print(stderr, "  ");
  for (const FaultView& f : faults)
    if (const std::string hint = silent_hint(facts, f); !hint.empty())
      fmt::print(stderr, "faultline: {}\n", silent_fault_line(f, hint));
}

// The summary's facts as one JSON object, for scripts (`--json`, `--json-summary`).
std::string json_summary(const ControlSession& session, int wait_status, const RunFacts& facts,
                         const std::optional<durability::CutReport>& cut) {
  const SessionState state = read_state(session.block());
  Json items = Json::array();
  for (const FaultView& f : read_faults(session)) {
    Json item = fault_json(f);
    if (const std::string hint = silent_hint(facts, f); !hint.empty()) item["hint"] = hint;
    items.push_back(std::move(item));
  }
  Json o;
  o["session"] = json_text(session.name());
  o["seed"] = json_digits(state.seed);
  o["exit_status"] = cut ? kPowercutStatus : exit_status(wait_status);
  o["signal"] = WIFSIGNALED(wait_status) ? Json(signal_text(WTERMSIG(wait_status))) : Json(nullptr);
  o["state"] = std::string(state_name(state.flags, state.armed_mask));
  o["injected_total"] = state.injected_total;
  o["faults"] = std::move(items);
  o["powercut"] = cut ? cut_json(*cut) : Json(nullptr);
  return json_dump(o);
}

// `--json-summary FILE` (`-`: stderr, CMD owns stdout). Failing to write it is reported but
// does not replace CMD's exit status.
void write_json_summary(const std::string& file, const std::string& json) {
  if (file == "-") {
    fmt::print(stderr, "{}\n", json);
    return;
  }
  std::ofstream out(file, std::ios::trunc);
  out << json << '\n';
  if (!out.flush())
    fmt::print(stderr, "faultline: warning: cannot write {}: {}\n", file, errno_message(errno));
}

// Ends `run`'s part in the session on every way out once it exists, errors included: the
// block is removed unless processes of CMD's tree still run (a daemon that double-forked
// away), which keep it, stay reachable by `panic`, and are told of on stderr.
class SessionEnd {
 public:
  explicit SessionEnd(ControlSession& session) : session_(session) {}
  ~SessionEnd() {
    launch::register_stray_members(session_);
    const std::vector<pid_t> alive = session_.leave(getpid());
    // The undo area goes with the session (a kept session keeps it: `powercut` may need it).
    if (alive.empty()) durability::remove_undo_area(undo_dir);
    if (alive.empty()) return;
    fmt::print(stderr,
               "faultline: session {} kept: {} process{} still run{}; `faultline panic {}` "
               "reaches {}\n",
               session_.name(), alive.size(), alive.size() == 1 ? "" : "es",
               alive.size() == 1 ? "s" : "", session_.name(), alive.size() == 1 ? "it" : "them");
  }
  SessionEnd(const SessionEnd&) = delete;
  SessionEnd& operator=(const SessionEnd&) = delete;
  std::string undo_dir;

 private:
  ControlSession& session_;
};

}  // namespace

int run_command(const RunOptions& options) {
  // Before faultline opens anything: these are the descriptors CMD must inherit.
  const std::vector<int> inherited_fds = launch::open_fds();
  if (options.command.empty()) fail(kExitUsage, "no command: faultline run [OPTIONS] -- CMD");

  // `-p -`: the policy from standard input (CMD then inherits what is left of it).
  Policy policy =  // not const: the seccomp backend widens @fs calls (widen_calls)
      options.policy.empty() ? Policy{} : compile_policy_or_fail(options.policy, true);
  const std::uint64_t seed = launch::choose_seed(
      options.seed ? std::optional(launch::parse_seed(*options.seed, "--seed ")) : std::nullopt,
      policy);
  const std::string name = launch::choose_session_name(options.session);
  const std::string program = launch::resolve_command(options.command.front());
  const std::string shim = launch::find_shim(launch::executable_shim_defaults());
  // Read now, while it is the file about to run: the summary's hints and `auto` use it.
  RunFacts facts;
  facts.io_uring_denied = policy.deny_io_uring;
  try {
    facts.program = inspect_program(program);
  } catch (const std::exception&) {
    // Not readable as ELF (a script): no hints, and `auto` is the preload.
  }
  const bool seccomp = launch::use_seccomp(options.backend, policy, program);
  if (facts.program) facts.program->under_seccomp = seccomp;
  std::vector<std::string> warnings;
  if (!seccomp)
    launch::check_not_disabled(launch::current_environment(), !options.policy.empty(), warnings);
  launch::vet_program(program, shim, warnings, seccomp);
  for (const auto& w : warnings) fmt::print(stderr, "faultline: warning: {}\n", w);
  SeccompRun seccomp_run;
  if (seccomp) {
    seccomp_run.plan = launch::plan_seccomp(policy);
    seccomp_run.quiet = options.quiet || options.json;
  }

  // Checked before the session exists: a refused --log leaves nothing behind.
  const std::optional<std::string> log = launch::log_path_override(options.log);

  const auto session = launch::create_session(name, policy);
  SessionEnd end(*session);
  if (policy.durability.path[0]) {
    // Named at start, whatever it is (docs/policy.md, "Durability: power cuts").
    const durability::UndoArea area =
        durability::make_undo_area(policy.durability.path, sizeof policy.durability.path, name);
    // -q keeps the line only when tracking is impaired: that is never silent.
    const bool impaired = area.dir.empty() || !area.hard_links;
    if (!options.json && (!options.quiet || impaired))
      fmt::print(stderr, "faultline: {}\n", area.note);
    end.undo_dir = area.dir;
    if (!area.dir.empty()) session->set_undo_dir(area.dir);
  }
  session->set_seed(seed);
  if (log) session->set_log_path(*log);
  // ControlSession::create registered this process as a member: the session cannot look dead (and
  // be swept by `faultline sessions`) before CMD's first process has joined it.
  if (!options.quiet && !options.json)
    fmt::print(stderr, "faultline: session {}, seed {}\n", name, seed);
  if (seccomp) launch::mark_seccomp(*session, seccomp_run.plan);

  const int wait_status =
      seccomp ? spawn_and_wait(program, options.command,
                               launch::seccomp_environment(launch::current_environment()),
                               inherited_fds, *session, &seccomp_run, policy.deny_io_uring)
              : spawn_and_wait(program, options.command,
                               launch::child_environment(launch::current_environment(), shim, name),
                               inherited_fds, *session, nullptr, policy.deny_io_uring);
  // A power cut (a `powercut` fault, or `faultline powercut`): whatever of the session still
  // runs dies now, and only then are the tracked files reverted.
  std::optional<durability::CutReport> cut;
  if (session->block().header.flags.load(std::memory_order_acquire) & kFlagPowercut) {
    const std::vector<pid_t> left = durability::kill_members(session->block(), 0);
    cut = durability::revert_session(session->block());
    if (!left.empty())
      cut->problems.push_back(fmt::format("{} process{} still alive after 2 s: reverted anyway",
                                          left.size(), left.size() == 1 ? "" : "es"));
    log_cut(session->block(), *cut);
  }
  // --json replaces the table with the JSON line (on stderr, like the table), even with -q:
  // a script asking for JSON wants nothing else there.
  if (options.json)
    fmt::print(stderr, "{}\n", json_summary(*session, wait_status, facts, cut));
  else if (!options.quiet)
    print_summary(*session, wait_status, facts, cut);
  if (!options.json_summary.empty())
    write_json_summary(options.json_summary, json_summary(*session, wait_status, facts, cut));
  return cut ? kPowercutStatus : exit_status(wait_status);
}

}  // namespace faultline::cli
