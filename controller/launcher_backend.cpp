// The backend choice and the seccomp backend's preparations, shared by every launcher
// (launcher_backend.h).
#include "controller/launcher_backend.h"

#include <fmt/format.h>

#include "controller/control_error.h"
#include "controller/elf_read.h"
#include "policy/seccomp_filter.h"

namespace faultline::launch {

bool use_seccomp(const std::string& requested, const Policy& policy, const std::string& program,
                 const char* what) {
  std::string backend = requested;
  if (backend.empty())
    backend = policy.backend == Backend::kPreload   ? "preload"
              : policy.backend == Backend::kSeccomp ? "seccomp"
                                                    : "auto";
  if (backend != "auto" && backend != "preload" && backend != "seccomp")
    throw_control_error(
        ErrorKind::kUsage, kStatusUsage,
        fmt::format("{}: unknown backend '{}' (auto, preload or seccomp)", what, backend));
  if (backend != "auto") return backend == "seccomp";
  const auto elf = read_elf_file(program);
  return elf && (!elf->has_interp || elf->go_note || elf->go_symbols);
}

SeccompPlan plan_seccomp(Policy& policy) {
  // Without the shim nothing records what a cut would lose: a cut would then revert nothing
  // and look survived, the false finding [durability] exists to prevent.
  if (policy.durability.path[0])
    throw_control_error(
        ErrorKind::kUsage, kStatusUsage,
        "[durability] needs the preload backend: what a power cut loses is tracked by the shim "
        "inside the program, which the seccomp backend does not load (a static or Go program "
        "cannot be power-cut; drop [durability] to fault it)");
  for (FaultSpec& spec : policy.faults) {
    if (auto why = seccomp::refusal(spec))
      throw_control_error(ErrorKind::kUsage, kStatusUsage, *why);
    seccomp::widen_calls(spec);
  }
  SeccompPlan plan;
  plan.families = seccomp::trapped_families(policy);
  plan.filter = seccomp::build_filter(plan.families);
  return plan;
}

void mark_seccomp(ControlSession& session, const SeccompPlan& plan) {
  session.block().header.seccomp_families.store(kSeccompBackend | plan.families,
                                                std::memory_order_release);
}

std::vector<std::string> seccomp_environment(const std::vector<std::string>& base) {
  std::vector<std::string> env;
  for (const std::string& entry : base)
    if (!entry.starts_with("FAULTLINE_SESSION=") && !entry.starts_with("FAULTLINE_POLICY=") &&
        !entry.starts_with("FAULTLINE_SEED=") && !entry.starts_with("FAULTLINE_LOG="))
      env.push_back(entry);
  return env;
}

}  // namespace faultline::launch
