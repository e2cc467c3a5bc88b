// `faultline explore`: the command line over the explore core (controller/explore.h) — progress
// while it runs (a bar on a terminal, one plain line per run otherwise) and the report: a
// table per family, then one section per finding with the site's stack, what was injected and
// the command that replays it. `--report` prints the report of a state directory again
// without running anything: it is made from the state alone.
#include "controller/explore.h"

#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "cli/cli.h"
#include "cli/output.h"
#include "controller/explore_powercut.h"
#include "controller/launcher.h"

namespace faultline::cli {
namespace {

namespace ex = faultline::explore;
using ex::ordinal;  // "the 1st malloc at libfoo+0x12"

std::atomic<bool> g_stop{false};

extern "C" void on_stop_signal(int) { g_stop.store(true); }

// ^C (or a TERM/HUP) ends the exploration between runs: the runs going are killed, the state
// stays consistent, the report of what was done is printed.
class StopSignals {
 public:
  StopSignals() {
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    for (int i = 0; i < 3; ++i) sigaction(kSignals[i], &sa, &previous_[i]);
  }
  ~StopSignals() {
    for (int i = 0; i < 3; ++i) sigaction(kSignals[i], &previous_[i], nullptr);
  }
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

 private:
  static constexpr int kSignals[3] = {SIGINT, SIGTERM, SIGHUP};
  struct sigaction previous_[3];
};

std::string faultline_path() {
  std::error_code error;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", error);
  return error ? std::string("faultline") : exe.string();
}

std::string signal_name(int sig) { return sig ? signal_text(sig) : ""; }

std::string outcome_text(const ex::Run& run) {
  std::string text(ex::outcome_name(run.outcome));
  if (run.outcome == ex::Outcome::kCrashed && run.signal)
    text += " (" + signal_text(run.signal) + ")";
  return text;
}

// The innermost frame, or the site's first object+offset when it has no text.
std::string site_short(const ex::Site& site) {
  if (!site.frames.empty()) return site.frames.front();
  return site.site.substr(0, site.site.find(';'));
}

// ---- progress ----------------------------------------------------------------------------------

class ProgressView {
 public:
  ProgressView(bool quiet) : quiet_(quiet), tty_(isatty(STDERR_FILENO) == 1) {}
  ~ProgressView() { clear_bar(); }
  ProgressView(const ProgressView&) = delete;
  ProgressView& operator=(const ProgressView&) = delete;

  void update(const ex::Progress& p) {
    if (quiet_) return;
    if (p.finished) {
      if (p.finished->outcome == ex::Outcome::kBaseline) {
        line(fmt::format("faultline: explore: {} run: exit {}, {} {}",
                         p.state.config.powercut ? "recording" : "discovery",
                         p.finished->exit_status, p.state.sites.size(),
                         p.state.config.powercut ? "cut points" : "call sites"));
      } else {
        const ex::Run& r = *p.finished;
        if (ex::is_finding(r.outcome)) ++findings_;
        const ex::Site& site = p.state.sites[r.site];
        const std::string text =
            fmt::format("faultline: explore: run {}: {}: {} {} ({}) at {}{}", r.id, outcome_text(r),
                        p.state.group_of(site), site.call, ordinal(r.occurrence), site_short(site),
                        r.note.empty() ? "" : ": " + r.note);
        // On a terminal only findings get a line of their own; the bar says the rest.
        if (!tty_ || ex::is_finding(r.outcome)) line(text);
      }
    }
    if (tty_) bar(p);
  }

 private:
  void line(const std::string& text) {
    clear_bar();
    fmt::print(stderr, "{}\n", text);
  }
  void bar(const ex::Progress& p) {
    const std::size_t done = static_cast<std::size_t>(p.started - p.running);
    const std::size_t total = std::max<std::size_t>(p.planned, 1);
    constexpr std::size_t kWidth = 30;
    const std::size_t filled = std::min(kWidth, done * kWidth / total);
    fmt::print(stderr, "\r\033[K[{}{}] {}/{} runs, {} sites, {} finding{}{}",
               std::string(filled, '#'), std::string(kWidth - filled, '.'), done, p.planned,
               p.state.sites.size(), findings_, findings_ == 1 ? "" : "s",
               p.running > 1 ? fmt::format(" ({} running)", p.running) : "");
    std::fflush(stderr);
    shown_ = true;
  }
  void clear_bar() {
    if (!shown_) return;
    fmt::print(stderr, "\r\033[K");
    std::fflush(stderr);
    shown_ = false;
  }

