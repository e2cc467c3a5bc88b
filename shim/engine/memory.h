// Internals of @memory shared by the engine library (real-allocator resolution, the fork
// hook) and the wrappers in memory.cpp.
#pragma once

#include <cstddef>

#include "shim/engine/shim.h"

namespace faultline::shim {

// Resolves the real allocator (every @memory row, free, and malloc_usable_size) with
// dlsym(RTLD_NEXT). Allocations that dlsym makes meanwhile on this thread are served from the
// bootstrap arena. Idempotent; called first by resolve_all_real() and by any lazy resolver.
void resolve_memory_real() noexcept;

// The real malloc_usable_size (not interposed: a quota only needs to call it), or nullptr
// when the allocator has none.
using malloc_usable_size_fn = std::size_t (*)(void*);
malloc_usable_size_fn real_malloc_usable_size() noexcept;

// A fork child starts with no counted allocations: the blocks it inherited are its parent's.
void memory_after_fork_child() noexcept;

}  // namespace faultline::shim
