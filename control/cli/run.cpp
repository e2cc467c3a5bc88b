// `faultline run`: compile the policy, make sure the preload can actually reach CMD, create the
// session, run CMD with the shim preloaded, forward signals to it, report what was injected and
// remove the session. CMD is refused rather than run unfaulted when no preload could reach it
// (statically linked, set-id, another architecture): a fault test that silently injects
// nothing is worse than no test.
#include <dirent.h>
#include <elf.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>

#include "cli.h"
#include "output.h"
#include "session.h"

extern char** environ;

namespace faultline::cli {
namespace {

// As a shell reports a command it could not run.
constexpr int kExitCannotExecute = 126;
constexpr int kExitNotFound = 127;
// Linux follows at most this many #! interpreters (BINPRM_MAX_RECURSION in fs/exec.c).
constexpr int kMaxInterpreterDepth = 4;
constexpr int kForwardedSignals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};

// ---- file descriptors ------------------------------------------------------------------------

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

// ---- seed, session name, log path -------------------------------------------------------------

std::uint64_t random_u64() {
  std::uint64_t value = 0;
  while (getrandom(&value, sizeof value, 0) != static_cast<ssize_t>(sizeof value))
    if (errno != EINTR) fail(kExitUsage, fmt::format("getrandom: {}", std::strerror(errno)));
  return value;
}

// The same rule for --seed and FAULTLINE_SEED: a whole number that fits 64 bits (no sign, no
// wrap-around of "-1").
std::uint64_t parse_seed(std::string_view text, std::string_view source) {
  std::uint64_t seed = 0;
  const auto [stop, error] = std::from_chars(text.data(), text.data() + text.size(), seed);
  if (text.empty() || error != std::errc() || stop != text.data() + text.size())
    fail(kExitUsage,
         fmt::format("{}{}: a seed is a whole number from 0 to {}", source, text, UINT64_MAX));
  return seed;
}

// --seed, then FAULTLINE_SEED, then the policy's seed, then a fresh random one.
std::uint64_t choose_seed(const RunOptions& options, const Policy& policy) {
  if (options.seed) return parse_seed(*options.seed, "--seed ");
  if (const char* env = std::getenv("FAULTLINE_SEED"); env != nullptr && *env != '\0')
    return parse_seed(env, "FAULTLINE_SEED=");
  return policy.has_seed ? policy.seed : random_u64();
}

std::string choose_session_name(const RunOptions& options) {
  if (options.session.empty()) return fmt::format("fl-{}-{:04x}", getpid(), random_u64() & 0xffff);
  if (!valid_session_name(options.session))
    fail(kExitUsage, fmt::format("bad session name '{}' (use [A-Za-z0-9_.-], at most {} "
                                 "characters)",
                                 options.session, kSessionNameMax - 1));
  return options.session;
}

// --log, then FAULTLINE_LOG; nullopt keeps the policy's [log] path. (set_log_path makes a
// relative path absolute from here: CMD may change directory before it logs anything.)
std::optional<std::string> log_path_override(const RunOptions& options) {
  if (!options.log.empty()) return options.log;
  const char* env = std::getenv("FAULTLINE_LOG");
  if (env == nullptr || *env == '\0') return std::nullopt;
  return std::string(env);
}

// ---- finding CMD -------------------------------------------------------------------------------

std::string errno_message(int err) { return std::strerror(err); }

void require_executable(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0)
    fail(errno == ENOENT || errno == ENOTDIR ? kExitNotFound : kExitCannotExecute,
         fmt::format("{}: {}", path, errno_message(errno)));
  if (S_ISDIR(st.st_mode)) fail(kExitCannotExecute, fmt::format("{}: is a directory", path));
  if (access(path.c_str(), X_OK) != 0)
    fail(kExitCannotExecute, fmt::format("{}: {}", path, errno_message(errno)));
}

// The PATH search execvp would do, done here so that the file we vet is the file we run.
std::string resolve_command(const std::string& command) {
  if (command.empty()) fail(kExitNotFound, "empty command name");
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
    fail(kExitCannotExecute, fmt::format("{}: found in PATH but not executable", command));
  fail(kExitNotFound, fmt::format("{}: command not found", command));
}

