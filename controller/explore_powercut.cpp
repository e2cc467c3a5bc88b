// `faultline explore --powercut`: the durability points and how a run cuts at them (see
// explore_powercut.h); the runs themselves are controller/explore.cpp's.
#include "controller/explore_powercut.h"

#include <fmt/format.h>
#include <sys/wait.h>
#include <toml++/toml.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <string_view>

#include "calls/calls.h"
#include "controller/control_error.h"
#include "controller/explore_runner.h"
#include "policy/policy.h"

namespace faultline::explore::powercut {
namespace {

[[noreturn]] void fail(const std::string& message) {
  throw_control_error(ErrorKind::kUsage, kStatusUsage, message);
}

// The durability calls, by group: one `record` fault and two targets (before, after) per
// group. The one list of what a power cut is explored at; names this build does not interpose
// are skipped (msync has no path to select by, sync none either: neither is here).
struct Group {
  std::string_view label;
  std::vector<std::string_view> calls;
};
const std::vector<Group>& groups() {
  static const std::vector<Group> kGroups = {
      {"sync", {"fsync", "fdatasync", "sync_file_range", "syncfs"}},
      {"rename", {"rename", "renameat", "renameat2"}},
      {"unlink", {"unlink", "unlinkat"}},
  };
  return kGroups;
}

// One `key = value` line as toml++ writes it.
std::string toml_line(std::string_view key, toml::node&& value) {
  toml::table t;
  std::move(value).visit([&](auto&& v) { t.insert(key, std::move(v)); });
  std::ostringstream out;
  out << t;
  std::string text = out.str();
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text + "\n";
}

// The tracked globs, and for each the directory holding what it matches ("/data/*" ->
// "/data"): an fsync of that directory makes entries under it durable, so it is a point too.
// A parent that is only wildcards ("/*") would select every directory fsync of the program:
// left out.
toml::array point_paths(const toml::node& path) {
  toml::array globs;
  std::vector<std::string> items;
  if (const auto* one = path.as_string())
    items.push_back(one->get());
  else if (const auto* many = path.as_array())
    for (const toml::node& n : *many) items.push_back(n.value_or(std::string()));
  for (const std::string& g : items) globs.push_back(g);
  for (const std::string& g : items) {
    if (g.starts_with('!')) continue;
    const std::size_t slash = g.rfind('/');
    if (slash == std::string::npos || slash == 0) continue;
    const std::string parent = g.substr(0, slash);
    if (parent.find_first_not_of("/*") == std::string::npos) continue;
    if (std::find(items.begin(), items.end(), parent) == items.end()) globs.push_back(parent);
  }
  return globs;
}

}  // namespace

std::vector<Target> targets(const std::string& policy_path, std::string& durability,
                            std::string& faults) {
  if (policy_path.empty())
    fail(
        "--powercut needs -p POLICY with a [durability] table: its `path` says which files a "
        "power cut loses unsynced changes of");
  const CompileResult compiled = compile_policy_file(policy_path);
  if (compiled.error)
    throw_control_error(ErrorKind::kBadPolicy, kStatusUsage, compiled.error->to_string());
  toml::table root;
  try {
    root = toml::parse_file(policy_path);
  } catch (const toml::parse_error& e) {
    fail(fmt::format("{}: {}", policy_path, e.description()));
  }
  const toml::table* table = root["durability"].as_table();
  const toml::node* path = table ? table->get("path") : nullptr;
  if (!path)
    fail(fmt::format(
        "{}: --powercut needs [durability] path = \"/your/data/*\": without tracked paths a "
        "power cut loses nothing, so there is nothing to explore",
        policy_path));
  std::ostringstream text;
  text << *table;
  durability = "[durability]\n" + text.str() + "\n\n";
  if (const toml::array* array = root["fault"].as_array(); array && !array->empty()) {
    std::ostringstream armed;
    armed << toml::table{{"fault", *array}};
    faults = armed.str() + "\n";
  }

  const std::string selector = toml_line("path", point_paths(*path));
  std::vector<Target> out;
  for (const Group& g : groups()) {
    toml::array calls;
    for (std::string_view name : g.calls)
      if (find_call(name)) calls.push_back(std::string(name));
    if (calls.empty()) continue;
    std::string calls_text = toml_line("calls", std::move(calls));
    calls_text = calls_text.substr(std::string_view("calls = ").size());
    calls_text.pop_back();
    for (const char* side : {"before", "after"}) {
      Target t;
      t.label = fmt::format("{} {}", g.label, side);
      t.calls = calls_text;
      t.selectors = selector;
      t.action = fmt::format("powercut = true\nwhen = \"{}\"\n", side);
      out.push_back(std::move(t));
    }
  }
  return out;
}

std::string side_of(const Target& target) {
  return target.action.find("\"after\"") != std::string::npos ? "after" : "before";
}

std::optional<std::uint64_t> injected_total(const std::string& summary_path) {
  std::ifstream in(summary_path);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  constexpr std::string_view kKey = "\"injected_total\"";
  std::size_t at = text.find(kKey);
  if (at == std::string::npos) return std::nullopt;
  at += kKey.size();
  while (at < text.size() && (text[at] == ' ' || text[at] == ':')) ++at;
  std::uint64_t n = 0;
  bool digits = false;
  for (; at < text.size() && text[at] >= '0' && text[at] <= '9'; ++at, digits = true)
    n = n * 10 + static_cast<std::uint64_t>(text[at] - '0');
  if (!digits) return std::nullopt;
  return n;
}

std::vector<std::string> run_arguments(const std::string& faultline, const std::string& dir,
                                       const std::string& session,
                                       const std::vector<std::string>& command) {
  std::vector<std::string> args = {faultline,
                                   "run",
                                   "-q",
                                   "-s",
                                   session,
                                   "--log",
                                   dir + "/events.jsonl",
                                   "--json-summary",
                                   dir + "/run.json",
                                   "-p",
                                   dir + "/policy.toml",
                                   "--"};
  args.insert(args.end(), command.begin(), command.end());
  return args;
}

std::string output_head(const State& state, const Run& run, const char* file, int lines) {
  std::ifstream in(run_dir(state, run.id) + "/" + file, std::ios::binary);
  std::string text;
  int n = 0;
  for (std::string line; n < lines && std::getline(in, line); ++n) text += (n ? "\n" : "") + line;
  return text;
}

std::size_t untried(const State& state) {
  // A point's occurrences are tried one after the other, each once the one before was
  // reached: what is left is the points whose next occurrence is due.
  std::map<int, std::pair<int, bool>> last;  // site -> (highest occurrence tried, reached)
  for (const Run& r : state.runs)
    if (r.site >= 0 && r.occurrence > last[r.site].first)
      last[r.site] = {r.occurrence, r.outcome != Outcome::kNotReached && r.injected > 0};
  std::size_t n = 0;
  for (std::size_t i = 0; i < state.sites.size(); ++i) {
    const auto it = last.find(static_cast<int>(i));
    if (it == last.end() || (it->second.second && it->second.first < state.config.occurrences)) ++n;
  }
  return n;
}

std::string replay_command(const State& state, const Run& run, const std::string& faultline) {
  // The cut, then what the exploration ran after it: the recover, then the check. The line's
  // status is the check's (or the recover's when it fails): non-zero reproduces the finding.
  std::string line;
  if (!state.config.in_place) line = "cd \"$(mktemp -d)\" && ";
  line += "{ " + shell_command({faultline}) + " run --log \"$PWD/events.jsonl\" -p " +
          shell_command({replay_policy_path(state, run.id)}) + " -- " +
          shell_command(state.config.command) + "; }";
  const std::string env = "FAULTLINE_EXPLORE_EVENTS=\"$PWD/events.jsonl\" ";
  if (!state.config.recover.empty())
    line += "; " + env + "sh -c " + shell_command({state.config.recover});
  if (!state.config.check.empty())
    line += (state.config.recover.empty() ? "; " : " && ") + env + "sh -c " +
            shell_command({state.config.check});
  return line;
}

}  // namespace faultline::explore::powercut

