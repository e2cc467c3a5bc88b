// The experiment file format: TOML -> Experiment, every error with its file:line:col. Checks
// everything a run would trip over later (names, durations, step times, targets), so that a
// run never starts services only to find a typo in its tenth step.
#include <fmt/format.h>
#include <signal.h>
#include <toml++/toml.h>

#include <algorithm>
#include <filesystem>
#include <set>

#include "controller/experiment/experiment.h"
#include "controller/inspect.h"
#include "controller/launcher.h"
#include "policy/policy.h"

namespace faultline::experiment {
namespace {

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

// " (did you mean 'x'?)" when a known name is close, else the list of known names.
std::string suggestion(std::string_view name, const std::vector<std::string>& known) {
  std::string best;
  std::size_t best_distance = 3;
  for (const auto& k : known)
    if (const std::size_t d = edit_distance(name, k); d < best_distance) {
      best_distance = d;
      best = k;
    }
  if (!best.empty()) return fmt::format(" (did you mean '{}'?)", best);
  if (known.empty()) return " (none is defined)";
  std::string list;
  for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
  return fmt::format(" (known: {})", list);
}

class Loader {
 public:
  explicit Loader(std::string file) : file_(std::move(file)) {}
  std::vector<std::string> errors;

  Position pos(const toml::node& node) const {
    return {static_cast<int>(node.source().begin.line),
            static_cast<int>(node.source().begin.column)};
  }
  void error(Position p, const std::string& message) {
    errors.push_back(fmt::format("{}:{}:{}: {}", file_, p.line, p.column, message));
  }
  void error(const toml::node& node, const std::string& message) { error(pos(node), message); }

  void check_keys(const toml::table& table, const std::vector<std::string>& known,
                  std::string_view where) {
    for (const auto& [key, value] : table) {
      const std::string k(key.str());
      if (std::find(known.begin(), known.end(), k) == known.end())
        error(value, fmt::format("unknown key '{}' in {}{}", k, where, suggestion(k, known)));
    }
  }

  std::optional<std::string> string(const toml::node& node, std::string_view what) {
    if (auto s = node.value<std::string>()) return *s;
    error(node, fmt::format("{} must be a string", what));
    return std::nullopt;
  }

  std::optional<std::int64_t> duration(const toml::node& node, std::string_view what,
                                       bool allow_zero = false) {
    const auto text = node.value<std::string>();
    const auto ns = text ? parse_duration_ns(*text) : std::nullopt;
    if (!ns || *ns < 0 || (*ns == 0 && !allow_zero)) {
      error(node, fmt::format("{}: bad duration{} (e.g. \"500ms\", \"10s\", \"2m\")", what,
                              text ? fmt::format(" \"{}\"", *text) : std::string()));
      return std::nullopt;
    }
    return ns;
  }

  std::vector<std::string> string_list(const toml::node& node, std::string_view what) {
    std::vector<std::string> out;
    const auto* array = node.as_array();
    if (array == nullptr || array->empty()) {
      error(node, fmt::format("{} must be a non-empty array of strings", what));
      return out;
    }
    for (const auto& item : *array)
      if (auto s = item.value<std::string>())
        out.push_back(*s);
      else
        error(item, fmt::format("{}: every item must be a string", what));
    return out;
  }