// ---- can the preload reach it?
// -------------------------------------------------------------------

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
             const std::string& shim_path) {
  if (elf.elf_class != shim.elf_class || elf.data != shim.data || elf.machine != shim.machine)
    fail(kExitUsage, fmt::format("{} is a {} program and {} is {}: the loader would skip the "
                                 "preload. Point FAULTLINE_SHIM at a libfaultline.so built for {}",
                                 shown, architecture_text(elf), shim_path, architecture_text(shim),
                                 architecture_text(elf)));
  if (!elf.valid || (elf.type != ET_EXEC && elf.type != ET_DYN))
    fail(kExitCannotExecute, fmt::format("{}: not an executable this system can run", shown));
  if (!elf.has_interp)
    fail(kExitUsage, fmt::format("{} is statically linked: no LD_PRELOAD library can reach it, "
                                 "so no fault would ever fire. Run a dynamically linked build",
                                 shown));
}

struct FdCloser {
  int fd;
  ~FdCloser() { close(fd); }
};

// Refuses CMD when the preload could not reach it; follows #! interpreters as the kernel does
// (set-id bits on a script are ignored by Linux, so only the interpreter's count).
void vet_program(const std::string& path, const std::string& shown, const ElfInfo& shim,
                 const std::string& shim_path, int depth) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    // Execute-only files run fine but cannot be inspected.
    fmt::print(stderr,
               "faultline: warning: cannot read {} to check that the preload reaches "
               "it ({}); running it anyway\n",
               shown, errno_message(errno));
    return;
  }
  const FdCloser closer{fd};
  if (const auto elf = read_elf(fd)) {
    struct stat st;
    if (fstat(fd, &st) == 0)
      if (auto reason = secure_exec_reason(path, st))
        fail(kExitUsage, fmt::format("{} is {}: the loader runs it in secure-execution mode and "
                                     "ignores LD_PRELOAD, so no fault would ever fire. Run a "
                                     "copy without that privilege",
                                     shown, *reason));
    vet_elf(shown, *elf, shim, shim_path);
    return;
  }
  if (depth >= kMaxInterpreterDepth)
    fail(kExitCannotExecute, fmt::format("{}: too many levels of #! interpreters", shown));
  const std::string interpreter = script_interpreter(fd);
  if (access(interpreter.c_str(), X_OK) != 0)
    fail(kExitCannotExecute,
         fmt::format("{}: bad interpreter {}: {}", shown, interpreter, errno_message(errno)));
  vet_program(interpreter, fmt::format("{} (the interpreter of {})", interpreter, shown), shim,
              shim_path, depth + 1);
}

// ---- the shim
// ------------------------------------------------------------------------------------

std::string executable_dir() {
  std::error_code error;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", error);
  return error ? std::string(".") : exe.parent_path().string();
}

// $FAULTLINE_SHIM, else next to this executable (build tree), else ../lib/faultline (install).
std::string find_shim() {
  std::vector<std::string> candidates;
  if (const char* env = std::getenv("FAULTLINE_SHIM"); env != nullptr && *env != '\0') {
    if (access(env, R_OK) != 0)
      fail(kExitUsage, fmt::format("FAULTLINE_SHIM={}: {}", env, errno_message(errno)));
    candidates.emplace_back(env);
  } else {
    const std::string dir = executable_dir();
    candidates = {dir + "/libfaultline.so", dir + "/../lib/faultline/libfaultline.so"};
  }
  for (const auto& candidate : candidates) {
    std::error_code error;
    const auto path = std::filesystem::canonical(candidate, error);
    if (error || access(path.c_str(), R_OK) != 0) continue;
    // LD_PRELOAD separates its entries with spaces and colons and has no quoting.
    if (path.string().find_first_of(" :\t\n") != std::string::npos)
      fail(kExitUsage, fmt::format("{}: LD_PRELOAD cannot carry a path with spaces or colons; "
                                   "move the library or set FAULTLINE_SHIM",
                                   path.string()));
    return path.string();
  }
  fail(kExitUsage, fmt::format("cannot find libfaultline.so (looked for {}): set FAULTLINE_SHIM "
                               "to its path",
                               fmt::join(candidates, " and ")));
}

