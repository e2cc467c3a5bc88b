// The shim's allocation-free text builder (see text_buf.h): integers, UTC time, JSON escaping
// and a printf subset, all into a caller's fixed buffer.
#include "shim/engine/text_buf.h"

#include <string.h>

#include <cstring>

namespace faultline::shim {
namespace {

constexpr char kHexLower[] = "0123456789abcdef";
constexpr char kHexUpper[] = "0123456789ABCDEF";

// Digits of `value` at the end of `out` (20 bytes hold any 64-bit value); returns the start.
char* to_decimal(std::uint64_t value, char (&out)[24]) {
  char* p = out + sizeof out;
  do {
    *--p = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value != 0);
  return p;
}

// Length of the valid UTF-8 sequence at text[i], or 0 if it is not one (RFC 3629: no
// overlong forms, no surrogates, nothing above U+10FFFF).
std::size_t utf8_length(std::string_view text, std::size_t i) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(text[i + k]); };
  const unsigned char c = b(0);
  std::size_t n;
  unsigned char lo = 0x80, hi = 0xbf;  // bounds of the second byte
  if (c >= 0xc2 && c <= 0xdf) {
    n = 2;
  } else if (c >= 0xe0 && c <= 0xef) {
    n = 3;
    if (c == 0xe0) lo = 0xa0;
    if (c == 0xed) hi = 0x9f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 4;
    if (c == 0xf0) lo = 0x90;
    if (c == 0xf4) hi = 0x8f;
  } else {
    return 0;
  }
  if (i + n > text.size()) return 0;
  if (b(1) < lo || b(1) > hi) return 0;
  for (std::size_t k = 2; k < n; ++k)
    if (b(k) < 0x80 || b(k) > 0xbf) return 0;
  return n;
}

// Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm, proleptic Gregorian).
void civil_from_days(std::int64_t z, std::int64_t& y, unsigned& m, unsigned& d) {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  y = static_cast<std::int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  if (m <= 2) ++y;
}

}  // namespace

TextBuf& TextBuf::put(std::string_view text) noexcept {
  std::size_t n = text.size();
  if (n > room()) {
    n = room();
    truncated_ = true;
  }
  std::memcpy(data_ + len_, text.data(), n);
  len_ += n;
  data_[len_] = '\0';
  return *this;
}

TextBuf& TextBuf::dec(std::uint64_t value) noexcept {
  char digits[24];
  const char* start = to_decimal(value, digits);
  return put(std::string_view(start, static_cast<std::size_t>(digits + sizeof digits - start)));
}

TextBuf& TextBuf::dec_signed(std::int64_t value) noexcept {
  if (value < 0) {
    put('-');
    return dec(~static_cast<std::uint64_t>(value) + 1);  // -INT64_MIN without overflow
  }
  return dec(static_cast<std::uint64_t>(value));
}

TextBuf& TextBuf::hex(std::uint64_t value, bool upper) noexcept {
  const char* digits = upper ? kHexUpper : kHexLower;
  char out[16];
  int n = 0;
  do {
    out[15 - n++] = digits[value & 15];
    value >>= 4;
  } while (value != 0);
  return put(std::string_view(out + 16 - n, static_cast<std::size_t>(n)));
}

