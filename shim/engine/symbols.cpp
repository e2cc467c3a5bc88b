// Naming code addresses (see symbols.h). Everything here runs once per distinct address (the
// stack cache in stack.cpp remembers the answer), so it favours being right over being fast: a
// linear scan of a symbol table is fine, a wrong name is not. Files are read through mmap and
// the real open/close, never through the program's stdio or allocator; only the C++ demangler
// allocates (through the real malloc, inside the guard).
//
// The demangler is the program's own __cxa_demangle (libstdc++.so or libc++abi, found with
// dlsym), not a copy linked into the shim: that copy was 47 KB of a 594 KiB shim, loaded into
// every process, and a program with C++ names has a C++ runtime loaded. A program without one
// as a shared library (linked with -static-libstdc++) gets the system's libstdc++.so.6 loaded
// for it; only where none is installed, demangle_simple() below, which names the common cases
// the way __cxa_demangle does and the rest without their parameter list, and the shim says so
// once (docs/limits.md).
#include "shim/engine/symbols.h"

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

#include "shim/engine/shim.h"

namespace faultline::shim {
namespace {

// Object files are mapped whole (only the pages of the symbol table are ever touched); a file
// larger than this is not worth the address space.
constexpr std::uint64_t kMaxMappedFile = 1ull << 32;
constexpr int kMaxCachedObjects = 256;
constexpr unsigned char kNativeClass = __ELF_NATIVE_CLASS == 64 ? ELFCLASS64 : ELFCLASS32;
constexpr const char* kDebugRoot = "/usr/lib/debug/.build-id/";

void copy_text(char* out, std::size_t size, const char* text) {
  std::size_t n = std::strlen(text);
  if (n >= size) n = size - 1;
  std::memcpy(out, text, n);
  out[n] = '\0';
}

struct Mapping {
  const unsigned char* data = nullptr;
  std::size_t size = 0;
};

Mapping map_file(const char* path) {
  Mapping m;
  const int fd = FL_REAL(open)(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return m;
  struct stat st;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 &&
      static_cast<std::uint64_t>(st.st_size) <= kMaxMappedFile) {
    const auto size = static_cast<std::size_t>(st.st_size);
    void* p = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p != MAP_FAILED) {
      m.data = static_cast<const unsigned char*>(p);
      m.size = size;
    }
  }
  FL_REAL(close)(fd);
  return m;
}

void unmap(Mapping& m) {
  if (m.data) munmap(const_cast<unsigned char*>(m.data), m.size);
  m = {};
}

// A bounds- and alignment-checked view of `count` T's at `offset`: a truncated or hostile file
// yields nullptr, never a read past the mapping.
template <class T>
const T* view(const Mapping& m, std::uint64_t offset, std::uint64_t count = 1) {
  if (!m.data || offset > m.size || offset % alignof(T) != 0) return nullptr;
  if (count > (m.size - offset) / sizeof(T)) return nullptr;
  return reinterpret_cast<const T*>(m.data + offset);
}

const ElfW(Shdr) * section_headers(const Mapping& m, std::size_t& count) {
  const auto* eh = view<ElfW(Ehdr)>(m, 0);
  if (!eh || std::memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 ||
      eh->e_ident[EI_CLASS] != kNativeClass || eh->e_shentsize != sizeof(ElfW(Shdr)))
    return nullptr;
  count = eh->e_shnum;
  return view<ElfW(Shdr)>(m, eh->e_shoff, count);
}

struct SymbolTable {
  Mapping file;
  const ElfW(Sym) * symbols = nullptr;
  std::size_t count = 0;
  const char* strings = nullptr;
  std::size_t strings_size = 0;
};

// The .symtab of a mapped file (stripped files have none), with its string table.
bool find_symtab(const Mapping& file, SymbolTable& table) {
  std::size_t n = 0;
  const ElfW(Shdr)* sh = section_headers(file, n);
  if (!sh) return false;
  for (std::size_t i = 0; i < n; ++i) {
    if (sh[i].sh_type != SHT_SYMTAB || sh[i].sh_entsize != sizeof(ElfW(Sym)) || sh[i].sh_link >= n)
      continue;
    const ElfW(Shdr)& str = sh[sh[i].sh_link];
    if (str.sh_type != SHT_STRTAB || str.sh_size == 0) continue;
    const auto* symbols = view<ElfW(Sym)>(file, sh[i].sh_offset, sh[i].sh_size / sizeof(ElfW(Sym)));
    const auto* strings = view<char>(file, str.sh_offset, str.sh_size);
    if (!symbols || !strings) continue;
    table.file = file;
    table.symbols = symbols;
    table.count = sh[i].sh_size / sizeof(ElfW(Sym));
    table.strings = strings;
    table.strings_size = str.sh_size;
    return true;
  }
  return false;
}

// "/usr/lib/debug/.build-id/ab/cdef....debug" from the file's NT_GNU_BUILD_ID note: where
// Debian's -dbgsym packages put the symbols that were stripped from the installed file.
bool debug_file_path(const Mapping& file, char* out, std::size_t size) {
  std::size_t n = 0;
  const ElfW(Shdr)* sh = section_headers(file, n);
  if (!sh) return false;
  for (std::size_t i = 0; i < n; ++i) {
    if (sh[i].sh_type != SHT_NOTE) continue;
    const auto* notes = view<unsigned char>(file, sh[i].sh_offset, sh[i].sh_size);
    if (!notes) continue;
    std::size_t at = 0;
    while (at + sizeof(ElfW(Nhdr)) <= sh[i].sh_size) {
      ElfW(Nhdr) note;
      std::memcpy(&note, notes + at, sizeof note);
      const std::size_t name_at = at + sizeof note;
      const std::size_t desc_at = name_at + ((note.n_namesz + 3) & ~std::size_t{3});
      const std::size_t next = desc_at + ((note.n_descsz + 3) & ~std::size_t{3});
      if (next > sh[i].sh_size || next <= at) break;
      if (note.n_type == NT_GNU_BUILD_ID && note.n_namesz == 4 &&
          std::memcmp(notes + name_at, "GNU", 4) == 0 && note.n_descsz >= 2 &&
          note.n_descsz <= 64) {
        const unsigned char* id = notes + desc_at;
        int len = std::snprintf(out, size, "%s%02x/", kDebugRoot, id[0]);
        for (std::size_t b = 1;
             b < note.n_descsz && len > 0 && static_cast<std::size_t>(len) < size; ++b)
          len += std::snprintf(out + len, size - static_cast<std::size_t>(len), "%02x", id[b]);
        if (len > 0 && static_cast<std::size_t>(len) < size)
          len += std::snprintf(out + len, size - static_cast<std::size_t>(len), ".debug");
        return len > 0 && static_cast<std::size_t>(len) < size;
      }
      at = next;
    }
  }
  return false;
}

// The object file's own .symtab, else its separate debug file's.
bool open_symtab(const char* path, SymbolTable& table) {
  Mapping file = map_file(path);
  if (!file.data) return false;
  if (find_symtab(file, table)) return true;
  char debug_path[512];
  const bool has_debug = debug_file_path(file, debug_path, sizeof debug_path);
  unmap(file);
  if (!has_debug) return false;
  Mapping debug = map_file(debug_path);
  if (find_symtab(debug, table)) return true;
  unmap(debug);
  return false;
}

void close_symtab(SymbolTable& table) {
  unmap(table.file);
  table = {};
}

// The function symbol that covers `vaddr` (a link-time address): the innermost one, a global
// name before a local alias at the same address.
const char* find_function(const SymbolTable& table, std::uintptr_t vaddr) {
  const char* best = nullptr;
  ElfW(Addr) best_value = 0;
  bool best_global = false;
  for (std::size_t i = 0; i < table.count; ++i) {
    const ElfW(Sym)& s = table.symbols[i];
    if (ELF64_ST_TYPE(s.st_info) != STT_FUNC || s.st_shndx == SHN_UNDEF || s.st_size == 0) continue;
    if (vaddr < s.st_value || vaddr - s.st_value >= s.st_size) continue;
    if (s.st_name == 0 || s.st_name >= table.strings_size ||
        !std::memchr(table.strings + s.st_name, '\0', table.strings_size - s.st_name))
      continue;
    const bool global = ELF64_ST_BIND(s.st_info) != STB_LOCAL;
    if (best && (s.st_value < best_value || (s.st_value == best_value && (best_global || !global))))
      continue;
    best = table.strings + s.st_name;
    best_value = s.st_value;
    best_global = global;
  }
  return best;
}

void object_path(const struct link_map* lm, char* out, std::size_t size) {
  if (lm->l_name && lm->l_name[0]) {
    copy_text(out, size, lm->l_name);
    return;
  }
  // The main program's link map has an empty name.
  const ssize_t n = readlink("/proc/self/exe", out, size - 1);
  out[n > 0 ? n : 0] = '\0';
}

// ---- demangling ------------------------------------------------------------------------------

using DemangleFn = char* (*)(const char*, char*, std::size_t*, int*);
constexpr int kDemanglerUnknown = 0, kDemanglerFound = 1, kDemanglerNone = 2;
std::atomic<int> g_demangler_state{kDemanglerUnknown};
std::atomic<DemangleFn> g_demangler{nullptr};
std::atomic<bool> g_fallback_reported{false};

// The program's __cxa_demangle: in the global scope when the program links its C++ runtime,
// else in a libstdc++.so a library loaded with RTLD_LOCAL. A program with C++ names and no
// shared C++ runtime (-static-libstdc++) gets the system's libstdc++.so.6 loaded beside it,
// RTLD_LOCAL, so that nothing of it binds the program's symbols: its names are then exactly
// those of a dynamically linked build. Only where no C++ runtime is installed (a minimal
// image) does the fallback name them. Called where the unwinder is loaded (stack.cpp), so the
// loader's lock is taken at the one point that already takes it.
DemangleFn find_demangler() {
  if (void* p = dlsym(RTLD_DEFAULT, "__cxa_demangle")) return reinterpret_cast<DemangleFn>(p);
  for (const int load : {RTLD_NOLOAD, 0})
    for (const char* soname : {"libstdc++.so.6", "libc++abi.so.1"})
      if (void* handle = dlopen(soname, RTLD_LAZY | RTLD_LOCAL | load))
        if (void* p = dlsym(handle, "__cxa_demangle")) return reinterpret_cast<DemangleFn>(p);
  return nullptr;
}

// Appends to a bounded buffer; `ok` turns false when the text does not fit.
struct Out {
  char* p;
  std::size_t size;
  std::size_t len = 0;
  bool ok = true;
  void put(const char* s, std::size_t n) {
    if (!ok || n >= size - len) {
      ok = false;
      return;
    }
    std::memcpy(p + len, s, n);
    len += n;
    p[len] = '\0';
  }
  void put(const char* s) { put(s, std::strlen(s)); }
};

// <source-name> ::= <length> <identifier>; "_GLOBAL__N_1" is an anonymous namespace.
bool source_name(const char*& m, Out& out, const char** name = nullptr,
                 std::size_t* name_len = nullptr) {
  if (*m < '1' || *m > '9') return false;
  std::size_t n = 0;
  while (*m >= '0' && *m <= '9') {
    n = n * 10 + static_cast<std::size_t>(*m++ - '0');
    if (n > 4096) return false;
  }
  if (std::strlen(m) < n) return false;
  if (n >= 10 && std::strncmp(m, "_GLOBAL__N", 10) == 0)
    out.put("(anonymous namespace)");
  else
    out.put(m, n);
  if (name) *name = m;
  if (name_len) *name_len = n;
  m += n;
  return true;
}

bool is_clone_char(char c) { return (c >= 'a' && c <= 'z') || c == '_'; }

const char* builtin_type(char c) {
  switch (c) {
    case 'b':
      return "bool";
    case 'c':
      return "char";
    case 'a':
      return "signed char";
    case 'h':
      return "unsigned char";
    case 's':
      return "short";
    case 't':
      return "unsigned short";
    case 'i':
      return "int";
    case 'j':
      return "unsigned int";
    case 'l':
      return "long";
    case 'm':
      return "unsigned long";
    case 'x':
      return "long long";
    case 'y':
      return "unsigned long long";
    case 'n':
      return "__int128";
    case 'o':
      return "unsigned __int128";
    case 'f':
      return "float";
    case 'd':
      return "double";
    case 'e':
      return "long double";
    case 'w':
      return "wchar_t";
    case 'z':
      return "...";
    default:
      return nullptr;
  }
}

// A parameter type of the simple kinds: builtins and plain class names, under any chain of
// pointer, reference and const ("PKc" is "char const*", as __cxa_demangle writes it).
bool simple_type(const char*& m, Out& out) {
  const char c = *m;
  if (c == 'P' || c == 'R' || c == 'O' || c == 'K') {
    ++m;
    if (!simple_type(m, out)) return false;
    out.put(c == 'P' ? "*" : c == 'R' ? "&" : c == 'O' ? "&&" : " const");
    return true;
  }
  if (const char* b = builtin_type(c)) {
    ++m;
    out.put(b);
    return true;
  }
  return source_name(m, out);
}

}  // namespace