ElfInfo read_shim_elf(const std::string& shim) {
  const int fd = open(shim.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(kExitUsage, fmt::format("{}: {}", shim, errno_message(errno)));
  const FdCloser closer{fd};
  const auto elf = read_elf(fd);
  if (!elf || !elf->valid) fail(kExitUsage, fmt::format("{}: not a shared library", shim));
  return *elf;
}

// ---- starting CMD ------------------------------------------------------------------------------

bool has_key(std::string_view entry, std::string_view key) {
  return entry.size() > key.size() && entry.starts_with(key) && entry[key.size()] == '=';
}

// The caller's environment with the shim preloaded first and the session named. Variables the
// block already resolved (policy, seed, log path) are dropped so no process of the tree can
// apply a stale copy on top of it.
std::vector<std::string> child_environment(const std::string& shim, const std::string& session) {
  static constexpr std::string_view kReplaced[] = {
      "LD_PRELOAD", "FAULTLINE_SESSION", "FAULTLINE_POLICY", "FAULTLINE_SEED", "FAULTLINE_LOG"};
  std::vector<std::string> env;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    const std::string_view text(*entry);
    if (std::none_of(std::begin(kReplaced), std::end(kReplaced),
                     [&](std::string_view key) { return has_key(text, key); }))
      env.emplace_back(text);
  }
  std::string preload = "LD_PRELOAD=" + shim;
  if (const char* existing = std::getenv("LD_PRELOAD"); existing != nullptr && *existing != '\0')
    preload += fmt::format(":{}", existing);
  env.push_back(std::move(preload));
  env.push_back("FAULTLINE_SESSION=" + session);
  return env;
}

std::vector<char*> c_strings(const std::vector<std::string>& strings) {
  std::vector<char*> pointers;
  for (const auto& s : strings) pointers.push_back(const_cast<char*>(s.c_str()));
  pointers.push_back(nullptr);
  return pointers;
}

// Restores the signal mask on every way out of spawn_and_wait, errors included.
class SignalMask {
 public:
  explicit SignalMask(const sigset_t& block) { sigprocmask(SIG_BLOCK, &block, &previous_); }
  ~SignalMask() { sigprocmask(SIG_SETMASK, &previous_, nullptr); }
  SignalMask(const SignalMask&) = delete;
  SignalMask& operator=(const SignalMask&) = delete;
  const sigset_t& previous() const { return previous_; }

 private:
  sigset_t previous_;
};

// In the child: only async-signal-safe calls. An exec failure travels back through `report`
// (close-on-exec, so the parent reads EOF when the exec succeeds).
[[noreturn]] void exec_child(const std::string& path, std::vector<char*>& argv,
                             std::vector<char*>& envp, const sigset_t& mask, int report) {
  sigprocmask(SIG_SETMASK, &mask, nullptr);
  // execvpe, not execve: a file without #! that the kernel refuses (ENOEXEC) runs through
  // /bin/sh as under a shell; `path` holds a slash, so there is no second PATH search.
  execvpe(path.c_str(), argv.data(), envp.data());
  const int err = errno;
  [[maybe_unused]] const ssize_t written = write(report, &err, sizeof err);
  _exit(kExitNotFound);
}

int read_exec_error(int fd) {
  int err = 0;
  ssize_t n;
  do n = read(fd, &err, sizeof err);
  while (n < 0 && errno == EINTR);
  return n == static_cast<ssize_t>(sizeof err) ? err : 0;
}

int wait_for(pid_t child, int options) {
  int status = 0;
  pid_t done;
  do done = waitpid(child, &status, options);
  while (done < 0 && errno == EINTR);
  if (done < 0) fail(kExitUsage, fmt::format("waitpid: {}", errno_message(errno)));
  return done == child ? status : -1;
}