  bool quiet_;
  bool tty_;
  bool shown_ = false;
  int findings_ = 0;
};

// ---- the report --------------------------------------------------------------------------------

struct Counts {
  std::size_t sites = 0;
  std::set<int> tried;
  std::map<ex::Outcome, std::size_t> runs;
};

constexpr ex::Outcome kColumns[] = {ex::Outcome::kHandled, ex::Outcome::kCrashed,
                                    ex::Outcome::kHung, ex::Outcome::kCheckFailed,
                                    ex::Outcome::kNotReached};
constexpr ex::Outcome kPowercutColumns[] = {ex::Outcome::kHandled,       ex::Outcome::kCheckFailed,
                                            ex::Outcome::kRecoverFailed, ex::Outcome::kCrashed,
                                            ex::Outcome::kHung,          ex::Outcome::kNotReached};

std::vector<ex::Outcome> columns(const ex::State& s) {
  if (s.config.powercut) return {std::begin(kPowercutColumns), std::end(kPowercutColumns)};
  return {std::begin(kColumns), std::end(kColumns)};
}

// What the cut lost, as `faultline run --json-summary` says (its "lost", when the launcher
// reports it; null when it does not: unknown, not nothing).
nlohmann::json lost_of(const ex::State& s, const ex::Run& r) {
  std::ifstream in(ex::run_dir(s, r.id) + "/run.json");
  if (!in) return nullptr;
  const nlohmann::json summary = nlohmann::json::parse(in, nullptr, false);
  if (!summary.is_object() || !summary.contains("lost")) return nullptr;
  return summary["lost"];
}

// "lost: ./data: 4096 bytes; ./wal: 100 bytes" for people, from whatever shape "lost" has.
std::string lost_text(const nlohmann::json& lost) {
  if (lost.is_null()) return "";
  if (lost.is_array()) {
    std::string text;
    for (const auto& item : lost) {
      if (!text.empty()) text += "; ";
      if (item.is_object() && item.contains("path") && item["path"].is_string()) {
        text += item["path"].get<std::string>();
        if (item.contains("bytes") && item["bytes"].is_number())
          text += fmt::format(": {} bytes", item["bytes"].dump());
        else if (item.contains("entry") && item["entry"].is_string())
          text += ": " + item["entry"].get<std::string>();
      } else {
        text += item.dump();
      }
    }
    return text.empty() ? "nothing" : text;
  }
  return lost.dump();
}
constexpr std::string_view kFamilyOrder[] = {"@memory", "@write", "@read", "@fsync",
                                             "@open",   "@net",   "@dns"};

std::vector<std::pair<std::string, Counts>> family_counts(const ex::State& s) {
  std::vector<std::string> family(s.sites.size());
  std::map<std::string, Counts> by;
  for (std::size_t i = 0; i < s.sites.size(); ++i) {
    family[i] = s.group_of(s.sites[i]);
    ++by[family[i]].sites;
  }
  for (const ex::Run& r : s.runs) {
    if (r.site < 0) continue;
    Counts& c = by[family[r.site]];
    c.tried.insert(r.site);
    ++c.runs[r.outcome];
  }
  std::vector<std::pair<std::string, Counts>> out;
  for (std::string_view f : kFamilyOrder)
    if (auto it = by.find(std::string(f)); it != by.end()) out.emplace_back(it->first, it->second);
  for (auto& [f, c] : by)
    if (std::find(std::begin(kFamilyOrder), std::end(kFamilyOrder), f) == std::end(kFamilyOrder))
      out.emplace_back(f, c);
  return out;
}

std::vector<const ex::Run*> findings(const ex::State& s) {
  std::vector<const ex::Run*> out;
  for (const ex::Run& r : s.runs)
    if (ex::is_finding(r.outcome)) out.push_back(&r);
  std::sort(out.begin(), out.end(),
            [](const ex::Run* a, const ex::Run* b) { return a->id < b->id; });
  return out;
}

void print_indented(const std::string& text, const char* indent) {
  std::size_t start = 0;
  while (start <= text.size() && !text.empty()) {
    const std::size_t end = text.find('\n', start);
    fmt::print("{}{}\n", indent, text.substr(start, end == std::string::npos ? end : end - start));
    if (end == std::string::npos) break;
    start = end + 1;
  }
}

void print_report(const ex::State& s, bool interrupted) {
  const ex::Run* baseline = s.baseline();
  std::size_t targeted = 0;
  for (const ex::Run& r : s.runs) targeted += r.site >= 0;
  fmt::print("faultline explore: {}\n", ex::shell_command(s.config.command));
  if (!s.config.recover.empty()) fmt::print("recover: {}\n", s.config.recover);
  if (!s.config.check.empty()) fmt::print("check: {}\n", s.config.check);
  fmt::print("state: {}\n", s.dir);
  if (baseline && s.config.powercut)
    fmt::print(
        "recording run: exit {}; {} cut points found (durability calls before and after); "
        "{} run{} made\n",
        baseline->exit_status, s.sites.size(), targeted, targeted == 1 ? "" : "s");
  else if (baseline)
    fmt::print("discovery run: exit {}; {} call sites found; {} run{} made\n",
               baseline->exit_status, s.sites.size(), targeted, targeted == 1 ? "" : "s");
  fmt::print("\n");

  std::vector<std::string> headers = {s.config.powercut ? "POINT" : "FAMILY",
                                      s.config.powercut ? "POINTS" : "SITES", "TRIED"};
  for (ex::Outcome o : columns(s)) {
    std::string name(ex::outcome_name(o));
    std::transform(name.begin(), name.end(), name.begin(), ::toupper);
    headers.push_back(name);
  }
  std::vector<bool> right(headers.size(), true);
  right[0] = false;
  Table table(std::move(headers), std::move(right));
  Counts total;
  for (const auto& [family, c] : family_counts(s)) {
    std::vector<std::string> row{family, std::to_string(c.sites), std::to_string(c.tried.size())};
    for (ex::Outcome o : columns(s)) {
      const auto it = c.runs.find(o);
      row.push_back(std::to_string(it == c.runs.end() ? 0 : it->second));
      total.runs[o] += it == c.runs.end() ? 0 : it->second;
    }
    total.sites += c.sites;
    total.tried.insert(c.tried.begin(), c.tried.end());
    table.add_row(std::move(row));
  }
  std::vector<std::string> row{"total", std::to_string(total.sites),
                               std::to_string(total.tried.size())};
  for (ex::Outcome o : columns(s)) row.push_back(std::to_string(total.runs[o]));
  table.add_row(std::move(row));
  std::fflush(stdout);
  table.print(stdout);

  const std::size_t untried = s.untried();
  if (untried > 0 && s.config.powercut)
    fmt::print(
        "\n{} cut point{} with occurrences still to cut{}: run the same command again with "
        "this --state to go on.\n",
        untried, untried == 1 ? "" : "s", interrupted ? " (interrupted)" : "");
  else if (untried > 0)
    fmt::print(
        "\n{} site{} not tried yet{}: run the same command again with this --state to go "
        "on.\n",
        untried, untried == 1 ? "" : "s (or occurrences)", interrupted ? " (interrupted)" : "");
  else if (s.config.powercut)
    fmt::print("\nEvery point found was cut at every occurrence reached{}.\n",
               s.config.occurrences < ex::powercut::kDefaultOccurrences
                   ? fmt::format(" (up to the {})", ordinal(s.config.occurrences))
                   : "");
  else
    fmt::print("\nEvery site found was tried{}.\n",
               s.config.occurrences > 1
                   ? fmt::format(" at its first {} calls", s.config.occurrences)
                   : "");

  const auto found = findings(s);
  if (found.empty()) {
    fmt::print("{}\n", s.config.powercut ? "No findings: every cut was survived."
                                         : "No findings: every failed call was handled.");
    return;
  }
  const std::string faultline = faultline_path();
  int n = 0;
  for (const ex::Run* r : found) {
    const ex::Site& site = s.sites[r->site];
    fmt::print("\nFinding {} (run {}): {}: {}\n", ++n, r->id, outcome_text(*r), r->note);
    if (s.config.powercut)
      fmt::print("  cut:      {} the {} {} call at this point\n",
                 ex::powercut::side_of(s.config.targets[site.target]), ordinal(r->occurrence),
                 site.call);
    else
      fmt::print("  injected: {} into the {} {} call at this site ({})\n", r->error,
                 ordinal(r->occurrence), site.call, s.family_of(site));
    for (const int earlier : ex::error_path(s, r->site)) {
      const ex::Run& e = *ex::find_run(s, earlier);
      const ex::Site& at = s.sites[e.site];
      fmt::print("  on the error path of run {}: {} into the {} {} call at {}\n", e.id, e.error,
                 ordinal(e.occurrence), at.call, site_short(at));
    }
    fmt::print("  site:     {}\n", site.site);
    for (std::size_t i = 0; i < site.frames.size(); ++i)
      fmt::print("    #{} {}\n", i, site.frames[i]);
    if (r->outcome == ex::Outcome::kCrashed)
      fmt::print(
          "  (the stack above is where the call failed; the crash's own stack is not "
          "captured)\n");
    if (const std::string tail = ex::output_tail(s, *r, "stderr", 6); !tail.empty()) {
      fmt::print("  stderr (last lines):\n");
      print_indented(tail, "    | ");
    }
    if (r->outcome == ex::Outcome::kRecoverFailed)
      if (const std::string head = ex::powercut::output_head(s, *r, "recover.out", 6);
          !head.empty()) {
        fmt::print("  recover output (first lines):\n");
        print_indented(head, "    | ");
      }
    if (r->outcome == ex::Outcome::kCheckFailed && s.config.powercut) {
      if (const std::string head = ex::powercut::output_head(s, *r, "check.out", 6);
          !head.empty()) {
        fmt::print("  check output (first lines):\n");
        print_indented(head, "    | ");
      }
    } else if (r->outcome == ex::Outcome::kCheckFailed) {
      if (const std::string tail = ex::output_tail(s, *r, "check.out", 6); !tail.empty()) {
        fmt::print("  check output (last lines):\n");
        print_indented(tail, "    | ");
      }
    }
    if (s.config.powercut) {
      const std::string lost = lost_text(lost_of(s, *r));
      fmt::print("  lost:     {}\n",
                 lost.empty() ? "unknown (this faultline run does not report it)" : lost);
    }
    fmt::print("  policy:   {}\n", ex::replay_policy_path(s, r->id));
    fmt::print("  replay:   {}\n", ex::replay_command(s, *r, faultline));
  }
}

Json run_json(const ex::State& s, const ex::Run& r, const std::string& faultline) {
  Json o;
  o["run"] = r.id;
  o["outcome"] = std::string(ex::outcome_name(r.outcome));
  if (r.site >= 0) {
    const ex::Site& site = s.sites[r.site];
    o["family"] = json_text(s.family_of(site));
    o["call"] = json_text(site.call);
    o["site"] = json_text(site.site);
    o["occurrence"] = r.occurrence;
    if (s.config.powercut)
      o["when"] = ex::powercut::side_of(s.config.targets[site.target]);
    else
      o["error"] = json_text(r.error);
  }
  o["exit_status"] = r.exit_status;
  o["signal"] = r.signal ? Json(signal_name(r.signal)) : Json(nullptr);
  o["injected"] = r.injected;
  o["duration_ms"] = r.duration_ms;
  o["new_sites"] = r.new_sites;
  o["stdout_hash"] = json_text(r.stdout_hash);
  o["note"] = json_text(r.note);
  if (ex::is_finding(r.outcome) && r.site >= 0) {
    Json frames = Json::array();
    for (const auto& f : s.sites[r.site].frames) frames.push_back(json_text(f));
    o["stack"] = std::move(frames);
    o["policy"] = json_text(ex::replay_policy_path(s, r.id));
    o["replay"] = json_text(ex::replay_command(s, r, faultline));
    if (s.config.powercut) {
      o["check_output"] = json_text(ex::powercut::output_head(s, r, "check.out", 6));
      o["recover_output"] = json_text(ex::powercut::output_head(s, r, "recover.out", 6));
      o["lost"] = lost_of(s, r);
    }
  }
  return o;
}

void print_json(const ex::State& s, bool interrupted) {
  const std::string faultline = faultline_path();
  Json o;
  Json command = Json::array();
  for (const auto& word : s.config.command) command.push_back(json_text(word));
  o["command"] = std::move(command);
  o["state"] = json_text(s.dir);
  o["check"] = s.config.check.empty() ? Json(nullptr) : json_text(s.config.check);
  o["powercut"] = s.config.powercut;
  if (s.config.powercut)
    o["recover"] = s.config.recover.empty() ? Json(nullptr) : json_text(s.config.recover);
  if (const ex::Run* b = s.baseline())
    o["discovery"] = Json{{"exit_status", b->exit_status},
                          {"stdout_hash", json_text(b->stdout_hash)},
                          {"duration_ms", b->duration_ms}};
  else
    o["discovery"] = nullptr;
  Json families = Json::array();
  for (const auto& [family, c] : family_counts(s)) {
    Json f;
    f["family"] = json_text(family);
    f["sites"] = c.sites;
    f["tried"] = c.tried.size();
    for (ex::Outcome out : columns(s)) {
      const auto it = c.runs.find(out);
      std::string key(ex::outcome_name(out));
      std::replace(key.begin(), key.end(), '-', '_');
      f[key] = it == c.runs.end() ? std::size_t{0} : it->second;
    }
    families.push_back(std::move(f));
  }
  o["families"] = std::move(families);
  Json runs = Json::array(), found = Json::array();
  for (const ex::Run& r : s.runs)
    if (r.site >= 0) runs.push_back(run_json(s, r, faultline));
  for (const ex::Run* r : findings(s)) found.push_back(run_json(s, *r, faultline));
  o["runs"] = std::move(runs);
  o["findings"] = std::move(found);
  o["untried"] = s.untried();
  o["interrupted"] = interrupted;
  ::faultline::cli::print_json(o);
}

}  // namespace

int explore_command(const ExploreOptions& options) {
  ex::State state;
  bool interrupted = false;
  if (options.report_only) {
    state = ex::load(options.state_dir);
  } else {
    // Before anything else is opened: what the runs inherit.
    ex::Options o;
    o.command = options.command;
    o.policy = options.policy;
    o.calls = options.calls;
    o.depth = options.depth;
    o.occurrences = options.occurrences;
    o.check = options.check;
    o.in_place = options.in_place;
    o.powercut = options.powercut;
    o.recover = options.recover;
    o.faultline = faultline_path();
    o.max_runs = options.max_runs;
    o.timeout_ns = options.timeout_ns;
    o.jobs = options.jobs;
    o.state_dir = options.state_dir;
    o.shim = launch::find_shim(launch::executable_shim_defaults());
    ProgressView view(options.quiet);
    o.progress = [&view](const ex::Progress& p) { view.update(p); };
    g_stop.store(false);
    o.stop = &g_stop;
    const StopSignals signals;
    state = ex::run(o);
    interrupted = g_stop.load();
  }
  for (const std::string& w : state.warnings) fmt::print(stderr, "faultline: warning: {}\n", w);
  if (options.json)
    print_json(state, interrupted);
  else
    print_report(state, interrupted);
  std::fflush(stdout);
  if (interrupted) return 128 + SIGINT;
  return findings(state).empty() ? kExitOk : kExitFindings;
}

}  // namespace faultline::cli
