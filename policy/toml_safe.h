// Guarding toml++ against its own undefined behaviour. toml++ 3.3.0's Unicode tables leave
// gaps that end in __builtin_unreachable() (e.g. U+00A1, U+2C80 or U+FEF6 where it expects
// whitespace; found by tests/fuzz/policy_fuzz.cpp), in noexcept functions, so the parser that
// runs inside the target's constructor could do anything with such bytes. TOML allows
// non-ASCII only inside strings and comments, so the policy compiler first checks that no
// non-ASCII byte stands anywhere else and reports it as an ordinary error.
#pragma once

#include <toml++/toml.h>

#include <cstddef>
#include <optional>
#include <string_view>

namespace faultline::detail {

struct TextPosition {
  std::size_t line = 1;
  std::size_t column = 1;
};

// Position of the first non-ASCII byte outside a string or a comment, if any.
std::optional<TextPosition> find_stray_non_ascii(std::string_view text);

}  // namespace faultline::detail
