// The journal (`--json`) and what is rendered from it: the HTML report and the JUnit XML.
// Both renderers read only the journal, so `experiment report JOURNAL` gives the very page
// `experiment run --report` gave.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace faultline::experiment {

// "2026-12-04T16:00:53.123456789Z", as in policy.md's event line.
std::string iso_time(std::int64_t realtime_ns);
// Throws ControlError (kSystem, status 2) when the file cannot be written.
void write_text(const std::string& path, const std::string& text);
std::string html_report(const nlohmann::json& journal);
std::string junit_report(const nlohmann::json& journal);

}  // namespace faultline::experiment
