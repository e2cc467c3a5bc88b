// `faultline`: the grammar of docs/cli.md in CLI11, and the one place that turns a command's
// outcome into a message and an exit status (0 done, 1 nothing to act on, 2 bad usage/input;
// `run` passes on CMD's own status).
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "cli/cli.h"
#include "cli/doctor.h"
#include "cli/experiment_cli.h"

// The build may define it from project(VERSION); keep a fallback so the file compiles alone.
#ifndef FAULTLINE_VERSION
#define FAULTLINE_VERSION "0.1.0"
#endif

namespace {

namespace fc = faultline::cli;

// Option values of every subcommand; only the parsed subcommand's are meaningful.
struct Args {
  fc::RunOptions run;
  fc::ExploreOptions explore;
  std::string explore_timeout;
  std::string seed;
  std::string policy;
  std::string session;
  std::string snippet;
  std::vector<std::string> words;  // [SESSION] FAULT... or [SESSION] FAULT KEY=VALUE...
  bool json = false;
  bool follow = false;
};

// Which action belongs to the subcommand CLI11 parsed.
class Dispatch {
 public:
  void add(CLI::App* command, std::function<int()> action) {
    entries_.emplace_back(command, std::move(action));
  }
  int run() const {
    for (const auto& [command, action] : entries_)
      if (command->parsed()) return action();
    return fc::kExitUsage;
  }

