// The call table as data for the policy compiler and the CLI (kCallTable, generated from
// calls/calls.def in calls.h), errno names and family names.
#include "calls/calls.h"

#include <netdb.h>
#include <string.h>  // strerrorname_np (GNU)

#include <array>
#include <cerrno>
#include <charconv>
#include <vector>

namespace faultline {
namespace {

constexpr const auto& kCalls = kCallTable;

struct FamilyName {
  Family family;
  std::string_view name;
};
constexpr std::array kFamilies = {
    FamilyName{kFamWrite, "@write"},   FamilyName{kFamFsync, "@fsync"},
    FamilyName{kFamRead, "@read"},     FamilyName{kFamOpen, "@open"},
    FamilyName{kFamNet, "@net"},       FamilyName{kFamDns, "@dns"},
    FamilyName{kFamMemory, "@memory"}, FamilyName{kFamFs, "@fs"},
};

struct ErrnoName {
  int value;
  std::string_view name;
};
#define E(x) \
  ErrnoName { x, #x }
constexpr std::array kErrnos = {
    E(EPERM),        E(ENOENT),       E(ESRCH),        E(EINTR),         E(EIO),
    E(ENXIO),        E(E2BIG),        E(ENOEXEC),      E(EBADF),         E(ECHILD),
    E(EAGAIN),       E(ENOMEM),       E(EACCES),       E(EFAULT),        E(EBUSY),
    E(EEXIST),       E(EXDEV),        E(ENODEV),       E(ENOTDIR),       E(EISDIR),
    E(EINVAL),       E(ENFILE),       E(EMFILE),       E(ENOTTY),        E(ETXTBSY),
    E(EFBIG),        E(ENOSPC),       E(ESPIPE),       E(EROFS),         E(EMLINK),
    E(EPIPE),        E(EDOM),         E(ERANGE),       E(EDEADLK),       E(ENAMETOOLONG),
    E(ENOLCK),       E(ENOSYS),       E(ENOTEMPTY),    E(ELOOP),         E(ENOTSUP),
    E(EOVERFLOW),    E(EDQUOT),       E(ESTALE),       E(ECANCELED),     E(ENOTSOCK),
    E(EDESTADDRREQ), E(EMSGSIZE),     E(EPROTOTYPE),   E(ENOPROTOOPT),   E(EPROTONOSUPPORT),
    E(EOPNOTSUPP),   E(EAFNOSUPPORT), E(EADDRINUSE),   E(EADDRNOTAVAIL), E(ENETDOWN),
    E(ENETUNREACH),  E(ENETRESET),    E(ECONNABORTED), E(ECONNRESET),    E(ENOBUFS),
    E(EISCONN),      E(ENOTCONN),     E(ETIMEDOUT),    E(ECONNREFUSED),  E(EHOSTDOWN),
    E(EHOSTUNREACH), E(EALREADY),     E(EINPROGRESS),  E(EREMOTEIO),     E(ENOMEDIUM),
    E(EWOULDBLOCK),  E(ENODATA),      E(ETIME),        E(EBADMSG),       E(EILSEQ),
};
#undef E

constexpr std::array kActionNames = {
    std::string_view{"error"},      std::string_view{"delay"}, std::string_view{"short"},
    std::string_view{"corrupt"},    std::string_view{"quota"}, std::string_view{"lie"},
    std::string_view{"crash"},      std::string_view{"reset"}, std::string_view{"blackhole"},
    std::string_view{"resolve_to"}, std::string_view{"limit"}, std::string_view{"latency"},
    std::string_view{"bandwidth"},  std::string_view{"loss"},  std::string_view{"eof"},
    std::string_view{"powercut"},
};

// Linux's errnos end at 4095 (MAX_ERRNO); glibc names those up to about 133.
constexpr int kErrnoMax = 4095;

}  // namespace

std::span<const CallInfo> all_calls() { return kCalls; }

std::optional<CallInfo> find_call(std::string_view name) {
  for (const auto& c : kCalls)
    if (c.name == name) return c;
  return std::nullopt;
}

const CallInfo& call_info(std::uint32_t id) { return kCalls.at(id); }

std::optional<Family> find_family(std::string_view name) {
  for (const auto& f : kFamilies)
    if (f.name == name) return f.family;
  return std::nullopt;
}

std::string_view family_name(Family family) {
  for (const auto& f : kFamilies)
    if (f.family == family) return f.name;
  return "@?";
}

std::uint64_t family_calls_mask(Family family, int word) {
  std::uint64_t mask = 0;
  for (const auto& c : kCalls)
    if (c.family == family && static_cast<int>(c.id / 64) == word) mask |= 1ull << (c.id % 64);
  return mask;
}

// The table above names the usual spelling of an errno that has two (ENOTSUP, not
// EOPNOTSUPP); strerrorname_np (glibc 2.32) knows every other one. It returns a pointer into
// a static table: no allocation, no lock, safe on the shim's armed path.
std::optional<int> errno_from_name(std::string_view name) {
  for (const auto& e : kErrnos)
    if (e.name == name) return e.value;
  if (name.starts_with('E'))
    for (int err = 1; err <= kErrnoMax; ++err)
      if (const char* known = strerrorname_np(err); known != nullptr && name == known) return err;
  int value = 0;
  const char* end = name.data() + name.size();
  const auto [stop, ec] = std::from_chars(name.data(), end, value);
  if (ec == std::errc{} && stop == end && !name.empty() && value >= 1 && value <= kErrnoMax)
    return value;
  return std::nullopt;
}

std::string_view errno_name(int err) {
  for (const auto& e : kErrnos)
    if (e.value == err) return e.name;
  if (err < 0) return dns_error_name(err);  // EAI_* codes of @dns events are negative
  if (const char* known = strerrorname_np(err)) return known;
  return "";
}

std::string_view action_name(std::uint32_t action_bit) {
  for (std::size_t i = 0; i < kActionNames.size(); ++i)
    if (action_bit == (1u << i)) return kActionNames[i];
  return "?";
}

namespace {
struct ResolverName {
  std::string_view name;
  int eai;
};
constexpr std::array kResolverNames = {
    ResolverName{"EAI_AGAIN", EAI_AGAIN},
    ResolverName{"EAI_NONAME", EAI_NONAME},
    ResolverName{"EAI_FAIL", EAI_FAIL},
    ResolverName{"EAI_NODATA", EAI_NODATA},
    ResolverName{"EAI_ADDRFAMILY", EAI_ADDRFAMILY},
    ResolverName{"EAI_FAMILY", EAI_FAMILY},
    ResolverName{"EAI_SOCKTYPE", EAI_SOCKTYPE},
    ResolverName{"EAI_SERVICE", EAI_SERVICE},
    ResolverName{"EAI_MEMORY", EAI_MEMORY},
    ResolverName{"EAI_SYSTEM", EAI_SYSTEM},
    ResolverName{"EAI_OVERFLOW", EAI_OVERFLOW},
    ResolverName{"EAI_BADFLAGS", EAI_BADFLAGS},
    // gethostbyname*'s h_errno names, as the getaddrinfo code with the same meaning.
    ResolverName{"HOST_NOT_FOUND", EAI_NONAME},
    ResolverName{"TRY_AGAIN", EAI_AGAIN},
    ResolverName{"NO_RECOVERY", EAI_FAIL},
    ResolverName{"NO_DATA", EAI_NODATA},
    ResolverName{"NO_ADDRESS", EAI_NODATA},
};
}  // namespace

std::optional<int> dns_error_from_name(std::string_view name) {
  for (const ResolverName& r : kResolverNames)
    if (r.name == name) return r.eai;
  return std::nullopt;
}

std::string_view dns_error_name(int eai) {
  for (const ResolverName& r : kResolverNames)
    if (r.eai == eai) return r.name;
  return "";
}

std::vector<std::string_view> dns_error_names() {
  std::vector<std::string_view> names;
  for (const ResolverName& r : kResolverNames) names.push_back(r.name);
  return names;
}

}  // namespace faultline
