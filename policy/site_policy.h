// The explore parts of the policy compiler: the `site` selector (a call site: the return
// addresses of the calling stack, innermost first, each as the loaded object's file name plus
// an offset into it, so that address-space randomisation does not change it), and `record` /
// `site_depth`, which make a fault collect the distinct call sites of its calls in a file
// instead of injecting anything. `faultline explore` drives both (controller/explore.h); the
// shim matches and records in shim/engine/site.cpp.
//
// Like net_policy.h, this file takes plain values and returns messages: policy.cpp keeps the
// one compile function per key and turns a message into a positioned error.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "faultline/control_block.h"

namespace faultline {

// One frame of a site: "libsqlite3.so.0+0x1a2b3c". The object is split off at the last "+0x"
// (object names may hold '+': "libstdc++.so.6"). False when the text is not such a frame.
// No allocation: the shim parses the selector with this on its armed path.
bool parse_site_frame(std::string_view text, std::string_view& object, std::uint64_t& offset);

// Calls fn(object, offset) for each frame of a compiled site, innermost first; stops early
// when fn returns false. Returns the number of frames visited, or -1 when a frame does not
// parse (a site the compiler did not check).
template <class Fn>
int for_each_site_frame(std::string_view site, Fn&& fn) {
  int n = 0;
  while (!site.empty()) {
    const std::size_t end = site.find(';');
    std::string_view object;
    std::uint64_t offset = 0;
    if (!parse_site_frame(site.substr(0, end), object, offset)) return -1;
    ++n;
    if (!fn(object, offset)) return n;
    if (end == std::string_view::npos) break;
    site.remove_prefix(end + 1);
  }
  return n;
}

// `site`: 1 to kMaxSiteDepth frames separated by ';'. Fills spec.site, or returns what is wrong.
std::optional<std::string> compile_site_selector(std::string_view text, FaultSpec& spec);
// `record`: the file the sites go to (absolute is best: a relative path is taken from each
// process's working directory). Fills spec.record, or returns what is wrong.
std::optional<std::string> compile_record_path(std::string_view path, FaultSpec& spec);
// `site_depth`: 1 to kMaxSiteDepth.
std::optional<std::string> compile_site_depth(std::int64_t depth, FaultSpec& spec);

// Checks across the keys of a fault: a `record` fault takes no action (it only looks), and
// `site_depth` means something only with `record`. `key` is where the problem is reported.
struct SiteProblem {
  std::string message;
  std::string_view key;
};
std::optional<SiteProblem> site_validate(const FaultSpec& spec);

}  // namespace faultline