 private:
  std::vector<std::pair<CLI::App*, std::function<int()>>> entries_;
};

constexpr const char* kSessionHelp =
    "Session name; may be left out when exactly one session is live";

void add_session_positional(CLI::App* command, Args& a) {
  command->add_option("SESSION", a.session, kSessionHelp);
}

void add_run(CLI::App& app, Args& a, Dispatch& dispatch) {
  auto* run = app.add_subcommand(
      "run", "Run CMD with the shim preloaded and the policy armed; exit with CMD's status");
  run->add_option("-p,--policy", a.run.policy,
                  "Policy file (TOML); without it no fault is armed: add them live")
      ->type_name("POLICY");
  run->add_option("-s,--session", a.run.session, "Session name (default: fl-<pid>-<hex>)")
      ->type_name("SESSION");
  auto* seed =
      run->add_option("--seed", a.seed, "Seed; overrides FAULTLINE_SEED and the policy's seed")
          ->type_name("N");
  run->add_option("--log", a.run.log,
                  "Event log (JSON Lines); overrides FAULTLINE_LOG and the policy's [log] path")
      ->type_name("FILE");
  run->add_option("--json-summary", a.run.json_summary,
                  "Also write the summary as JSON to FILE (`-`: stderr)")
      ->type_name("FILE");
  run->add_flag("--json", a.run.json,
                "The summary as one JSON line on stderr instead of the table (no session line)");
  run->add_option("--backend", a.run.backend,
                  "How CMD is reached: auto (seccomp for a static or Go program, else preload), "
                  "preload or seccomp; overrides the policy's [target] backend")
      ->check(CLI::IsMember({"auto", "preload", "seccomp"}))
      ->type_name("auto|preload|seccomp");
  run->add_flag("-q,--quiet", a.run.quiet, "No session line at start, no summary at the end");
  run->add_option("CMD", a.run.command, "The command and its arguments, after --")->required();
  run->footer(
      "Example: faultline run -p wal-eio.toml -- ./db --data /tmp/db\n"
      "A statically linked or Go CMD runs under the seccomp backend; a set-id CMD is refused.");
  dispatch.add(run, [&a, seed] {
    if (seed->count() > 0) a.run.seed = a.seed;
    return fc::run_command(a.run);
  });
}

void add_explore(CLI::App& app, Args& a, Dispatch& dispatch) {
  auto* explore = app.add_subcommand(
      "explore",
      "Run CMD many times, failing one untried call site each time; report the sites whose "
      "failure crashes or hangs CMD or fails the --check");
  auto& o = a.explore;
  explore
      ->add_option("-p,--policy", o.policy,
                   "Explore the calls this policy's faults select, injecting their actions")
      ->type_name("POLICY");
  explore
      ->add_option("--calls", o.calls,
                   "Calls and families to explore, each failing with its natural error unless "
                   "one is given: @memory,@write,connect=ECONNRESET (default: every family)")
      ->delimiter(',')
      ->allow_extra_args(false)  // one LIST per --calls, or it swallows the `--` after it
      ->type_name("LIST");
  explore->add_option("--max-runs", o.max_runs, "Runs to make, at most (default 100)")
      ->type_name("N");
  explore
      ->add_option("--timeout", a.explore_timeout,
                   "A run still going after this is killed and counted as hung (default 10s)")
      ->type_name("DURATION");
  explore
      ->add_option("--check", o.check,
                   "Shell command run after each run in its directory; failing it is a finding")
      ->type_name("CMD");
  explore->add_option("-j,--jobs", o.jobs, "Runs at a time (CMD must be safe to run in parallel)")
      ->check(CLI::Range(1, 256))
      ->type_name("J");
  explore
      ->add_option("--state", o.state_dir,
                   "State directory: resumable, and the report comes from it "
                   "(default ./faultline-explore)")
      ->type_name("DIR");
  explore->add_option("--depth", o.depth, "Return addresses per call site (default 8)")
      ->check(CLI::Range(1, 16))
      ->type_name("D");
  explore
      ->add_option("--occurrences", o.occurrences,
                   "Also fail the 2nd..K-th call at each site, one per run (default 1; with "
                   "--powercut every occurrence reached, up to 1000)")
      ->check(CLI::Range(1, 1000000))
      ->type_name("K");
  explore->add_flag("--powercut", o.powercut,
                    "Cut the power before and after each durability point (fsync, rename, "
                    "unlink, ...) of the policy's [durability] path, one per run");
  explore
      ->add_option("--recover", o.recover,
                   "With --powercut: shell command run after each cut, before the --check "
                   "(e.g. the program restarted to replay its log); failing it is a finding")
      ->type_name("CMD");
  explore->add_flag("--in-place", o.in_place,
                    "Run in the current directory, not in a fresh empty one per run");
  explore->add_flag("--json", o.json, "The report as one JSON object");
  explore->add_flag("-q,--quiet", o.quiet, "No progress on stderr");
  explore->add_flag("--report", o.report_only, "Print the report of --state DIR; run nothing");
  explore->add_option("CMD", o.command, "The command and its arguments, after --");
  explore->footer(
      "Example: faultline explore --calls @memory,@fsync --check './verify db' -- ./db-load db\n"
      "Power cuts: faultline explore -p cut.toml --powercut --recover './db --replay' "
      "--check './verify db' -- ./db-load db\n"
      "Exit status: 0 no finding, 1 findings, 2 bad usage, 130 interrupted.");
  dispatch.add(explore, [&a] {
    if (!a.explore_timeout.empty()) {
      const std::string& t = a.explore_timeout;
      const bool digits = t.find_first_not_of("0123456789") == std::string::npos;
      const auto ns = faultline::parse_duration_ns(digits ? t + "s" : t);
      if (!ns || *ns <= 0)
        fc::fail(fc::kExitUsage, "--timeout " + t + ": a duration such as 10s, 500ms or 2m");
      a.explore.timeout_ns = *ns;
    }
    if (!a.explore.report_only && a.explore.command.empty())
      fc::fail(fc::kExitUsage, "no command: faultline explore [OPTIONS] -- CMD [ARGS...]");
    if (!a.explore.recover.empty() && !a.explore.powercut)
      fc::fail(fc::kExitUsage,
               "--recover is run after a power cut: it needs --powercut (and -p POLICY with "
               "[durability] path)");
    return fc::explore_command(a.explore);
  });
}

void add_doctor(CLI::App& app, Args& a, Dispatch& dispatch) {
  auto* doctor = app.add_subcommand(
      "doctor",
      "What faultline can reach in CMD before running it: static, Go, musl, set-id, the libc "
      "calls it imports per family, io_uring, its own malloc or resolver; the backend auto picks");
  doctor->add_flag("--json", a.json, "One JSON object instead of the report");
  doctor->add_option("CMD", a.words, "The command (and its arguments), after --");
  doctor->footer(
      "Example: faultline doctor -- curl\n"
      "Exit status: 0 the preload or the seccomp backend reaches CMD, 1 neither does, 2 bad usage "
      "(no CMD, not found, not "
      "an ELF executable).");
  dispatch.add(doctor, [&a] { return fc::doctor_command(a.words, a.json); });
}

void add_inspection(CLI::App& app, Args& a, Dispatch& dispatch) {
  auto* validate = app.add_subcommand("validate", "Check a policy: a one-line summary or errors");
  validate->add_option("POLICY", a.policy, "Policy file (TOML); - reads standard input")
      ->required();
  validate->add_flag("--json", a.json, "One JSON object: every error with file, line, column");
  dispatch.add(validate, [&a] { return fc::validate_command(a.policy, a.json); });

  auto* sessions = app.add_subcommand("sessions", "List live sessions; removes dead ones");
  sessions->add_flag("--json", a.json, "One JSON object instead of a table");
  dispatch.add(sessions, [&a] { return fc::sessions_command(a.json); });

  auto* status = app.add_subcommand("status", "Every fault: enabled, trigger, counters");
  add_session_positional(status, a);
  status->add_flag("--json", a.json, "One JSON object instead of a table");
  dispatch.add(status, [&a] { return fc::status_command(a.session, a.json); });

  auto* events = app.add_subcommand("events", "Injected faults, from the session's event ring");
  add_session_positional(events, a);
  events->add_flag("-f,--follow", a.follow, "Keep printing new events until interrupted");
  events->add_flag("--json", a.json, "JSON Lines, as in the event log");
  dispatch.add(events, [&a] { return fc::events_command(a.session, a.follow, a.json); });

  auto* watch = app.add_subcommand("watch", "Live view of counters and rates");
  add_session_positional(watch, a);
  dispatch.add(watch, [&a] { return fc::watch_command(a.session); });
}

void add_edits(CLI::App& app, Args& a, Dispatch& dispatch) {
  struct Edit {
    const char* name;
    const char* help;
    fc::FaultEdit edit;
  };
  const Edit edits[] = {
      {"enable", "Arm faults live", fc::FaultEdit::kEnable},
      {"disable", "Disarm faults live (they stay loaded)", fc::FaultEdit::kDisable},
      {"remove", "Remove faults live", fc::FaultEdit::kRemove}};
  for (const auto& [name, help, edit] : edits) {
    auto* command = app.add_subcommand(name, help);
    command->add_option("FAULT", a.words, "[SESSION] FAULT...: SESSION may be left out")
        ->required();
    dispatch.add(command, [&a, edit = edit] { return fc::edit_faults_command(edit, a.words); });
  }

  auto* set = app.add_subcommand("set", "Change a fault's keys live (same keys as a policy)");
  set->add_option("SETTING", a.words, "[SESSION] FAULT KEY=VALUE...: SESSION may be left out")
      ->required();
  set->footer("Example: faultline set wal-eio probability=0.5 error=ENOSPC times=3");
  dispatch.add(set, [&a] { return fc::set_command(a.words); });

  auto* add = app.add_subcommand("add", "Add faults live from [[fault]] tables");
  add_session_positional(add, a);
  add->add_option("-p,--policy", a.snippet, "TOML file of [[fault]] tables")
      ->type_name("SNIPPET")
      ->required();
  dispatch.add(add, [&a] { return fc::add_command(a.session, a.snippet); });

  auto* panic = app.add_subcommand("panic", "Every fault off at once (the kill switch)");
  add_session_positional(panic, a);
  dispatch.add(panic, [&a] { return fc::panic_command(a.session, true); });

  auto* powercut = app.add_subcommand(
      "powercut", "A power cut now: every process dies, unsynced tracked data is lost");
  add_session_positional(powercut, a);
  powercut->footer(
      "Kills every process of the session (SIGKILL) and puts the [durability] paths back in "
      "their durable state; `faultline run` reports what was lost and exits 137.");
  dispatch.add(powercut, [&a] { return fc::powercut_command(a.session); });

  auto* resume = app.add_subcommand("resume", "Undo `panic`");
  add_session_positional(resume, a);
  dispatch.add(resume, [&a] { return fc::panic_command(a.session, false); });
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1] ? 1 : 0)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

