// The controller subcommands: everything but `run`. Each attaches to a live session (named, or
// the only live one), reads or edits it through the ControlSession API and returns; the target
// processes see an edit on their next armed call, with no restart and no signal.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>

#include "calls/calls.h"
#include "cli/cli.h"
#include "cli/doctor.h"
#include "cli/output.h"
#include "cli/powercut.h"
#include "controller/edits.h"
#include "controller/inspect.h"
#include "policy/policy.h"
#include "session/session.h"
#include "shim/engine/event_line.h"

namespace faultline::cli {
namespace {

constexpr std::int64_t kMsNs = 1'000'000;
constexpr std::int64_t kFollowPollNs = 50 * kMsNs;
constexpr std::int64_t kWatchRefreshNs = 500 * kMsNs;
// A slot still being written after this many polls belongs to a writer that died mid-event.
constexpr int kMaxEventStalls = 20;

// ---- sessions: which one a command means --------------------------------------------------

bool session_exists(const std::string& name) {
  struct stat st;
  return valid_session_name(name) && stat(shm_file_path(name).c_str(), &st) == 0;
}

// A block that exists but cannot be used (another user's, another ABI version) is bad input,
// not "nothing to act on": the user named something real that faultline must refuse. The
// error names the session already ("session 'x': belongs to uid 1001, not to you ...").
std::unique_ptr<ControlSession> attach_or_fail(const std::string& name) {
  std::string error;
  auto session = ControlSession::attach(name, error);
  if (!session) fail(kExitUsage, error);
  return session;
}

std::vector<std::string> live_session_names() {
  std::vector<std::string> names;
  for (const SessionInfo& info : list_sessions(true))
    if (info.problem.empty()) names.push_back(info.name);
  std::sort(names.begin(), names.end());
  return names;
}

std::unique_ptr<ControlSession> only_live_session() {
  const auto names = live_session_names();
  if (names.empty()) fail(kExitNothing, "no live session (start one with `faultline run`)");
  if (names.size() > 1)
    fail(kExitUsage, fmt::format("several live sessions ({}): name one", fmt::join(names, ", ")));
  return attach_or_fail(names.front());
}

// For commands whose only positional is SESSION: a name that is not a session is an error.
std::unique_ptr<ControlSession> open_session(const std::string& name) {
  if (name.empty()) return only_live_session();
  if (!session_exists(name)) {
    const auto names = live_session_names();
    fail(kExitNothing,
         fmt::format(
             "no session '{}' ({})", name,
             names.empty() ? "no live sessions" : fmt::format("live: {}", fmt::join(names, ", "))));
  }
  return attach_or_fail(name);
}

// For commands taking [SESSION] NAME...: the first argument is the session when one by that
// name exists (it is then removed from `args`); otherwise every argument is for the command.
std::unique_ptr<ControlSession> open_leading_session(std::vector<std::string>& args) {
  if (args.empty() || !session_exists(args.front())) return only_live_session();
  auto session = attach_or_fail(args.front());
  args.erase(args.begin());
  return session;
}

// Ended, for `events --follow` and `watch`: unlinked, or every member process is gone (a
// plain-LD_PRELOAD session stays in /dev/shm until `faultline sessions` sweeps it).
bool session_gone(const ControlSession& session) {
  struct stat st;
  return stat(shm_file_path(session.name()).c_str(), &st) != 0 || session.live_pids().empty();
}

// ---- small helpers -------------------------------------------------------------------------

void print_warnings(const std::vector<std::string>& warnings) {
  for (const auto& w : warnings) fmt::print(stderr, "{}\n", w);
}

// A snippet or policy file, read with the compiler's bounds (regular files, 1 MiB).
std::string read_text_file(const std::string& path, bool allow_stdin = false) {
  std::string text;
  if (std::optional<std::string> problem = read_policy_text(path, text, allow_stdin))
    fail(kExitUsage, fmt::format("{}: cannot read: {}",
                                 allow_stdin && path == "-" ? "standard input" : path, *problem));
  return text;
}

std::string user_name(uid_t uid) {
  struct passwd entry;
  struct passwd* found = nullptr;
  char buffer[1024];
  if (getpwuid_r(uid, &entry, buffer, sizeof buffer, &found) == 0 && found != nullptr)
    return found->pw_name;
  return std::to_string(uid);
}

// A process that joined twice (e.g. the creator, then its own shim) is listed once.
std::string pids_text(std::vector<pid_t> pids) {
  constexpr std::size_t kShown = 4;
  std::sort(pids.begin(), pids.end());
  pids.erase(std::unique(pids.begin(), pids.end()), pids.end());
  if (pids.empty()) return "-";
  std::vector<pid_t> shown(pids.begin(), pids.begin() + std::min(pids.size(), kShown));
  std::string text = fmt::format("{}", fmt::join(shown, ","));
  if (pids.size() > kShown) text += fmt::format(",+{}", pids.size() - kShown);
  return text;
}

// The flags, with an expired TTL that no target process has noticed yet (the shim sets the
// flag on its next armed call; SessionInfo does not carry the TTL).
std::uint32_t current_flags(const SessionInfo& info) {
  std::string error;
  const auto session = ControlSession::attach(info.name, error);
  return session ? read_state(session->block()).flags : info.flags;
}

// The attach error without the "session 'x': " it starts with: the row already names it.
std::string problem_text(const SessionInfo& info) {
  const std::string prefix = fmt::format("session '{}': ", info.name);
  return info.problem.starts_with(prefix) ? info.problem.substr(prefix.size()) : info.problem;
}

// SIGINT/SIGTERM end `events --follow` and `watch` cleanly (exit 0, output flushed).
volatile std::sig_atomic_t g_stop_requested = 0;

void on_stop_signal(int) { g_stop_requested = 1; }

void catch_stop_signals() {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

// Sleeps; a stop signal cuts the sleep short (nanosleep fails with EINTR, no SA_RESTART).
bool sleep_unless_stopped(std::int64_t ns) {
  const timespec pause{static_cast<time_t>(ns / 1'000'000'000),
                       static_cast<long>(ns % 1'000'000'000)};
  if (!g_stop_requested) nanosleep(&pause, nullptr);
  return !g_stop_requested;
}

// ---- status and watch ----------------------------------------------------------------------

std::string status_line(const ControlSession& session, const SessionState& state) {
  std::string ttl = state.ttl_left_ns == kForever ? "none"
                    : state.ttl_left_ns == 0      ? "expired"
                                                  : human_age(state.ttl_left_ns) + " left";
  std::string injected = std::to_string(state.injected_total);
  if (state.max_faults_total != kUnlimited) injected += fmt::format("/{}", state.max_faults_total);
  return fmt::format("session {}  seed {}  state {}  ttl {}  injected {}", session.name(),
                     state.seed, state_name(state.flags, state.armed_mask), ttl, injected);
}

std::string status_action(const FaultView& f) {
  std::string text = action_text(f.spec);
  if (f.spec.actions & kActQuota) text += " used=" + human_size(f.quota_used);
  return text;
}

// Never silent while it runs: the hint `run`'s summary would give each enabled fault that has
// seen no call yet, from the programs the session's processes run. Built only when some fault
// is silent (each member's executable is read, once).
std::vector<std::string> silent_hints(const ControlSession& session,
                                      const std::vector<FaultView>& faults) {
  std::vector<std::string> hints(faults.size());
  std::optional<SessionHints> members;
  for (std::size_t i = 0; i < faults.size(); ++i) {
    if (faults[i].seen != 0 || !faults[i].enabled) continue;
    if (!members) members.emplace(session);
    hints[i] = members->hint(faults[i]);
  }
  return hints;
}

void print_status_text(const ControlSession& session, const SessionState& state,
                       const std::vector<FaultView>& faults) {
  fmt::print("{}\n", status_line(session, state));
  if (faults.empty()) {
    fmt::print("no faults (add some with `faultline add`)\n");
    return;
  }
  Table table({"FAULT", "ON", "CALLS", "SELECT", "ACTION", "PROB", "AFTER", "EVERY", "TIMES",
               "SEEN", "MATCHED", "INJECTED"},
              {false, false, false, false, false, true, true, true, true, true, true, true});
  for (const FaultView& f : faults)
    table.add_row({std::string(fixed_text(f.spec.name)), f.enabled ? "yes" : "no",
                   calls_text(f.spec), selectors_text(f.spec), status_action(f),
                   fmt::format("{}", f.spec.probability), std::to_string(f.spec.after),
                   std::to_string(f.spec.every), times_text(f.spec.times), std::to_string(f.seen),
                   std::to_string(f.matched), std::to_string(f.injected)});
  table.print(stdout);
  const std::vector<std::string> hints = silent_hints(session, faults);
  for (std::size_t i = 0; i < faults.size(); ++i)
    if (!hints[i].empty()) fmt::print("{}\n", silent_fault_line(faults[i], hints[i]));
}

using CorruptSlots = std::vector<std::pair<int, std::string>>;

void print_status_json(const ControlSession& session, const SessionState& state,
                       const std::vector<FaultView>& faults, const CorruptSlots& corrupt) {
  Json items = Json::array();
  const std::vector<std::string> hints = silent_hints(session, faults);
  for (std::size_t i = 0; i < faults.size(); ++i) {
    Json item = fault_json(faults[i]);
    if (!hints[i].empty()) item["hint"] = hints[i];
    items.push_back(std::move(item));
  }
  Json bad = Json::array();
  for (const auto& [slot, problem] : corrupt)
    bad.push_back(Json{{"slot", slot}, {"problem", json_text(problem)}});
  Json o;
  o["session"] = json_text(session.name());
  o["seed"] = json_digits(state.seed);
  o["state"] = std::string(state_name(state.flags, state.armed_mask));
  o["panicked"] = (state.flags & kFlagPanicked) != 0;
  o["expired"] = (state.flags & kFlagTtlExpired) != 0;
  o["over_budget"] = (state.flags & kFlagBudgetSpent) != 0;
  o["ttl_left_ns"] = state.ttl_left_ns == kForever ? Json(nullptr) : Json(state.ttl_left_ns);
  o["max_faults"] =
      state.max_faults_total == kUnlimited ? Json(nullptr) : Json(state.max_faults_total);
  o["injected_total"] = state.injected_total;
  o["faults"] = std::move(items);
  o["corrupt"] = std::move(bad);
  print_json(o);
}

std::string rate_text(std::uint64_t now, std::uint64_t before, std::int64_t interval_ns) {
  if (interval_ns <= 0 || now < before) return "-";
  return fmt::format("{:.1f}", static_cast<double>(now - before) * 1e9 / interval_ns);
}

// What one watch frame shows, kept to compute the next frame's rates.
struct WatchSample {
  std::vector<FaultView> faults;
  std::vector<MemberView> members;
  std::int64_t at_ns = 0;  // CLOCK_MONOTONIC
};

void print_watch_faults(const WatchSample& now, const WatchSample& previous) {
  const std::int64_t interval_ns = now.at_ns - previous.at_ns;
  Table table({"FAULT", "ON", "ACTION", "SEEN", "MATCHED", "INJECTED", "SEEN/s", "INJ/s", "LAST"},
              {false, false, false, true, true, true, true, true, true});
  for (const FaultView& f : now.faults) {
    // Rates only against the same fault in the same slot: a slot may be removed and reused.
    const auto before =
        std::find_if(previous.faults.begin(), previous.faults.end(), [&](const FaultView& p) {
          return p.index == f.index && fixed_text(p.spec.name) == fixed_text(f.spec.name);
        });
    const bool known = before != previous.faults.end();
    table.add_row({std::string(fixed_text(f.spec.name)), f.enabled ? "yes" : "no", status_action(f),
                   std::to_string(f.seen), std::to_string(f.matched), std::to_string(f.injected),
                   known ? rate_text(f.seen, before->seen, interval_ns) : "-",
                   known ? rate_text(f.injected, before->injected, interval_ns) : "-",
                   ago_text(f.last_injection_ns)});
  }
  if (table.empty())
    fmt::print("no faults (add some with `faultline add`)\n");
  else
    table.print(stdout);
}

void print_watch_members(const WatchSample& now, const WatchSample& previous) {
  constexpr std::size_t kMaxRows = 20;
  const std::int64_t interval_ns = now.at_ns - previous.at_ns;
  // Live members, and exited ones that did something: a tree's short-lived helpers (a shell
  // wrapper, `pyenv exec`) join and leave without an armed call and would bury the rest.
  std::vector<const MemberView*> shown;
  for (const MemberView& m : now.members)
    if (m.alive || m.seen != 0 || m.injected != 0) shown.push_back(&m);
  std::stable_sort(shown.begin(), shown.end(), [](const MemberView* a, const MemberView* b) {
    return a->alive != b->alive ? a->alive : a->injected > b->injected;
  });
  const std::size_t hidden = shown.size() > kMaxRows ? shown.size() - kMaxRows : 0;
  shown.resize(shown.size() - hidden);
  Table table({"PID", "PROCESS", "CALLS", "INJECTED", "CALLS/s", "INJ/s", "LAST"},
              {true, false, true, true, true, true, true});
  for (const MemberView* member : shown) {
    const MemberView& m = *member;
    const auto before =
        std::find_if(previous.members.begin(), previous.members.end(),
                     [&](const MemberView& p) { return p.index == m.index && p.pid == m.pid; });
    const bool known = before != previous.members.end() && m.alive;
    table.add_row({std::to_string(m.pid), m.alive ? m.process : "(exited)", std::to_string(m.seen),
                   std::to_string(m.injected),
                   known ? rate_text(m.seen, before->seen, interval_ns) : "-",
                   known ? rate_text(m.injected, before->injected, interval_ns) : "-",
                   ago_text(m.last_injection_ns)});
  }
  if (!table.empty()) table.print(stdout);
  if (hidden != 0) fmt::print("... and {} more processes\n", hidden);
}

void print_watch_frame(const ControlSession& session, const WatchSample& now,
                       const WatchSample& previous, std::size_t corrupt) {
  fmt::print("{}    (Ctrl-C to quit)\n", status_line(session, read_state(session.block())));
  if (corrupt != 0)
    fmt::print("{} corrupt fault slot(s), ignored by every process: see `faultline status`\n",
               corrupt);
  fmt::print("\n");
  print_watch_faults(now, previous);
  fmt::print("\n");
  print_watch_members(now, previous);
}

// ---- events ----------------------------------------------------------------------------------

// Turns the integer ids of an event into the names people and the event log use.
class EventPrinter {
 public:
  EventPrinter(const ControlSession& session, bool json) : session_(session), json_(json) {}

  void print(const RingEvent& e) {
    if (json_)
      fmt::print("{}\n", json(e));
    else
      fmt::print("{}\n", human(e));
  }

 private:
  // Field for field, in the same order, the line the shim appends to the event log
  // (shim/engine/events.cpp emit_event), so that a script reads `events --json` and the log file
  // alike. The ring holds the process and fault names as they were at the injection.
  // The ring's text is a path, or the socket address of a @net event, or the name of a @dns one.
  static const char* text_key(const RingEvent& e) { return event_text_key(e); }

  // Through the shim's own formatter (shim/engine/event_line.h), so the two cannot drift apart.
  std::string json(const RingEvent& e) {
    shim::EventFields f{};
    f.seq = e.index;
    f.ts_ns = e.ts_ns;
    f.pid = e.pid;
    f.tid = e.tid;
    f.process = e.process.c_str();
    f.fault = e.fault_name.c_str();
    const std::string call = call_name(e.call);
    f.call = call.c_str();
    f.has_fd = e.fd >= 0;
    f.fd = e.fd;
    const std::string_view key = text_key(e);
    f.path = key == "path" ? e.path.c_str() : "";
    f.addr = key == "addr" ? e.path.c_str() : "";
    f.host = key == "host" ? e.path.c_str() : "";
    const std::string action(action_name(e.action));
    f.action = action.c_str();
    f.has_error = e.action == kActError;
    f.error = e.error;
    f.has_size = (e.present & kEventHasSize) != 0;
    f.size = e.size;
    f.bytes = (e.present & kEventHasBytes) != 0 ? static_cast<std::int64_t>(e.bytes) : -1;
    f.delay_ns = e.delay_ns;
    f.has_signal = e.action == kActCrash;
    f.signal = e.error;
    std::string buffer(shim::kEventLineMax, '\0');
    shim::TextBuf line(buffer.data(), buffer.size());
    shim::event_line_fields(line, f, 0);
    shim::event_line_end(line, session_.block().header.seed.load(std::memory_order_relaxed));
    buffer.resize(line.size());
    return buffer;
  }

  std::string human(const RingEvent& e) {
    std::string who = fmt::format("{}[{}", e.process, e.pid);
    who += e.tid != e.pid && e.tid != 0 ? fmt::format("/{}]", e.tid) : "]";
    std::string line =
        fmt::format("{} {} {}: {}", local_time(e.ts_ns), who, e.fault_name, call_name(e.call));
    if (e.fd >= 0) line += fmt::format(" fd={}", e.fd);
    if (!e.path.empty()) line += fmt::format(" {}={}", text_key(e), e.path);
    line += fmt::format(" -> {}", action_name(e.action));
    if (e.action == kActError) line += " " + errno_text(e.error);
    if (e.action == kActCrash) line += " " + signal_text(e.error);
    if (e.present & kEventHasSize) line += fmt::format(" size={}", e.size);
    if (e.present & kEventHasBytes) line += fmt::format(" bytes={}", e.bytes);
    if (e.delay_ns != 0) line += " delay=" + human_duration(e.delay_ns);
    return line;
  }

  static std::string call_name(std::uint32_t id) {
    return id < kCallCount ? std::string(call_info(id).name) : fmt::format("#{}", id);
  }

  const ControlSession& session_;
  bool json_;
};

// Prints the complete events from the cursor up to the ring's head (read_new_events).
void print_new_events(const ControlBlock& block, EventCursor& cursor, EventPrinter& printer,
                      bool final_pass) {
  std::vector<RingEvent> events;
  read_new_events(block, cursor, final_pass, events, kMaxEventStalls);
  for (const RingEvent& event : events) printer.print(event);
}

void report_missed_events(const ControlBlock& block, const EventCursor& cursor,
                          std::uint64_t before_start) {
  const std::uint64_t dropped = block.header.events_dropped.load(std::memory_order_relaxed);
  if (before_start != 0)
    fmt::print(stderr, "faultline: {} earlier events are no longer in the ring\n", before_start);
  if (cursor.lost != 0)
    fmt::print(stderr, "faultline: {} events were overwritten before they could be shown\n",
               cursor.lost);
  if (dropped != 0) fmt::print(stderr, "faultline: the session dropped {} events\n", dropped);
}

}  // namespace

std::unique_ptr<ControlSession> open_named_session(const std::string& name) {
  return open_session(name);
}

namespace {

CompileResult compile_for_cli(const std::string& path, bool allow_stdin) {
  return allow_stdin && path == "-" ? compile_policy_string(read_text_file(path, true), "<stdin>")
                                    : compile_policy_file(path);
}

Json error_json(const PolicyError& e) {
  Json o;
  o["file"] = json_text(e.file);
  o["line"] = e.line == 0 ? Json(nullptr) : Json(e.line);
  o["column"] = e.column == 0 ? Json(nullptr) : Json(e.column);
  o["message"] = json_text(e.message);
  o["suggestion"] = e.suggestion.empty() ? Json(nullptr) : json_text(e.suggestion);
  return o;
}

std::string natural_error_note(const Policy::NaturalError& n) {
  return fmt::format("{}: no action given: error = \"{}\" (the natural error of its calls)",
                     n.fault, n.error);
}

}  // namespace

Policy compile_policy_or_fail(const std::string& path, bool allow_stdin) {
  CompileResult result = compile_for_cli(path, allow_stdin);
  if (result.error) {
    for (const PolicyError& e : result.errors) fmt::print(stderr, "{}\n", e.to_string());
    fail(kExitUsage, "");
  }
  print_warnings(result.policy->warnings);
  return std::move(*result.policy);
}

int validate_command(const std::string& policy_path, bool json) {
  if (!json) {
    const Policy policy = compile_policy_or_fail(policy_path, true);
    std::vector<std::string> names;
    for (const FaultSpec& spec : policy.faults) names.emplace_back(fixed_text(spec.name));
    const std::string list = names.empty() ? "" : fmt::format(" ({})", fmt::join(names, ", "));
    fmt::print("{}: ok \u2014 {} fault{}{}, seed {}\n", policy_path, names.size(),
               names.size() == 1 ? "" : "s", list,
               policy.has_seed ? std::to_string(policy.seed) : "random");
    for (const auto& n : policy.natural_errors) fmt::print("  {}\n", natural_error_note(n));
    return kExitOk;
  }
  // One JSON object on stdout whatever the outcome; the exit status still says which.
  CompileResult result = compile_for_cli(policy_path, true);
  Json o;
  o["file"] = json_text(policy_path);
  o["ok"] = !result.error.has_value();
  Json errors = Json::array();
  for (const PolicyError& e : result.errors) errors.push_back(error_json(e));
  Json faults = Json::array();
  Json warnings = Json::array();
  if (result.policy) {
    for (const FaultSpec& spec : result.policy->faults) {
      Json f;
      f["name"] = json_text(fixed_text(spec.name));
      f["natural_error"] = nullptr;
      for (const auto& n : result.policy->natural_errors)
        if (n.fault == fixed_text(spec.name)) f["natural_error"] = n.error;
      faults.push_back(std::move(f));
    }
    for (const std::string& w : result.policy->warnings) warnings.push_back(json_text(w));
  }
  o["seed"] =
      result.policy && result.policy->has_seed ? json_digits(result.policy->seed) : Json(nullptr);
  o["faults"] = std::move(faults);
  o["warnings"] = std::move(warnings);
  o["errors"] = std::move(errors);
  print_json(o);
  return result.error ? kExitUsage : kExitOk;
}

int sessions_command(bool json) {
  auto infos = list_sessions(true);
  std::sort(infos.begin(), infos.end(),
            [](const SessionInfo& a, const SessionInfo& b) { return a.name < b.name; });
  if (json) {
    Json list = Json::array();
    for (const SessionInfo& s : infos) {
      std::vector<pid_t> pids = s.pids;
      std::sort(pids.begin(), pids.end());
      pids.erase(std::unique(pids.begin(), pids.end()), pids.end());
      Json o;
      o["name"] = json_text(s.name);
      o["owner"] = json_text(user_name(s.owner));
      o["uid"] = s.owner;
      o["pids"] = pids;
      o["faults"] = s.faults;
      o["faults_enabled"] = s.faults_enabled;
      o["state"] = s.problem.empty() ? std::string(state_name(current_flags(s), s.armed_mask))
                                     : std::string("unusable");
      o["age_ns"] = s.age_ns;
      o["problem"] = s.problem.empty() ? Json(nullptr) : json_text(problem_text(s));
      list.push_back(std::move(o));
    }
    print_json(Json{{"sessions", std::move(list)}});
    return kExitOk;
  }
  if (infos.empty()) {
    fmt::print("no live sessions\n");
    return kExitOk;
  }
  Table table({"NAME", "OWNER", "PIDS", "FAULTS", "STATE", "AGE", ""},
              {false, false, false, true, false, true, false});
  for (const SessionInfo& s : infos) {
    if (!s.problem.empty()) {
      table.add_row({s.name, user_name(s.owner), "-", "-", "unusable", "-", problem_text(s)});
      continue;
    }
    table.add_row({s.name, user_name(s.owner), pids_text(s.pids),
                   fmt::format("{}/{}", s.faults_enabled, s.faults),
                   std::string(state_name(current_flags(s), s.armed_mask)), human_age(s.age_ns),
                   ""});
  }
  table.print(stdout);
  return kExitOk;
}

int status_command(const std::string& session_name, bool json) {
  const auto session = open_session(session_name);
  const SessionState state = read_state(session->block());
  const auto faults = read_faults(*session);
  const auto corrupt = session->corrupt_slots();
  if (json)
    print_status_json(*session, state, faults, corrupt);
  else
    print_status_text(*session, state, faults);
  if (corrupt.empty()) return kExitOk;
  // Printed after the data, so a reader sees what still works and then what does not.
  for (const auto& [slot, problem] : corrupt)
    fmt::print(stderr,
               "faultline: session {}: fault slot {} is corrupt ({}); every process "
               "ignores it\n",
               session->name(), slot, problem);
  fail(kExitUsage,
       fmt::format("session {} has {} corrupt fault slot(s): its block was damaged or written "
                   "by something other than this faultline. The other faults still work; run "
                   "the experiment again in a fresh session to be rid of them",
                   session->name(), corrupt.size()));
}

int edit_faults_command(FaultEdit edit, std::vector<std::string> args) {
  const auto session = open_leading_session(args);
  if (args.empty())
    fail(kExitUsage, fmt::format("name the faults to change in session {} ({})", session->name(),
                                 fault_list_note(*session)));
  static constexpr std::string_view kDone[] = {"enabled", "disabled", "removed"};
  for (const std::string& name : edit_faults(*session, edit, args))
    fmt::print("{}: {} {}\n", session->name(), name, kDone[static_cast<int>(edit)]);
  const std::uint32_t flags = read_state(session->block()).flags;
  if (edit == FaultEdit::kEnable && flags != 0)
    fmt::print(
        stderr, "faultline: session {} is {}: nothing fires until that changes{}\n",
        session->name(), state_name(flags, 0),
        (flags & kFlagPanicked) ? fmt::format(" (`faultline resume {}`)", session->name()) : "");
  return kExitOk;
}

int set_command(std::vector<std::string> args) {
  const auto session = open_leading_session(args);
  if (args.size() < 2)
    fail(kExitUsage, "usage: faultline set [SESSION] FAULT KEY=VALUE... (e.g. probability=0.5)");
  const std::vector<std::string> settings(args.begin() + 1, args.end());
  const SetOutcome outcome = set_fault(*session, args.front(), settings);
  fmt::print("{}: {} set {}\n", session->name(), args.front(), fmt::join(settings, " "));
  for (const auto& w : outcome.warnings) fmt::print(stderr, "faultline: warning: {}\n", w);
  return kExitOk;
}

int add_command(const std::string& session_name, const std::string& snippet_path) {
  const bool from_stdin = snippet_path == "-";
  CompileResult result = compile_fault_snippet(read_text_file(snippet_path, true),
                                               from_stdin ? "<stdin>" : snippet_path);
  if (result.error) {
    for (const PolicyError& e : result.errors) fmt::print(stderr, "{}\n", e.to_string());
    fail(kExitUsage, "");
  }
  print_warnings(result.policy->warnings);
  const std::vector<FaultSpec>& specs = result.policy->faults;
  if (specs.empty()) fail(kExitUsage, fmt::format("{} has no [[fault]] tables", snippet_path));

  const auto session = open_session(session_name);
  const std::vector<std::string> added = add_faults(*session, specs);
  fmt::print("{}: added {}\n", session->name(), fmt::join(added, ", "));
  return kExitOk;
}

int panic_command(const std::string& session_name, bool panic) {
  const auto session = open_session(session_name);
  if (panic) {
    session->panic();
    fmt::print("{}: panicked, every fault is off (undo with `faultline resume {}`)\n",
               session->name(), session->name());
    return kExitOk;
  }
  session->resume();
  fmt::print("{}: resumed\n", session->name());
  const std::uint32_t flags = read_state(session->block()).flags;
  if (flags != 0)
    fmt::print(stderr, "faultline: session {} is still {}: its faults stay off\n", session->name(),
               state_name(flags, 0));
  return kExitOk;
}

int events_command(const std::string& session_name, bool follow, bool json) {
  const auto session = open_session(session_name);
  const ControlBlock& block = session->block();
  EventPrinter printer(*session, json);
  EventCursor cursor;
  const std::uint64_t head = block.header.event_head.load(std::memory_order_acquire);
  const std::uint64_t before_start = head > kEventSlots ? head - kEventSlots : 0;
  cursor.next = before_start;
  if (follow) {
    catch_stop_signals();
    do {
      print_new_events(block, cursor, printer, false);
      std::fflush(stdout);
    } while (!session_gone(*session) && sleep_unless_stopped(kFollowPollNs));
  }
  print_new_events(block, cursor, printer, true);
  std::fflush(stdout);
  report_missed_events(block, cursor, before_start);
  if (follow && !g_stop_requested)
    fmt::print(stderr, "faultline: session {} ended\n", session->name());
  return kExitOk;
}

int watch_command(const std::string& session_name) {
  const auto session = open_session(session_name);
  catch_stop_signals();
  // Clearing only a terminal: redirected to a file, each frame simply follows the last.
  const bool terminal = isatty(STDOUT_FILENO) != 0;
  WatchSample previous;
  do {
    if (session_gone(*session)) {
      fmt::print(stderr, "faultline: session {} ended\n", session->name());
      return kExitOk;
    }
    WatchSample now{read_faults(*session), read_members(*session), monotonic_ns()};
    if (terminal) fmt::print("\x1b[H\x1b[2J");
    print_watch_frame(*session, now, previous, session->corrupt_slots().size());
    std::fflush(stdout);
    previous = std::move(now);
  } while (sleep_unless_stopped(kWatchRefreshNs));
  return kExitOk;
}

}  // namespace faultline::cli
