// Reading a program's ELF file by hand (elf_read.h).
#include "controller/elf_read.h"

#include <elf.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <string_view>

namespace faultline {
namespace {

// A read-only mapping of a whole file, unmapped on every way out.
class MappedFile {
 public:
  explicit MappedFile(const std::string& path) {
    const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
      void* p = mmap(nullptr, static_cast<std::size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
      if (p != MAP_FAILED) {
        data_ = static_cast<const unsigned char*>(p);
        size_ = static_cast<std::size_t>(st.st_size);
      }
    }
    close(fd);
  }
  ~MappedFile() {
    if (data_ != nullptr) munmap(const_cast<unsigned char*>(data_), size_);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  bool ok() const { return data_ != nullptr; }
  std::size_t size() const { return size_; }
  // `count` objects of T at `offset`, or nullptr when they do not fit in the file.
  template <typename T>
  const T* at(std::uint64_t offset, std::uint64_t count = 1) const {
    if (offset > size_ || count > (size_ - offset) / sizeof(T)) return nullptr;
    return reinterpret_cast<const T*>(data_ + offset);
  }
  // A NUL-terminated string at `offset` within [begin, end), or "".
  std::string_view text(std::uint64_t begin, std::uint64_t end, std::uint64_t offset) const {
    end = std::min<std::uint64_t>(end, size_);
    if (begin > end || offset >= end - begin) return {};
    const auto* s = reinterpret_cast<const char*>(data_ + begin + offset);
    return {s, strnlen(s, end - begin - offset)};
  }

 private:
  const unsigned char* data_ = nullptr;
  std::size_t size_ = 0;
};

constexpr std::size_t kMaxSections = 65535;

template <typename Ehdr, typename Phdr, typename Shdr, typename Sym, typename Dyn, typename Nhdr>
ElfRead read_elf(const MappedFile& f) {
  ElfRead r;
  const auto* eh = f.at<Ehdr>(0);
  r.machine = eh->e_machine;
  r.type = eh->e_type;
  if (eh->e_phentsize == sizeof(Phdr))
    if (const auto* ph = f.at<Phdr>(eh->e_phoff, eh->e_phnum))
      for (std::size_t i = 0; i < eh->e_phnum; ++i)
        if (ph[i].p_type == PT_INTERP) {
          r.has_interp = true;
          r.interpreter = std::string(f.text(ph[i].p_offset, ph[i].p_offset + ph[i].p_filesz, 0));
        }
  if (eh->e_shentsize != sizeof(Shdr) || eh->e_shnum > kMaxSections) return r;
  const auto* sh = f.at<Shdr>(eh->e_shoff, eh->e_shnum);
  if (sh == nullptr) return r;
  const std::size_t n = eh->e_shnum;
  auto section_name = [&](const Shdr& s) -> std::string_view {
    if (eh->e_shstrndx >= n) return {};
    const Shdr& names = sh[eh->e_shstrndx];
    return f.text(names.sh_offset, names.sh_offset + names.sh_size, s.sh_name);
  };
  for (std::size_t i = 0; i < n; ++i) {
    const Shdr& s = sh[i];
    const std::string_view name = section_name(s);
    if (name == ".note.go.buildid" || name == ".go.buildinfo" || name == ".gopclntab")
      r.go_note = true;
    if (s.sh_type == SHT_NOTE) {
      // Notes are 4-byte aligned records: header, name, descriptor.
      std::uint64_t off = s.sh_offset;
      const std::uint64_t end = s.sh_offset + s.sh_size;
      while (off + sizeof(Nhdr) <= end) {
        const auto* note = f.at<Nhdr>(off);
        if (note == nullptr) break;
        const std::uint64_t name_off = off + sizeof(Nhdr);
        if (note->n_namesz == 3 && f.text(name_off, name_off + 3, 0) == "Go") r.go_note = true;
        off = name_off + ((note->n_namesz + 3ull) & ~3ull) + ((note->n_descsz + 3ull) & ~3ull);
      }
    }
    if ((s.sh_type == SHT_DYNSYM || s.sh_type == SHT_SYMTAB) && s.sh_link < n &&
        s.sh_entsize == sizeof(Sym)) {
      const Shdr& strtab = sh[s.sh_link];
      const std::uint64_t count = s.sh_size / sizeof(Sym);
      const auto* syms = f.at<Sym>(s.sh_offset, count);
      if (syms == nullptr) continue;
      for (std::uint64_t k = 1; k < count; ++k) {
        const std::string_view sym =
            f.text(strtab.sh_offset, strtab.sh_offset + strtab.sh_size, syms[k].st_name);
        if (sym.empty()) continue;
        const bool undefined = syms[k].st_shndx == SHN_UNDEF;
        if (s.sh_type == SHT_DYNSYM && undefined) r.imports.emplace(sym);
        if (!undefined && sym == "malloc" && ELF64_ST_TYPE(syms[k].st_info) == STT_FUNC)
          r.defines_malloc = true;
        if (s.sh_type == SHT_SYMTAB && !undefined && sym == "runtime.main") r.go_symbols = true;
      }
    }
    if (s.sh_type == SHT_DYNAMIC && s.sh_link < n && s.sh_entsize == sizeof(Dyn)) {
      const Shdr& strtab = sh[s.sh_link];
      const std::uint64_t count = s.sh_size / sizeof(Dyn);
      const auto* dyn = f.at<Dyn>(s.sh_offset, count);
      if (dyn == nullptr) continue;
      for (std::uint64_t k = 0; k < count && dyn[k].d_tag != DT_NULL; ++k)
        if (dyn[k].d_tag == DT_NEEDED)
          r.needed.emplace_back(
              f.text(strtab.sh_offset, strtab.sh_offset + strtab.sh_size, dyn[k].d_un.d_val));
    }
  }
  return r;
}

// nullopt: not an ELF file (or not readable).
}  // namespace

std::optional<ElfRead> read_elf_file(const std::string& path, int* bits) {
  const MappedFile f(path);
  if (!f.ok()) return std::nullopt;
  const auto* ident = f.at<unsigned char>(0, EI_NIDENT);
  if (ident == nullptr || std::memcmp(ident, ELFMAG, SELFMAG) != 0) return std::nullopt;
  if (ident[EI_DATA] != ELFDATA2LSB && ident[EI_DATA] != ELFDATA2MSB) return std::nullopt;
  const bool native =
      (ident[EI_DATA] == ELFDATA2LSB) == (__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__);
  if (!native) return ElfRead{};  // read nothing of a foreign byte order: only "not reachable"
  if (ident[EI_CLASS] == ELFCLASS64 && f.at<Elf64_Ehdr>(0) != nullptr) {
    if (bits != nullptr) *bits = 64;
    return read_elf<Elf64_Ehdr, Elf64_Phdr, Elf64_Shdr, Elf64_Sym, Elf64_Dyn, Elf64_Nhdr>(f);
  }
  if (ident[EI_CLASS] == ELFCLASS32 && f.at<Elf32_Ehdr>(0) != nullptr) {
    if (bits != nullptr) *bits = 32;
    return read_elf<Elf32_Ehdr, Elf32_Phdr, Elf32_Shdr, Elf32_Sym, Elf32_Dyn, Elf32_Nhdr>(f);
  }
  return std::nullopt;
}

}  // namespace faultline
