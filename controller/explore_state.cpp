// `faultline explore`: its state directory (see explore.h). The state directory holds
//
//   explore.toml   the exploration: command, targets, depth, occurrences, check, and with
//                  --powercut the recover and the [durability] table (written once)
//   sites.tsv      every call site found: RUN \t TARGET \t CALL \t SITE \t FRAME...  (append-only)
//   runs.tsv       every finished run, one line each (append-only)
//   runs/N/        a run while it runs; kept only for findings: replay.toml (the policy that
//                  replays it), stdout, stderr, check.out, events.jsonl, work/ (its directory);
//                  with --powercut also policy.toml (what `faultline run` ran), run.json (its
//                  --json-summary: whether the cut came, what it lost) and recover.out
//
// Only this process writes the state's files; the shim of each run appends to the run's own
// runs/N/sites.tsv (O_APPEND lines, so every process and thread of the run can), and the runner
// merges the sites it did not know into sites.tsv when the run ends. A run that was going when
// the runner died left no line in runs.tsv, so it is tried again on resume.
#include "controller/explore_state.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "calls/calls.h"
#include "controller/control_error.h"
#include "controller/explore.h"
#include "controller/explore_powercut.h"
#include "controller/explore_targets.h"
#include "policy/net_policy.h"

namespace faultline::explore {

namespace runner {
namespace {

namespace fs = std::filesystem;

constexpr int kStateVersion = 1;

}  // namespace

[[noreturn]] void fail(const std::string& message) {
  throw_control_error(ErrorKind::kUsage, kStatusUsage, message);
}

[[noreturn]] void fail_system(const std::string& what) {
  throw_control_error(ErrorKind::kSystem, kStatusUsage,
                      fmt::format("{}: {}", what, std::strerror(errno)));
}

// ---- text -------------------------------------------------------------------------------------

// A TOML basic string.
std::string toml_quote(std::string_view text) {
  std::string out = "\"";
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20 || u == 0x7f) {
      out += fmt::format("\\u{:04x}", u);
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string shell_quote(std::string_view word) {
  if (!word.empty() && word.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                              "0123456789@%+=:,./-_") == std::string_view::npos)
    return std::string(word);
  std::string out = "'";
  for (const char c : word) {
    if (c == '\'')
      out += "'\\''";
    else
      out += c;
  }
  return out + "'";
}

// A field of a .tsv line: tabs and line breaks would split it.
std::string field(std::string_view text) {
  std::string out(text);
  for (char& c : out)
    if (c == '\t' || c == '\n' || c == '\r') c = ' ';
  return out;
}

std::vector<std::string> split(const std::string& line, char separator) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (;;) {
    const std::size_t end = line.find(separator, start);
    out.push_back(line.substr(start, end == std::string::npos ? end : end - start));
    if (end == std::string::npos) return out;
    start = end + 1;
  }
}

std::optional<long long> to_number(const std::string& text) {
  if (text.empty()) return std::nullopt;
  char* end = nullptr;
  errno = 0;
  const long long value = std::strtoll(text.c_str(), &end, 10);
  if (errno || !end || *end) return std::nullopt;
  return value;
}

void append_line(const std::string& path, const std::string& line) {
  const int fd = open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) fail_system("cannot open " + path);
  const std::string text = line + "\n";
  const ssize_t n = write(fd, text.data(), text.size());
  const int error = errno;
  close(fd);
  errno = error;
  if (n != static_cast<ssize_t>(text.size())) fail_system("cannot write " + path);
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
  if (!out.flush()) fail_system("cannot write " + path);
}

void remove_tree(const std::string& path) {
  std::error_code error;
  fs::remove_all(path, error);
}

// ---- the state's files -------------------------------------------------------------------------

std::string path_in(const State& s, const std::string& name) { return s.dir + "/" + name; }

namespace {

toml::array string_array(const std::vector<std::string>& items) {
  toml::array out;
  for (const auto& item : items) out.push_back(item);
  return out;
}

}  // namespace

void save_config(const State& s) {
  toml::table root;
  root.insert("version", kStateVersion);
  root.insert("command", string_array(s.config.command));
  root.insert("depth", s.config.depth);
  root.insert("occurrences", s.config.occurrences);
  root.insert("check", s.config.check);
  root.insert("in_place", s.config.in_place);
  if (s.config.powercut) {
    root.insert("powercut", true);
    root.insert("recover", s.config.recover);
    root.insert("durability", s.config.durability);
    if (!s.config.faults.empty()) root.insert("faults", s.config.faults);
  }
  toml::array targets;
  for (const Target& t : s.config.targets)
    targets.push_back(toml::table{{"label", t.label},
                                  {"calls", t.calls},
                                  {"error", t.error},
                                  {"selectors", t.selectors},
                                  {"action", t.action}});
  root.insert("target", std::move(targets));
  std::ostringstream out;
  out << "# faultline explore: what this state directory explores (written once; a resumed\n"
         "# exploration must match it)\n"
      << root << "\n";
  write_file(path_in(s, kConfigFile), out.str());
}