bool demangle_simple(const char* mangled, char* out_text, std::size_t size) noexcept {
  if (size == 0 || std::strncmp(mangled, "_Z", 2) != 0) return false;
  const char* m = mangled + 2;
  Out out{out_text, size};
  out_text[0] = '\0';
  const char* qualifiers = "";
  if (*m == 'N') {
    ++m;
    if (*m == 'K') qualifiers = " const", ++m;
    if (*m == 'V' || *m == 'r' || *m == 'R' || *m == 'O') return false;
    const char* last = nullptr;
    std::size_t last_len = 0;
    bool first = true;
    if (m[0] == 'S' && m[1] == 't') out.put("std"), m += 2, first = false;
    while (*m && *m != 'E') {
      if (!first) out.put("::");
      first = false;
      if ((m[0] == 'C' && m[1] >= '1' && m[1] <= '3') ||
          (m[0] == 'D' && m[1] >= '0' && m[1] <= '2')) {
        if (!last) return false;
        if (m[0] == 'D') out.put("~");
        out.put(last, last_len);
        m += 2;
        continue;
      }
      if (!source_name(m, out, &last, &last_len)) return false;
    }
    if (*m != 'E') return false;
    ++m;
  } else {
    if (m[0] == 'S' && m[1] == 't') out.put("std::"), m += 2;
    if (!source_name(m, out)) return false;
  }
  if (!out.ok) return false;
  if (*m == '\0') return true;  // a variable, or a Rust legacy name: no parameters
  if (*m == '.') return false;  // __cxa_demangle refuses a clone suffix without parameters
  // Parameters: written only when all are of the simple kinds, else the name stands alone.
  const std::size_t name_len = out.len;
  out.put("(");
  if (m[0] == 'v' && (m[1] == '\0' || m[1] == '.')) {
    ++m;
  } else {
    for (bool first = true; *m && *m != '.'; first = false) {
      if (!first) out.put(", ");
      if (!simple_type(m, out)) break;
    }
  }
  out.put(")");
  out.put(qualifiers);
  // GCC's clones (".cold", ".isra.0", ".constprop.0"), each as " [clone .cold]", as
  // libiberty's d_clone_suffix reads them: a lowercase word, then numbers.
  while (*m == '.' && (is_clone_char(m[1]) || (m[1] >= '0' && m[1] <= '9'))) {
    const char* start = m;
    m += 2;
    while (is_clone_char(*m) || (*m >= '0' && *m <= '9')) ++m;
    while (m[0] == '.' && m[1] >= '0' && m[1] <= '9') {
      m += 2;
      while (*m >= '0' && *m <= '9') ++m;
    }
    out.put(" [clone ");
    out.put(start, static_cast<std::size_t>(m - start));
    out.put("]");
  }
  if (*m != '\0' || !out.ok) out_text[name_len] = '\0';
  return true;
}