// " (did you mean 'status'?)" for the nearest of `choices` within 3 edits (or a prefix), or "".
std::string nearest_hint(std::string_view word, const std::vector<std::string>& choices) {
  std::string best;
  std::size_t best_distance = 4;
  for (const std::string& choice : choices) {
    const std::size_t d =
        choice.starts_with(word) && word.size() >= 2 ? 1 : edit_distance(word, choice);
    if (d < best_distance) {
      best = choice;
      best_distance = d;
    }
  }
  return best.empty() ? "" : fmt::format(" (did you mean '{}'?)", best);
}

std::vector<std::string> command_names(const CLI::App& app) {
  std::vector<std::string> names{"help"};
  for (const CLI::App* c : app.get_subcommands([](const CLI::App*) { return true; }))
    names.push_back(c->get_name());
  return names;
}

const CLI::App* find_command(const CLI::App& app, std::string_view name) {
  for (const CLI::App* c : app.get_subcommands([](const CLI::App*) { return true; }))
    if (c->get_name() == name) return c;
  return nullptr;
}

// Every spelling of the options `command` takes ("--json", "-f", "--help").
std::vector<std::string> option_names(const CLI::App& command) {
  std::vector<std::string> names;
  for (const CLI::Option* o : command.get_options()) {
    for (const std::string& l : o->get_lnames()) names.push_back("--" + l);
    for (const std::string& s : o->get_snames()) names.push_back("-" + s);
  }
  return names;
}

