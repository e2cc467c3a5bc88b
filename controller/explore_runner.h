// The runner of `faultline explore`, shared by controller/explore.cpp (the runs, their state and
// classification) and controller/explore_powercut.cpp (what a power-cut run does after the cut,
// and which point is due next). Internal to the two: nothing outside controller/ includes it.
#pragma once

#include <signal.h>
#include <sys/wait.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "controller/explore.h"
#include "controller/launcher.h"
#include "session/session.h"

namespace faultline::explore::runner {

std::int64_t now_ns();
std::string hex64(std::uint64_t value);
std::uint64_t file_hash(const std::string& path);  // FNV-1a 64 of the file's bytes
bool crash_signal(int sig);                        // SEGV, BUS, ABRT, ILL, FPE, TRAP, SYS
// Appends to a run's note: "cut, recovered, the check passed".
void add_note(std::string& note, const std::string& part);

// A target's fault, compiled: which calls it can fail, and where read/write go.
struct CompiledTarget {
  std::uint64_t calls_mask[2] = {0, 0};
  bool rw_on_sockets = false;  // its read/write/readv/writev hit sockets (an @net target)
  bool rw_on_files = false;
};

// A process of one run: CMD (in its session) or the check.
struct Child {
  pid_t pid = -1;
  std::int64_t deadline_ns = 0;
  bool done = false;
  bool timed_out = false;
  int status = 0;  // wait status

  // Non-blocking. The whole process group goes when the child ends or times out: what CMD
  // left behind (daemons, stuck children) must not outlive its run.
  void poll() {
    if (done || pid <= 0) return;
    siginfo_t info{};
    if (waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
        info.si_pid == pid) {
      kill(-pid, SIGKILL);  // the leader is a zombie until reaped: the group id is still ours
      finish();
    } else if (now_ns() >= deadline_ns) {
      timed_out = true;
      kill(-pid, SIGKILL);
      finish();
    }
  }
  void kill_now() {
    if (done || pid <= 0) return;
    kill(-pid, SIGKILL);
    finish();
  }

 private:
  void finish() {
    status = launch::wait_for(pid, 0);
    done = true;
  }
};

struct Active {
  Run run;
  std::string dir;
  std::string work;  // its working directory ("" in place)
  std::string session_name;
  std::unique_ptr<ControlSession> session;
  std::string fault_name;     // the site fault ("" for the discovery run)
  std::string site_fault;     // the [[fault]] tables that fail the site (and its error path)
  std::string replay_policy;  // the file that replays the run: those faults, no recording
  std::int64_t started_ns = 0;
  Child main;
  Child recover;  // --powercut: after the cut, before the check
  Child check;
  bool recovering = false;
  bool checking = false;
  bool finished = false;
};

class Explorer {
 public:
  Explorer(const Options& options, State& state) : options_(options), state_(state) {}

  void prepare();
  void discover();
  void explore();
  void stop_all();

 private:
  std::string policy_text(const Active& a) const;
  // The [[fault]] table failing the k-th call at a site, and what it injects ("EIO", or the
  // target's action on one line) for the run's record and the replay policy's comment.
  struct SiteFault {
    std::string toml;
    std::string injected;
  };
  SiteFault site_fault(const std::string& name, int site, int k) const;
  std::unique_ptr<Active> start(int site, int k);
  void advance(Active& a);
  void merge_sites(Active& a);
  void record(Active& a);
  bool stopping() const { return options_.stop && options_.stop->load(); }
  std::optional<std::pair<int, int>> next_trial();
  std::optional<std::pair<int, int>> next_point();
  void after_cut(Active& a);
  void report_progress(const Run* finished);

  const Options& options_;
  State& state_;
  std::string program_;  // resolved for exec
  std::vector<CompiledTarget> compiled_;
  std::map<std::string, int> site_index_;
  std::set<std::pair<int, int>> tried_;  // (site, occurrence), finished or running
  std::vector<std::unique_ptr<Active>> active_;
  int next_id_ = 1;
  int started_ = 0;
  int next_target_ = 0;
  std::map<std::pair<int, int>, std::size_t> scan_from_;  // (occurrence, target) -> site
  // --powercut: per site, the next occurrence to try, and the (site, occurrence)s reached
  // (the cut was made): the next occurrence of a point is due once the one before was.
  std::map<int, int> next_occurrence_;
  std::set<std::pair<int, int>> reached_;
};

// The check (and with --powercut the recover): a plain shell command in the run's directory,
// no preload, its output into `output` in the run's directory.
void start_shell(Active& a, Child& child, const std::string& command, const char* output,
                 std::int64_t timeout_ns);
void start_check(Active& a, const State& state, std::int64_t timeout_ns);

}  // namespace faultline::explore::runner