// A terminal's ^C, ^\ or hangup goes to the whole foreground process group (si_code SI_KERNEL):
// CMD, in our group, already has its copy, and a second ^C means "force quit" to many programs.
// A signal CMD sent to its own group is not echoed back to it either.
bool child_already_has(const siginfo_t& info, pid_t child) {
  if (info.si_code == SI_KERNEL) return getpgid(child) == getpgrp();
  return info.si_code == SI_USER && info.si_pid == child;
}

// Waits for CMD with the forwarded signals and SIGCHLD blocked and taken synchronously: no
// handler runs at an awkward moment and no signal is lost between fork and wait.
int wait_forwarding(pid_t child, const sigset_t& waited) {
  for (;;) {
    siginfo_t info;
    const int sig = sigwaitinfo(&waited, &info);
    if (sig < 0) {
      if (errno == EINTR) continue;  // e.g. resumed by SIGCONT
      fail(kExitUsage, fmt::format("sigwaitinfo: {}", errno_message(errno)));
    }
    if (sig == SIGCHLD) {
      if (const int status = wait_for(child, WNOHANG); status != -1) return status;
    } else if (!child_already_has(info, child)) {
      kill(child, sig);
    }
  }
}

// Returns CMD's wait status.
int spawn_and_wait(const std::string& path, const std::vector<std::string>& args,
                   const std::vector<std::string>& env, const std::vector<int>& inherited_fds) {
  sigset_t waited;
  sigemptyset(&waited);
  sigaddset(&waited, SIGCHLD);
  for (int sig : kForwardedSignals) sigaddset(&waited, sig);
  const SignalMask mask(waited);

  int report[2];
  if (pipe2(report, O_CLOEXEC) != 0)
    fail(kExitUsage, fmt::format("pipe: {}", errno_message(errno)));
  cloexec_all_except(inherited_fds);
  auto argv = c_strings(args);
  auto envp = c_strings(env);
  const pid_t child = fork();
  if (child == 0) exec_child(path, argv, envp, mask.previous(), report[1]);
  const int fork_error = errno;
  close(report[1]);
  const int exec_error = child > 0 ? read_exec_error(report[0]) : 0;
  close(report[0]);
  if (child < 0) fail(kExitUsage, fmt::format("fork: {}", errno_message(fork_error)));
  if (exec_error != 0) {
    wait_for(child, 0);
    fail(exec_error == ENOENT ? kExitNotFound : kExitCannotExecute,
         fmt::format("{}: {}", args.front(), errno_message(exec_error)));
  }
  return wait_forwarding(child, waited);
}

int exit_status(int wait_status) {
  if (WIFSIGNALED(wait_status)) return 128 + WTERMSIG(wait_status);
  return WIFEXITED(wait_status) ? WEXITSTATUS(wait_status) : kExitUsage;
}

// ---- after CMD -------------------------------------------------------------------------------

// Injection times relative to the session start: "+1.234s".
std::string since_start(std::int64_t realtime_ns, std::int64_t start_ns) {
  if (realtime_ns == 0) return "-";
  return "+" + human_age(std::max<std::int64_t>(0, realtime_ns - start_ns));
}

void print_summary(const Session& session, int wait_status) {
  const SessionState state = read_state(session.block());
  const auto faults = read_faults(session);
  std::string ending = fmt::format("exit status {}", exit_status(wait_status));
  if (WIFSIGNALED(wait_status)) ending += fmt::format(" ({})", signal_text(WTERMSIG(wait_status)));
  const std::string flags =
      state.flags != 0 ? fmt::format(", session {}", state_name(state.flags, 0)) : "";
  fmt::print(stderr, "faultline: session {}, seed {}: {}, {} injected{}\n", session.name(),
             state.seed, ending, state.injected_total, flags);
  if (faults.empty()) return;
  const std::int64_t start = session.block().header.start_real_ns.load(std::memory_order_relaxed);
  Table table({"FAULT", "SEEN", "MATCHED", "INJECTED", "FIRST", "LAST"},
              {false, true, true, true, false, false});
  for (const FaultView& f : faults)
    table.add_row({std::string(fixed_text(f.spec.name)), std::to_string(f.seen),
                   std::to_string(f.matched), std::to_string(f.injected),
                   since_start(f.first_injection_ns, start),
                   since_start(f.last_injection_ns, start)});
  table.print(stderr, "  ");
}