Config load_config(const std::string& dir) {
  const std::string path = dir + "/" + kConfigFile;
  toml::table root;
  try {
    root = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    fail(fmt::format("{}: not a faultline explore state ({})", path, e.description()));
  }
  if (root["version"].value_or(0) != kStateVersion)
    fail(fmt::format("{}: written by another version of faultline explore", path));
  Config c;
  if (const toml::array* command = root["command"].as_array())
    for (const toml::node& word : *command) c.command.push_back(word.value_or(std::string()));
  c.depth = root["depth"].value_or(static_cast<int>(kDefaultSiteDepth));
  c.occurrences = root["occurrences"].value_or(1);
  c.check = root["check"].value_or(std::string());
  c.in_place = root["in_place"].value_or(false);
  c.powercut = root["powercut"].value_or(false);
  c.recover = root["recover"].value_or(std::string());
  c.durability = root["durability"].value_or(std::string());
  c.faults = root["faults"].value_or(std::string());
  if (const toml::array* targets = root["target"].as_array())
    for (const toml::node& node : *targets) {
      const toml::table& t = *node.as_table();
      c.targets.push_back(
          Target{t["label"].value_or(std::string()), t["calls"].value_or(std::string()),
                 t["error"].value_or(std::string()), t["selectors"].value_or(std::string()),
                 t["action"].value_or(std::string())});
    }
  if (c.command.empty() || c.targets.empty()) fail(fmt::format("{}: incomplete", path));
  return c;
}

std::string site_key(int target, const std::string& call, const std::string& site) {
  return std::to_string(target) + "\t" + call + "\t" + site;
}

void load_sites(State& s) {
  std::ifstream in(path_in(s, kSitesFile));
  std::set<std::string> seen;
  for (std::string line; std::getline(in, line);) {
    const auto fields = split(line, '\t');
    if (fields.size() < 4) continue;
    const auto run = to_number(fields[0]);
    const auto target = to_number(fields[1]);
    if (!run || !target || *target < 0 ||
        *target >= static_cast<long long>(s.config.targets.size()))
      continue;
    if (!seen.insert(site_key(static_cast<int>(*target), fields[2], fields[3])).second) continue;
    Site site;
    site.found_in_run = static_cast<int>(*run);
    site.target = static_cast<int>(*target);
    site.call = fields[2];
    site.site = fields[3];
    site.frames.assign(fields.begin() + 4, fields.end());
    s.sites.push_back(std::move(site));
  }
}

// id, outcome, site, occurrence, error, exit status, signal, injected, ms, stdout hash, new sites,
// note
std::string run_line(const Run& r) {
  return fmt::format("{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}", r.id,
                     outcome_name(r.outcome), r.site, r.occurrence, field(r.error), r.exit_status,
                     r.signal, r.injected, r.duration_ms, r.stdout_hash, r.new_sites,
                     field(r.note));
}

void load_runs(State& s) {
  std::ifstream in(path_in(s, kRunsFile));
  for (std::string line; std::getline(in, line);) {
    const auto f = split(line, '\t');
    if (f.size() != 12) continue;  // a line cut by a crash of the runner
    const auto outcome = outcome_from_name(f[1]);
    const auto id = to_number(f[0]);
    const auto site = to_number(f[2]);
    if (!outcome || !id || !site || *site >= static_cast<long long>(s.sites.size())) continue;
    Run r;
    r.id = static_cast<int>(*id);
    r.outcome = *outcome;
    r.site = static_cast<int>(*site);
    r.occurrence = static_cast<int>(to_number(f[3]).value_or(0));
    r.error = f[4];
    r.exit_status = static_cast<int>(to_number(f[5]).value_or(0));
    r.signal = static_cast<int>(to_number(f[6]).value_or(0));
    r.injected = static_cast<std::uint64_t>(to_number(f[7]).value_or(0));
    r.duration_ms = to_number(f[8]).value_or(0);
    r.stdout_hash = f[9];
    r.new_sites = static_cast<int>(to_number(f[10]).value_or(0));
    r.note = f[11];
    if (r.outcome == Outcome::kBaseline && s.baseline()) continue;
    s.runs.push_back(std::move(r));
  }
}

}  // namespace runner

using namespace runner;

// ---- State -----------------------------------------------------------------------------------

std::string_view outcome_name(Outcome outcome) {
  switch (outcome) {
    case Outcome::kBaseline:
      return "discovery";
    case Outcome::kHandled:
      return "handled";
    case Outcome::kCrashed:
      return "crashed";
    case Outcome::kHung:
      return "hung";
    case Outcome::kCheckFailed:
      return "check-failed";
    case Outcome::kNotReached:
      return "not-reached";
    case Outcome::kRecoverFailed:
      return "recover-failed";
  }
  return "?";
}

