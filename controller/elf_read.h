// The ELF facts of a program file read by hand (<elf.h>, every offset bounds-checked, the file
// mapped read-only): the loader it asks for, whether it is a Go build, what it imports and
// needs. Shared by `faultline doctor` (cli/doctor.cpp, which turns them into what each
// family can reach) and the backend choice every launcher makes (launcher_backend.h: `auto`
// is the seccomp backend for a static or Go program), so the two never disagree on either.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace faultline {

struct ElfRead {
  std::uint16_t machine = 0;
  std::uint16_t type = 0;
  bool has_interp = false;
  std::string interpreter;
  bool go_note = false;
  bool go_symbols = false;
  std::vector<std::string> needed;
  std::set<std::string> imports;
  bool defines_malloc = false;
};

// nullopt: not an ELF file (or not readable). `bits`: 32 or 64, when given.
std::optional<ElfRead> read_elf_file(const std::string& path, int* bits = nullptr);

}  // namespace faultline
