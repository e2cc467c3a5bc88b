// Launching a program under a session: see launcher.h. Moved here from `faultline run` so that
// the C++ API starts programs with exactly the same checks and environment.
#include "controller/launcher.h"

#include <dirent.h>
#include <elf.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <linux/close_range.h>
#include <linux/futex.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <new>

#include "controller/launcher_seccomp.h"

extern char** environ;

namespace faultline::launch {
namespace {

// Linux follows at most this many #! interpreters (BINPRM_MAX_RECURSION in fs/exec.c).
constexpr int kMaxInterpreterDepth = 4;

std::string errno_message(int err) { return std::strerror(err); }

[[noreturn]] void fail(ErrorKind kind, int status, const std::string& message) {
  throw_control_error(kind, status, message);
}

// ---- file descriptors ------------------------------------------------------------------------

// CMD must inherit exactly what the caller gave faultline (`3>file` included), and none of the
// descriptors faultline opened itself (the session's shm file, policy files, pipes).
void cloexec_all_except(const std::vector<int>& inherited) {
  for (int fd : open_fds()) {
    if (fd <= STDERR_FILENO || std::find(inherited.begin(), inherited.end(), fd) != inherited.end())
      continue;
    const int flags = fcntl(fd, F_GETFD);
    if (flags >= 0) fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
  }
}

// ---- finding CMD -------------------------------------------------------------------------------

void require_executable(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0)
    fail(errno == ENOENT || errno == ENOTDIR ? ErrorKind::kCommandNotFound
                                             : ErrorKind::kCannotExecute,
         errno == ENOENT || errno == ENOTDIR ? kStatusNotFound : kStatusCannotExecute,
         fmt::format("{}: {}", path, errno_message(errno)));
  if (S_ISDIR(st.st_mode))
    fail(ErrorKind::kCannotExecute, kStatusCannotExecute, fmt::format("{}: is a directory", path));
  if (access(path.c_str(), X_OK) != 0)
    fail(ErrorKind::kCannotExecute, kStatusCannotExecute,
         fmt::format("{}: {}", path, errno_message(errno)));
}

// ---- can the preload reach it? -------------------------------------------------------------

struct ElfInfo {
  unsigned char elf_class = 0;  // ELFCLASS32 / ELFCLASS64
  unsigned char data = 0;       // ELFDATA2LSB / ELFDATA2MSB
  std::uint16_t machine = 0;
  std::uint16_t type = 0;
  bool valid = false;  // the header and program headers are what the kernel would load
  bool has_interp = false;
};

constexpr unsigned char kNativeData =
    std::endian::native == std::endian::little ? ELFDATA2LSB : ELFDATA2MSB;

// The kernel's own limits on program headers (load_elf_phdrs in fs/binfmt_elf.c).
template <class Ehdr, class Phdr>
void scan_program_headers(int fd, ElfInfo& info) {
  Ehdr header;
  if (pread(fd, &header, sizeof header, 0) != static_cast<ssize_t>(sizeof header)) return;
  info.type = header.e_type;
  const std::size_t size = std::size_t{header.e_phnum} * header.e_phentsize;
  if (header.e_phentsize != sizeof(Phdr) || size == 0 || size > 65536) return;
  std::vector<Phdr> phdrs(header.e_phnum);
  if (pread(fd, phdrs.data(), size, static_cast<off_t>(header.e_phoff)) !=
      static_cast<ssize_t>(size))
    return;
  info.valid = true;
  info.has_interp =
      std::any_of(phdrs.begin(), phdrs.end(), [](const Phdr& p) { return p.p_type == PT_INTERP; });
}

// nullopt: not an ELF file at all.
std::optional<ElfInfo> read_elf(int fd) {
  unsigned char ident[EI_NIDENT];
  if (pread(fd, ident, sizeof ident, 0) != EI_NIDENT || std::memcmp(ident, ELFMAG, SELFMAG) != 0)
    return std::nullopt;
  ElfInfo info;
  info.elf_class = ident[EI_CLASS];
  info.data = ident[EI_DATA];
  unsigned char machine[2] = {0, 0};  // e_machine: offset 18 in both classes
  if (pread(fd, machine, 2, 18) == 2)
    info.machine =
        info.data == ELFDATA2MSB ? (machine[0] << 8 | machine[1]) : (machine[1] << 8 | machine[0]);
  // A foreign byte order cannot match our shim anyway: the architecture check reports it.
  if (info.data != kNativeData) return info;
  if (info.elf_class == ELFCLASS64) scan_program_headers<Elf64_Ehdr, Elf64_Phdr>(fd, info);
  if (info.elf_class == ELFCLASS32) scan_program_headers<Elf32_Ehdr, Elf32_Phdr>(fd, info);
  return info;
}

std::string architecture_text(const ElfInfo& elf) {
  std::string machine;
  switch (elf.machine) {
    case EM_X86_64:
      machine = "x86-64";
      break;
    case EM_386:
      machine = "i386";
      break;
    case EM_AARCH64:
      machine = "arm64";
      break;
    case EM_ARM:
      machine = "arm";
      break;
    case EM_RISCV:
      machine = "riscv";
      break;
    case EM_PPC64:
      machine = "ppc64";
      break;
    case EM_S390:
      machine = "s390";
      break;
    default:
      machine = fmt::format("machine {}", elf.machine);
  }
  const int bits = elf.elf_class == ELFCLASS64 ? 64 : 32;
  return fmt::format("{}-bit {}{}", bits, machine, elf.data == ELFDATA2MSB ? " big-endian" : "");
}

// The interpreter the kernel would run for a script: its #! line, or /bin/sh (execvp runs a
// file the kernel cannot execute, ENOEXEC, through the shell).
std::string script_interpreter(int fd) {
  char buffer[256];  // BINPRM_BUF_SIZE: the kernel reads no more of a #! line
  const ssize_t n = pread(fd, buffer, sizeof buffer, 0);
  if (n < 2 || buffer[0] != '#' || buffer[1] != '!') return "/bin/sh";
  const std::string_view line(buffer + 2, static_cast<std::size_t>(n) - 2);
  const std::size_t start = line.find_first_not_of(" \t");
  if (start == std::string_view::npos || line[start] == '\n') return "/bin/sh";
  const std::size_t end = line.find_first_of(" \t\n", start);
  return std::string(line.substr(start, end == std::string_view::npos ? end : end - start));
}

// The dynamic loader ignores LD_PRELOAD (from anywhere but the trusted system directories)
// when the exec is "secure" (AT_SECURE): set-user-ID or set-group-ID that changes our ids, or
// file capabilities, unless no_new_privs or a nosuid mount makes the kernel ignore them.
std::optional<std::string> secure_exec_reason(const std::string& path, const struct stat& st) {
  struct statvfs fs;
  if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1) return std::nullopt;
  if (statvfs(path.c_str(), &fs) == 0 && (fs.f_flag & ST_NOSUID)) return std::nullopt;
  if ((st.st_mode & S_ISUID) && st.st_uid != getuid()) return "set-user-ID";
  if ((st.st_mode & S_ISGID) && (st.st_mode & S_IXGRP) && st.st_gid != getgid())
    return "set-group-ID";
  if (getuid() != 0 && getxattr(path.c_str(), "security.capability", nullptr, 0) > 0)
    return "given file capabilities";
  return std::nullopt;
}

