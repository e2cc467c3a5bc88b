// std::from_chars for double, for the shim only. toml++ converts a TOML float (`probability =
// 0.001`) with it; libstdc++'s own lives in a translation unit that also brings float and long
// double parsers, a std::pmr pool and a libm dependency (fesetround): ~60 KiB of the shim and a
// DT_NEEDED on libm that every target would load. Defined here, the static libstdc++ the shim
// links (shim/CMakeLists.txt) never pulls that unit in. The CLI and the unit tests keep
// libstdc++'s. toml++ has already checked the syntax (digits, one '.', an exponent), so strtod_l
// in the C locale (a program's setlocale must not turn "0.5" into 0) gives the same double.
#include <errno.h>
#include <locale.h>
#include <stdlib.h>

#include <charconv>
#include <cstring>

namespace std {

from_chars_result from_chars(const char* first, const char* last, double& value,
                             chars_format fmt) noexcept {
  (void)fmt;  // toml++ asks for `general` only
  // strtod needs a NUL: a copy, bounded (a TOML float longer than this is refused).
  char text[128];
  const std::size_t n = static_cast<std::size_t>(last - first);
  if (n == 0 || n >= sizeof text) return {first, errc::invalid_argument};
  std::memcpy(text, first, n);
  text[n] = '\0';
  // "C" is glibc's static locale object: no allocation, never freed.
  static const locale_t c_locale = newlocale(LC_ALL_MASK, "C", static_cast<locale_t>(nullptr));
  if (c_locale == static_cast<locale_t>(nullptr)) return {first, errc::invalid_argument};
  char* end = nullptr;
  const int saved = errno;
  errno = 0;
  const double parsed = strtod_l(text, &end, c_locale);
  const bool range = errno == ERANGE;
  errno = saved;
  if (end == text) return {first, errc::invalid_argument};
  if (range && __builtin_isinf(parsed)) return {first + (end - text), errc::result_out_of_range};
  value = parsed;
  return {first + (end - text), errc{}};
}

}  // namespace std
