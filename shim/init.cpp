// Start-up of libfaultline.so: make sure only one copy of the shim acts in a process, resolve
// the real functions, join or create the session named by the environment, keep membership
// right across fork, and let only the process that created a session remove it. Every
// failure here disarms and reports once; the shim never stops a program it was not told to
// stop.
#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include "policy/policy.h"
#include "session/session.h"
#include "shim/engine/engine.h"
#include "shim/engine/log_limit.h"
#include "shim/engine/memory.h"
#include "shim/engine/safe_copy.h"
#include "shim/engine/shim.h"
#include "shim/engine/stack.h"

namespace faultline::shim {

namespace {

// The session outlives nothing: the mapping stays for the life of the process (wrappers
// on other threads may be using it until exit), so the ControlSession object is never destroyed.
ControlSession* g_session = nullptr;

// The process that created the session under its default name (fl-<pid>), which removes it
// at exit. Named by its pid and start time, not by a flag: a child made by a raw
// clone(2) skips the atfork handlers and inherits every variable, and must not delete the
// session its parent still uses. pid 0: this process removes nothing.
pid_t g_creator_pid = 0;
std::uint64_t g_creator_start = 0;

// getpid(2) itself: the value no library caches, which a raw clone cannot leave stale.
pid_t real_pid() { return static_cast<pid_t>(syscall(SYS_getpid)); }

bool is_creator() {
  if (g_creator_pid == 0 || real_pid() != g_creator_pid) return false;
  return process_start_time(g_creator_pid) == g_creator_start;
}

const char* env(const char* name) {
  const char* v = getenv(name);
  return v && *v ? v : nullptr;
}

// Decimal only, as `faultline run --seed` takes it: one seed must replay the same way
// whichever way it was given.
bool parse_u64(const char* text, std::uint64_t& out) {
  if (*text < '0' || *text > '9') return false;
  char* end = nullptr;
  errno = 0;
  unsigned long long v = strtoull(text, &end, 10);
  if (errno || !end || *end) return false;
  out = v;
  return true;
}

void after_fork_child() {
  Guard guard;
  seen_batch_after_fork_child();  // the parent's pending `seen` is the parent's to credit
  engine_after_fork_child();
  stack_after_fork_child();
  memory_after_fork_child();
  scratch_after_fork_child();
  log_limit_after_fork_child();
  if (g_session) g_member.store(g_session->register_pid(getpid()), std::memory_order_relaxed);
}

// Another libfaultline.so already serves this process (an LD_PRELOAD naming a second copy,
// then `faultline run` preloading its own): the first copy in symbol-lookup order is the one
// the program's calls reach, and its real functions are the next copy's wrappers. Were both
// armed, every call would be decided and counted twice; so only the copy whose marker symbol
// is the one lookup finds acts, and the others stay passthroughs. Compared by the object
// that defines the symbol: our own reference to it would be interposed too.
void marker_symbol() {}
bool another_copy_acts(std::string& first, std::string& mine) {
  void* global = dlsym(RTLD_DEFAULT, "faultline_shim_instance");
  if (global == nullptr) return false;  // not in the global scope (dlopen'd): nobody else is
  Dl_info theirs{}, ours{};
  if (!dladdr(global, &theirs) || !dladdr(reinterpret_cast<void*>(&marker_symbol), &ours))
    return false;
  if (theirs.dli_fbase == ours.dli_fbase) return false;
  first = theirs.dli_fname ? theirs.dli_fname : "?";
  mine = ours.dli_fname ? ours.dli_fname : "?";
  return true;
}

// Compiles FAULTLINE_POLICY; on any error reports it and returns false (nothing armed).
bool load_policy(const char* path, Policy& policy) {
  CompileResult result = compile_policy_file(path);
  if (result.error) {
    diag("faultline: %s", result.error->to_string().c_str());
    diag("faultline: policy refused; %s runs with no faults armed", program_invocation_short_name);
    return false;
  }
  policy = std::move(*result.policy);
  for (const std::string& w : policy.warnings) diag("faultline: %s", w.c_str());
  // Only the launcher can gate io_uring (docs/limits.md): a filter installed from here would
  // need no_new_privs, which would strip set-id programs this one runs of their privileges.
  if (policy.deny_io_uring)
    diag(
        "faultline: warning: %s: [target] io_uring = \"deny\" is applied only by `faultline "
        "run` (and the API and experiments); under plain LD_PRELOAD %s may still use io_uring "
        "unseen",
        path, program_invocation_short_name);
  if (const char* seed = env("FAULTLINE_SEED")) {
    if (!parse_u64(seed, policy.seed)) {
      diag("faultline: FAULTLINE_SEED='%s' is not an unsigned integer; no faults armed", seed);
      return false;
    }
    policy.has_seed = true;
  }
  if (!policy.has_seed) {
    // Record a seed even when none was asked for, so the run can be replayed.
    policy.seed =
        static_cast<std::uint64_t>(realtime_ns()) ^ (static_cast<std::uint64_t>(getpid()) << 32);
  }
  if (const char* log = env("FAULTLINE_LOG")) {
    // The block would cut a longer path and the log would land in a file of another name.
    // The faults still run as asked; only the log the user cannot have is left out.
    if (std::optional<std::string> problem = log_path_problem(log, "FAULTLINE_LOG")) {
      diag("faultline: %s; no event log is written", problem->c_str());
      policy.log_path.clear();
    } else {
      policy.log_path = log;
    }
  }
  return true;
}

void start() {
  if (getauxval(AT_SECURE)) return;  // setuid/setcap: stay inert, trust no environment
  const char* disable = env("FAULTLINE_DISABLE");
  if (disable && std::strcmp(disable, "0") != 0) return;
  resolve_all_real();
  diag_init(env("FAULTLINE_DIAG"));
  // The `faultline` CLI defines this symbol (cli/main.cpp) and exports it: the
  // controller never injects into itself, even with the shim in its environment (a container
  // that preloads every process), so that `panic` always works. Its children are exec'd new
  // images without the symbol and join their session as usual.
  if (dlsym(RTLD_DEFAULT, "faultline_controller") != nullptr) return;
  std::string first_copy, this_copy;
  if (another_copy_acts(first_copy, this_copy)) {
    diag(
        "faultline: %s is already loaded in this process; this copy (%s) stays inert, so no "
        "call is counted twice",
        first_copy.c_str(), this_copy.c_str());
    return;
  }
  engine_reset_process_identity();

  const char* policy_path = env("FAULTLINE_POLICY");
  const char* session_name = env("FAULTLINE_SESSION");
  if (!policy_path && !session_name) {
    diag(
        "faultline: neither FAULTLINE_POLICY nor FAULTLINE_SESSION is set; no faults armed "
        "(use `faultline run` or set them)");
    return;
  }
  SessionError error;
  std::unique_ptr<ControlSession> session;
  if (policy_path) {
    Policy policy;
    if (!load_policy(policy_path, policy)) return;
    std::string name = session_name ? session_name : "fl-" + std::to_string(getpid());
    bool created = false;
    session = ControlSession::attach_or_create(name, policy, created, error);
    if (session && created && !session_name) {
      // Children exec'd from here join this session instead of each making their own.
      setenv("FAULTLINE_SESSION", name.c_str(), 1);
      g_creator_pid = real_pid();
      g_creator_start = process_start_time(g_creator_pid);
    }
  } else {
    session = ControlSession::attach(session_name, error);
  }
  if (!session) {
    diag("faultline: %s; no faults armed", error.message.c_str());
    return;
  }
  g_member.store(session->register_pid(getpid()), std::memory_order_relaxed);
  // The mapping is all the shim needs; the fd would shift every descriptor number the
  // program gets (its first open() would return 4, not 3).
  session->release_fd();
  g_session = session.release();
  ControlBlock& block = g_session->block();
  g_block.store(&block, std::memory_order_release);
  g_armed_word.store(&block.header.armed_mask, std::memory_order_release);
  // Before the program runs: its first call with a `stack` fault does not wait for a dlopen.
  stack_prepare(block);
  pthread_atfork(nullptr, nullptr, after_fork_child);
}

__attribute__((constructor(101))) void faultline_init() {
  Guard guard;
  scratch_reserve();  // before the program can have freed any memory (shim/engine/safe_copy.h)
  try {
    start();
  } catch (...) {
    diag("faultline: start-up failed; no faults armed");
  }
}

__attribute__((destructor)) void faultline_fini() {
  Guard guard;
  // This thread's pending `seen` (engine.h), and its later calls one by one.
  seen_batch_flush(true);
  // The last second's suppressed count: its summary line would otherwise be lost.
  log_flush_suppressed();
  if (!g_session || !is_creator()) return;
  // Processes of the session that outlive us (a daemon the program started) keep it:
  // `faultline panic` must still reach them, and `faultline sessions` sweeps it after them.
  const std::vector<pid_t> alive = g_session->leave(g_creator_pid);
  if (!alive.empty())
    diag("faultline: session %s kept: %zu processes still run; `faultline panic %s` reaches them",
         g_session->name().c_str(), alive.size(), g_session->name().c_str());
}

}  // namespace

// fork: the child is a member before fork returns to the parent. Its own atfork handler
// registers it too, but only once it runs: a daemon's parents may exit first, and a `run`
// that looked then would take the session for dead and remove it under the daemon.
FL_EXPORT pid_t fork() noexcept {
  seen_batch_flush();  // counted once, in the parent (the child's copy is dropped)
  const pid_t pid = FL_REAL(fork)();
  if (pid > 0 && g_session) {
    Guard guard;
    if (guard.entered()) g_session->register_pid(pid);
  }
  return pid;
}

// The marker another copy of the shim looks up (another_copy_acts). Exported, and in
// exports.map.in: the one name the shim exports that is not a libc call.
FL_EXPORT void faultline_shim_instance() {}

}  // namespace faultline::shim