void vet_elf(const std::string& shown, const ElfInfo& elf, const ElfInfo& shim,
             const std::string& shim_path, bool seccomp, std::string_view preload_only) {
  if (seccomp &&
      (elf.elf_class != shim.elf_class || elf.data != shim.data || elf.machine != shim.machine))
    fail(ErrorKind::kUnreachable, kStatusUsage,
         fmt::format("{} is a {} program: the seccomp backend's filter knows the system calls "
                     "of {} only",
                     shown, architecture_text(elf), architecture_text(shim)));
  if (elf.elf_class != shim.elf_class || elf.data != shim.data || elf.machine != shim.machine)
    fail(ErrorKind::kUnreachable, kStatusUsage,
         fmt::format("{} is a {} program and {} is {}: the loader would skip the "
                     "preload. Point FAULTLINE_SHIM at a libfaultline.so built for {}",
                     shown, architecture_text(elf), shim_path, architecture_text(shim),
                     architecture_text(elf)));
  if (!elf.valid || (elf.type != ET_EXEC && elf.type != ET_DYN))
    fail(ErrorKind::kCannotExecute, kStatusCannotExecute,
         fmt::format("{}: not an executable this system can run", shown));
  // Explore has no seccomp backend: say where the program can be faulted.
  if (!elf.has_interp && !seccomp && !preload_only.empty())
    fail(ErrorKind::kUnreachable, kStatusUsage,
         fmt::format("{} is statically linked (as Go programs usually are): no LD_PRELOAD "
                     "library can reach it, and {} has the preload backend only. Run it with "
                     "`faultline run`, whose seccomp backend reaches static and Go programs, or "
                     "run a dynamically linked build",
                     shown, preload_only));
  if (!elf.has_interp && !seccomp)
    fail(ErrorKind::kUnreachable, kStatusUsage,
         fmt::format("{} is statically linked: no LD_PRELOAD library can reach it, "
                     "so no fault would ever fire. Run a dynamically linked build",
                     shown));
}

