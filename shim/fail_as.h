// The one implementation of how an injected failure reaches the program: `fail_as` reads the
// call's `failure` column (calls/calls.def, call_failure()) and reports the fault's error that
// way: -1 and errno, NULL and errno, the error number returned, EOF with the stream's error
// flag, a short item count, an EAI_* code, NULL and h_errno, or the *_r functions' result
// triple. Every wrapper's injected error goes through here, so changing a row's column changes
// what the wrapper does, and tests/unit/calls_test.cpp checks each row's result against its
// column. Header-only and allocation-free: it runs on the armed path, where a signal handler
// may be (docs/reliability.md).
#pragma once

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdio_ext.h>

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "calls/calls.h"
#include "policy/net_policy.h"

namespace faultline::shim {

// The error a fault reports: an errno, and for @dns the resolver's EAI_* code (0: the fault
// named an errno, which a resolver reports as EAI_SYSTEM).
struct FailCause {
  int error = 0;
  int dns_error = 0;
};

// Where a failure is reported besides the return value; each shape reads only its own fields.
struct FailOut {
  FILE* stream = nullptr;             // kEofErrno, kShortCount: gets the error flag
  std::size_t items = 0;              // kShortCount: the items done before the failure
  struct hostent** result = nullptr;  // kHerrnoResult: set to NULL
  int* h_errnop = nullptr;            // kHerrnoResult: the h_errno value
};

// A failed stdio stream looks like it does after a real EIO/ENOSPC: the error flag is set
// (ferror) and errno says why. A null stream (fclose: already freed) gets errno only.
inline void fail_stream(FILE* stream, int err) {
  if (stream) stream->_flags |= _IO_ERR_SEEN;
  errno = err;
}

// The *_r lookups: glibc returns 0 with *result NULL for "not found" and "no data", EAGAIN
// for TRY_AGAIN, and the error number for NETDB_INTERNAL (nss/getXXbyYY_r.c); the thread's
// h_errno is set too (programs such as Python read that one).
inline int herrno_result(int herr, int err, struct hostent** result, int* h_errnop) {
  if (result) *result = nullptr;
  if (h_errnop) *h_errnop = herr;
  h_errno = herr;
  if (herr == TRY_AGAIN) return EAGAIN;
  if (herr == NETDB_INTERNAL) return err;
  return 0;
}

// The resolver code of a @dns failure, and the errno that goes with EAI_SYSTEM.
inline int eai_of(FailCause c) { return c.dns_error ? c.dns_error : EAI_SYSTEM; }
inline int system_errno_of(FailCause c) { return c.error ? c.error : EIO; }
// gethostbyname*: NETDB_INTERNAL comes with an errno (ENOMEM for EAI_MEMORY).
inline int herrno_errno_of(FailCause c) {
  return eai_of(c) == EAI_MEMORY ? ENOMEM : system_errno_of(c);
}

// Whether a slow path returning R can report shape `f`: every row's own return type can
// (a static_assert in tests/unit/calls_test.cpp), and each slow path returns its calls' type.
template <class R>
constexpr bool failure_fits(Failure f) {
  switch (f) {
    case Failure::kMinusOneErrno:
    case Failure::kErrnoReturn:
    case Failure::kEofErrno:
    case Failure::kEaiReturn:
    case Failure::kHerrnoResult:
      return std::is_integral_v<R> && std::is_signed_v<R>;
    case Failure::kNullErrno:
    case Failure::kNullHerrno:
      return std::is_pointer_v<R>;
    case Failure::kShortCount:
      return std::is_integral_v<R> && std::is_unsigned_v<R>;
    case Failure::kVoid:
      return true;
  }
  return false;
}

// No stream, no out-parameters: a static object, so that the callers' frames hold no copy.
inline constexpr FailOut kNoFailOut{};

// Reports `cause` the way call `call`'s row says, as the R its slow path returns. A shape
// that R cannot carry is a wrapper wired to the wrong slow path: a trap, never a made-up value.
// Out of line and cold: a slow path's frame (a signal handler's stack, docs/reliability.md's
// 1 KiB budget) grows by nothing for it, and its own frame is gone before anything deeper
// (the event) runs.
template <class R>
[[gnu::cold, gnu::noinline]] R fail_as(std::uint32_t call, FailCause cause,
                                       const FailOut& out = kNoFailOut) {
  switch (call_failure(call)) {
    case Failure::kMinusOneErrno:
      if constexpr (failure_fits<R>(Failure::kMinusOneErrno)) {
        errno = cause.error;
        return static_cast<R>(-1);
      }
      break;
    case Failure::kNullErrno:
      if constexpr (failure_fits<R>(Failure::kNullErrno)) {
        errno = cause.error;
        return nullptr;
      }
      break;
    case Failure::kErrnoReturn:  // errno untouched (posix_memalign(3), posix_fallocate(3))
      if constexpr (failure_fits<R>(Failure::kErrnoReturn)) return static_cast<R>(cause.error);
      break;
    case Failure::kEofErrno:
      if constexpr (failure_fits<R>(Failure::kEofErrno)) {
        fail_stream(out.stream, cause.error);
        return static_cast<R>(EOF);
      }
      break;
    case Failure::kShortCount:  // fwrite has no partial success: a short count is a failure
      if constexpr (failure_fits<R>(Failure::kShortCount)) {
        fail_stream(out.stream, cause.error);
        return static_cast<R>(out.items);
      }
      break;
    case Failure::kVoid:  // nothing to report: what success returns
      if constexpr (std::is_void_v<R>) {
        return;
      } else {
        return R{};
      }
    case Failure::kEaiReturn:
      if constexpr (failure_fits<R>(Failure::kEaiReturn)) {
        if (eai_of(cause) == EAI_SYSTEM) errno = system_errno_of(cause);
        return static_cast<R>(eai_of(cause));
      }
      break;
    case Failure::kNullHerrno:
      if constexpr (failure_fits<R>(Failure::kNullHerrno)) {
        h_errno = herrno_for_eai(eai_of(cause));
        if (h_errno == NETDB_INTERNAL) errno = herrno_errno_of(cause);
        return nullptr;
      }
      break;
    case Failure::kHerrnoResult:
      if constexpr (failure_fits<R>(Failure::kHerrnoResult))
        return static_cast<R>(herrno_result(herrno_for_eai(eai_of(cause)), herrno_errno_of(cause),
                                            out.result, out.h_errnop));
      break;
  }
  __builtin_trap();
}

}  // namespace faultline::shim
