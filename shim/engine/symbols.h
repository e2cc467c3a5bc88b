// Naming code addresses for the stack selector and the `stack` of event lines: which loaded
// object (executable or shared library) holds an address, and which function.
//
// Exported names come from the loader (dladdr: .dynsym, no file access). Addresses no exported
// symbol covers are looked up in the object's own .symtab when the file has one (programs
// built without stripping), else in its separate debug file (/usr/lib/debug/.build-id/...),
// so static functions of -O2 binaries are named too. C++ names are demangled with the
// program's own __cxa_demangle; without one (libstdc++ linked statically), demangle_simple.
//
// Not thread-safe by itself: the caller serialises use of one SymbolCache (stack.cpp holds a
// lock); with no cache, every lookup maps and unmaps what it needs.
#pragma once

#include <cstddef>
#include <cstdint>

namespace faultline::shim {

struct SymbolText {
  char function[1024];  // demangled; "" when no symbol covers the address
  char symbol[512];     // the symbol as in the table (mangled for C++); "" when none
  char object[512];     // path of the object; "" when the address is in no loaded object
  std::uintptr_t base;  // the object's load bias (offset = address - base)
};

class SymbolCache;

// A process-lifetime cache of the objects' symbol tables (mapped once each). Memory comes from
// mmap, never from the program's allocator.
SymbolCache* symbol_cache_create() noexcept;

// Names `address`, a code address inside the function of interest (for a return address,
// pass the address minus one: a call that ends a function returns past its end).
void symbolize(std::uintptr_t address, SymbolCache* cache, SymbolText& out) noexcept;

// Finds the program's C++ demangler (dlsym: the loader's lock). Called where libunwind is
// loaded, so that naming a frame later, perhaps in a signal handler, does not take that lock;
// symbolize() calls it on first need otherwise.
void symbols_prepare() noexcept;

// The demangler used when the program has none: "ns::Class::method(int, char const*) const"
// for nested names whose parameters are builtins or plain class names, the name without its
// parameter list when a parameter is more than that (templates, substitutions), false (keep
// the mangled name) when the name itself is (templates, operators, local names).
bool demangle_simple(const char* mangled, char* out, std::size_t size) noexcept;

// "libsqlite3.so.0" for "/lib/x86_64-linux-gnu/libsqlite3.so.0".
const char* path_basename(const char* path) noexcept;

}  // namespace faultline::shim