struct FdCloser {
  int fd;
  ~FdCloser() { close(fd); }
};

// Refuses CMD when the preload could not reach it; follows #! interpreters as the kernel does
// (set-id bits on a script are ignored by Linux, so only the interpreter's count).
void vet(const std::string& path, const std::string& shown, const ElfInfo& shim,
         const std::string& shim_path, int depth, std::vector<std::string>& warnings, bool seccomp,
         std::string_view preload_only) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    // Execute-only files run fine but cannot be inspected.
    warnings.push_back(
        fmt::format("cannot read {} to check that the preload reaches it ({}); running it anyway",
                    shown, errno_message(errno)));
    return;
  }
  const FdCloser closer{fd};
  if (const auto elf = read_elf(fd)) {
    struct stat st;
    if (fstat(fd, &st) == 0) {
      if (auto reason = secure_exec_reason(path, st); reason && seccomp)
        fail(ErrorKind::kUnreachable, kStatusUsage,
             fmt::format("{} is {}: under the seccomp backend (no new privileges) it would run "
                         "without that privilege, which is not the program you meant to test. "
                         "Run a copy without that privilege",
                         shown, *reason));
      else if (reason)
        fail(ErrorKind::kUnreachable, kStatusUsage,
             fmt::format("{} is {}: the loader runs it in secure-execution mode and "
                         "ignores LD_PRELOAD, so no fault would ever fire. Run a "
                         "copy without that privilege",
                         shown, *reason));
    }
    vet_elf(shown, *elf, shim, shim_path, seccomp, preload_only);
    return;
  }
  if (depth >= kMaxInterpreterDepth)
    fail(ErrorKind::kCannotExecute, kStatusCannotExecute,
         fmt::format("{}: too many levels of #! interpreters", shown));
  const std::string interpreter = script_interpreter(fd);
  if (access(interpreter.c_str(), X_OK) != 0)
    fail(ErrorKind::kCannotExecute, kStatusCannotExecute,
         fmt::format("{}: bad interpreter {}: {}", shown, interpreter, errno_message(errno)));
  vet(interpreter, fmt::format("{} (the interpreter of {})", interpreter, shown), shim, shim_path,
      depth + 1, warnings, seccomp, preload_only);
}

