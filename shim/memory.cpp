// @memory: malloc, calloc, realloc, reallocarray, posix_memalign, aligned_alloc, memalign,
// valloc, pvalloc; and free, interposed for bookkeeping only (bootstrap-arena pointers, and
// giving a quota's counted bytes back).
//
// Allocation is the hottest path a program has. Not armed, each wrapper is one relaxed load of
// the armed word, a test and a tail jump. Armed, the same word carries the @memory size floor
// (control_block.h, kMemoryFloorShift): an allocation smaller than every armed fault's `size`
// pays one more compare and still tail-jumps. Only the rest enter the cold slow path, where
// the reentrancy guard sends the shim's own allocations (policy compile, event lines) straight
// to the real allocator.
//
// The real allocator is what dlsym(RTLD_NEXT) found, glibc or a preloaded or linked jemalloc
// or tcmalloc; blocks always go back to the allocator that made them. Failures look like the
// allocator's own: NULL + ENOMEM, posix_memalign's return value with errno untouched, and a
// failed realloc leaves the old block valid (and still counted).
#include "shim/engine/memory.h"

#include <elf.h>
#include <errno.h>
#include <link.h>
#include <malloc.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstring>

#include "shim/apply.h"
#include "shim/engine/bootstrap_arena.h"
#include "shim/engine/engine.h"
#include "shim/engine/mem_ledger.h"
#include "shim/engine/ptr_set.h"

// The shim's own ELF header (GNU ld defines it for every object it links).
extern "C" const ElfW(Ehdr) __ehdr_start __attribute__((visibility("hidden")));