namespace {

// Names a C++ symbol into `out`; false to keep the raw name.
bool demangle(const char* mangled, char* out, std::size_t size) {
  int state = g_demangler_state.load(std::memory_order_acquire);
  if (state == kDemanglerUnknown) {
    // Normally resolved by symbols_prepare(), before any signal handler can get here.
    symbols_prepare();
    state = g_demangler_state.load(std::memory_order_acquire);
  }
  if (state == kDemanglerFound) {
    int status = 0;
    if (char* text =
            g_demangler.load(std::memory_order_relaxed)(mangled, nullptr, nullptr, &status)) {
      copy_text(out, size, text);
      std::free(text);
      return true;
    }
    return false;
  }
  if (!g_fallback_reported.exchange(true, std::memory_order_relaxed))
    diag(
        "faultline: %s has no shared C++ runtime to demangle with, and libstdc++.so.6 "
        "cannot be loaded: `stack` globs see C++ names without template and class-type "
        "parameters, e.g. %s, and the mangled names",
        program_invocation_short_name, mangled);
  return demangle_simple(mangled, out, size);
}

}  // namespace

struct CachedObject {
  const void* link_map;
  std::uintptr_t base;
  char path[512];
  bool has_symtab;
  SymbolTable symtab;
};

class SymbolCache {
 public:
  // The object behind `lm`, opening its symbol table on first use; nullptr when full.
  CachedObject* object(const struct link_map* lm, const char* path) {
    for (int i = 0; i < count_; ++i) {
      CachedObject& o = objects_[i];
      if (o.link_map == lm && o.base == lm->l_addr && std::strcmp(o.path, path) == 0) return &o;
    }
    if (count_ == kMaxCachedObjects) return nullptr;
    // Counted only once complete: a fork in the middle leaves the child a cache without it.
    CachedObject& o = objects_[count_];
    o.link_map = lm;
    o.base = lm->l_addr;
    copy_text(o.path, sizeof o.path, path);
    o.has_symtab = open_symtab(path, o.symtab);
    ++count_;
    return &o;
  }