ElfInfo read_shim_elf(const std::string& shim) {
  const int fd = open(shim.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    fail(ErrorKind::kNoShim, kStatusUsage, fmt::format("{}: {}", shim, errno_message(errno)));
  const FdCloser closer{fd};
  const auto elf = read_elf(fd);
  if (!elf || !elf->valid)
    fail(ErrorKind::kNoShim, kStatusUsage, fmt::format("{}: not a shared library", shim));
  return *elf;
}

// ---- the shim --------------------------------------------------------------------------------

std::string executable_dir() {
  std::error_code error;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", error);
  return error ? std::string(".") : exe.parent_path().string();
}

// The canonical path when the library is there and readable; nullopt otherwise.
std::optional<std::string> usable_shim(const std::string& candidate) {
  std::error_code error;
  const auto path = std::filesystem::canonical(candidate, error);
  if (error || access(path.c_str(), R_OK) != 0) return std::nullopt;
  // LD_PRELOAD separates its entries with spaces and colons and has no quoting.
  if (path.string().find_first_of(" :\t\n") != std::string::npos)
    fail(ErrorKind::kNoShim, kStatusUsage,
         fmt::format("{}: LD_PRELOAD cannot carry a path with spaces or colons; "
                     "move the library or set FAULTLINE_SHIM",
                     path.string()));
  return path.string();
}

// ---- starting CMD ------------------------------------------------------------------------------

bool has_key(std::string_view entry, std::string_view key) {
  return entry.size() > key.size() && entry.starts_with(key) && entry[key.size()] == '=';
}

std::vector<char*> c_strings(const std::vector<std::string>& strings) {
  std::vector<char*> pointers;
  for (const auto& s : strings) pointers.push_back(const_cast<char*>(s.c_str()));
  pointers.push_back(nullptr);
  return pointers;
}

// What went wrong in the child before its exec, sent back through the report pipe.
enum class ChildStage : int { kExec, kChdir, kRedirect, kSeccomp };
struct ChildReport {
  ChildStage stage;
  int error;
};

// Every descriptor from 3 up closes at exec. close_range(CLOSE_RANGE_CLOEXEC) (Linux 5.11)
// is one system call; older kernels get the bounded loop. Async-signal-safe either way.
void cloexec_from_3() {
  if (syscall(SYS_close_range, 3u, ~0u, CLOSE_RANGE_CLOEXEC) == 0) return;
  struct rlimit limit;
  const rlim_t top =
      getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < 65536 ? limit.rlim_cur : 65536;
  for (int fd = 3; fd < static_cast<int>(top); ++fd) {
    const int flags = fcntl(fd, F_GETFD);
    if (flags >= 0) fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
  }
}

// The seccomp hand-over between the child and spawn() (SeccompSpawn), in a shared anonymous
// page: once its filter is installed the child may make no system call the filter traps
// (write to the report pipe, close) until someone answers them, so it speaks through memory
// and futexes only.
enum HandoffState : int { kHandoffWaiting, kHandoffInstalled, kHandoffTaken, kHandoffFailed };
struct SeccompHandoff {
  std::atomic<int> state;
  int listener;
  int error;
  int wait_killable;
  int exec_failed;
  ChildReport report;
};

long futex(std::atomic<int>& word, int op, int value, const timespec* timeout) {
  return syscall(SYS_futex, reinterpret_cast<int*>(&word), op, value, timeout, nullptr, 0);
}

// In the child, async-signal-safe: no new privileges, the filter, the listener's number
// published; then it waits (futex, getppid: untrapped calls) until the parent has taken it.
bool install_filter(const SeccompSpawn& spawn, SeccompHandoff& handoff, pid_t parent) {
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    handoff.error = errno;
    return false;
  }
  unsigned flags = SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
  long fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, spawn.filter);
  handoff.wait_killable = 1;
  if (fd < 0 && errno == EINVAL) {  // a kernel before 5.19: no WAIT_KILLABLE_RECV
    flags = SECCOMP_FILTER_FLAG_NEW_LISTENER;
    fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, spawn.filter);
    handoff.wait_killable = 0;
  }
  if (fd < 0) {
    handoff.error = errno;
    return false;
  }
  handoff.listener = static_cast<int>(fd);
  handoff.state.store(kHandoffInstalled, std::memory_order_release);
  futex(handoff.state, FUTEX_WAKE, 1, nullptr);
  const timespec tick{0, 100'000'000};
  while (handoff.state.load(std::memory_order_acquire) == kHandoffInstalled) {
    futex(handoff.state, FUTEX_WAIT, kHandoffInstalled, &tick);
    if (getppid() != parent) _exit(kStatusUsage);  // nobody will ever answer its calls
  }
  return true;
}

SeccompHandoff* g_child_handoff = nullptr;  // set in the parent before fork, read in the child

// dup2 onto a standard descriptor, leaving it open across exec.
bool redirect(int from, int to) {
  if (from < 0 || from == to) return true;
  return dup2(from, to) == to;
}

// In the child: only async-signal-safe calls (the caller may have threads).
[[noreturn]] void exec_child(const std::string& path, std::vector<char*>& argv,
                             std::vector<char*>& envp, const SpawnOptions& options,
                             const sigset_t& mask, int report, pid_t parent) {
  ChildReport outcome{ChildStage::kExec, 0};
  if (options.new_process_group) setpgid(0, 0);
  if (options.die_with_parent) prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (!redirect(options.stdin_fd, STDIN_FILENO) || !redirect(options.stdout_fd, STDOUT_FILENO) ||
      !redirect(options.stderr_fd, STDERR_FILENO)) {
    outcome = {ChildStage::kRedirect, errno};
  } else if (!options.cwd.empty() && chdir(options.cwd.c_str()) != 0) {
    outcome = {ChildStage::kChdir, errno};
  } else if (const int error = options.deny_io_uring ? deny_io_uring() : 0; error != 0) {
    outcome = {ChildStage::kSeccomp, error};
  } else {
    if (options.inherited_fds == nullptr) cloexec_from_3();
    sigprocmask(SIG_SETMASK, &mask, nullptr);
    SeccompHandoff* const handoff = g_child_handoff;
    if (options.seccomp != nullptr) {
      if (!install_filter(*options.seccomp, *handoff, parent)) {
        handoff->state.store(kHandoffFailed, std::memory_order_release);
        futex(handoff->state, FUTEX_WAKE, 1, nullptr);
        _exit(kStatusUsage);
      }
    }
    // execvpe, not execve: a file without #! that the kernel refuses (ENOEXEC) runs through
    // /bin/sh as under a shell; `path` holds a slash, so there is no second PATH search.
    execvpe(path.c_str(), argv.data(), envp.data());
    outcome.error = errno;
    if (options.seccomp != nullptr) {  // the report pipe's write may be trapped now
      handoff->report = outcome;
      handoff->exec_failed = 1;
      _exit(kStatusNotFound);
    }
  }
  [[maybe_unused]] const ssize_t written = write(report, &outcome, sizeof outcome);
  _exit(kStatusNotFound);
}

