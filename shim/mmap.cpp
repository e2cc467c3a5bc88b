// mmap: interposed for power cuts only, never faulted. Stores through a shared writable
// mapping of a tracked file reach the page cache without a call the shim sees, and msync names
// no file, so such a file leaves the cut's tracking at map time and the shim says so
// (durable_mapped, shim/engine/durability.cpp): a cut must never revert what it could not watch.
// With nothing tracked, the wrapper is one load.
#include <sys/mman.h>

#include "shim/engine/durability.h"

using namespace faultline::shim;

FL_EXPORT void* mmap(void* addr, size_t len, int prot, int flags, int fd, off_t off) {
  if (FL_UNLIKELY(durability_on())) durable_mapped(fd, prot, flags);
  return FL_REAL(mmap)(addr, len, prot, flags, fd, off);
}

FL_EXPORT void* mmap64(void* addr, size_t len, int prot, int flags, int fd, off64_t off) {
  if (FL_UNLIKELY(durability_on())) durable_mapped(fd, prot, flags);
  return FL_REAL(mmap64)(addr, len, prot, flags, fd, off);
}
