// Helpers shared by the targeting, crash, process-tree and replay tests: a fixture that runs a
// command under `faultline run` with a policy, and readers for the summary JSON and the
// event log those runs leave behind.
#pragma once

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "harness.h"

namespace fltest {

inline constexpr const char* kPython = "/usr/bin/python3";
inline constexpr const char* kSqlite = "/usr/bin/sqlite3";
inline constexpr const char* kShell = "/bin/sh";

// A counter of one fault ("seen", "matched", "injected") from `faultline status --json` or
// a `--json-summary` file.
inline std::optional<std::uint64_t> fault_counter(const std::string& json, const std::string& fault,
                                                  const std::string& field) {
  const auto start = json.find("{\"name\":\"" + fault + "\"");
  if (start == std::string::npos) return std::nullopt;
  const auto end = json.find('}', start);
  const std::string object = json.substr(start, end == std::string::npos ? end : end - start);
  const std::string key = "\"" + field + "\":";
  const auto at = object.find(key);
  if (at == std::string::npos) return std::nullopt;
  const auto digits = at + key.size();
  const auto stop = object.find_first_not_of("0123456789", digits);
  if (stop == digits) return std::nullopt;
  return std::stoull(object.substr(digits, stop - digits));
}

// The lines of the event log that mention every one of `needles`.
inline std::vector<std::string> log_lines_with(const std::string& log,
                                               const std::vector<std::string>& needles) {
  std::vector<std::string> out;
  for (const auto& line : split_lines(log)) {
    bool all = true;
    for (const auto& n : needles) all = all && line.find(n) != std::string::npos;
    if (all) out.push_back(line);
  }
  return out;
}

class TargetingTest : public IntegrationTest {
 protected:
  // `faultline run -p POLICY [--json-summary S] [EXTRA...] -- ARGV...`; the summary is kept in
  // summary_.
  RunResult run_under(const std::string& policy_text, const std::vector<std::string>& argv,
                      RunOptions options = {}, const std::vector<std::string>& extra = {}) {
    const std::string policy = path("policy.toml");
    EXPECT_TRUE(write_file(policy, policy_text));
    const std::string summary = path("summary.json");
    std::vector<std::string> args{"run", "-p", policy, "--json-summary", summary};
    args.insert(args.end(), extra.begin(), extra.end());
    args.push_back("--");
    args.insert(args.end(), argv.begin(), argv.end());
    RunResult r = faultline(args, options);
    summary_ = read_file(summary).value_or("");
    return r;
  }
  std::optional<std::uint64_t> counter(const std::string& fault, const std::string& field) const {
    return fault_counter(summary_, fault, field);
  }
  std::string events() const { return read_file(path("events.jsonl")).value_or(""); }
  // `[log] path` pointing at events.jsonl in the test's directory, with a seed.
  std::string header(int seed = 1) const {
    return "version = 1\nseed = " + std::to_string(seed) + "\n[log]\npath = \"" +
           path("events.jsonl") + "\"\n";
  }

  std::string summary_;
};

}  // namespace fltest