std::string seccomp_refusal(int error) {
  if (error == EBUSY)
    return "the seccomp backend cannot start: a seccomp filter already installed around "
           "faultline has its own listener (a container runtime or a supervisor), and the "
           "kernel allows one. Run faultline outside it, or use --backend preload for a "
           "dynamically linked program";
  if (error == EINVAL || error == ENOSYS)
    return fmt::format(
        "the seccomp backend cannot start: this kernel has no seccomp user notification "
        "({}; Linux 5.0 or later with CONFIG_SECCOMP_FILTER is needed). Use --backend preload "
        "for a dynamically linked program",
        errno_message(error));
  return fmt::format(
      "the seccomp backend cannot start: installing the filter failed: {} (a seccomp policy "
      "around faultline may forbid seccomp() itself; allow it, or use --backend preload)",
      errno_message(error));
}

// In the parent: waits for the child's filter and takes its listener with pidfd_getfd.
void take_listener(pid_t child, SeccompHandoff& handoff, SeccompSpawn& out) {
  const int pidfd = static_cast<int>(syscall(SYS_pidfd_open, child, 0));
  if (pidfd < 0) {
    kill(child, SIGKILL);
    wait_for(child, 0);
    fail(ErrorKind::kSystem, kStatusUsage,
         fmt::format("the seccomp backend cannot start: pidfd_open: {}", errno_message(errno)));
  }
  const timespec tick{0, 100'000'000};
  for (;;) {
    const int state = handoff.state.load(std::memory_order_acquire);
    if (state != kHandoffWaiting) break;
    futex(handoff.state, FUTEX_WAIT, kHandoffWaiting, &tick);
    pollfd exited{pidfd, POLLIN, 0};
    if (handoff.state.load(std::memory_order_acquire) == kHandoffWaiting &&
        poll(&exited, 1, 0) == 1) {
      close(pidfd);  // it ended before its filter (a redirect or chdir failed): the report says
      return;
    }
  }
  if (handoff.state.load(std::memory_order_acquire) == kHandoffInstalled) {
    out.listener = static_cast<int>(syscall(SYS_pidfd_getfd, pidfd, handoff.listener, 0));
    const int error = errno;
    if (out.listener < 0) {
      kill(child, SIGKILL);
      close(pidfd);
      wait_for(child, 0);
      fail(ErrorKind::kSystem, kStatusUsage,
           fmt::format("the seccomp backend cannot start: pidfd_getfd: {} (a ptrace policy "
                       "such as Yama's ptrace_scope=3 forbids taking the listener)",
                       errno_message(error)));
    }
    out.wait_killable = handoff.wait_killable != 0;
    handoff.state.store(kHandoffTaken, std::memory_order_release);
    futex(handoff.state, FUTEX_WAKE, 1, nullptr);
  }
  close(pidfd);
}

bool read_report(int fd, ChildReport& report) {
  ssize_t n;
  do n = read(fd, &report, sizeof report);
  while (n < 0 && errno == EINTR);
  return n == static_cast<ssize_t>(sizeof report);
}

}  // namespace

// ---- seed, session name, log path -------------------------------------------------------------

std::uint64_t random_u64() {
  std::uint64_t value = 0;
  while (getrandom(&value, sizeof value, 0) != static_cast<ssize_t>(sizeof value))
    if (errno != EINTR)
      fail(ErrorKind::kSystem, kStatusUsage, fmt::format("getrandom: {}", std::strerror(errno)));
  return value;
}

