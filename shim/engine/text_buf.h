// An allocation-free, lock-free text builder for everything the shim writes itself: the JSON
// event line, the human stderr line and the diagnostics. A signal handler may reach all of
// them (a handler's write(2) is an armed call), so nothing here may call malloc, take a lock
// or use stdio's vfprintf (which also needs ~2 KiB of stack in glibc): it appends into a
// buffer the caller owns, truncating (never overflowing) when the buffer is full. The buffer
// always stays NUL-terminated.
#pragma once

#include <stdarg.h>

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace faultline::shim {

class TextBuf {
 public:
  // `capacity` bytes at `data`, at least 1 (the terminating NUL).
  TextBuf(char* data, std::size_t capacity) noexcept : data_(data), cap_(capacity) {
    data_[0] = '\0';
  }
  TextBuf(const TextBuf&) = delete;
  TextBuf& operator=(const TextBuf&) = delete;

  TextBuf& put(char c) noexcept {
    if (len_ + 1 < cap_) {
      data_[len_++] = c;
      data_[len_] = '\0';
    } else {
      truncated_ = true;
    }
    return *this;
  }
  TextBuf& put(std::string_view text) noexcept;
  TextBuf& put(const char* text) noexcept { return put(std::string_view(text ? text : "")); }
  TextBuf& dec(std::uint64_t value) noexcept;
  TextBuf& dec_signed(std::int64_t value) noexcept;
  TextBuf& hex(std::uint64_t value, bool upper = false) noexcept;
  // CLOCK_REALTIME nanoseconds as "2026-12-04T16:00:53.123456789Z" (UTC: local time needs
  // the time zone database, which takes a lock and may allocate).
  TextBuf& utc_time(std::int64_t realtime_ns, int fraction_digits = 9) noexcept;

  // The inside of a JSON string: `"` and `\` escaped, \b \f \n \r \t as such, the other
  // control characters as \u00xx (exactly as the CLI's JSON library writes them), bytes
  // that are not valid UTF-8 as the six characters `\\xNN` (a backslash, then x and two hex
  // digits: policy.md's event line), so the line is always valid JSON and valid UTF-8. Stops,
  // never in the middle of an escape or a character, once fewer than `keep_free` bytes would
  // remain: the fields after it still fit.
  TextBuf& json_text(std::string_view text, std::size_t keep_free = 0) noexcept;
  TextBuf& json_text(const char* text, std::size_t keep_free = 0) noexcept {
    return json_text(std::string_view(text ? text : ""), keep_free);
  }
  // `,"key":"value"` (escaped), `,"key":123` and `,"key":"123"` (64-bit values that may exceed
  // 2^53 are strings of digits, as policy.md asks).
  TextBuf& json_string(const char* key, const char* value, std::size_t keep_free = 0) noexcept;
  TextBuf& json_number(const char* key, std::int64_t value) noexcept;
  TextBuf& json_unsigned(const char* key, std::uint64_t value) noexcept;
  TextBuf& json_digits(const char* key, std::uint64_t value) noexcept;
  TextBuf& json_digits_signed(const char* key, std::int64_t value) noexcept;

  // A printf subset, enough for the shim's own messages: flags `-` and `0`, width, precision
  // (`.N` and `.*`), lengths hh h l ll z j t, conversions d i u x X s c p and %%. Anything
  // else is copied literally.
  TextBuf& format(const char* fmt, ...) noexcept __attribute__((format(printf, 2, 3)));
  TextBuf& vformat(const char* fmt, va_list ap) noexcept;

  const char* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return len_; }
  std::size_t room() const noexcept { return cap_ - 1 - len_; }
  bool truncated() const noexcept { return truncated_; }
  // Cuts back to `size` bytes (a field that did not fit whole, dropped).
  void resize_down(std::size_t size) noexcept {
    if (size < len_) {
      len_ = size;
      data_[len_] = '\0';
    }
  }

 private:
  TextBuf& pad_put(std::string_view text, int width, bool left, char fill) noexcept;

  char* data_;
  std::size_t cap_;
  std::size_t len_ = 0;
  bool truncated_ = false;
};

// A TextBuf with its own storage, for short texts on the stack.
template <std::size_t N>
class FixedText : public TextBuf {
 public:
  FixedText() noexcept : TextBuf(storage_, N) {}

 private:
  char storage_[N];
};

// The message of an errno value ("No such file or directory"), without strerror's locale
// lookup (which may allocate): glibc's strerrordesc_np, or the number.
const char* error_text(int err) noexcept;

}  // namespace faultline::shim
