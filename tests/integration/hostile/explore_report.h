// What `faultline explore --powercut` says it did, read from its report: a "no findings" report
// means something only when cuts were actually made.
#pragma once

#include <cstddef>
#include <regex>
#include <string>

namespace fltest {

// The runs the report's "recording run:" line counts ("...; 12 runs made"); 0 without one.
inline std::size_t powercut_runs_made(const std::string& report) {
  static const std::regex line(
      R"(recording run: exit \d+; (\d+) cut points found[^;]*; (\d+) runs? made)");
  std::smatch m;
  if (!std::regex_search(report, m, line)) return 0;
  return std::stoul(m[2].str());
}

// The cut points the recording run found.
inline std::size_t powercut_points_found(const std::string& report) {
  static const std::regex line(R"(recording run: exit \d+; (\d+) cut points found)");
  std::smatch m;
  if (!std::regex_search(report, m, line)) return 0;
  return std::stoul(m[1].str());
}

}  // namespace fltest