// The first word that looks like an option `command` does not take, or "". Stops at `--`,
// and for `run` and `explore` at CMD (the first word that is neither an option nor a value).
std::string unknown_option(const CLI::App& command, int argc, char** argv) {
  const std::vector<std::string> known = option_names(command);
  const bool takes_cmd = command.get_name() == "run" || command.get_name() == "explore";
  for (int i = 2; i < argc; ++i) {
    std::string_view word = argv[i];
    if (word == "--") break;
    if (word.size() < 2 || word[0] != '-') {
      if (takes_cmd) break;
      continue;
    }
    const bool attached =
        word.find('=') != std::string_view::npos || (!word.starts_with("--") && word.size() > 2);
    if (word.starts_with("--"))
      word = word.substr(0, word.find('='));
    else if (word.size() > 2)
      word = word.substr(0, 2);  // -pFILE
    if (std::find(known.begin(), known.end(), word) == known.end()) return std::string(word);
    const CLI::Option* option = command.get_option_no_throw(std::string(word));
    if (option != nullptr && option->get_expected_min() > 0 && !attached) ++i;  // its value
  }
  return "";
}

// CLI11's messages say what was wrong; ours also say what to do for the common slips: an
// unknown command or option (with the nearest one) and CMD's own options before `--` in `run`.
// Returns true when it printed the message (CLI11's is then not printed).
bool print_usage_error(const CLI::App& app, int argc, char** argv, const CLI::ParseError& error) {
  if (argc < 2) return false;
  const std::string_view first = argv[1];
  const CLI::App* command = find_command(app, first);
  if (!command && !first.starts_with('-')) {
    std::string hint = nearest_hint(first, command_names(app));
    fmt::print(stderr, "faultline: unknown command '{}'{} (see `faultline --help`)\n", first, hint);
    return true;
  }
  if (!command) {
    const std::string option = std::string(first.substr(0, first.find('=')));
    fmt::print(stderr, "faultline: unknown option '{}'{} (see `faultline --help`)\n", option,
               nearest_hint(option, {"--help", "--version"}));
    return true;
  }
  if (const std::string option = unknown_option(*command, argc, argv); !option.empty()) {
    fmt::print(stderr, "faultline {}: unknown option '{}'{} (see `faultline {} --help`)\n", first,
               option, nearest_hint(option, option_names(*command)), first);
    return true;
  }
  if ((first == "run" || first == "explore") &&
      dynamic_cast<const CLI::ExtrasError*>(&error) != nullptr) {
    app.exit(error);
    fmt::print(stderr,
               "faultline: put the command after `--`: faultline {} [OPTIONS] -- CMD "
               "[ARGS...]\n",
               first);
    return true;
  }
  return false;
}

