// `faultline`: the grammar of spec/cli.md in CLI11, and the one place that turns a command's
// outcome into a message and an exit status (0 done, 1 nothing to act on, 2 bad usage/input;
// `run` passes on CMD's own status).
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <functional>
#include <string_view>
#include <utility>
#include <vector>

#include "cli.h"

// The build may define it from project(VERSION); keep a fallback so the file compiles alone.
#ifndef FAULTLINE_VERSION
#define FAULTLINE_VERSION "0.1.0"
#endif

namespace {

namespace fc = faultline::cli;

// Option values of every subcommand; only the parsed subcommand's are meaningful.
struct Args {
  fc::RunOptions run;
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
  run->add_flag("-q,--quiet", a.run.quiet, "No session line at start, no summary at the end");
  run->add_option("CMD", a.run.command, "The command and its arguments, after --")->required();
  run->footer(
      "Example: faultline run -p wal-eio.toml -- ./db --data /tmp/db\n"
      "A statically linked or set-id CMD, which no preload can reach, is refused.");
  dispatch.add(run, [&a, seed] {
    if (seed->count() > 0) a.run.seed = a.seed;
    return fc::run_command(a.run);
  });
}

void add_inspection(CLI::App& app, Args& a, Dispatch& dispatch) {
  auto* validate = app.add_subcommand("validate", "Check a policy: a one-line summary or errors");
  validate->add_option("POLICY", a.policy, "Policy file (TOML)")->required();
  dispatch.add(validate, [&a] { return fc::validate_command(a.policy); });

  auto* sessions = app.add_subcommand("sessions", "List live sessions; removes dead ones");
  dispatch.add(sessions, [] { return fc::sessions_command(); });

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

  auto* resume = app.add_subcommand("resume", "Undo `panic`");
  add_session_positional(resume, a);
  dispatch.add(resume, [&a] { return fc::panic_command(a.session, false); });
}

// CLI11's message says what was wrong; add what to do for the two common slips: an unknown
// command (CLI11 only says one is required) and CMD's own options before `--` in `run`.
void print_hint(const CLI::App& app, int argc, char** argv, const CLI::ParseError& error) {
  if (argc < 2) return;
  const std::string_view first = argv[1];
  const auto commands = app.get_subcommands([](const CLI::App*) { return true; });
  const bool known = std::any_of(commands.begin(), commands.end(),
                                 [&](const CLI::App* c) { return c->get_name() == first; });
  if (!known && !first.starts_with('-'))
    fmt::print(stderr, "faultline: unknown command '{}' (see `faultline --help`)\n", first);
  else if (first == "run" && dynamic_cast<const CLI::ExtrasError*>(&error) != nullptr)
    fmt::print(stderr,
               "faultline: put the command after `--`: faultline run [OPTIONS] -- CMD "
               "[ARGS...]\n");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"faultline: inject faults into unmodified programs through LD_PRELOAD", "faultline"};
  app.set_version_flag("--version", "faultline " FAULTLINE_VERSION);
  app.require_subcommand(1);
  Args args;
  Dispatch dispatch;
  add_run(app, args, dispatch);
  add_inspection(app, args, dispatch);
  add_edits(app, args, dispatch);
  // After the subcommands: CLI11 copies a footer into subcommands created after it.
  app.footer(
      "SESSION may be left out when exactly one session is live.\n"
      "Exit status: 0 done, 1 nothing to act on, 2 bad usage or input; `run`: CMD's status.\n"
      "`faultline COMMAND --help` for a command's options.");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    app.exit(error);  // help and version on stdout, anything else on stderr
    if (error.get_exit_code() == 0) return fc::kExitOk;
    print_hint(app, argc, argv, error);
    return fc::kExitUsage;
  }
  try {
    return dispatch.run();
  } catch (const fc::CliError& error) {
    if (*error.what() != '\0') fmt::print(stderr, "faultline: {}\n", error.what());
    return error.status();
  } catch (const std::exception& error) {
    fmt::print(stderr, "faultline: {}\n", error.what());
    return fc::kExitUsage;
  }
}