std::optional<Outcome> outcome_from_name(std::string_view name) {
  for (Outcome o : {Outcome::kBaseline, Outcome::kHandled, Outcome::kCrashed, Outcome::kHung,
                    Outcome::kCheckFailed, Outcome::kNotReached, Outcome::kRecoverFailed})
    if (outcome_name(o) == name) return o;
  return std::nullopt;
}

const Run* State::baseline() const {
  for (const Run& r : runs)
    if (r.outcome == Outcome::kBaseline) return &r;
  return nullptr;
}

std::string State::family_of(const Site& site) const {
  const auto call = find_call(site.call);
  if (!call) return "?";
  if (is_rw_call(call->id) && site.target >= 0 &&
      site.target < static_cast<int>(config.targets.size())) {
    const CompiledTarget t = compile_target(config.targets[site.target]);
    if (t.rw_on_sockets && !t.rw_on_files) return "@net";
  }
  return std::string(family_name(call->family));
}

std::string State::group_of(const Site& site) const {
  if (config.powercut && site.target >= 0 && site.target < static_cast<int>(config.targets.size()))
    return config.targets[site.target].label;
  return family_of(site);
}

std::size_t State::untried() const {
  if (config.powercut) return powercut::untried(*this);
  std::set<std::pair<int, int>> tried;
  for (const Run& r : runs)
    if (r.site >= 0) tried.emplace(r.site, r.occurrence);
  std::size_t n = 0;
  for (int k = 1; k <= config.occurrences; ++k)
    for (std::size_t i = 0; i < sites.size(); ++i)
      if (!tried.count({static_cast<int>(i), k})) ++n;
  return n;
}

const Run* find_run(const State& state, int id) {
  for (const Run& r : state.runs)
    if (r.id == id) return &r;
  return nullptr;
}

std::vector<int> error_path(const State& state, int site) {
  std::vector<int> path;
  // A cut kills the whole program: nothing is reached by cutting first.
  if (state.config.powercut) return path;
  std::set<int> seen;  // a damaged state must not loop
  for (int at = site; at >= 0 && at < static_cast<int>(state.sites.size());) {
    const Run* run = find_run(state, state.sites[at].found_in_run);
    if (!run || run->site < 0 || !seen.insert(run->id).second) break;
    path.insert(path.begin(), run->id);
    at = run->site;
  }
  return path;
}

std::string run_dir(const State& state, int run) {
  return state.dir + "/runs/" + std::to_string(run);
}

std::string replay_policy_path(const State& state, int run) {
  return run_dir(state, run) + "/replay.toml";
}

std::string shell_command(const std::vector<std::string>& words) {
  std::string line;
  for (const std::string& word : words) line += (line.empty() ? "" : " ") + shell_quote(word);
  return line;
}

std::string replay_command(const State& state, const Run& run, const std::string& faultline) {
  if (state.config.powercut) return powercut::replay_command(state, run, faultline);
  std::string line;
  if (!state.config.in_place) line = "cd \"$(mktemp -d)\" && ";
  line += shell_quote(faultline) + " run";
  if (!state.config.check.empty()) line += " --log \"$PWD/events.jsonl\"";
  line += " -p " + shell_quote(replay_policy_path(state, run.id)) + " -- " +
          shell_command(state.config.command);
  if (!state.config.check.empty())
    line +=
        "; FAULTLINE_EXPLORE_EVENTS=\"$PWD/events.jsonl\" sh -c " + shell_quote(state.config.check);
  return line;
}

std::string output_tail(const State& state, const Run& run, const char* file, int lines) {
  std::ifstream in(run_dir(state, run.id) + "/" + file, std::ios::binary);
  if (!in) return "";
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!text.empty() && text.back() == '\n') text.pop_back();
  std::size_t at = text.size();
  for (int n = 0; n < lines && at != std::string::npos && at > 0; ++n)
    at = text.rfind('\n', at - 1);
  return at == std::string::npos || at == 0 ? text : text.substr(at + 1);
}

State load(const std::string& state_dir) {
  State s;
  std::error_code error;
  s.dir = fs::absolute(state_dir, error).lexically_normal().string();
  if (!s.dir.empty() && s.dir.size() > 1 && s.dir.back() == '/') s.dir.pop_back();
  if (!fs::exists(s.dir + "/" + kConfigFile))
    throw_control_error(ErrorKind::kNoSession, kStatusNothing,
                        fmt::format("{} holds no exploration (no {})", s.dir, kConfigFile));
  s.config = load_config(s.dir);
  load_sites(s);
  load_runs(s);
  return s;
}

}  // namespace faultline::explore