// `faultline help [COMMAND]` is `faultline [COMMAND] --help`.
std::vector<std::string> rewrite_help(int argc, char** argv) {
  std::vector<std::string> words(argv, argv + argc);
  if (words.size() >= 2 && words[1] == "help") {
    words.erase(words.begin() + 1);
    words.insert(words.begin() + (words.size() >= 2 ? 2 : 1), "--help");
    if (words.size() > 3) words.resize(3);  // help COMMAND extra...: the command's help
  }
  return words;
}

// docs/cli.md: write errors on standard output are errors (exit 2), a closed pipe aside (then
// SIGPIPE ended us already, or, with SIGPIPE ignored, EPIPE: the reader left, nothing to say).
int finish(int status) {
  if (std::fflush(stdout) == 0 && !std::ferror(stdout)) return status;
  const int err = errno;
  if (err == EPIPE) return status;
  std::fprintf(stderr, "faultline: cannot write to standard output: %s\n",
               err != 0 ? std::strerror(err) : "write error");
  return fc::kExitUsage;
}

}  // namespace

// Looked up by the shim (shim/init.cpp) in every process it starts in: a process that
// defines it is the controller, which never injects into itself.
extern "C" __attribute__((visibility("default"), used)) const char faultline_controller[] =
    "faultline " FAULTLINE_VERSION;

int main(int argc, char** argv) {
  CLI::App app{"faultline: inject faults into unmodified programs through LD_PRELOAD", "faultline"};
  app.set_version_flag("--version", "faultline " FAULTLINE_VERSION);
  app.require_subcommand(1);
  Args args;
  Dispatch dispatch;
  add_run(app, args, dispatch);
  add_explore(app, args, dispatch);
  add_doctor(app, args, dispatch);
  add_inspection(app, args, dispatch);
  add_edits(app, args, dispatch);
  fc::add_experiment(app, [&dispatch](CLI::App* command, std::function<int()> action) {
    dispatch.add(command, std::move(action));
  });
  // After the subcommands: CLI11 copies a footer into subcommands created after it.
  app.footer(
      "SESSION may be left out when exactly one session is live.\n"
      "Exit status: 0 done, 1 nothing to act on, 2 bad usage or input; `run`: CMD's status.\n"
      "`faultline COMMAND --help` for a command's options.");

  if (argc >= 3 && std::string_view(argv[1]) == "help" && !find_command(app, argv[2])) {
    fmt::print(stderr, "faultline: unknown command '{}'{} (see `faultline --help`)\n", argv[2],
               nearest_hint(argv[2], command_names(app)));
    return fc::kExitUsage;
  }
  std::vector<std::string> words = rewrite_help(argc, argv);
  std::vector<char*> word_ptrs;
  for (std::string& w : words) word_ptrs.push_back(w.data());
  const int word_count = static_cast<int>(word_ptrs.size());
  word_ptrs.push_back(nullptr);
  char** const args_v = word_ptrs.data();
  try {
    app.parse(word_count, args_v);
  } catch (const CLI::ParseError& error) {
    if (error.get_exit_code() == 0) {
      app.exit(error);  // help and version on stdout
      return finish(fc::kExitOk);
    }
    if (!print_usage_error(app, word_count, args_v, error)) app.exit(error);
    return fc::kExitUsage;
  }
  try {
    return finish(dispatch.run());
  } catch (const fc::CliError& error) {
    if (*error.what() != '\0') fmt::print(stderr, "faultline: {}\n", error.what());
    return finish(error.status());
  } catch (const std::system_error& error) {
    // fmt reports a failed write to stdout this way; a reader that left is not an error.
    if (error.code().value() == EPIPE) return fc::kExitOk;
    fmt::print(stderr, "faultline: cannot write to standard output: {}\n", error.what());
    return fc::kExitUsage;
  } catch (const std::exception& error) {
    fmt::print(stderr, "faultline: {}\n", error.what());
    return fc::kExitUsage;
  }
}