// The summary's facts as one JSON object, for scripts (`--json`, `--json-summary`).
std::string json_summary(const Session& session, int wait_status) {
  const SessionState state = read_state(session.block());
  std::vector<std::string> items;
  for (const FaultView& f : read_faults(session)) items.push_back(fault_json(f).str());
  JsonObject o;
  o.add("session", session.name()).add("seed", state.seed);
  o.add("exit_status", exit_status(wait_status));
  if (WIFSIGNALED(wait_status))
    o.add("signal", signal_text(WTERMSIG(wait_status)));
  else
    o.add_null("signal");
  o.add("state", state_name(state.flags, state.armed_mask));
  o.add("injected_total", state.injected_total).add_raw("faults", json_array(items));
  return o.str();
}

// `--json-summary FILE` (`-`: stderr, CMD owns stdout). Failing to write it is reported but
// does not replace CMD's exit status.
void write_json_summary(const std::string& file, const std::string& json) {
  if (file == "-") {
    fmt::print(stderr, "{}\n", json);
    return;
  }
  std::ofstream out(file, std::ios::trunc);
  out << json << '\n';
  if (!out.flush())
    fmt::print(stderr, "faultline: warning: cannot write {}: {}\n", file, errno_message(errno));
}

// Removes the session on every way out of `run` once it exists, errors included.
struct SessionRemover {
  std::string name;
  ~SessionRemover() { Session::remove(name); }
};

std::unique_ptr<Session> create_session(const std::string& name, const Policy& policy) {
  std::string error;
  auto session = Session::create(name, policy, error);
  if (session) return session;
  struct stat st;
  const bool taken = stat(shm_file_path(name).c_str(), &st) == 0;
  fail(kExitUsage, fmt::format("cannot create session '{}': {}{}", name, error,
                               taken ? " (the name is taken: pick another with -s, or see "
                                       "`faultline sessions`)"
                                     : ""));
}

}  // namespace

int run_command(const RunOptions& options) {
  // Before faultline opens anything: these are the descriptors CMD must inherit.
  const std::vector<int> inherited_fds = open_fds();
  if (options.command.empty()) fail(kExitUsage, "no command: faultline run [OPTIONS] -- CMD");

  const Policy policy = options.policy.empty() ? Policy{} : compile_policy_or_fail(options.policy);
  const std::uint64_t seed = choose_seed(options, policy);
  const std::string name = choose_session_name(options);
  const std::string program = resolve_command(options.command.front());
  const std::string shim = find_shim();
  vet_program(program, program, read_shim_elf(shim), shim, 0);

  const auto session = create_session(name, policy);
  const SessionRemover remover{name};
  session->set_seed(seed);
  if (const auto log = log_path_override(options)) session->set_log_path(*log);
  // Session::create registered this process as a member: the session cannot look dead (and
  // be swept by `faultline sessions`) before CMD's first process has joined it.
  if (!options.quiet && !options.json)
    fmt::print(stderr, "faultline: session {}, seed {}\n", name, seed);

  const int wait_status =
      spawn_and_wait(program, options.command, child_environment(shim, name), inherited_fds);
  // --json replaces the table with the JSON line (on stderr, like the table), even with -q:
  // a script asking for JSON wants nothing else there.
  if (options.json)
    fmt::print(stderr, "{}\n", json_summary(*session, wait_status));
  else if (!options.quiet)
    print_summary(*session, wait_status);
  if (!options.json_summary.empty())
    write_json_summary(options.json_summary, json_summary(*session, wait_status));
  return exit_status(wait_status);
}

}  // namespace faultline::cli
