// Start-up of libfaultline.so: resolve the real functions, join or create the session named
// by the environment, and keep membership right across fork. Every failure here disarms and
// reports once; the shim never stops a program it was not told to stop.
#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/auxv.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include "engine.h"
#include "log_limit.h"
#include "memory.h"
#include "policy.h"
#include "safe_copy.h"
#include "session.h"
#include "shim.h"
#include "stack.h"

namespace faultline::shim {

namespace {

// The session outlives nothing: the mapping stays for the life of the process (wrappers
// on other threads may be using it until exit), so the Session object is never destroyed.
Session* g_session = nullptr;
bool g_remove_at_exit = false;

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
  engine_after_fork_child();
  stack_after_fork_child();
  memory_after_fork_child();
  scratch_after_fork_child();
  log_limit_after_fork_child();
  if (g_session) g_member.store(g_session->register_pid(getpid()), std::memory_order_relaxed);
  // The child never removes a session its parent created.
  g_remove_at_exit = false;
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
  if (const char* seed = env("FAULTLINE_SEED")) {
    if (!parse_u64(seed, policy.seed)) {
      diag("faultline: FAULTLINE_SEED='%s' is not an unsigned integer; no faults armed", seed);
      return false;
    }
    policy.has_seed = true;
  }
  if (!policy.has_seed) {
    // Record a seed even when none was asked for, so the run can be replayed.
    policy.seed = static_cast<std::uint64_t>(realtime_ns()) ^
                  (static_cast<std::uint64_t>(getpid()) << 32);
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
  engine_reset_process_identity();

  const char* policy_path = env("FAULTLINE_POLICY");
  const char* session_name = env("FAULTLINE_SESSION");
  if (!policy_path && !session_name) {
    diag("faultline: neither FAULTLINE_POLICY nor FAULTLINE_SESSION is set; no faults armed "
         "(use `faultline run` or set them)");
    return;
  }
  std::string error;
  std::unique_ptr<Session> session;
  if (policy_path) {
    Policy policy;
    if (!load_policy(policy_path, policy)) return;
    std::string name = session_name ? session_name : "fl-" + std::to_string(getpid());
    bool created = false;
    session = Session::attach_or_create(name, policy, created, error);
    if (session && created && !session_name) {
      // Children exec'd from here join this session instead of each making their own.
      setenv("FAULTLINE_SESSION", name.c_str(), 1);
      g_remove_at_exit = true;
    }
  } else {
    session = Session::attach(session_name, error);
  }
  if (!session) {
    diag("faultline: %s; no faults armed", error.c_str());
    return;
  }
  g_member.store(session->register_pid(getpid()), std::memory_order_relaxed);
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
  scratch_reserve();  // before the program can have freed any memory (shim/safe_copy.h)
  try {
    start();
  } catch (...) {
    diag("faultline: start-up failed; no faults armed");
  }
}

__attribute__((destructor)) void faultline_fini() {
  Guard guard;
  // The last second's suppressed count: its summary line would otherwise be lost.
  log_flush_suppressed();
  if (g_session && g_remove_at_exit) Session::remove(g_session->name());
}

}  // namespace

}  // namespace faultline::shim