TextBuf& TextBuf::utc_time(std::int64_t realtime_ns, int fraction_digits) noexcept {
  std::int64_t secs = realtime_ns / 1000000000;
  std::int64_t frac = realtime_ns % 1000000000;
  if (frac < 0) {
    frac += 1000000000;
    --secs;
  }
  std::int64_t days = secs / 86400;
  std::int64_t rest = secs % 86400;
  if (rest < 0) {
    rest += 86400;
    --days;
  }
  std::int64_t year;
  unsigned month, day;
  civil_from_days(days, year, month, day);
  const auto two = [this](std::uint64_t v) {
    put(static_cast<char>('0' + v / 10 % 10));
    put(static_cast<char>('0' + v % 10));
  };
  dec_signed(year);
  put('-');
  two(month);
  put('-');
  two(day);
  put('T');
  two(static_cast<std::uint64_t>(rest / 3600));
  put(':');
  two(static_cast<std::uint64_t>(rest / 60 % 60));
  put(':');
  two(static_cast<std::uint64_t>(rest % 60));
  if (fraction_digits > 0) {
    if (fraction_digits > 9) fraction_digits = 9;
    put('.');
    char digits[9];
    for (int i = 8; i >= 0; --i) {
      digits[i] = static_cast<char>('0' + frac % 10);
      frac /= 10;
    }
    put(std::string_view(digits, static_cast<std::size_t>(fraction_digits)));
  }
  return put('Z');
}

TextBuf& TextBuf::json_text(std::string_view text, std::size_t keep_free) noexcept {
  for (std::size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    char piece[8];
    std::size_t len = 0;
    std::size_t used = 1;
    // Byte for byte what nlohmann::json's dump() writes, so that the CLI's `events --json`
    // (cli/commands.cpp) prints the same line as this log: \b \f \n \r \t short,
    // the other control characters as \u00xx, DEL as itself (valid JSON and UTF-8).
    const char short_escape = c == '\b'   ? 'b'
                              : c == '\f' ? 'f'
                              : c == '\n' ? 'n'
                              : c == '\r' ? 'r'
                              : c == '\t' ? 't'
                                          : '\0';
    if (c == '"' || c == '\\') {
      piece[len++] = '\\';
      piece[len++] = static_cast<char>(c);
    } else if (short_escape != '\0') {
      piece[len++] = '\\';
      piece[len++] = short_escape;
    } else if (c < 0x20) {
      const char* u = "\\u00";
      for (int k = 0; k < 4; ++k) piece[len++] = u[k];
      piece[len++] = kHexLower[c >> 4];
      piece[len++] = kHexLower[c & 15];
    } else if (c < 0x80) {
      piece[len++] = static_cast<char>(c);
    } else if (const std::size_t n = utf8_length(text, i); n > 0) {
      used = n;
      for (std::size_t k = 0; k < n; ++k) piece[len++] = text[i + k];
    } else {
      piece[len++] = '\\';
      piece[len++] = '\\';
      piece[len++] = 'x';
      piece[len++] = kHexLower[c >> 4];
      piece[len++] = kHexLower[c & 15];
    }
    if (len + keep_free > room()) {
      truncated_ = true;
      break;
    }
    put(std::string_view(piece, len));
    i += used;
  }
  return *this;
}

TextBuf& TextBuf::json_string(const char* key, const char* value, std::size_t keep_free) noexcept {
  put(",\"").put(key).put("\":\"");
  json_text(value, keep_free + 1);
  return put('"');
}

TextBuf& TextBuf::json_number(const char* key, std::int64_t value) noexcept {
  return put(",\"").put(key).put("\":").dec_signed(value);
}

TextBuf& TextBuf::json_unsigned(const char* key, std::uint64_t value) noexcept {
  return put(",\"").put(key).put("\":").dec(value);
}

TextBuf& TextBuf::json_digits(const char* key, std::uint64_t value) noexcept {
  return put(",\"").put(key).put("\":\"").dec(value).put('"');
}

TextBuf& TextBuf::json_digits_signed(const char* key, std::int64_t value) noexcept {
  return put(",\"").put(key).put("\":\"").dec_signed(value).put('"');
}

TextBuf& TextBuf::pad_put(std::string_view text, int width, bool left, char fill) noexcept {
  const int pad = width > static_cast<int>(text.size()) ? width - static_cast<int>(text.size()) : 0;
  if (!left) {
    // Zero padding goes after the sign.
    if (fill == '0' && !text.empty() && text[0] == '-') {
      put('-');
      text.remove_prefix(1);
    }
    for (int i = 0; i < pad; ++i) put(fill);
  }
  put(text);
  if (left)
    for (int i = 0; i < pad; ++i) put(' ');
  return *this;
}

