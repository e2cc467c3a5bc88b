// Experiments as code (spec: docs/experiments.md): the parsed and checked form of an experiment
// file, and the three entry points the CLI calls. The file is read whole and checked before
// anything starts: every name a step, clause or stop condition uses must exist, every duration
// must parse, every step must be at or after 0 s. Errors carry file:line:col like the policy
// compiler's, so `experiment validate` and `experiment run` refuse the same files the same way.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace faultline::experiment {

// The exit statuses of docs/experiments.md.
inline constexpr int kHeld = 0;
inline constexpr int kNotHeld = 1;
inline constexpr int kBadInput = 2;
inline constexpr int kStopped = 3;

struct Position {
  int line = 0;
  int column = 0;
};

struct Readiness {
  enum class Kind { kNone, kTcp, kHttp, kLog, kCommand } kind = Kind::kNone;
  std::string target;                // host:port, URL or regex
  std::vector<std::string> command;  // kCommand
  std::int64_t timeout_ns = 30'000'000'000;
};

struct Service {
  std::string name;
  std::vector<std::string> command;
  std::string policy;       // path as written (resolved against the experiment's folder)
  std::string policy_path;  // resolved
  Readiness ready;
  enum class Restart { kNo, kOnFailure, kAlways } restart = Restart::kNo;
  std::int64_t restart_delay_ns = 1'000'000'000;
  std::string cwd;  // the experiment file's folder
  Position at;
};

struct Probe {
  std::string name;
  enum class Kind { kHttp, kTcp, kCommand } kind = Kind::kHttp;
  std::string target;  // URL or host:port
  std::vector<std::string> command;
  std::int64_t every_ns = 1'000'000'000;
  std::int64_t timeout_ns = 1'000'000'000;
  std::optional<int> status;  // http: expected status (default: 2xx)
  std::string body_contains;
  Position at;
};

// A condition on one probe's results: success rate at least `success_rate`, latency
// percentiles at most their limits, over the last `window` (0: every result in scope).
struct Clause {
  std::string probe;
  std::optional<double> success_rate;
  std::map<int, std::int64_t> percentile_max_ns;  // 50, 90, 95, 99 -> limit
  std::int64_t window_ns = 0;
  Position at;
};

struct StopClause {
  std::string probe;
  double success_rate_below = 0;
  std::int64_t window_ns = 10'000'000'000;
};

struct Step {
  std::int64_t at_ns = 0;
  enum class Kind {
    kEnable,
    kDisable,
    kSet,
    kAdd,
    kRemove,
    kKill,
    kPause,
    kThrottle,
    kPowercut
  } kind{};
  // enable/disable/remove: SERVICE:FAULT names; set: SERVICE:FAULT -> KEY=VALUE settings;
  // add: SERVICE -> snippet path (resolved).
  std::vector<std::pair<std::string, std::string>> targets;  // (service, fault or "")
  std::vector<std::vector<std::string>> settings;            // set: one list per target
  std::vector<std::string> snippets;                         // add: one per target
  std::string service;                                       // kill/pause/throttle/powercut
  int signal = 9;
  std::int64_t for_ns = 0;  // pause/throttle
  double cpu = 1.0;         // throttle: the share of time the service runs
  std::string text;         // how the step reads, for lines and the report
  Position at;
};

struct Experiment {
  std::string file;
  std::string dir;  // the file's folder: relative paths are resolved against it
  std::string title;
  std::uint64_t seed = 0;
  bool has_seed = false;
  std::vector<Service> services;
  std::vector<Probe> probes;
  std::vector<Clause> steady_state;
  std::vector<Clause> during;
  std::optional<std::int64_t> recover_within_ns;
  std::vector<StopClause> stop;
  std::optional<std::int64_t> max_duration_ns;
  std::vector<std::vector<std::string>> rollbacks;
  std::vector<Step> steps;  // sorted by `at`, stable
};

struct LoadResult {
  std::optional<Experiment> experiment;
  std::vector<std::string> errors;  // "file:line:col: message"
};
LoadResult load_experiment(const std::string& path);

struct RunOptions {
  std::string json;    // --json FILE (the journal)
  std::string report;  // --report FILE.html
  std::string junit;   // --junit FILE.xml
  std::string logs;    // where services' stdout/stderr go (default: <name>-logs next to it)
  bool quiet = false;
  std::string replay;  // the command line that replays the run
};
int run_experiment(const Experiment& experiment, const RunOptions& options);

// `experiment report JOURNAL -o FILE.html`. Throws ControlError (status 2) for a journal it
// cannot read and a page it cannot write.
void render_report(const std::string& journal, const std::string& html);

}  // namespace faultline::experiment
