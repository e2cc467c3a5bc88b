// The unwinder entry points the shim's statically linked libsupc++ calls (its personality
// routine, __cxa_throw, __cxa_rethrow, the landing pads' _Unwind_Resume), defined here and
// forwarded to libgcc_s.so.1's own, which is opened only when first needed. Why not link an
// unwinder: a DT_NEEDED on libgcc_s.so.1 was about half of the shim's start-up in every program
// (shim/CMakeLists.txt), and a static copy (libgcc_eh) is wrong: glibc unwinds a cancelled
// thread with the libgcc_s it dlopens, and that unwinder's context must be read and written
// (_Unwind_SetGR) by the same copy, or the static one aborts on its never-initialised register
// table (HostileWaitsTest). Forwarding gives every _Unwind_Context to the one unwinder that made
// it: glibc's (cancellation), a C++ program's (libstdc++.so needs the same libgcc_s.so.1), and
// the shim's own exceptions (the policy compiler throws on bad TOML).
//
// When the pointers are resolved: a cancellation finds libgcc_s already loaded (pthread_cancel
// loads it before it signals), so the personality routine's first call only looks it up
// (RTLD_NOLOAD); a throw inside the shim of a C program loads it then. Resolution takes the
// loader's lock, never while this thread holds it: unwinding releases it (dl_iterate_phdr)
// before it calls a personality routine, and a cancelled thread stops only at a cancellation
// point, where the loader's lock is not held. The pointers are cached in atomics; a race
// between two first users stores the same values twice.
#include <dlfcn.h>
#include <unistd.h>
#include <unwind.h>

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace faultline::shim {
namespace {

struct Unwinder {
  std::atomic<_Unwind_Reason_Code (*)(_Unwind_Exception*)> raise_exception{};
  std::atomic<void (*)(_Unwind_Exception*)> resume{};
  std::atomic<_Unwind_Reason_Code (*)(_Unwind_Exception*)> resume_or_rethrow{};
  std::atomic<void (*)(_Unwind_Exception*)> delete_exception{};
  std::atomic<void (*)(_Unwind_Context*, int, _Unwind_Word)> set_gr{};
  std::atomic<void (*)(_Unwind_Context*, _Unwind_Ptr)> set_ip{};
  std::atomic<_Unwind_Ptr (*)(_Unwind_Context*, int*)> get_ip_info{};
  std::atomic<void* (*)(_Unwind_Context*)> get_lsda{};
  std::atomic<_Unwind_Ptr (*)(_Unwind_Context*)> get_region_start{};
  std::atomic<_Unwind_Ptr (*)(_Unwind_Context*)> get_data_rel_base{};
  std::atomic<_Unwind_Ptr (*)(_Unwind_Context*)> get_text_rel_base{};
  std::atomic<bool> ready{false};
};

constinit Unwinder g_unwinder;

[[noreturn]] void fatal(const char* what) {
  // No stdio: this may run while a thread is being cancelled.
  static constexpr char kPrefix[] = "faultline: cannot forward to libgcc_s.so.1's unwinder: ";
  (void)!write(STDERR_FILENO, kPrefix, sizeof kPrefix - 1);
  (void)!write(STDERR_FILENO, what, std::strlen(what));
  (void)!write(STDERR_FILENO, "\n", 1);
  std::abort();
}

template <class Fn>
void resolve_one(void* handle, const char* name, std::atomic<Fn>& slot) {
  void* p = dlsym(handle, name);
  if (p == nullptr) fatal(name);
  slot.store(reinterpret_cast<Fn>(p), std::memory_order_relaxed);
}

const Unwinder& unwinder() {
  if (g_unwinder.ready.load(std::memory_order_acquire)) return g_unwinder;
  // Already loaded (by glibc for a cancellation, or as libstdc++.so's dependency): only a lookup.
  void* handle = dlopen("libgcc_s.so.1", RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
  if (handle == nullptr) handle = dlopen("libgcc_s.so.1", RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) fatal("dlopen failed");
  // The handle is never closed: the unwinder must outlive every exception in flight.
  resolve_one(handle, "_Unwind_RaiseException", g_unwinder.raise_exception);
  resolve_one(handle, "_Unwind_Resume", g_unwinder.resume);
  resolve_one(handle, "_Unwind_Resume_or_Rethrow", g_unwinder.resume_or_rethrow);
  resolve_one(handle, "_Unwind_DeleteException", g_unwinder.delete_exception);
  resolve_one(handle, "_Unwind_SetGR", g_unwinder.set_gr);
  resolve_one(handle, "_Unwind_SetIP", g_unwinder.set_ip);
  resolve_one(handle, "_Unwind_GetIPInfo", g_unwinder.get_ip_info);
  resolve_one(handle, "_Unwind_GetLanguageSpecificData", g_unwinder.get_lsda);
  resolve_one(handle, "_Unwind_GetRegionStart", g_unwinder.get_region_start);
  resolve_one(handle, "_Unwind_GetDataRelBase", g_unwinder.get_data_rel_base);
  resolve_one(handle, "_Unwind_GetTextRelBase", g_unwinder.get_text_rel_base);
  g_unwinder.ready.store(true, std::memory_order_release);
  return g_unwinder;
}

template <class Fn>
Fn get(const std::atomic<Fn> Unwinder::*slot) {
  return (unwinder().*slot).load(std::memory_order_relaxed);
}

}  // namespace
}  // namespace faultline::shim

// unwind.h declares these with default visibility; the version script (exports.map.in) keeps
// them local, so they bind inside the shim and are never seen by the program
// (tests/integration/hostile/shim_elf_test.cpp checks the exported names).
using faultline::shim::get;
using faultline::shim::Unwinder;

extern "C" {

_Unwind_Reason_Code _Unwind_RaiseException(_Unwind_Exception* e) {
  return get(&Unwinder::raise_exception)(e);
}

void _Unwind_Resume(_Unwind_Exception* e) {
  get (&Unwinder::resume)(e);
  __builtin_unreachable();
}

_Unwind_Reason_Code _Unwind_Resume_or_Rethrow(_Unwind_Exception* e) {
  return get(&Unwinder::resume_or_rethrow)(e);
}

void _Unwind_DeleteException(_Unwind_Exception* e) { get (&Unwinder::delete_exception)(e); }

void _Unwind_SetGR(_Unwind_Context* c, int index, _Unwind_Word value) {
  get (&Unwinder::set_gr)(c, index, value);
}

void _Unwind_SetIP(_Unwind_Context* c, _Unwind_Ptr ip) { get (&Unwinder::set_ip)(c, ip); }

_Unwind_Ptr _Unwind_GetIPInfo(_Unwind_Context* c, int* before) {
  return get(&Unwinder::get_ip_info)(c, before);
}

void* _Unwind_GetLanguageSpecificData(_Unwind_Context* c) { return get(&Unwinder::get_lsda)(c); }

_Unwind_Ptr _Unwind_GetRegionStart(_Unwind_Context* c) {
  return get(&Unwinder::get_region_start)(c);
}

_Unwind_Ptr _Unwind_GetDataRelBase(_Unwind_Context* c) {
  return get(&Unwinder::get_data_rel_base)(c);
}

_Unwind_Ptr _Unwind_GetTextRelBase(_Unwind_Context* c) {
  return get(&Unwinder::get_text_rel_base)(c);
}

}  // extern "C"
