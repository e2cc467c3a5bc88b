// A minimal TOML lexer that knows only what it needs: where comments and the four kinds of
// strings begin and end (see toml_safe.h for why).
#include "policy/toml_safe.h"

namespace faultline::detail {
namespace {

bool starts_with(std::string_view text, std::size_t at, std::string_view token) {
  return text.substr(at, token.size()) == token;
}

// A quote opens a string only where TOML can have one: at the start of a line or after
// '=', '[', ',', '{' or '.'. A quote anywhere else (inside a malformed token) is not a string
// to toml++ either, so the bytes after it are still checked.
bool can_open_string(char last_significant) {
  switch (last_significant) {
    case '\n':
    case '=':
    case '[':
    case ',':
    case '{':
    case '.':
      return true;
    default:
      return false;
  }
}

}  // namespace

std::optional<TextPosition> find_stray_non_ascii(std::string_view text) {
  enum class State { kCode, kComment, kBasic, kLiteral, kMultiBasic, kMultiLiteral };
  State state = State::kCode;
  TextPosition pos;
  char last_significant = '\n';
  // Where a '=' is a separator: toml++ reads a bare value (`-1="é"`) up to whitespace or a
  // delimiter, so a '=' or '.' inside one opens nothing, and a quote after it is no string:
  // the bytes after it reach toml++'s whitespace tables. `value` is true after a key's
  // separator; `nesting` holds the arrays ('[') and inline tables ('{') a value opened.
  bool value = false;
  std::string_view::size_type depth = 0;
  char nesting[64];
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    const bool ascii = static_cast<unsigned char>(c) < 0x80;
    switch (state) {
      case State::kCode:
        if (!ascii) return pos;
        if ((c == '=' || c == '.') && value) {
          last_significant = 'x';  // part of a bare value, not a separator
          break;
        }
        if (c == '=') {
          value = true;
        } else if (c == '\n' && depth == 0) {
          value = false;
        } else if ((c == '[' || c == '{') && value) {
          if (depth == sizeof nesting) return pos;  // deeper than any policy: refused
          nesting[depth++] = c;
          if (c == '{') value = false;  // an inline table's keys come first
        } else if ((c == ']' || c == '}') && depth > 0 &&
                   nesting[depth - 1] == (c == ']' ? '[' : '{')) {
          --depth;
          value = true;
        } else if (c == ',' && depth > 0) {
          value = nesting[depth - 1] == '[';  // the next array element, or the next key
        }
        if (c == '#') {
          state = State::kComment;
        } else if ((c == '"' || c == '\'') && !can_open_string(last_significant)) {
          last_significant = c;
        } else if (starts_with(text, i, "\"\"\"")) {
          state = State::kMultiBasic;
          i += 2;
          pos.column += 2;
        } else if (starts_with(text, i, "'''")) {
          state = State::kMultiLiteral;
          i += 2;
          pos.column += 2;
        } else if (c == '"') {
          state = State::kBasic;
        } else if (c == '\'') {
          state = State::kLiteral;
        } else if (c != ' ' && c != '\t' && c != '\r') {
          last_significant = c;
        }
        break;
      case State::kComment:
        if (c == '\n') {
          state = State::kCode;
          last_significant = '\n';
        }
        break;
      case State::kBasic:
        if (c == '\\' && i + 1 < text.size() && text[i + 1] != '\n') {
          ++i;
          ++pos.column;
        } else if (c == '"' || c == '\n') {  // a newline ends it too: toml++ reports that
          state = State::kCode;
          last_significant = c;
        }
        break;
      case State::kLiteral:
        if (c == '\'' || c == '\n') {
          state = State::kCode;
          last_significant = c;
        }
        break;
      case State::kMultiBasic:
        if (c == '\\' && i + 1 < text.size()) {
          if (text[i + 1] == '\n') {
            ++pos.line;
            pos.column = 0;
          }
          ++i;
          ++pos.column;
        } else if (starts_with(text, i, "\"\"\"")) {
          state = State::kCode;
          i += 2;
          pos.column += 2;
        }
        break;
      case State::kMultiLiteral:
        if (starts_with(text, i, "'''")) {
          state = State::kCode;
          i += 2;
          pos.column += 2;
        }
        break;
    }
    if (text[i] == '\n') {
      ++pos.line;
      pos.column = 1;
    } else {
      ++pos.column;
    }
  }
  return std::nullopt;
}

}  // namespace faultline::detail