 private:
  int count_ = 0;
  CachedObject objects_[kMaxCachedObjects];
};

SymbolCache* symbol_cache_create() noexcept {
  void* p = mmap(nullptr, sizeof(SymbolCache), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                 -1, 0);
  return p == MAP_FAILED ? nullptr : new (p) SymbolCache();
}

const char* path_basename(const char* path) noexcept {
  const char* slash = std::strrchr(path, '/');
  return slash ? slash + 1 : path;
}

void symbolize(std::uintptr_t address, SymbolCache* cache, SymbolText& out) noexcept {
  out.function[0] = out.symbol[0] = out.object[0] = '\0';
  out.base = 0;
  Dl_info info{};
  struct link_map* lm = nullptr;
  if (!dladdr1(reinterpret_cast<void*>(address), &info, reinterpret_cast<void**>(&lm),
               RTLD_DL_LINKMAP) ||
      !lm)
    return;
  out.base = lm->l_addr;
  object_path(lm, out.object, sizeof out.object);

  // dladdr names an address only when an exported symbol's range covers it.
  if (info.dli_sname) {
    copy_text(out.symbol, sizeof out.symbol, info.dli_sname);
  } else if (out.object[0]) {
    const std::uintptr_t vaddr = address - lm->l_addr;
    CachedObject* cached = cache ? cache->object(lm, out.object) : nullptr;
    if (cached) {
      if (cached->has_symtab)
        if (const char* name = find_function(cached->symtab, vaddr))
          copy_text(out.symbol, sizeof out.symbol, name);
    } else {
      SymbolTable table;
      if (open_symtab(out.object, table)) {
        if (const char* name = find_function(table, vaddr))
          copy_text(out.symbol, sizeof out.symbol, name);
        close_symtab(table);
      }
    }
  }
  if (!out.symbol[0]) return;
  if (out.symbol[0] == '_' && out.symbol[1] == 'Z' &&
      demangle(out.symbol, out.function, sizeof out.function))
    return;
  copy_text(out.function, sizeof out.function, out.symbol);
}

void symbols_prepare() noexcept {
  if (g_demangler_state.load(std::memory_order_acquire) != kDemanglerUnknown) return;
  const DemangleFn fn = find_demangler();
  g_demangler.store(fn, std::memory_order_relaxed);
  g_demangler_state.store(fn ? kDemanglerFound : kDemanglerNone, std::memory_order_release);
}

}  // namespace faultline::shim