namespace faultline::shim {
namespace {

// Is `pc` in the shim's own code? The C++ runtime linked into the shim allocates from its
// static constructors (libstdc++'s emergency exception pool) while the session may already be
// armed; those are the shim's allocations, not the program's, and no fault may take them
// (explore listed one as a program site). Pure arithmetic over the shim's program headers.
bool shim_owns_code(const void* pc) {
  const auto* base = reinterpret_cast<const char*>(&__ehdr_start);
  const auto* phdr = reinterpret_cast<const ElfW(Phdr)*>(base + __ehdr_start.e_phoff);
  const auto at = reinterpret_cast<const char*>(pc);
  for (int i = 0; i < __ehdr_start.e_phnum; ++i)
    if (phdr[i].p_type == PT_LOAD && (phdr[i].p_flags & PF_X) && at >= base + phdr[i].p_vaddr &&
        at < base + phdr[i].p_vaddr + phdr[i].p_memsz)
      return true;
  return false;
}

// glibc declares the allocator __THROW, so our definitions are noexcept; calling the real
// function through a pointer that is not noexcept would make the compiler wrap the call
// (std::terminate on a throw) instead of tail-jumping. Allocators do not throw.
template <class R, class... A>
inline auto nothrow(R (*fn)(A...)) noexcept {
  return reinterpret_cast<R (*)(A...) noexcept>(fn);
}
#define FL_REAL_NOTHROW(name) nothrow(FL_REAL(name))

// The whole armed word: family bits, and the @memory size floor in the upper half.
inline std::uint64_t armed_word() noexcept {
  return g_armed_word.load(std::memory_order_relaxed)->load(std::memory_order_relaxed);
}

// True when an allocation of `size` must take the slow path under armed word `w`.
inline bool memory_slow(std::uint64_t w, std::uint64_t size) noexcept {
  return FL_UNLIKELY(w & kFamMemory) && size >= (w >> kMemoryFloorShift);
}

// What a real allocation returned: error 0 = success (ptr may be NULL for a size-0 request).
struct AllocResult {
  void* ptr;
  int error;
};

AllocResult from_pointer(void* p) { return {p, p ? 0 : errno}; }

void report_once(std::atomic<bool>& reported, const char* message) {
  if (!reported.exchange(true)) diag("faultline: %s", message);
}

std::atomic<bool> g_no_usable_size_reported{false};

// A matching allocation under a quota: fails if its bytes do not fit, else is counted.
template <class Fn>
AllocResult quota_alloc(const Guard& guard, Decision& d, const CallArgs& args, Fn real) {
  if (!real_malloc_usable_size()) {
    report_once(g_no_usable_size_reported,
                "the allocator has no malloc_usable_size; @memory quotas do not count");
    return real();
  }
  if (!ledger_reserve(d.fault, d.quota_bytes, args.size)) {
    if (!quota_claim(d)) return real();  // spent (times, max_faults): the quota no longer limits
    if (!apply_delay(guard, d, args)) {  // lifted while held: the call runs unfaulted
      emit_event(d, args, -1);
      return real();
    }
    d.action = kActError;
    d.error = d.error ? d.error : ENOMEM;
    emit_event(d, args, 0);
    return {nullptr, d.error};
  }
  AllocResult r = real();
  if (r.error || !r.ptr) {
    ledger_unreserve(d.fault, args.size);
    return r;
  }
  ledger_count(d.fault, r.ptr, args.size);
  return r;
}

// The slow path of every allocating call but realloc. `real` runs the real allocation and
// returns an AllocResult. errno is left as the program had it, except for a failure, which
// the caller reports (errno or return value) from the result.
template <class Fn>
FL_COLD AllocResult alloc_slow(std::uint32_t call, std::uint64_t size, Fn real) {
  Guard guard;
  if (!guard.entered()) return real();
  const int saved = errno;
  CallArgs args{call};
  args.size = size;
  args.has_size = true;
  Decision d;
  AllocResult r;
  if (!decide(guard, args, d)) {
    errno = saved;
    return real();
  }
  if (d.quota) {
    errno = saved;
    r = quota_alloc(guard, d, args, real);
    if (!r.error) errno = saved;
    return r;
  }
  // The block of a crash "after" is never used: the process dies right after the call.
  return apply_decision(
      guard, d, args,
      [&] {
        errno = saved;
        return real();
      },
      [&](const Decision& dd) {
        errno = saved;
        return AllocResult{nullptr, dd.error};
      });
}

// The pointer, or the failure (the allocator's or a fault's) the way call's row reports it:
// NULL and errno (posix_memalign, which returns its error, has its own slow path below).
void* null_or(std::uint32_t call, const AllocResult& r) {
  return r.error ? fail_as<void*>(call, {r.error}) : r.ptr;
}

std::size_t page_size() {
  static const long size = sysconf(_SC_PAGESIZE);
  return size > 0 ? static_cast<std::size_t>(size) : 4096;
}

// pvalloc through the real memalign: jemalloc has no pvalloc, and glibc's would hand the
// program a block that its allocator's free() does not know.
void* real_pvalloc(size_t size) noexcept {
  const std::size_t page = page_size();
  std::size_t rounded;
  if (__builtin_add_overflow(size, page - 1, &rounded)) {
    errno = ENOMEM;
    return nullptr;
  }
  rounded = rounded ? rounded & ~(page - 1) : page;
  return FL_REAL_NOTHROW(memalign)(page, rounded);
}

// ---- the slow paths, one per shape -------------------------------------------------------

FL_COLD void* malloc_slow(size_t size, const void* caller) {
  if (shim_owns_code(caller)) return FL_REAL(malloc)(size);
  return null_or(kCall_malloc, alloc_slow(kCall_malloc, size,
                                          [=] { return from_pointer(FL_REAL(malloc)(size)); }));
}

FL_COLD void* calloc_slow(size_t n, size_t size, std::uint64_t total, const void* caller) {
  if (shim_owns_code(caller)) return FL_REAL(calloc)(n, size);
  return null_or(kCall_calloc, alloc_slow(kCall_calloc, total,
                                          [=] { return from_pointer(FL_REAL(calloc)(n, size)); }));
}

FL_COLD void* aligned_slow(std::uint32_t call, size_t align, size_t size) {
  return null_or(call, alloc_slow(call, size, [=] {
                   switch (call) {
                     case kCall_aligned_alloc:
                       return from_pointer(FL_REAL(aligned_alloc)(align, size));
                     case kCall_valloc:
                       return from_pointer(FL_REAL(valloc)(size));
                     case kCall_pvalloc:
                       return from_pointer(real_pvalloc(size));
                     default:
                       return from_pointer(FL_REAL(memalign)(align, size));
                   }
                 }));
}

FL_COLD int posix_memalign_slow(void** out, size_t align, size_t size) {
  AllocResult r = alloc_slow(kCall_posix_memalign, size, [=] {
    void* p = nullptr;
    int rc = FL_REAL(posix_memalign)(&p, align, size);
    return AllocResult{rc ? nullptr : p, rc};
  });
  // The error returned, errno untouched, as posix_memalign(3) promises.
  if (r.error) return fail_as<int>(kCall_posix_memalign, {r.error});
  *out = r.ptr;
  return 0;
}

// realloc of a block from the bootstrap arena: move it to the real allocator (the arena keeps
// the old one; it is never reused).
void* arena_realloc(void* p, size_t size) {
  if (size == 0) return nullptr;  // realloc(p, 0) frees, as glibc's does
  void* moved = FL_REAL(malloc)(size);
  if (!moved) return nullptr;
  const std::size_t old = arena_block_size(p);
  std::memcpy(moved, p, old < size ? old : size);
  return moved;
}

// realloc and reallocarray (through the real realloc: jemalloc has no reallocarray). Entered
// when the size reaches the floor, when counted blocks exist (the old block may be one) or
// for an arena block.
FL_COLD void* realloc_slow(std::uint32_t call, void* p, size_t size) {
  if (arena_owns(p)) return arena_realloc(p, size);
  const int saved = errno;
  if (p && size == 0) {  // a free, not an allocation: never faulted
    ledger_forget(p);
    return FL_REAL(realloc)(p, 0);
  }
  Guard guard;
  CallArgs args{call};
  args.size = size;
  args.has_size = true;
  Decision d;
  const bool decided = guard.entered() && memory_slow(armed_word(), size) && decide(guard, args, d);
  if (decided && !d.quota) {
    apply_delay(guard, d, args);
    if (d.action == kActError) {
      emit_event(d, args, -1);
      return fail_as<void*>(call, cause_of(d));  // the old block stays valid, and counted if it was
    }
    if (d.action == kActCrash && d.crash_when == kCrashBefore)
      apply_crash(d, args, [] { return std::int64_t{-1}; });
  }
  bool counting = decided && d.quota && real_malloc_usable_size();
  // The old block leaves the books first, so a block that grows under the same quota needs
  // room only for what it adds.
  const Forgotten old = ledger_forget(p);
  if (counting && !ledger_reserve(d.fault, d.quota_bytes, size)) {
    if (quota_claim(d) && apply_delay(guard, d, args)) {
      ledger_restore(p, old);
      d.action = kActError;
      d.error = d.error ? d.error : ENOMEM;
      emit_event(d, args, 0);
      return fail_as<void*>(call, cause_of(d));
    }
    // Spent (times, max_faults), or lifted while its delay held the call: the quota no
    // longer limits.
    if (d.action == 0) emit_event(d, args, -1);
    counting = false;
  }
  errno = saved;
  void* moved = FL_REAL(realloc)(p, size);
  if (!moved) {
    const int err = errno;
    if (counting) ledger_unreserve(d.fault, size);
    ledger_restore(p, old);
    errno = err;
    return nullptr;
  }
  if (counting) ledger_count(d.fault, moved, size);
  if (decided && !d.quota) {
    emit_event(d, args, static_cast<std::int64_t>(size));
    if (d.action == kActCrash) crash_now(d);
  }
  errno = saved;
  return moved;
}

FL_COLD void free_slow(void* p) {
  if (arena_owns(p)) return;  // the arena keeps its blocks
  const int saved = errno;
  ledger_forget(p);
  FL_REAL(free)(p);
  errno = saved;  // free(3) preserves errno (POSIX.1-2024, glibc 2.33)
}

}  // namespace
}  // namespace faultline::shim