TextBuf& TextBuf::format(const char* fmt, ...) noexcept {
  va_list ap;
  va_start(ap, fmt);
  vformat(fmt, ap);
  va_end(ap);
  return *this;
}

TextBuf& TextBuf::vformat(const char* fmt, va_list ap) noexcept {
  for (const char* p = fmt; *p;) {
    if (*p != '%') {
      const char* next = std::strchr(p, '%');
      const std::size_t n = next ? static_cast<std::size_t>(next - p) : std::strlen(p);
      put(std::string_view(p, n));
      p += n;
      continue;
    }
    const char* spec = p++;
    bool left = false;
    char fill = ' ';
    for (; *p == '-' || *p == '0'; ++p) {
      if (*p == '-') left = true;
      if (*p == '0') fill = '0';
    }
    int width = 0;
    for (; *p >= '0' && *p <= '9'; ++p) width = width * 10 + (*p - '0');
    int precision = -1;
    if (*p == '.') {
      ++p;
      precision = 0;
      if (*p == '*') {
        precision = va_arg(ap, int);
        ++p;
      } else {
        for (; *p >= '0' && *p <= '9'; ++p) precision = precision * 10 + (*p - '0');
      }
    }
    int longs = 0;  // 0 int, 1 long, 2 long long; z, j, t are long-sized on LP64
    for (;; ++p) {
      if (*p == 'h') continue;  // promoted to int anyway
      if (*p == 'l') {
        ++longs;
        continue;
      }
      if (*p == 'z' || *p == 'j' || *p == 't') {
        longs = 2;
        continue;
      }
      break;
    }
    char digits[40];
    TextBuf num(digits, sizeof digits);
    switch (*p) {
      case '%':
        put('%');
        break;
      case 'c':
        num.put(static_cast<char>(va_arg(ap, int)));
        pad_put(std::string_view(digits, num.size()), width, left, ' ');
        break;
      case 's': {
        const char* s = va_arg(ap, const char*);
        if (!s) s = "(null)";
        const std::size_t n =
            precision >= 0 ? strnlen(s, static_cast<std::size_t>(precision)) : std::strlen(s);
        pad_put(std::string_view(s, n), width, left, ' ');
        break;
      }
      case 'd':
      case 'i': {
        const std::int64_t v = longs == 0   ? va_arg(ap, int)
                               : longs == 1 ? va_arg(ap, long)
                                            : va_arg(ap, long long);
        num.dec_signed(v);
        pad_put(std::string_view(digits, num.size()), width, left, left ? ' ' : fill);
        break;
      }
      case 'u':
      case 'x':
      case 'X': {
        const std::uint64_t v = longs == 0   ? va_arg(ap, unsigned)
                                : longs == 1 ? va_arg(ap, unsigned long)
                                             : va_arg(ap, unsigned long long);
        if (*p == 'u')
          num.dec(v);
        else
          num.hex(v, *p == 'X');
        pad_put(std::string_view(digits, num.size()), width, left, left ? ' ' : fill);
        break;
      }
      case 'p':
        num.put("0x").hex(reinterpret_cast<std::uintptr_t>(va_arg(ap, void*)));
        pad_put(std::string_view(digits, num.size()), width, left, ' ');
        break;
      default:  // unknown: copied as written (nothing consumed)
        if (*p == '\0') {
          put(std::string_view(spec, static_cast<std::size_t>(p - spec)));
          return *this;
        }
        put(std::string_view(spec, static_cast<std::size_t>(p + 1 - spec)));
        break;
    }
    ++p;
  }
  return *this;
}

const char* error_text(int err) noexcept {
  const char* text = strerrordesc_np(err);
  return text ? text : "unknown error";
}

}  // namespace faultline::shim
