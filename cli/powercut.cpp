// Power cuts from the controller's side (docs/policy.md, "Durability: power cuts"): killing
// what is left of a session once a cut was pulled, reverting the tracked files with the undo
// log (controller/durability/revert.h), and reporting what the cut lost in the summary, the event
// log and JSON. `faultline powercut` pulls one live; `faultline run` finishes one whatever
// pulled it.
#include "cli/powercut.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "cli/cli.h"
#include "cli/output.h"
#include "controller/durability/cut.h"
#include "session/session.h"

namespace faultline::cli {

using durability::kill_members;
using durability::pull_cut;
using durability::revert_session;

// A revert usually takes well under a millisecond: "0ns" would read as "not measured".
static std::string revert_time(std::int64_t ns) {
  return ns < 1'000'000 ? std::string("under 1ms") : human_age(ns);
}

void print_cut(const durability::CutReport& report, std::FILE* out) {
  if (report.files.empty() && report.entries.empty())
    fmt::print(out, "faultline: power cut: nothing unsynced was lost (reverted {} after the cut)\n",
               revert_time(report.took_ns));
  else
    fmt::print(out,
               "faultline: power cut lost {} in {} file{}, {} entr{} undone (reverted {} after "
               "the cut)\n",
               human_size(report.bytes_lost()), report.files.size(),
               report.files.size() == 1 ? "" : "s", report.entries.size(),
               report.entries.size() == 1 ? "y" : "ies", revert_time(report.took_ns));
  for (const auto& f : report.files)
    fmt::print(out, "  {}: {} lost (size {} -> {})\n", f.path, human_size(f.bytes), f.size_before,
               f.size_after);
  for (const auto& e : report.entries) fmt::print(out, "  {}\n", e);
  for (const auto& p : report.problems) fmt::print(out, "faultline: power cut: {}\n", p);
}

Json cut_json(const durability::CutReport& report) {
  Json files = Json::array();
  for (const auto& f : report.files) {
    Json o;
    o["path"] = json_text(f.path);
    o["bytes_lost"] = f.bytes;
    o["size_before"] = f.size_before;
    o["size_after"] = f.size_after;
    files.push_back(std::move(o));
  }
  Json entries = Json::array();
  for (const auto& e : report.entries) entries.push_back(json_text(e));
  Json problems = Json::array();
  for (const auto& p : report.problems) problems.push_back(json_text(p));
  Json o;
  o["bytes_lost"] = report.bytes_lost();
  o["files"] = std::move(files);
  o["entries_undone"] = std::move(entries);
  o["problems"] = std::move(problems);
  o["revert_ns"] = report.took_ns;
  return o;
}

void log_cut(const ControlBlock& block, const durability::CutReport& report) {
  const std::string path = read_log_path(block.header);
  if (path.empty()) return;
  const std::int64_t ts = block.header.cut_real_ns.load(std::memory_order_relaxed);
  Json line;
  line["time"] = utc_time(ts);
  line["ts_ns"] = json_digits(ts);
  line["pid"] = static_cast<int>(getpid());
  line["process"] = "faultline";
  line["call"] = "powercut";
  line["action"] = "powercut";
  line["seed"] = json_digits(block.header.seed.load(std::memory_order_relaxed));
  line["lost"] = cut_json(report);
  std::ofstream out(path, std::ios::app);
  out << json_dump(line) << '\n';
}

int powercut_command(const std::string& session_name) {
  const auto session = open_named_session(session_name);
  ControlBlock& block = session->block();
  pull_cut(block);
  const pid_t owner = block.header.cut_owner_pid.load(std::memory_order_relaxed);
  const bool owned = owner > 0 && durability::member_alive(owner);
  const std::vector<pid_t> left = kill_members(block, owned ? owner : 0);
  if (!left.empty())
    fmt::print(stderr, "faultline: power cut: {} process{} of session {} did not die within 2 s\n",
               left.size(), left.size() == 1 ? "" : "es", session->name());
  if (owned) {
    fmt::print(
        "{}: power cut; faultline (pid {}), which started it, reverts the tracked files and "
        "reports what was lost\n",
        session->name(), owner);
    return kExitOk;
  }
  const durability::CutReport report = revert_session(block);
  fmt::print("{}: power cut\n", session->name());
  print_cut(report, stdout);
  log_cut(block, report);
  return kExitOk;
}

}  // namespace faultline::cli