using namespace faultline;
using namespace faultline::shim;

// glibc declares the allocator __THROW (noexcept in C++): the definitions must match.

FL_EXPORT void* malloc(size_t size) noexcept {
  const std::uint64_t w = armed_word();
  if (FL_LIKELY(!memory_slow(w, size))) return FL_REAL_NOTHROW(malloc)(size);
  return malloc_slow(size, __builtin_return_address(0));
}

FL_EXPORT void free(void* p) noexcept {
  if (FL_UNLIKELY(arena_owns(p)) || FL_UNLIKELY(ptrset_active())) return free_slow(p);
  FL_REAL_NOTHROW(free)(p);
}

FL_EXPORT void* calloc(size_t n, size_t size) noexcept {
  const std::uint64_t w = armed_word();
  std::uint64_t total;
  // An overflowing n * size fails in the real calloc (ENOMEM) without any help.
  if (FL_LIKELY(!(w & kFamMemory)) || __builtin_mul_overflow(n, size, &total) ||
      !memory_slow(w, total))
    return FL_REAL_NOTHROW(calloc)(n, size);
  return calloc_slow(n, size, total, __builtin_return_address(0));
}

FL_EXPORT void* realloc(void* p, size_t size) noexcept {
  const std::uint64_t w = armed_word();
  if (FL_LIKELY(!memory_slow(w, size)) && FL_LIKELY(!arena_owns(p)) && FL_LIKELY(!ptrset_active()))
    return FL_REAL_NOTHROW(realloc)(p, size);
  return realloc_slow(kCall_realloc, p, size);
}