std::uint64_t parse_seed(std::string_view text, std::string_view source) {
  std::uint64_t seed = 0;
  const auto [stop, error] = std::from_chars(text.data(), text.data() + text.size(), seed);
  if (text.empty() || error != std::errc() || stop != text.data() + text.size())
    fail(ErrorKind::kUsage, kStatusUsage,
         fmt::format("{}{}: a seed is a whole number from 0 to {}", source, text, UINT64_MAX));
  return seed;
}

std::uint64_t choose_seed(std::optional<std::uint64_t> explicit_seed, const Policy& policy) {
  if (explicit_seed) return *explicit_seed;
  if (const char* env = std::getenv("FAULTLINE_SEED"); env != nullptr && *env != '\0')
    return parse_seed(env, "FAULTLINE_SEED=");
  return policy.has_seed ? policy.seed : random_u64();
}

std::string choose_session_name(const std::string& requested) {
  if (requested.empty()) return fmt::format("fl-{}-{:04x}", getpid(), random_u64() & 0xffff);
  if (!valid_session_name(requested))
    fail(ErrorKind::kUsage, kStatusUsage,
         fmt::format("bad session name '{}' (use [A-Za-z0-9_.-], at most {} characters)", requested,
                     kSessionNameMax - 1));
  return requested;
}

std::optional<std::string> log_path_override(const std::string& explicit_log, const char* what) {
  std::string path = explicit_log;
  if (path.empty()) {
    const char* env = std::getenv("FAULTLINE_LOG");
    if (env == nullptr || *env == '\0') return std::nullopt;
    path = env;
    what = "FAULTLINE_LOG";
  }
  // The block holds the absolute path in a fixed field: refuse what would be cut short.
  if (std::optional<std::string> problem = log_path_problem(path, what))
    fail(ErrorKind::kUsage, kStatusUsage, *problem);
  return path;
}

// ---- the program ---------------------------------------------------------------------------

// The PATH search execvp would do, done here so that the file we vet is the file we run.
std::string resolve_command(const std::string& command) {
  if (command.empty()) fail(ErrorKind::kCommandNotFound, kStatusNotFound, "empty command name");
  if (command.find('/') != std::string::npos) {
    require_executable(command);
    return command;
  }
  const char* env = std::getenv("PATH");
  const std::string search = env != nullptr ? env : "/bin:/usr/bin";  // glibc's _CS_PATH
  bool denied = false;
  std::size_t start = 0;
  while (start <= search.size()) {
    const std::size_t colon = std::min(search.find(':', start), search.size());
    const std::string dir = search.substr(start, colon - start);
    const std::string candidate = (dir.empty() ? "." : dir) + "/" + command;
    struct stat st;
    if (stat(candidate.c_str(), &st) == 0) {
      if (S_ISREG(st.st_mode) && access(candidate.c_str(), X_OK) == 0) return candidate;
      denied = true;
    }
    start = colon + 1;
  }
  if (denied)
    fail(ErrorKind::kCannotExecute, kStatusCannotExecute,
         fmt::format("{}: found in PATH but not executable", command));
  fail(ErrorKind::kCommandNotFound, kStatusNotFound, fmt::format("{}: command not found", command));
}

void vet_program(const std::string& program, const std::string& shim,
                 std::vector<std::string>& warnings, bool seccomp, std::string_view preload_only) {
  vet(program, program, read_shim_elf(shim), shim, 0, warnings, seccomp, preload_only);
}

// ---- the shim --------------------------------------------------------------------------------

std::string named_shim(const std::string& path, std::string_view label) {
  if (access(path.c_str(), R_OK) != 0)
    fail(ErrorKind::kNoShim, kStatusUsage,
         fmt::format("{}{}: {}", label, path, errno_message(errno)));
  if (auto usable = usable_shim(path)) return *usable;
  fail(ErrorKind::kNoShim, kStatusUsage, fmt::format("{}{}: not usable", label, path));
}

std::string find_shim(const std::vector<std::string>& defaults) {
  if (const char* env = std::getenv("FAULTLINE_SHIM"); env != nullptr && *env != '\0')
    return named_shim(env, "FAULTLINE_SHIM=");
  for (const auto& candidate : defaults)
    if (auto usable = usable_shim(candidate)) return *usable;
  fail(ErrorKind::kNoShim, kStatusUsage,
       fmt::format("cannot find libfaultline.so (looked for {}): set FAULTLINE_SHIM to its path",
                   fmt::join(defaults, " and ")));
}