namespace faultline::explore::runner {

// --powercut: the run under `faultline run` ends (the cut ends it, or the program ends first:
// the point was not reached), then the recover runs, then the check.
void Explorer::after_cut(Active& a) {
  if (!a.recovering) {
    a.main.poll();
    if (!a.main.done) return;
    a.run.duration_ms = (now_ns() - a.started_ns) / 1'000'000;
    ControlSession::remove(a.session_name);  // gone already, unless `faultline run` was killed
    const int status = a.main.status;
    a.run.exit_status = launch::exit_status(status);
    a.run.signal = WIFSIGNALED(status) && !a.main.timed_out ? WTERMSIG(status) : 0;
    a.run.stdout_hash = hex64(file_hash(a.dir + "/stdout"));
    const auto injected = powercut::injected_total(a.dir + "/run.json");
    a.run.injected = injected.value_or(0);
    const bool baseline = a.run.outcome == Outcome::kBaseline;
    if (a.main.timed_out) {
      if (!baseline) a.run.outcome = Outcome::kHung;
      a.run.note =
          fmt::format("still running after {}s: killed", options_.timeout_ns / 1'000'000'000);
    } else if (!injected) {
      // `faultline run` said nothing: it could not run the command (its stderr says why).
      if (!baseline) a.run.outcome = Outcome::kNotReached;
      a.run.note = fmt::format("faultline run exited {} without a summary", a.run.exit_status);
    } else if (!baseline && a.run.injected == 0) {
      const bool crash =
          a.run.signal || (a.run.exit_status > 128 && crash_signal(a.run.exit_status - 128));
      a.run.outcome = crash ? Outcome::kCrashed : Outcome::kNotReached;
      a.run.note = crash ? fmt::format("exit {} before any cut", a.run.exit_status)
                         : fmt::format("exit {}: the {} call at the point never came",
                                       a.run.exit_status, ordinal(a.run.occurrence));
    } else {
      a.run.note = baseline ? "" : "cut";
      if (!state_.config.recover.empty()) {
        start_shell(a, a.recover, state_.config.recover, "recover.out", options_.timeout_ns);
        a.recovering = true;
        return;
      }
      if (!state_.config.check.empty()) {
        start_check(a, state_, options_.timeout_ns);
        return;
      }
      if (!baseline) a.run.outcome = Outcome::kHandled;
    }
    a.finished = true;
    return;
  }
  a.recover.poll();
  if (!a.recover.done) return;
  const int status = launch::exit_status(a.recover.status);
  const bool baseline = a.run.outcome == Outcome::kBaseline;
  if (a.recover.timed_out || status != 0) {
    // Recovering is the program's job after a cut: a database that will not open again has
    // lost everything, whatever a check of its files would say.
    if (!baseline) a.run.outcome = Outcome::kRecoverFailed;
    add_note(a.run.note, a.recover.timed_out ? "the recover did not finish: killed"
                                             : fmt::format("the recover exited {}", status));
    a.finished = true;
    return;
  }
  add_note(a.run.note, "recovered");
  if (!state_.config.check.empty()) {
    start_check(a, state_, options_.timeout_ns);
    return;
  }
  if (!baseline) a.run.outcome = Outcome::kHandled;
  a.finished = true;
}

// --powercut: a point's k-th occurrence once its (k-1)-th was reached (the recording run does
// not count how often each point is passed); the lowest occurrence due first, so every point's
// first cut comes before any point's second.
std::optional<std::pair<int, int>> Explorer::next_point() {
  std::optional<std::pair<int, int>> best;
  for (int i = 0; i < static_cast<int>(state_.sites.size()); ++i) {
    const auto it = next_occurrence_.find(i);
    const int k = it == next_occurrence_.end() ? 1 : it->second;
    if (k > state_.config.occurrences || (k > 1 && !reached_.count({i, k - 1})) ||
        tried_.count({i, k}))
      continue;
    if (!best || k < best->second) best = std::pair(i, k);
  }
  if (best) next_occurrence_[best->first] = best->second + 1;
  return best;
}

}  // namespace faultline::explore::runner
