// The explore keys of the policy compiler (see site_policy.h).
#include "policy/site_policy.h"

#include <algorithm>
#include <charconv>
#include <cstring>

namespace faultline {
namespace {

// What an object name in a site may hold: anything printable but the separators. Names come
// from the loader (file names), so this refuses only text that could not be one of ours.
bool valid_object_char(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u > 0x20 && u != 0x7f && c != ';' && c != '"' && c != '\\';
}

constexpr std::uint32_t kAnyAction = 0xffffffffu;

}  // namespace

bool parse_site_frame(std::string_view text, std::string_view& object, std::uint64_t& offset) {
  const std::size_t plus = text.rfind("+0x");
  if (plus == std::string_view::npos || plus == 0) return false;
  object = text.substr(0, plus);
  if (!std::all_of(object.begin(), object.end(), valid_object_char)) return false;
  const std::string_view hex = text.substr(plus + 3);
  if (hex.empty() || hex.size() > 16) return false;
  const auto [end, error] = std::from_chars(hex.data(), hex.data() + hex.size(), offset, 16);
  return error == std::errc() && end == hex.data() + hex.size();
}

std::optional<std::string> compile_site_selector(std::string_view text, FaultSpec& spec) {
  const char* example =
      " (e.g. \"libsqlite3.so.0+0x1a2b3c;sqlite3+0x4567\", as `faultline "
      "explore` prints it)";
  if (text.empty()) return "'site' must not be empty (leave it out to match every call site)";
  if (text.size() >= kSiteMax)
    return "'site' is too long (at most " + std::to_string(kSiteMax - 1) + " characters)";
  int frames = 0;
  std::string_view rest = text;
  for (;;) {
    const std::size_t end = rest.find(';');
    const std::string_view frame = rest.substr(0, end);
    std::string_view object;
    std::uint64_t offset = 0;
    if (!parse_site_frame(frame, object, offset))
      return "bad frame '" + std::string(frame) + "' in 'site': a frame is OBJECT+0xOFFSET" +
             example;
    if (++frames > static_cast<int>(kMaxSiteDepth))
      return "'site' has more than " + std::to_string(kMaxSiteDepth) + " frames";
    if (end == std::string_view::npos) break;
    rest.remove_prefix(end + 1);
  }
  std::memset(spec.site, 0, sizeof spec.site);
  std::memcpy(spec.site, text.data(), text.size());
  return std::nullopt;
}

std::optional<std::string> compile_record_path(std::string_view path, FaultSpec& spec) {
  if (path.empty()) return "'record' must not be empty (leave it out to record nothing)";
  if (path.find('\0') != std::string_view::npos) return "'record' must not contain a NUL character";
  if (path.size() >= kLogPathMax)
    return "'record' is too long (at most " + std::to_string(kLogPathMax - 1) + " characters)";
  std::memset(spec.record, 0, sizeof spec.record);
  std::memcpy(spec.record, path.data(), path.size());
  return std::nullopt;
}

std::optional<std::string> compile_site_depth(std::int64_t depth, FaultSpec& spec) {
  if (depth < 1 || depth > static_cast<std::int64_t>(kMaxSiteDepth))
    return "'site_depth' must be from 1 to " + std::to_string(kMaxSiteDepth);
  spec.site_depth = static_cast<std::uint32_t>(depth);
  return std::nullopt;
}

std::optional<SiteProblem> site_validate(const FaultSpec& spec) {
  if (spec.record[0] && (spec.actions & kAnyAction))
    return SiteProblem{
        "a fault with 'record' only records call sites and takes no action "
        "(put the action in another fault)",
        "record"};
  if (spec.site_depth && !spec.record[0])
    return SiteProblem{"'site_depth' applies only to 'record'", "site_depth"};
  return std::nullopt;
}

}  // namespace faultline
