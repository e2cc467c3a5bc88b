// Any bytes given to the policy compiler, as a file, as a live snippet, or split into a
// `faultline set KEY=VALUE`, must come back as a policy or a located error.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "policy/policy.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  faultline::CompileResult file = faultline::compile_policy_string(text, "fuzz.toml");
  if (file.error) (void)file.error->to_string();
  faultline::CompileResult snippet = faultline::compile_fault_snippet(text, "fuzz.toml");
  if (snippet.error) (void)snippet.error->to_string();

  const std::size_t equals = text.find('=');
  if (equals != std::string_view::npos) {
    faultline::FaultSpec spec = faultline::default_fault_spec();
    (void)faultline::apply_fault_setting(spec, text.substr(0, equals), text.substr(equals + 1));
  }
  return 0;
}
