// Glob matching shared by the policy compiler (validation) and the shim (selectors).
// `*` matches any run of characters including '/', `?` one character, `[abc]`, `[a-z]` and
// `[!x]` classes, `\` escapes. No allocation, no locale: safe inside the shim's hot path.
#pragma once

namespace faultline {

bool glob_match(const char* pattern, const char* text) noexcept;

}  // namespace faultline
