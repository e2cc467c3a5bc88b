// `faultline experiment run | validate | report`: the arguments only; the engine is
// controller/experiment/ (faultline_experiment).
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

namespace faultline::cli {

using RegisterCommand = std::function<void(CLI::App*, std::function<int()>)>;
void add_experiment(CLI::App& app, const RegisterCommand& add);

}  // namespace faultline::cli
