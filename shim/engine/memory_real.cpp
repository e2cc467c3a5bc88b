// Resolving the real allocator, and the lazy resolvers of the @memory rows and free (see
// shim.h for the lazy-pointer scheme). Kept in the engine library, next to real_functions.cpp,
// because the real-function table refers to these resolvers.
//
// The catch with malloc: dlsym() may allocate (glibc's dlerror state, another allocator's own
// start-up), and that allocation comes back into our malloc before any real malloc is known.
// While this thread resolves, t_resolving_memory routes such calls to the bootstrap arena
// instead of resolving again (which would recurse without end).
#include <dlfcn.h>
#include <errno.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

#include "shim/engine/bootstrap_arena.h"
#include "shim/engine/memory.h"

namespace faultline::shim {
namespace {

constinit thread_local bool t_resolving_memory __attribute__((tls_model("initial-exec"))) = false;
std::atomic<bool> g_memory_resolved{false};
std::atomic<malloc_usable_size_fn> g_malloc_usable_size{nullptr};

template <class Fn>
void resolve_into(std::atomic<Fn>& slot, const char* name) {
  if (void* fn = dlsym(RTLD_NEXT, name))
    slot.store(reinterpret_cast<Fn>(fn), std::memory_order_release);
}

std::size_t page_size() {
  long size = sysconf(_SC_PAGESIZE);
  return size > 0 ? static_cast<std::size_t>(size) : 4096;
}

void* arena_or_enomem(std::size_t size, std::size_t align = 16) {
  void* p = arena_alloc(size, align);
  if (!p) errno = ENOMEM;
  return p;
}

}  // namespace

void resolve_memory_real() noexcept {
  if (g_memory_resolved.load(std::memory_order_acquire)) return;
  const bool outer = !t_resolving_memory;
  t_resolving_memory = true;
  // free first: a block that dlsym frees while malloc is being resolved can then go back.
  resolve_into(g_real.free, "free");
// The allocator rows (free, already resolved, is the TRACKED one).
#define FL_CALL(fam, name, ret, params, args, failure, natural, errnos, actions, resolver) \
  FL_IF_ALLOCATOR(resolver, FL_IF_FAULTED(fam, resolve_into(g_real.name, #name);))
#include "calls/calls.def"
  resolve_into(g_malloc_usable_size, "malloc_usable_size");
  if (outer) t_resolving_memory = false;
  g_memory_resolved.store(true, std::memory_order_release);
}

malloc_usable_size_fn real_malloc_usable_size() noexcept {
  resolve_memory_real();
  return g_malloc_usable_size.load(std::memory_order_acquire);
}

// ---- lazy resolvers ---------------------------------------------------------------------
// While this thread is inside dlsym for the allocator, serve from the arena; otherwise
// resolve and forward. If resolution failed (no such symbol), never call ourselves again.

#define FL_LAZY_MEMORY(ret, name, params, args, arena_call) \
  FL_COLD ret lazy_##name params {                          \
    if (t_resolving_memory) arena_call;                     \
    resolve_memory_real();                                  \
    auto fn = g_real.name.load(std::memory_order_acquire);  \
    if (fn == &lazy_##name) arena_call;                     \
    return fn args;                                         \
  }

FL_LAZY_MEMORY(void*, malloc, (size_t size), (size), return arena_or_enomem(size))
FL_LAZY_MEMORY(void*, calloc, (size_t n, size_t size), (n, size), {
  size_t total;
  if (__builtin_mul_overflow(n, size, &total)) {
    errno = ENOMEM;
    return nullptr;
  }
  return arena_or_enomem(total);  // arena blocks are zero-filled
})
FL_LAZY_MEMORY(void*, realloc, (void* ptr, size_t size), (ptr, size), {
  // Only arena blocks (or none) can exist before the real allocator is known; the realloc
  // wrapper moves arena blocks itself, so this is realloc(NULL, n).
  if (ptr) {
    errno = ENOMEM;
    return nullptr;
  }
  return arena_or_enomem(size);
})
FL_LAZY_MEMORY(void*, reallocarray, (void* ptr, size_t n, size_t size), (ptr, n, size), {
  size_t total;
  if (ptr || __builtin_mul_overflow(n, size, &total)) {
    errno = ENOMEM;
    return nullptr;
  }
  return arena_or_enomem(total);
})
FL_LAZY_MEMORY(int, posix_memalign, (void** out, size_t align, size_t size), (out, align, size), {
  void* p = arena_alloc(size, align);
  if (!p) return ENOMEM;
  *out = p;
  return 0;
})
FL_LAZY_MEMORY(void*, aligned_alloc, (size_t align, size_t size), (align, size),
               return arena_or_enomem(size, align))
FL_LAZY_MEMORY(void*, memalign, (size_t align, size_t size), (align, size),
               return arena_or_enomem(size, align))
FL_LAZY_MEMORY(void*, valloc, (size_t size), (size), return arena_or_enomem(size, page_size()))
FL_LAZY_MEMORY(void*, pvalloc, (size_t size), (size), return arena_or_enomem(size, page_size()))
// A block freed before free is known can only have come from the arena (which keeps it).
FL_LAZY_MEMORY(void, free, (void* ptr), (ptr), return )

#undef FL_LAZY_MEMORY

}  // namespace faultline::shim
