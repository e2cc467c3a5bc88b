// The state directory of `faultline explore` (its files are listed in explore_state.cpp), and
// the text and file helpers its writer and the runner share. Internal to controller/explore*.cpp.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "controller/explore.h"

namespace faultline::explore::runner {

inline constexpr const char* kConfigFile = "explore.toml";
inline constexpr const char* kSitesFile = "sites.tsv";
inline constexpr const char* kRunsFile = "runs.tsv";

// Errors of explore are ControlErrors: kUsage for what the user asked, kSystem for a failed call.
[[noreturn]] void fail(const std::string& message);
[[noreturn]] void fail_system(const std::string& what);  // appends strerror(errno)

// ---- text ----
std::string toml_quote(std::string_view text);   // a TOML basic string
std::string shell_quote(std::string_view word);  // quoted only if needed
// A field of a .tsv line: tabs and line breaks would split it.
std::string field(std::string_view text);
std::vector<std::string> split(const std::string& line, char separator);
std::optional<long long> to_number(const std::string& text);
void append_line(const std::string& path, const std::string& line);
void write_file(const std::string& path, const std::string& text);
void remove_tree(const std::string& path);

// ---- the state's files ----
std::string path_in(const State& s, const std::string& name);
void save_config(const State& s);  // explore.toml, written once
Config load_config(const std::string& dir);
std::string site_key(int target, const std::string& call, const std::string& site);
void load_sites(State& s);
std::string run_line(const Run& r);  // one line of runs.tsv
void load_runs(State& s);

}  // namespace faultline::explore::runner
