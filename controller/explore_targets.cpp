// `faultline explore`: what it explores. A `--calls` item or a `-p` policy's [[fault]] becomes a
// Target, compiled with the policy compiler to learn which calls it can fail; the options
// become the exploration's Config, which a resumed state must match.
#include "controller/explore_targets.h"

#include <fmt/format.h>
#include <toml++/toml.h>

#include <algorithm>
#include <filesystem>
#include <set>
#include <sstream>

#include "calls/calls.h"
#include "controller/control_error.h"
#include "controller/explore_powercut.h"
#include "controller/explore_state.h"
#include "policy/net_policy.h"
#include "policy/policy.h"

namespace faultline::explore::runner {

namespace fs = std::filesystem;

// ---- calls and their natural errors ----------------------------------------------------------

bool has_call(const CompiledTarget& t, std::uint32_t id) {
  return (t.calls_mask[id / 64] >> (id % 64)) & 1;
}

namespace {

// A fault of the target with its action, compiled: which calls it can fail (a family drops
// the calls that cannot take the action, e.g. `sync` for an error), and where read/write go.
std::string probe_fault(const Target& t) {
  std::string action = t.action;
  if (action.empty()) action = "error = " + toml_quote(t.error.empty() ? "EIO" : t.error) + "\n";
  return "[[fault]]\nname = \"probe\"\ncalls = " + t.calls + "\n" + t.selectors + action;
}

}  // namespace

CompiledTarget compile_target(const Target& t) {
  const CompileResult r = compile_policy_string("version = 1\n" + probe_fault(t), t.label);
  if (r.error) fail(fmt::format("cannot explore {}: {}", t.label, r.error->message));
  const FaultSpec& spec = r.policy->faults.at(0);
  CompiledTarget c;
  c.calls_mask[0] = spec.calls_mask[0];
  c.calls_mask[1] = spec.calls_mask[1];
  c.rw_on_sockets = rw_scope_hits(spec, true);
  c.rw_on_files = rw_scope_hits(spec, false);
  return c;
}

// `--calls` items: "@memory", "connect", "@write=ENOSPC".
Target call_target(const std::string& item) {
  const std::size_t eq = item.find('=');
  const std::string what = item.substr(0, eq);
  Target t;
  t.label = item;
  if (what.starts_with('@')) {
    const auto family = find_family(what);
    if (!family || !(*family & kSupportedFamilies))
      fail(
          fmt::format("--calls: unknown family '{}' (families: @write @fsync @read @open @net "
                      "@dns @memory)",
                      what));
  } else if (!find_call(what)) {
    fail(
        fmt::format("--calls: unknown call '{}' (a call name such as fsync, or a family such "
                    "as @memory)",
                    what));
  }
  t.calls = "[" + toml_quote(what) + "]";
  if (eq != std::string::npos) {
    t.error = item.substr(eq + 1);
    if (!errno_from_name(t.error) && !dns_error_from_name(t.error))
      fail(
          fmt::format("--calls {}: unknown error '{}' (an errno name such as EIO, or an EAI_* "
                      "code for @dns)",
                      item, t.error));
  }
  return t;
}

namespace {

// The keys of a -p fault: selectors narrow what is explored, the action is what each run
// injects; triggers are explore's own (the k-th call at the site, once).
constexpr std::string_view kSelectorKeys[] = {"path", "process", "thread", "size",
                                              "addr", "host",    "stack"};
constexpr std::string_view kActionKeys[] = {
    "error", "delay", "jitter",    "short",      "corrupt", "lie",      "crash",
    "when",  "reset", "blackhole", "resolve_to", "timeout", "log_stack"};
constexpr std::string_view kIgnoredKeys[] = {"name",  "enabled", "probability", "after",
                                             "every", "times",   "start_after", "duration"};

template <std::size_t N>
bool one_of(std::string_view key, const std::string_view (&keys)[N]) {
  return std::find(std::begin(keys), std::end(keys), key) != std::end(keys);
}

// "key = value\n", the value as toml++ writes it.
std::string toml_line(std::string_view key, const toml::node& value) {
  toml::table t;
  value.visit([&](auto&& v) { t.insert(key, v); });
  std::ostringstream out;
  out << t;
  std::string text = out.str();
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text + "\n";
}

}  // namespace

std::vector<Target> policy_targets(const std::string& path, std::vector<std::string>& warnings) {
  const CompileResult compiled = compile_policy_file(path);
  if (compiled.error)
    throw_control_error(ErrorKind::kBadPolicy, kStatusUsage, compiled.error->to_string());
  toml::table root;
  try {
    root = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    fail(fmt::format("{}: {}", path, e.description()));
  }
  std::vector<Target> targets;
  const toml::array* faults = root["fault"].as_array();
  if (!faults || faults->empty()) fail(fmt::format("{}: no [[fault]] to explore", path));
  for (const toml::node& item : *faults) {
    const toml::table& table = *item.as_table();
    Target t;
    t.label = "policy:" + table["name"].value_or(std::string("?"));
    std::vector<std::pair<toml::source_position, std::string>> keys;
    for (auto&& [key, value] : table) keys.emplace_back(key.source().begin, std::string(key.str()));
    std::sort(keys.begin(), keys.end(), [](const auto& a, const auto& b) {
      return std::pair(a.first.line, a.first.column) < std::pair(b.first.line, b.first.column);
    });
    for (const auto& [at, key] : keys) {
      const toml::node& value = *table.get(key);
      if (key == "calls") {
        t.calls = toml_line("calls", value).substr(std::string_view("calls = ").size());
        t.calls.pop_back();
      } else if (one_of(key, kSelectorKeys)) {
        t.selectors += toml_line(key, value);
      } else if (one_of(key, kActionKeys)) {
        t.action += toml_line(key, value);
      } else if (one_of(key, kIgnoredKeys)) {
        if (key != "name")
          warnings.push_back(
              fmt::format("{}:{}:{}: '{}' of {} is ignored: explore fails the "
                          "k-th call at each site, once",
                          path, at.line, at.column, key, t.label));
      } else {
        fail(
            fmt::format("{}:{}:{}: '{}' does not fit explore, which fails one call at a time "
                        "({} cannot be explored)",
                        path, at.line, at.column, key, t.label));
      }
    }
    targets.push_back(std::move(t));
  }
  return targets;
}

Config make_config(const Options& o, std::vector<std::string>& warnings) {
  Config c;
  if (o.command.empty()) fail("no command: faultline explore [OPTIONS] -- CMD [ARGS...]");
  c.command = o.command;
  // A relative path to the program must survive the change into each run's own directory.
  if (c.command.front().find('/') != std::string::npos)
    c.command.front() = fs::absolute(c.command.front()).lexically_normal().string();
  if (o.depth < 1 || o.depth > static_cast<int>(kMaxSiteDepth))
    fail(fmt::format("--depth must be from 1 to {}", kMaxSiteDepth));
  if (o.occurrences < 0) fail("--occurrences must be at least 1");
  c.depth = o.depth;
  c.occurrences = o.occurrences ? o.occurrences : o.powercut ? powercut::kDefaultOccurrences : 1;
  c.check = o.check;
  c.in_place = o.in_place;
  if (!o.recover.empty() && !o.powercut)
    fail("--recover is run after a power cut: it needs --powercut");
  if (o.powercut) {
    if (!o.calls.empty())
      fail(
          "--powercut explores the durability points of the policy's [durability] path: "
          "--calls does not apply");
    if (o.faultline.empty()) fail("--powercut: no faultline executable to run each run with");
    c.powercut = true;
    c.recover = o.recover;
    c.targets = powercut::targets(o.policy, c.durability, c.faults);
    if (o.check.empty() && o.recover.empty())
      warnings.push_back(
          "--powercut without --check or --recover: every cut is survived unless the program "
          "crashes or hangs; give a check of its files");
    if (c.targets.empty()) fail("--powercut: this build interposes none of the durability calls");
    return c;
  }
  if (!o.policy.empty()) c.targets = policy_targets(o.policy, warnings);
  std::vector<std::string> calls = o.calls;
  if (calls.empty() && o.policy.empty())
    calls = {"@memory", "@write", "@read", "@fsync", "@open", "@net", "@dns"};
  std::set<std::string> labels;
  for (const std::string& item : calls) {
    if (!labels.insert(item).second) fail(fmt::format("--calls names {} twice", item));
    c.targets.push_back(call_target(item));
  }
  if (c.targets.size() + kMaxErrorPath > kMaxFaults)
    fail(
        fmt::format("too many things to explore at once (at most {})", kMaxFaults - kMaxErrorPath));
  return c;
}

bool same_exploration(const Config& a, const Config& b) {
  auto same_targets = [](const std::vector<Target>& x, const std::vector<Target>& y) {
    return x.size() == y.size() &&
           std::equal(x.begin(), x.end(), y.begin(), [](const Target& p, const Target& q) {
             return p.label == q.label && p.calls == q.calls && p.error == q.error &&
                    p.selectors == q.selectors && p.action == q.action;
           });
  };
  return a.command == b.command && a.depth == b.depth && a.occurrences == b.occurrences &&
         a.check == b.check && a.in_place == b.in_place && a.powercut == b.powercut &&
         a.recover == b.recover && a.durability == b.durability && a.faults == b.faults &&
         same_targets(a.targets, b.targets);
}

}  // namespace faultline::explore::runner
