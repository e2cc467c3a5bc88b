// One test per row of the call table (calls/calls.def through calls/calls.h), generated from
// the table itself: a row whose columns disagree with each other or with the policy compiler
// fails here, by name. Each row's id and family map back to it, its natural error is a real
// errno (or EAI_*) name that its own errno set accepts and that the compiler picks for a fault
// given no action, an errno outside its set earns the compiler's warning, and every action its
// mask names is accepted by the compiler for that call alone while every other one is refused,
// and fits the row's family (limit on a call that makes fds, lie on a sync...), and the shim's
// injected failure (shim/fail_as.h, with the row's own C return type) has the shape its
// `failure` column names. The docs table is compared with the same rows by docs_test.cpp.
#include "calls/calls.h"

#include <gtest/gtest.h>
#include <netdb.h>
#include <stdio.h>
#include <sys/types.h>

#include <algorithm>
#include <cstring>
#include <iterator>
#include <ostream>
#include <string>

#include "policy/net_policy.h"
#include "policy/policy.h"
#include "shim/fail_as.h"

namespace faultline {

// gtest names a failing row by its call, not by its bytes.
void PrintTo(const CallInfo& call, std::ostream* out) { *out << call.name; }

namespace {

// The failure shapes of a few rows, checked at compile time: call_failure() is what a wrapper
// can use to pick its failure code.
static_assert(call_failure(kCall_write) == Failure::kMinusOneErrno);
static_assert(call_failure(kCall_fwrite) == Failure::kShortCount);
static_assert(call_failure(kCall_fflush) == Failure::kEofErrno);
static_assert(call_failure(kCall_malloc) == Failure::kNullErrno);
static_assert(call_failure(kCall_posix_memalign) == Failure::kErrnoReturn);
static_assert(call_failure(kCall_sync) == Failure::kVoid);
static_assert(call_failure(kCall_getaddrinfo) == Failure::kEaiReturn);
static_assert(call_failure(kCall_gethostbyname) == Failure::kNullHerrno);
static_assert(call_failure(kCall_gethostbyname_r) == Failure::kHerrnoResult);
static_assert(call_failure(kCall_posix_fallocate) == Failure::kErrnoReturn);
static_assert(kErrFsync.contains(ENOMEM) && !kErrMemory.contains(EINVAL));

// A minimal valid setting of each action, as a policy writes it. `error` is filled per row.
std::string action_setting(std::uint32_t bit, const CallInfo& call) {
  switch (bit) {
    case kActError:
      return "error = \"" + std::string(natural_error(call, false)) + "\"";
    case kActDelay:
      return "delay = \"1ms\"";
    case kActShort:
      return "short = \"50%\"";
    case kActCorrupt:
      return "corrupt = 1";
    case kActQuota:
      return "quota = \"1MiB\"";
    case kActLie:
      return "lie = true";
    case kActCrash:
      return "crash = \"SIGKILL\"";
    case kActReset:
      return "reset = true";
    case kActBlackhole:
      return "blackhole = true";
    case kActResolve:
      return "resolve_to = [\"127.0.0.1\"]";
    case kActLimit:
      return "limit = 3";
    case kActLatency:
      return "latency = \"1ms\"";
    case kActBandwidth:
      return "bandwidth = \"1MiB/s\"";
    case kActLoss:
      return "loss = 0.5";
    case kActEof:
      return "eof = true";
    case kActPowercut:
      return "powercut = true";
  }
  return "";
}

CompileResult compile_for(const CallInfo& call, const std::string& settings) {
  return compile_fault_snippet(
      "[[fault]]\nname = \"f\"\ncalls = [\"" + std::string(call.name) + "\"]\n" + settings + "\n",
      "row");
}

bool warns_cannot_return(const CompileResult& r) {
  if (!r.policy) return false;
  for (const std::string& w : r.policy->warnings)
    if (w.find("cannot return") != std::string::npos) return true;
  return false;
}

// An errno of the C library's that the set does not hold, or 0 if it holds them all.
int errno_outside(const ErrnoSet& set) {
  for (int err = 1; err < 134; ++err)
    if (strerrorname_np(err) != nullptr && !set.contains(err)) return err;
  return 0;
}

class CallTableRow : public ::testing::TestWithParam<CallInfo> {};

TEST_P(CallTableRow, IdAndFamilyMapBack) {
  const CallInfo& call = GetParam();
  EXPECT_EQ(call_info(call.id).name, call.name);
  const std::optional<CallInfo> found = find_call(call.name);
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->id, call.id);
  EXPECT_EQ(call_family(call.id), call.family);
  EXPECT_EQ(call_failure(call.id), call.failure);
  const std::string_view family = family_name(call.family);
  ASSERT_NE(family, "@?") << call.name;
  EXPECT_EQ(find_family(family), call.family);
  EXPECT_TRUE(call.family & kSupportedFamilies) << call.name;
  const int word = static_cast<int>(call.id / 64);
  EXPECT_TRUE(family_calls_mask(call.family, word) & (1ull << (call.id % 64))) << call.name;
  ASSERT_NE(call.errnos, nullptr);
  EXPECT_NE(call.actions, 0u) << call.name << " accepts no action";
}

TEST_P(CallTableRow, NaturalErrorIsARealErrorTheRowAccepts) {
  const CallInfo& call = GetParam();
  for (const bool on_socket : {false, true}) {
    const std::string_view natural = natural_error(call, on_socket);
    ASSERT_FALSE(natural.empty()) << call.name;
    if (call.family == kFamDns) {
      EXPECT_TRUE(dns_error_from_name(natural).has_value()) << call.name << ": " << natural;
      continue;
    }
    const std::optional<int> err = errno_from_name(natural);
    ASSERT_TRUE(err.has_value()) << call.name << ": " << natural << " is no errno";
    // A @write/@read/@fsync row other than read/write/readv/writev is never aimed at a socket
    // on its own (`addr` needs a socket call); it meets its socket error (ECONNRESET) only in
    // a fault that also names read or write with an `addr`, where the compiler warns.
    if (on_socket && !is_rw_call(call.id) && call.natural.socket != call.natural.file) continue;
    // On a socket a read/write row is checked against the @net set too (policy.cpp).
    const bool accepted = errno_plausible(call, *err) ||
                          (on_socket && is_rw_call(call.id) && net_errno_plausible(*err));
    EXPECT_TRUE(accepted) << call.name << (on_socket ? " on a socket" : "")
                          << ": its natural error " << natural << " is outside its set "
                          << call.errnos->name;
  }
}

TEST_P(CallTableRow, CompilerPicksTheNaturalErrorAndWarnsOutsideTheSet) {
  const CallInfo& call = GetParam();
  if (!(call.actions & kActError)) GTEST_SKIP() << call.name << " cannot fail";
  const CompileResult given = compile_for(call, action_setting(kActError, call));
  ASSERT_TRUE(given.policy.has_value()) << given.error->message;
  EXPECT_FALSE(warns_cannot_return(given)) << call.name << ": its natural error is warned about";

  const CompileResult none = compile_for(call, "");
  ASSERT_TRUE(none.policy.has_value()) << none.error->message;
  ASSERT_EQ(none.policy->natural_errors.size(), 1u);
  EXPECT_EQ(none.policy->natural_errors[0].error, natural_error(call, false)) << call.name;

  if (call.errnos->any) return;  // @dns: any errno becomes EAI_SYSTEM
  const int outside = errno_outside(*call.errnos);
  ASSERT_NE(outside, 0) << call.errnos->name << " holds every errno";
  EXPECT_FALSE(errno_plausible(call, outside));
  const CompileResult odd =
      compile_for(call, "error = \"" + std::string(strerrorname_np(outside)) + "\"");
  ASSERT_TRUE(odd.policy.has_value()) << odd.error->message;
  EXPECT_TRUE(warns_cannot_return(odd))
      << call.name << ": " << strerrorname_np(outside) << " is outside " << call.errnos->name
      << " but the compiler does not warn";
}

TEST_P(CallTableRow, CompilerAcceptsExactlyTheActionsOfTheRow) {
  const CallInfo& call = GetParam();
  // read/readv/write/writev also serve @net on sockets, with the @net data calls' actions.
  const std::uint32_t on_socket =
      is_rw_call(call.id) ? (call.family == kFamRead ? kActNetRecv : kActNetSend) : 0;
  const std::uint32_t accepted = call.actions | on_socket;
  for (std::uint32_t bit = 1; bit <= kActPowercut; bit <<= 1) {
    const std::string setting = action_setting(bit, call);
    ASSERT_FALSE(setting.empty()) << "no setting for action " << action_name(bit);
    const CompileResult r = compile_for(call, setting);
    if (accepted & bit)
      EXPECT_TRUE(r.policy.has_value())
          << call.name << " accepts " << action_name(bit) << " but the compiler refuses " << setting
          << ": " << (r.error ? r.error->message : "");
    else
      EXPECT_FALSE(r.policy.has_value()) << call.name << " does not accept " << action_name(bit)
                                         << " but the compiler takes " << setting;
  }
}

// An action the engine implements only for some families, on a row of another family, is a
// wrong mask even though the compiler (which reads the mask) would take it.
TEST_P(CallTableRow, ActionsFitTheFamily) {
  const CallInfo& call = GetParam();
  const auto only = [&](std::uint32_t action, std::uint32_t families) {
    if (call.actions & action) {
      EXPECT_TRUE(call.family & families)
          << call.name << " (" << family_name(call.family) << ") accepts " << action_name(action);
    }
  };
  only(kActLie, kFamFsync);
  only(kActResolve, kFamDns);
  only(kActLimit, kFamOpen | kFamNet);
  only(kActReset | kActBlackhole | kActLatency | kActLoss | kActEof, kFamNet);
  only(kActShort | kActCorrupt, kFamWrite | kFamRead | kFamNet);
  only(kActQuota, kFamWrite | kFamMemory | kFamFs);
  only(kActBandwidth, kFamWrite | kFamRead | kFamNet);
  if (call.actions & kActLimit && call.family == kFamNet) {
    EXPECT_TRUE(call.id == kCall_socket || call.id == kCall_accept || call.id == kCall_accept4)
        << call.name << " makes no fd but accepts limit";
  }
  // A call that cannot report an error does not accept `error`, and one that can does.
  EXPECT_EQ(call.failure == Failure::kVoid, !(call.actions & kActError)) << call.name;
}

// What a wrapper's injected failure left: its return value (as a number, or whether the
// pointer is NULL) and errno.
struct Outcome {
  bool returns = true;  // false: the call returns void
  bool pointer = false;
  bool null = false;
  long long value = 0;
  int err = 0;
};

constexpr int kUntouched = 0x7654;  // errno before the failure

template <class R>
Outcome fail_with_row_type(std::uint32_t call, shim::FailCause cause, const shim::FailOut& out) {
  errno = kUntouched;
  Outcome o;
  if constexpr (std::is_void_v<R>) {
    shim::fail_as<R>(call, cause, out);
    o.returns = false;
  } else if constexpr (std::is_pointer_v<R>) {
    o.pointer = true;
    o.null = shim::fail_as<R>(call, cause, out) == nullptr;
  } else {
    o.value = static_cast<long long>(shim::fail_as<R>(call, cause, out));
  }
  o.err = errno;
  return o;
}

// Each row's return type (calls.def's `ret` column) carries its failure shape, and fail_as
// is called with it, by call id.
#define FL_CALL(fam, name, ret, params, args, failure, natural, errnos, actions, resolver) \
  FL_IF_FAULTED(fam, static_assert(shim::failure_fits<ret>(Failure::failure), #name);)
#include "calls/calls.def"
using FailProbe = Outcome (*)(std::uint32_t, shim::FailCause, const shim::FailOut&);
constexpr FailProbe kFailProbes[] = {
#define FL_CALL(fam, name, ret, params, args, failure, natural, errnos, actions, resolver) \
  FL_IF_FAULTED(fam, &fail_with_row_type<ret>, )
#include "calls/calls.def"
};
static_assert(std::size(kFailProbes) == kCallCount);

TEST_P(CallTableRow, InjectedFailureHasTheRowsShape) {
  const CallInfo& call = GetParam();
  const FailProbe fail = kFailProbes[call.id];
  const shim::FailCause eio{EIO, 0};
  switch (call.failure) {
    case Failure::kMinusOneErrno: {
      const Outcome o = fail(call.id, eio, {});
      EXPECT_TRUE(o.returns && !o.pointer) << call.name;
      EXPECT_EQ(o.value, -1) << call.name;
      EXPECT_EQ(o.err, EIO) << call.name;
      break;
    }
    case Failure::kNullErrno: {
      const Outcome o = fail(call.id, {ENOMEM, 0}, {});
      EXPECT_TRUE(o.pointer && o.null) << call.name;
      EXPECT_EQ(o.err, ENOMEM) << call.name;
      break;
    }
    case Failure::kErrnoReturn: {
      const Outcome o = fail(call.id, {ENOMEM, 0}, {});
      EXPECT_EQ(o.value, ENOMEM) << call.name;
      EXPECT_EQ(o.err, kUntouched) << call.name << " must leave errno alone";
      break;
    }
    case Failure::kEofErrno:
    case Failure::kShortCount: {
      FILE* stream = tmpfile();
      ASSERT_NE(stream, nullptr);
      const Outcome o = fail(call.id, {ENOSPC, 0}, {.stream = stream, .items = 2});
      EXPECT_EQ(o.value, call.failure == Failure::kEofErrno ? EOF : 2) << call.name;
      EXPECT_EQ(o.err, ENOSPC) << call.name;
      EXPECT_TRUE(ferror(stream)) << call.name << " must set the stream's error flag";
      fclose(stream);
      // fclose's stream is gone by then: errno alone.
      EXPECT_EQ(fail(call.id, eio, {}).err, EIO) << call.name;
      break;
    }
    case Failure::kVoid: {
      const Outcome o = fail(call.id, eio, {});
      EXPECT_FALSE(o.returns) << call.name;
      EXPECT_EQ(o.err, kUntouched) << call.name;
      break;
    }
    case Failure::kEaiReturn: {
      EXPECT_EQ(fail(call.id, {0, EAI_AGAIN}, {}).value, EAI_AGAIN) << call.name;
      const Outcome sys = fail(call.id, eio, {});
      EXPECT_EQ(sys.value, EAI_SYSTEM) << call.name;
      EXPECT_EQ(sys.err, EIO) << call.name;
      break;
    }
    case Failure::kNullHerrno: {
      const Outcome again = fail(call.id, {0, EAI_AGAIN}, {});
      EXPECT_TRUE(again.pointer && again.null) << call.name;
      EXPECT_EQ(h_errno, TRY_AGAIN) << call.name;
      const Outcome sys = fail(call.id, eio, {});
      EXPECT_TRUE(sys.null) << call.name;
      EXPECT_EQ(h_errno, NETDB_INTERNAL) << call.name;
      EXPECT_EQ(sys.err, EIO) << call.name;
      break;
    }
    case Failure::kHerrnoResult: {
      struct hostent entry {};
      struct hostent* result = &entry;
      int herr = 0;
      const Outcome again = fail(call.id, {0, EAI_AGAIN}, {.result = &result, .h_errnop = &herr});
      EXPECT_EQ(again.value, EAGAIN) << call.name;
      EXPECT_EQ(result, nullptr) << call.name;
      EXPECT_EQ(herr, TRY_AGAIN) << call.name;
      EXPECT_EQ(h_errno, TRY_AGAIN) << call.name;
      result = &entry;
      const Outcome sys = fail(call.id, eio, {.result = &result, .h_errnop = &herr});
      EXPECT_EQ(sys.value, EIO) << call.name;
      EXPECT_EQ(herr, NETDB_INTERNAL) << call.name;
      EXPECT_EQ(result, nullptr) << call.name;
      const Outcome none = fail(call.id, {0, EAI_NONAME}, {.result = &result, .h_errnop = &herr});
      EXPECT_EQ(none.value, 0) << call.name;
      EXPECT_EQ(herr, HOST_NOT_FOUND) << call.name;
      break;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(CallsDef, CallTableRow, ::testing::ValuesIn(all_calls()),
                         [](const ::testing::TestParamInfo<CallInfo>& row) {
                           return std::string(row.param.name);
                         });

// The errno checks have one source: the @net check is the table's kErrNet set.
TEST(CallTable, NetErrnoCheckIsTheTablesSet) {
  for (int err = 1; err < 134; ++err) EXPECT_EQ(net_errno_plausible(err), kErrNet.contains(err));
  EXPECT_EQ(kCallTable.size(), static_cast<std::size_t>(kCallCount));
}

// Each named set is defined once and holds each errno once (fsync's set once named ENOMEM
// twice); every set a row names is one of these.
TEST(CallTable, ErrnoSetsHoldEachErrnoOnce) {
  const ErrnoSet* sets[] = {&kErrWrite,  &kErrFsync,         &kErrRead, &kErrOpen,
                            &kErrMemory, &kErrMemoryAligned, &kErrNet,  &kErrDns,
                            &kErrFs,     &kErrFsSpace,       &kErrClose};
  for (const ErrnoSet* set : sets) {
    EXPECT_TRUE(set->any || set->count > 0) << set->name;
    for (std::size_t i = 0; i < set->count; ++i)
      for (std::size_t j = i + 1; j < set->count; ++j)
        EXPECT_NE(set->errs[i], set->errs[j]) << set->name << " holds " << set->errs[i] << " twice";
  }
  for (const CallInfo& call : all_calls())
    EXPECT_NE(std::find(std::begin(sets), std::end(sets), call.errnos), std::end(sets))
        << call.name << " names an errno set this test does not know";
}

}  // namespace
}  // namespace faultline