FL_EXPORT void* reallocarray(void* p, size_t n, size_t size) noexcept {
  std::size_t total;
  if (__builtin_mul_overflow(n, size, &total)) {
    errno = ENOMEM;
    return nullptr;
  }
  const std::uint64_t w = armed_word();
  if (FL_LIKELY(!memory_slow(w, total)) && FL_LIKELY(!arena_owns(p)) && FL_LIKELY(!ptrset_active()))
    return FL_REAL_NOTHROW(realloc)(p, total);
  return realloc_slow(kCall_reallocarray, p, total);
}

FL_EXPORT int posix_memalign(void** out, size_t align, size_t size) noexcept {
  if (FL_LIKELY(!memory_slow(armed_word(), size)))
    return FL_REAL_NOTHROW(posix_memalign)(out, align, size);
  return posix_memalign_slow(out, align, size);
}

FL_EXPORT void* aligned_alloc(size_t align, size_t size) noexcept {
  if (FL_LIKELY(!memory_slow(armed_word(), size)))
    return FL_REAL_NOTHROW(aligned_alloc)(align, size);
  return aligned_slow(kCall_aligned_alloc, align, size);
}

FL_EXPORT void* memalign(size_t align, size_t size) noexcept {
  if (FL_LIKELY(!memory_slow(armed_word(), size))) return FL_REAL_NOTHROW(memalign)(align, size);
  return aligned_slow(kCall_memalign, align, size);
}

FL_EXPORT void* valloc(size_t size) noexcept {
  if (FL_LIKELY(!memory_slow(armed_word(), size))) return FL_REAL_NOTHROW(valloc)(size);
  return aligned_slow(kCall_valloc, 0, size);
}

FL_EXPORT void* pvalloc(size_t size) noexcept {
  if (FL_LIKELY(!memory_slow(armed_word(), size))) return real_pvalloc(size);
  return aligned_slow(kCall_pvalloc, 0, size);
}
