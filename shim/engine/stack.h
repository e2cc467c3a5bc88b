// The caller's stack, for the `stack` selector and the `stack` field of event lines: captured
// with libunwind (local unwinding from DWARF CFI, so -O2 code without frame pointers and calls
// across shared libraries unwind), and symbolised once per distinct address: a hot call site
// is named and matched against the globs once, then answered from a lock-free cache.
//
// Only faults that use `stack` pay for this: the engine asks last, after every cheaper
// selector passed. A stack that cannot be unwound matches no `stack` glob.
#pragma once

#include <cstddef>
#include <cstdint>

#include "faultline/control_block.h"

namespace faultline::shim {

// Frames considered, innermost first, after the shim's own frames are dropped.
inline constexpr int kMaxStackFrames = 128;

struct CapturedStack {
  int count;
  std::uintptr_t ip[kMaxStackFrames];  // return addresses (the innermost may be a signal's PC)
};

// Unwinds the calling thread. false when there is no unwinder or no frame outside the shim.
bool capture_stack(CapturedStack& out) noexcept;

// One frame as a glob and a person see it. Strings stay valid for the life of the process
// when they come from the cache (always, for frame_bits' callbacks and visit_frames).
struct FrameInfo {
  const char* function;     // demangled name; "" when no symbol covers the address
  const char* symbol;       // as in the symbol table (mangled for C++); "" when none
  const char* object;       // path of the executable or library; "" when unknown
  const char* object_name;  // its basename
  std::uintptr_t offset;    // address relative to the object's load address (ASLR-free)
};

// A stack glob matches a frame when it matches the function's demangled or raw name, the
// object's basename or the object's path.
bool frame_matches(const char* glob, const FrameInfo& frame) noexcept;

// The fault slots whose stack list one frame hits: through an entry without '!' (positive) or
// through a '!' entry (negative).
struct FrameBits {
  std::uint64_t positive = 0;
  std::uint64_t negative = 0;
};
using FrameMatcher = FrameBits (*)(const FrameInfo& frame, const void* ctx);

// Captures the stack and answers the slots whose list some frame hits positively and no frame
// negatively (policy.md: `stack` matches when some frame matches an entry and no frame matches
// a '!' entry). Bits are cached per (address, epoch): `epoch` must change whenever `match`
// would answer differently (the engine's rules epoch). 0 when the stack cannot be unwound.
std::uint64_t stack_match_bits(std::uint32_t epoch, FrameMatcher match, const void* ctx) noexcept;

// Calls fn for each frame of `stack`, symbolised (the frame's address is the return address).
void visit_frames(const CapturedStack& stack, void (*fn)(const FrameInfo&, void*),
                  void* ctx) noexcept;

// "sqlite3WalCheckpoint (libsqlite3.so.0)", or "?? (python3.11+0x1f2e3)" when no symbol covers
// the address: stable across runs (no absolute addresses), so replayed logs compare equal.
void format_frame(const FrameInfo& frame, char* out, std::size_t size) noexcept;

// ---- call sites (`faultline explore`, shim/engine/site.cpp)
// ------------------------------------------

// The innermost `max` (at most kMaxStackFrames) return addresses of the calling thread, the
// shim's own frames dropped as in capture_stack, unwinding no deeper than asked. Returns how
// many were written; 0 when there is no unwinder.
int capture_return_addresses(std::uintptr_t* out, int max) noexcept;

// Where a return address lies, free of address-space randomisation: the basename of the
// loaded object that holds it (copied into `name`, NUL-terminated, cut to fit) and its offset
// from the object's load address. Answered from the per-address cache. False when no loaded
// object holds the address (code generated at run time).
bool frame_object(std::uintptr_t ip, char* name, std::size_t size, std::uintptr_t& offset) noexcept;

// Loads the unwinder now when a fault of the block uses `stack`, `log_stack`, `site` or
// `record`, so the program's calls never wait for it (or run dlopen). Called at start, after
// attach; a fault added live with one of them loads it on its first use instead.
void stack_prepare(const ControlBlock& block) noexcept;
// In a forked child: a lock held by another thread of the parent is free in the child.
void stack_after_fork_child() noexcept;

// For tests: how many addresses were symbolised (a cached address is not symbolised again),
// and a replacement for the unwinder (nullptr restores libunwind).
std::uint64_t stack_symbolised_count() noexcept;
using BacktraceFn = int (*)(void** buffer, int size);
void stack_set_backtrace_for_tests(BacktraceFn fn) noexcept;

}  // namespace faultline::shim