std::vector<std::string> executable_shim_defaults() {
  const std::string dir = executable_dir();
  return {dir + "/libfaultline.so", dir + "/../lib/faultline/libfaultline.so"};
}

// ---- the environment -----------------------------------------------------------------------

std::vector<std::string> child_environment(const std::vector<std::string>& base,
                                           const std::string& shim, const std::string& session) {
  static constexpr std::string_view kReplaced[] = {
      "LD_PRELOAD", "FAULTLINE_SESSION", "FAULTLINE_POLICY", "FAULTLINE_SEED", "FAULTLINE_LOG"};
  std::vector<std::string> env;
  std::string existing_preload;
  for (const std::string& entry : base) {
    if (has_key(entry, "LD_PRELOAD")) existing_preload = entry.substr(sizeof "LD_PRELOAD");
    if (std::none_of(std::begin(kReplaced), std::end(kReplaced),
                     [&](std::string_view key) { return has_key(entry, key); }))
      env.push_back(entry);
  }
  std::string preload = "LD_PRELOAD=" + shim;
  if (!existing_preload.empty()) preload += fmt::format(":{}", existing_preload);
  env.push_back(std::move(preload));
  env.push_back("FAULTLINE_SESSION=" + session);
  return env;
}

std::vector<std::string> current_environment() {
  std::vector<std::string> env;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry)
    env.emplace_back(*entry);
  return env;
}

void check_not_disabled(const std::vector<std::string>& env, bool has_policy,
                        std::vector<std::string>& warnings) {
  std::string value;
  for (const std::string& entry : env)
    if (has_key(entry, "FAULTLINE_DISABLE")) value = entry.substr(sizeof "FAULTLINE_DISABLE");
  if (value.empty() || value == "0") return;
  if (has_policy)
    fail(ErrorKind::kUsage, kStatusUsage,
         fmt::format("FAULTLINE_DISABLE={} is set: the shim would stay inert and the policy "
                     "would never apply. Unset it (or set it to 0) to run under the policy",
                     value));
  warnings.push_back(fmt::format(
      "FAULTLINE_DISABLE={} is set: the shim stays inert, so faults added live will not reach "
      "the program",
      value));
}

// ---- the session ---------------------------------------------------------------------------

std::unique_ptr<ControlSession> create_session(const std::string& name, const Policy& policy) {
  std::string error;
  auto session = ControlSession::create(name, policy, error);
  if (session) {
    // The controller is a member (it keeps the session alive while it starts), but a power
    // cut kills the program, never the process that must revert the files after it.
    session->block().header.cut_owner_pid.store(getpid(), std::memory_order_relaxed);
    return session;
  }
  struct stat st;
  const bool taken = stat(shm_file_path(name).c_str(), &st) == 0;
  fail(ErrorKind::kSession, kStatusUsage,
       fmt::format("cannot create session '{}': {}{}", name, error,
                   taken ? " (the name is taken: pick another with -s, or see "
                           "`faultline sessions`)"
                         : ""));
}

