// `faultline experiment`: parses the arguments and calls the engine (controller/experiment/).
#include "controller/experiment/experiment.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "cli/experiment_cli.h"
#include "controller/launcher.h"

namespace faultline::cli {
namespace {

struct ExperimentArgs {
  std::string file, seed, output;
  experiment::RunOptions run;
};

std::optional<experiment::Experiment> load_or_print(const std::string& file) {
  experiment::LoadResult r = experiment::load_experiment(file);
  for (const auto& e : r.errors) fmt::print(stderr, "{}\n", e);
  return std::move(r.experiment);
}

}  // namespace

void add_experiment(CLI::App& app, const RegisterCommand& add) {
  static ExperimentArgs a;
  auto* experiment = app.add_subcommand(
      "experiment", "Chaos experiments as code: steady state, steps, stop, rollback, report");
  experiment->require_subcommand(1);

  auto* run = experiment->add_subcommand(
      "run", "Run an experiment: exit 0 hypothesis held, 1 not held, 2 bad input, 3 stopped");
  run->add_option("FILE", a.file, "Experiment file (TOML)")->required();
  run->add_option("--json", a.run.json, "Write the journal (JSON) to FILE")->type_name("FILE");
  run->add_option("--report", a.run.report, "Write the HTML report to FILE")->type_name("FILE");
  run->add_option("--junit", a.run.junit, "Write JUnit XML (one case per clause) to FILE")
      ->type_name("FILE");
  run->add_option("--logs", a.run.logs,
                  "Folder for the services' stdout/stderr (default: FILE without .toml + -logs)")
      ->type_name("DIR");
  run->add_option("--seed", a.seed, "Seed for every service's faults; overrides the file's")
      ->type_name("N");
  run->add_flag("-q,--quiet", a.run.quiet, "No live lines, no summary table");
  add(run, [] {
    auto e = load_or_print(a.file);
    if (!e) return experiment::kBadInput;
    if (!a.seed.empty()) {
      e->seed = launch::parse_seed(a.seed, "--seed ");
      e->has_seed = true;
    }
    if (!e->has_seed) {
      e->seed = launch::random_u64();
      e->has_seed = true;
    }
    a.run.replay = fmt::format("faultline experiment run {} --seed {}", a.file, e->seed);
    return experiment::run_experiment(*e, a.run);
  });

  auto* validate = experiment->add_subcommand(
      "validate", "Check an experiment file: file:line:col errors and exit 2, or a summary");
  validate->add_option("FILE", a.file, "Experiment file (TOML)")->required();
  add(validate, [] {
    const auto e = load_or_print(a.file);
    if (!e) return experiment::kBadInput;
    fmt::print(
        "{}: ok: {} service{}, {} probe{}, {} step{}, {} clause{}\n", a.file, e->services.size(),
        e->services.size() == 1 ? "" : "s", e->probes.size(), e->probes.size() == 1 ? "" : "s",
        e->steps.size(), e->steps.size() == 1 ? "" : "s",
        e->steady_state.size() + e->during.size() + (e->recover_within_ns ? 1 : 0),
        e->steady_state.size() + e->during.size() + (e->recover_within_ns ? 1 : 0) == 1 ? "" : "s");
    return 0;
  });

  auto* report =
      experiment->add_subcommand("report", "Render the HTML report again from a run's journal");
  report->add_option("JOURNAL", a.file, "The journal a run wrote with --json")->required();
  report->add_option("-o,--output", a.output, "The HTML file to write")->required();
  add(report, [] {
    experiment::render_report(a.file, a.output);  // a ControlError: main prints it
    return 0;
  });
}

}  // namespace faultline::cli