 private:
  std::string file_;
};

std::string resolve(const std::string& dir, const std::string& path) {
  if (path.empty() || path.front() == '/') return path;
  return (std::filesystem::path(dir) / path).lexically_normal().string();
}

std::optional<int> signal_number(std::string_view name) {
  static const std::pair<const char*, int> kSignals[] = {
      {"SIGKILL", SIGKILL}, {"SIGTERM", SIGTERM}, {"SIGINT", SIGINT},   {"SIGQUIT", SIGQUIT},
      {"SIGHUP", SIGHUP},   {"SIGABRT", SIGABRT}, {"SIGUSR1", SIGUSR1}, {"SIGUSR2", SIGUSR2}};
  for (const auto& [n, s] : kSignals)
    if (name == n || name == std::string_view(n).substr(3)) return s;
  return std::nullopt;
}

void parse_readiness(Loader& l, const toml::node& node, Readiness& r) {
  const auto* t = node.as_table();
  if (t == nullptr) return l.error(node, "ready must be a table: { tcp = \"host:port\" } ...");
  l.check_keys(*t, {"tcp", "http", "log", "command", "timeout"}, "ready");
  int kinds = 0;
  if (const auto* n = t->get("tcp")) {
    ++kinds;
    r.kind = Readiness::Kind::kTcp;
    r.target = l.string(*n, "ready.tcp").value_or("");
    if (r.target.find(':') == std::string::npos) l.error(*n, "ready.tcp must be \"host:port\"");
  }
  if (const auto* n = t->get("http")) {
    ++kinds;
    r.kind = Readiness::Kind::kHttp;
    r.target = l.string(*n, "ready.http").value_or("");
    if (!r.target.starts_with("http://"))
      l.error(*n, "ready.http must be an http:// URL (https is not supported)");
  }
  if (const auto* n = t->get("log")) {
    ++kinds;
    r.kind = Readiness::Kind::kLog;
    r.target = l.string(*n, "ready.log").value_or("");
  }
  if (const auto* n = t->get("command")) {
    ++kinds;
    r.kind = Readiness::Kind::kCommand;
    r.command = l.string_list(*n, "ready.command");
  }
  if (kinds != 1) l.error(node, "ready needs exactly one of tcp, http, log, command");
  if (const auto* n = t->get("timeout"))
    r.timeout_ns = l.duration(*n, "ready.timeout").value_or(r.timeout_ns);
}

void parse_clause(Loader& l, const std::string& probe, const toml::node& node, Clause& c,
                  bool with_window, std::string_view where) {
  c.probe = probe;
  c.at = l.pos(node);
  const auto* t = node.as_table();
  if (t == nullptr) return l.error(node, fmt::format("{}.{} must be a table", where, probe));
  std::vector<std::string> keys = {"success_rate", "p50", "p90", "p95", "p99"};
  if (with_window) keys.push_back("window");
  l.check_keys(*t, keys, std::string(where));
  if (const auto* n = t->get("success_rate")) {
    const auto v = n->value<double>();
    if (!v || *v < 0 || *v > 1)
      l.error(*n, "success_rate must be a number from 0 to 1");
    else
      c.success_rate = *v;
  }
  for (int p : {50, 90, 95, 99})
    if (const auto* n = t->get(fmt::format("p{}", p)))
      if (auto ns = l.duration(*n, fmt::format("p{}", p))) c.percentile_max_ns[p] = *ns;
  if (with_window) {
    c.window_ns = 5'000'000'000;
    if (const auto* n = t->get("window")) c.window_ns = l.duration(*n, "window").value_or(0);
  }
  if (!c.success_rate && c.percentile_max_ns.empty())
    l.error(node, fmt::format("{}.{} checks nothing: give success_rate or p50/p90/p95/p99", where,
                              probe));
}

// "SERVICE:FAULT" -> (service, fault), checking the service exists.
std::optional<std::pair<std::string, std::string>> fault_ref(
    Loader& l, const toml::node& node, const std::string& text,
    const std::vector<std::string>& services) {
  const auto colon = text.find(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size()) {
    l.error(node, fmt::format("'{}': name a fault as SERVICE:FAULT", text));
    return std::nullopt;
  }
  const std::string service = text.substr(0, colon);
  if (std::find(services.begin(), services.end(), service) == services.end()) {
    l.error(node, fmt::format("'{}': unknown service '{}'{}", text, service,
                              suggestion(service, services)));
    return std::nullopt;
  }
  if (!valid_fault_name(text.substr(colon + 1))) {
    l.error(node, fmt::format("'{}': bad fault name", text));
    return std::nullopt;
  }
  return std::pair{service, text.substr(colon + 1)};
}

std::string value_text(const toml::node& node) {
  if (auto s = node.value<std::string>()) return "\"" + *s + "\"";
  std::ostringstream out;
  node.visit([&](const auto& v) { out << v; });
  return out.str();
}

void parse_step(Loader& l, const toml::table& t, Experiment& e,
                const std::vector<std::string>& services) {
  Step s;
  s.at = l.pos(t);
  l.check_keys(t,
               {"at", "enable", "disable", "set", "add", "remove", "kill", "signal", "pause", "for",
                "powercut", "throttle", "cpu"},
               "[[step]]");
  if (const auto* n = t.get("at")) {
    const auto text = n->value<std::string>();
    if (text && text->starts_with('-'))
      l.error(*n, fmt::format("step at \"{}\": a step cannot run before 0s (the moment the "
                              "steady state first holds)",
                              *text));
    else
      s.at_ns = l.duration(*n, "at", true).value_or(0);
  } else {
    l.error(t, "[[step]] needs `at` (e.g. at = \"5s\")");
  }
  auto service_name = [&](const toml::node& n, std::string_view what) {
    std::string name = l.string(n, what).value_or("");
    if (!name.empty() && std::find(services.begin(), services.end(), name) == services.end())
      l.error(n, fmt::format("{}: unknown service '{}'{}", what, name, suggestion(name, services)));
    return name;
  };
  int actions = 0;
  auto refs = [&](const char* key, Step::Kind kind) {
    const auto* n = t.get(key);
    if (n == nullptr) return;
    ++actions;
    s.kind = kind;
    for (const auto& name : l.string_list(*n, key))
      if (auto ref = fault_ref(l, *n, name, services)) s.targets.push_back(*ref);
    s.text = fmt::format("{} {}", key, fmt::join(l.string_list(*n, key), ", "));
  };
  refs("enable", Step::Kind::kEnable);
  refs("disable", Step::Kind::kDisable);
  refs("remove", Step::Kind::kRemove);
  if (const auto* n = t.get("set")) {
    ++actions;
    s.kind = Step::Kind::kSet;
    const auto* table = n->as_table();
    if (table == nullptr || table->empty()) {
      l.error(*n, "set must be a table: { \"SERVICE:FAULT\" = { key = value } }");
    } else {
      std::vector<std::string> parts;
      for (const auto& [key, value] : *table) {
        const auto ref = fault_ref(l, value, std::string(key.str()), services);
        const auto* keys = value.as_table();
        if (keys == nullptr) {
          l.error(value, "each fault's settings must be a table: { latency = \"800ms\" }");
          continue;
        }
        std::vector<std::string> settings;
        // The policy compiler's own check on the fault as the service's policy loads it, so
        // a bad key or value is refused now. A fault the policy does not have (one a step
        // adds) is checked when the step runs.
        std::optional<FaultSpec> spec;
        if (ref)
          for (const Service& svc : e.services)
            if (svc.name == ref->first && !svc.policy_path.empty())
              if (const CompileResult c = compile_policy_file(svc.policy_path); c.policy)
                for (const FaultSpec& f : c.policy->faults)
                  if (fixed_text(f.name) == ref->second) spec = f;
        for (const auto& [k, v] : *keys) {
          settings.push_back(fmt::format("{}={}", k.str(), value_text(v)));
          if (!spec) continue;
          if (auto problem = apply_fault_setting(*spec, k.str(), value_text(v)))
            l.error(v, fmt::format("{}: {}", k.str(), *problem));
        }
        if (ref) {
          s.targets.push_back(*ref);
          s.settings.push_back(settings);
        }
        parts.push_back(fmt::format("{} {}", key.str(), fmt::join(settings, " ")));
      }
      s.text = fmt::format("set {}", fmt::join(parts, "; "));
    }
  }
  if (const auto* n = t.get("add")) {
    ++actions;
    s.kind = Step::Kind::kAdd;
    const auto* table = n->as_table();
    if (table == nullptr || table->empty()) {
      l.error(*n, "add must be a table: { \"SERVICE\" = \"snippet.toml\" }");
    } else {
      for (const auto& [key, value] : *table) {
        const std::string service(key.str());
        if (std::find(services.begin(), services.end(), service) == services.end())
          l.error(value, fmt::format("add: unknown service '{}'{}", service,
                                     suggestion(service, services)));
        const std::string snippet = resolve(e.dir, l.string(value, "add").value_or(""));
        std::string content;
        if (auto problem = read_policy_text(snippet, content))
          l.error(value, *problem);
        else if (auto r = compile_fault_snippet(content, snippet); r.error)
          l.error(value, r.error->to_string());
        s.targets.emplace_back(service, "");
        s.snippets.push_back(snippet);
      }
      s.text = "add faults";
    }
  }
  auto service_step = [&](const char* key, Step::Kind kind) {
    if (const auto* n = t.get(key)) {
      ++actions;
      s.kind = kind;
      s.service = service_name(*n, key);
      s.text = fmt::format("{} {}", key, s.service);
    }
  };
  service_step("kill", Step::Kind::kKill);
  service_step("pause", Step::Kind::kPause);
  service_step("throttle", Step::Kind::kThrottle);
  service_step("powercut", Step::Kind::kPowercut);
  if (actions != 1)
    l.error(t,
            "a [[step]] does exactly one of enable, disable, set, add, remove, kill, pause, "
            "throttle, powercut");
  if (const auto* n = t.get("signal")) {
    if (s.kind != Step::Kind::kKill) l.error(*n, "signal goes with kill");
    const auto name = l.string(*n, "signal").value_or("");
    if (auto number = signal_number(name))
      s.signal = *number;
    else
      l.error(*n, fmt::format("unknown signal '{}' (SIGKILL, SIGTERM, SIGINT, SIGQUIT, SIGHUP, "
                              "SIGABRT, SIGUSR1, SIGUSR2)",
                              name));
  }
  const bool timed = s.kind == Step::Kind::kPause || s.kind == Step::Kind::kThrottle;
  if (const auto* n = t.get("for")) {
    if (!timed) l.error(*n, "`for` goes with pause or throttle");
    s.for_ns = l.duration(*n, "for").value_or(0);
  } else if (timed && actions == 1) {
    l.error(t, "pause and throttle need `for` (e.g. for = \"3s\")");
  }
  if (const auto* n = t.get("cpu")) {
    if (s.kind != Step::Kind::kThrottle) l.error(*n, "cpu goes with throttle");
    const auto text = n->value<std::string>();
    double pct = -1;
    if (text && text->ends_with('%')) {
      try {
        pct = std::stod(text->substr(0, text->size() - 1));
      } catch (const std::exception&) {
      }
    }
    if (pct <= 0 || pct >= 100)
      l.error(*n, "cpu must be a share such as \"25%\" (above 0, below 100)");
    else
      s.cpu = pct / 100;
  } else if (s.kind == Step::Kind::kThrottle) {
    l.error(t, "throttle needs cpu (e.g. cpu = \"25%\")");
  }
  if (s.kind == Step::Kind::kPause) s.text += fmt::format(" for {}s", s.for_ns / 1e9);
  if (s.kind == Step::Kind::kThrottle)
    s.text += fmt::format(" to {}% for {}s", s.cpu * 100, s.for_ns / 1e9);
  if (s.kind == Step::Kind::kKill && s.signal != SIGKILL)
    s.text += fmt::format(" with signal {}", s.signal);
  e.steps.push_back(std::move(s));
}

}  // namespace

LoadResult load_experiment(const std::string& path) {
  LoadResult result;
  Loader l(path);
  std::string content;
  if (auto problem = read_policy_text(path, content)) {
    result.errors.push_back(*problem);
    return result;
  }
  // Parsed in place: a copied toml++ node loses its source positions.
  std::optional<toml::table> parsed;
  try {
    parsed.emplace(toml::parse(content, path));
  } catch (const toml::parse_error& e) {
    result.errors.push_back(fmt::format("{}:{}:{}: {}", path, e.source().begin.line,
                                        e.source().begin.column, e.description()));
    return result;
  }
  const toml::table& root = *parsed;
  Experiment e;
  e.file = path;
  e.dir = std::filesystem::path(path).parent_path().string();
  if (e.dir.empty()) e.dir = ".";
  l.check_keys(root,
               {"version", "title", "seed", "service", "probe", "steady_state", "step", "expect",
                "stop", "rollback"},
               "the experiment");
  if (const auto* n = root.get("version")) {
    if (n->value<std::int64_t>() != 1) l.error(*n, "version must be 1");
  } else {
    l.error(Position{1, 1}, "missing `version = 1`");
  }
  if (const auto* n = root.get("title")) e.title = l.string(*n, "title").value_or("");
  if (const auto* n = root.get("seed")) {
    if (auto v = n->value<std::int64_t>(); v && *v >= 0) {
      e.seed = static_cast<std::uint64_t>(*v);
      e.has_seed = true;
    } else {
      l.error(*n, "seed must be a whole number >= 0");
    }
  }

  std::vector<std::string> service_names, probe_names;
  if (const auto* n = root.get("service")) {
    const auto* array = n->as_array();
    if (array == nullptr) l.error(*n, "service must be [[service]] tables");
    if (array != nullptr)
      for (const auto& item : *array) {
        const auto* t = item.as_table();
        if (t == nullptr) continue;
        l.check_keys(*t, {"name", "command", "policy", "ready", "restart", "restart_delay"},
                     "[[service]]");
        Service s;
        s.at = l.pos(item);
        s.cwd = e.dir;
        if (const auto* v = t->get("name")) {
          s.name = l.string(*v, "name").value_or("");
          if (!valid_fault_name(s.name) || s.name.find(':') != std::string::npos)
            l.error(*v, fmt::format("bad service name '{}' (use [A-Za-z0-9_.-])", s.name));
          if (std::find(service_names.begin(), service_names.end(), s.name) != service_names.end())
            l.error(*v, fmt::format("a service named '{}' is already defined", s.name));
        } else {
          l.error(item, "[[service]] needs a name");
        }
        if (const auto* v = t->get("command")) {
          s.command = l.string_list(*v, "command");
          // The program must exist now: found as `run` will look for it (a relative path
          // with a slash in the experiment's folder, a bare name in $PATH).
          if (!s.command.empty()) {
            std::string program = s.command.front();
            if (program.find('/') != std::string::npos && program.front() != '/')
              program = resolve(e.dir, program);
            try {
              launch::resolve_command(program);
            } catch (const std::exception& error) {
              l.error(*v, fmt::format("command: {}", error.what()));
            }
          }
        } else
          l.error(item, "[[service]] needs a command = [\"program\", \"arg\"...]");
        if (const auto* v = t->get("policy")) {
          s.policy = l.string(*v, "policy").value_or("");
          s.policy_path = resolve(e.dir, s.policy);
          const CompileResult r = compile_policy_file(s.policy_path);
          if (r.error) l.error(*v, r.error->to_string());
        }
        if (const auto* v = t->get("ready")) parse_readiness(l, *v, s.ready);
        if (const auto* v = t->get("restart")) {
          const auto text = l.string(*v, "restart").value_or("");
          if (text == "no")
            s.restart = Service::Restart::kNo;
          else if (text == "on-failure")
            s.restart = Service::Restart::kOnFailure;
          else if (text == "always")
            s.restart = Service::Restart::kAlways;
          else
            l.error(*v, fmt::format("restart must be \"no\", \"on-failure\" or \"always\", not "
                                    "\"{}\"{}",
                                    text, suggestion(text, {"no", "on-failure", "always"})));
        }
        if (const auto* v = t->get("restart_delay"))
          s.restart_delay_ns = l.duration(*v, "restart_delay", true).value_or(s.restart_delay_ns);
        service_names.push_back(s.name);
        e.services.push_back(std::move(s));
      }
  }
  if (e.services.empty()) l.error(Position{1, 1}, "an experiment needs at least one [[service]]");

  if (const auto* n = root.get("probe")) {
    const auto* array = n->as_array();
    if (array == nullptr) l.error(*n, "probe must be [[probe]] tables");
    if (array != nullptr)
      for (const auto& item : *array) {
        const auto* t = item.as_table();
        if (t == nullptr) continue;
        l.check_keys(*t, {"name", "http", "tcp", "command", "every", "timeout", "expect"},
                     "[[probe]]");
        Probe p;
        p.at = l.pos(item);
        if (const auto* v = t->get("name")) {
          p.name = l.string(*v, "name").value_or("");
          if (std::find(probe_names.begin(), probe_names.end(), p.name) != probe_names.end())
            l.error(*v, fmt::format("a probe named '{}' is already defined", p.name));
        } else {
          l.error(item, "[[probe]] needs a name");
        }
        int targets = 0;
        if (const auto* v = t->get("http")) {
          ++targets;
          p.kind = Probe::Kind::kHttp;
          p.target = l.string(*v, "http").value_or("");
          if (!p.target.starts_with("http://"))
            l.error(*v, "http must be an http:// URL (https is not supported)");
        }
        if (const auto* v = t->get("tcp")) {
          ++targets;
          p.kind = Probe::Kind::kTcp;
          p.target = l.string(*v, "tcp").value_or("");
          if (p.target.find(':') == std::string::npos) l.error(*v, "tcp must be \"host:port\"");
        }
        if (const auto* v = t->get("command")) {
          ++targets;
          p.kind = Probe::Kind::kCommand;
          p.command = l.string_list(*v, "command");
        }
        if (targets == 0)
          l.error(item, fmt::format("probe '{}' has no target: give http = URL, tcp = "
                                    "\"host:port\" or command = [...]",
                                    p.name));
        if (targets > 1) l.error(item, "a probe has exactly one of http, tcp, command");
        if (const auto* v = t->get("every"))
          p.every_ns = l.duration(*v, "every").value_or(p.every_ns);
        if (const auto* v = t->get("timeout"))
          p.timeout_ns = l.duration(*v, "timeout").value_or(p.timeout_ns);
        if (const auto* v = t->get("expect")) {
          const auto* x = v->as_table();
          if (x == nullptr) {
            l.error(*v, "expect must be a table: { status = 200, body_contains = \"ok\" }");
          } else {
            l.check_keys(*x, {"status", "body_contains"}, "the probe's expect");
            if (p.kind != Probe::Kind::kHttp) l.error(*v, "expect checks http probes only");
            if (const auto* s = x->get("status")) {
              const auto code = s->value<std::int64_t>();
              if (!code || *code < 100 || *code > 599)
                l.error(*s, "status must be an HTTP status code (100-599)");
              else
                p.status = static_cast<int>(*code);
            }
            if (const auto* b = x->get("body_contains"))
              p.body_contains = l.string(*b, "body_contains").value_or("");
          }
        }
        probe_names.push_back(p.name);
        e.probes.push_back(std::move(p));
      }
  }

  auto clauses = [&](const toml::node& node, std::vector<Clause>& out, bool window,
                     std::string_view where) {
    const auto* t = node.as_table();
    if (t == nullptr) return l.error(node, fmt::format("{} must be a table of probes", where));
    for (const auto& [key, value] : *t) {
      const std::string probe(key.str());
      if (std::find(probe_names.begin(), probe_names.end(), probe) == probe_names.end())
        l.error(value, fmt::format("{} names unknown probe '{}'{}", where, probe,
                                   suggestion(probe, probe_names)));
      Clause c;
      parse_clause(l, probe, value, c, window, where);
      out.push_back(std::move(c));
    }
  };
  if (const auto* n = root.get("steady_state")) clauses(*n, e.steady_state, true, "steady_state");
  if (const auto* n = root.get("expect")) {
    if (const auto* t = n->as_table()) {
      l.check_keys(*t, {"during", "recover_within"}, "[expect]");
      if (const auto* d = t->get("during")) clauses(*d, e.during, false, "expect.during");
      if (const auto* r = t->get("recover_within"))
        e.recover_within_ns = l.duration(*r, "recover_within");
      if (e.recover_within_ns && e.steady_state.empty())
        l.error(*n, "recover_within needs a [steady_state] to recover to");
    } else {
      l.error(*n, "[expect] must be a table");
    }
  }
  if (const auto* n = root.get("stop")) {
    if (const auto* t = n->as_table()) {
      for (const auto& [key, value] : *t) {
        const std::string k(key.str());
        if (k == "max_duration") {
          e.max_duration_ns = l.duration(value, "max_duration");
          continue;
        }
        if (std::find(probe_names.begin(), probe_names.end(), k) == probe_names.end()) {
          std::vector<std::string> known = probe_names;
          known.push_back("max_duration");
          l.error(value, fmt::format("[stop] names unknown probe '{}'{}", k, suggestion(k, known)));
          continue;
        }
        StopClause s;
        s.probe = k;
        const auto* c = value.as_table();
        if (c == nullptr) {
          l.error(value, "a stop condition is { success_rate_below = 0.5, window = \"10s\" }");
          continue;
        }
        l.check_keys(*c, {"success_rate_below", "window"}, "[stop]");
        const auto* below = c->get("success_rate_below");
        const auto v = below ? below->value<double>() : std::nullopt;
        if (!v || *v <= 0 || *v > 1)
          l.error(below ? *below : value, "success_rate_below must be a number above 0, at most 1");
        else
          s.success_rate_below = *v;
        if (const auto* w = c->get("window")) s.window_ns = l.duration(*w, "window").value_or(0);
        e.stop.push_back(s);
      }
    } else {
      l.error(*n, "[stop] must be a table");
    }
  }
  if (const auto* n = root.get("rollback")) {
    const auto* array = n->as_array();
    if (array == nullptr) l.error(*n, "rollback must be [[rollback]] tables");
    if (array != nullptr)
      for (const auto& item : *array) {
        const auto* t = item.as_table();
        if (t == nullptr) continue;
        l.check_keys(*t, {"command"}, "[[rollback]]");
        if (const auto* v = t->get("command"))
          e.rollbacks.push_back(l.string_list(*v, "command"));
        else
          l.error(item, "[[rollback]] needs command = [...]");
      }
  }
  if (const auto* n = root.get("step")) {
    const auto* array = n->as_array();
    if (array == nullptr) l.error(*n, "step must be [[step]] tables");
    if (array != nullptr)
      for (const auto& item : *array)
        if (const auto* t = item.as_table()) parse_step(l, *t, e, service_names);
  }
  std::stable_sort(e.steps.begin(), e.steps.end(),
                   [](const Step& a, const Step& b) { return a.at_ns < b.at_ns; });
  result.errors = std::move(l.errors);
  if (result.errors.empty()) result.experiment = std::move(e);
  return result;
}

}  // namespace faultline::experiment