void register_stray_members(ControlSession& session) {
  const std::string wanted = "FAULTLINE_SESSION=" + session.name();
  const std::vector<pid_t> known = session.live_pids();
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return;
  std::vector<char> environment(65536);
  while (const dirent* entry = readdir(proc)) {
    char* end = nullptr;
    const long pid = std::strtol(entry->d_name, &end, 10);
    if (pid <= 0 || *end != '\0' || pid == getpid()) continue;
    if (std::find(known.begin(), known.end(), static_cast<pid_t>(pid)) != known.end()) continue;
    // Other users' environments are unreadable: they cannot be members of our session.
    const int fd = open(fmt::format("/proc/{}/environ", pid).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    const ssize_t n = read(fd, environment.data(), environment.size());
    close(fd);
    if (n <= 0) continue;
    const std::string_view text(environment.data(), static_cast<std::size_t>(n));
    for (std::size_t at = 0; at < text.size();) {
      const std::size_t stop = std::min(text.find('\0', at), text.size());
      if (text.substr(at, stop - at) == wanted) {
        session.register_pid(static_cast<pid_t>(pid));
        break;
      }
      at = stop + 1;
    }
  }
  closedir(proc);
}

// ---- starting it ---------------------------------------------------------------------------

std::vector<int> open_fds() {
  std::vector<int> fds;
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return fds;
  while (const dirent* entry = readdir(dir)) {
    const int fd = std::atoi(entry->d_name);
    if (entry->d_name[0] != '.' && fd != dirfd(dir)) fds.push_back(fd);
  }
  closedir(dir);
  return fds;
}

pid_t spawn(const std::string& path, const std::vector<std::string>& argv,
            const std::vector<std::string>& env, const SpawnOptions& options) {
  sigset_t mask;
  if (options.child_mask != nullptr)
    mask = *options.child_mask;
  else
    sigemptyset(&mask);
  int report[2];
  if (pipe2(report, O_CLOEXEC) != 0)
    fail(ErrorKind::kSystem, kStatusUsage, fmt::format("pipe: {}", errno_message(errno)));
  if (options.inherited_fds != nullptr) cloexec_all_except(*options.inherited_fds);
  // Everything the child needs is built before fork: after it, only async-signal-safe calls.
  auto argv_pointers = c_strings(argv);
  auto env_pointers = c_strings(env);
  SeccompHandoff* handoff = nullptr;
  if (options.seccomp != nullptr) {
    void* page = mmap(nullptr, sizeof(SeccompHandoff), PROT_READ | PROT_WRITE,
                      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED)
      fail(ErrorKind::kSystem, kStatusUsage, fmt::format("mmap: {}", errno_message(errno)));
    handoff = new (page) SeccompHandoff{};
  }
  g_child_handoff = handoff;
  const pid_t parent = getpid();
  const pid_t child = fork();
  if (child == 0) exec_child(path, argv_pointers, env_pointers, options, mask, report[1], parent);
  const int fork_error = errno;
  close(report[1]);
  if (handoff != nullptr && child > 0) take_listener(child, *handoff, *options.seccomp);
  // Both sides set the group: no window in which a signal to the group misses the child.
  if (child > 0 && options.new_process_group) setpgid(child, child);
  ChildReport outcome{};
  bool failed = child > 0 && read_report(report[0], outcome);
  close(report[0]);
  if (handoff != nullptr) {
    if (!failed && handoff->exec_failed) {
      outcome = handoff->report;
      failed = true;
    }
    const int state = handoff->state.load(std::memory_order_acquire);
    const int error = handoff->error;
    munmap(handoff, sizeof(SeccompHandoff));
    if (child > 0 && state == kHandoffFailed) {
      wait_for(child, 0);
      fail(ErrorKind::kUnreachable, kStatusUsage, seccomp_refusal(error));
    }
    if (failed && options.seccomp->listener >= 0) {
      close(options.seccomp->listener);
      options.seccomp->listener = -1;
    }
  }
  if (child < 0)
    fail(ErrorKind::kSystem, kStatusUsage, fmt::format("fork: {}", errno_message(fork_error)));
  if (failed) {
    wait_for(child, 0);
    const std::string& shown = argv.empty() ? path : argv.front();
    if (outcome.stage == ChildStage::kChdir)
      fail(ErrorKind::kCannotExecute, kStatusCannotExecute,
           fmt::format("cannot change to {} for {}: {}", options.cwd, shown,
                       errno_message(outcome.error)));
    if (outcome.stage == ChildStage::kSeccomp)
      fail(ErrorKind::kSystem, kStatusCannotExecute,
           fmt::format("{}: cannot deny io_uring ([target] io_uring = \"deny\"): seccomp: {}",
                       shown, errno_message(outcome.error)));
    if (outcome.stage == ChildStage::kRedirect)
      fail(ErrorKind::kSystem, kStatusCannotExecute,
           fmt::format("{}: cannot set up stdin/stdout/stderr: {}", shown,
                       errno_message(outcome.error)));
    fail(outcome.error == ENOENT ? ErrorKind::kCommandNotFound : ErrorKind::kCannotExecute,
         outcome.error == ENOENT ? kStatusNotFound : kStatusCannotExecute,
         fmt::format("{}: {}", shown, errno_message(outcome.error)));
  }
  return child;
}

int wait_for(pid_t child, int options) {
  int status = 0;
  pid_t done;
  do done = waitpid(child, &status, options);
  while (done < 0 && errno == EINTR);
  if (done < 0)
    fail(ErrorKind::kSystem, kStatusUsage, fmt::format("waitpid: {}", errno_message(errno)));
  return done == child ? status : -1;
}

int exit_status(int wait_status) {
  if (WIFSIGNALED(wait_status)) return 128 + WTERMSIG(wait_status);
  return WIFEXITED(wait_status) ? WEXITSTATUS(wait_status) : kStatusUsage;
}

}  // namespace faultline::launch
