// Launching a program under a session: the steps `faultline run`, the C++ API
// (faultline::Session) and experiments share, so the two can never disagree on which program runs,
// whether a preload can reach it, which libfaultline.so is loaded or what environment the program
// gets.
//
//   resolve_command()  the PATH search execvp would do, so the file vetted is the file run
//   find_shim()        $FAULTLINE_SHIM, else the caller's default locations
//   vet_program()      refuses a program no preload reaches (static, set-id, other arch),
//                      following #! interpreters as the kernel does
//   child_environment() the caller's environment with the shim preloaded first and the
//                      session named; stale FAULTLINE_POLICY/SEED/LOG dropped
//   check_not_disabled() refuses a policy FAULTLINE_DISABLE would silently leave unarmed
//   spawn()            fork + exec, with the exec error reported back through a pipe; the
//                      io_uring gate (launcher_seccomp.h) installed just before the exec
//
// Every failure is a ControlError (control_error.h) with the status a shell or the CLI would
// give: 127 not found, 126 cannot execute, 2 refused or bad input.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "controller/control_error.h"
#include "policy/policy.h"
#include "session/session.h"

namespace faultline::launch {

// ---- seed, session name, log path --------------------------------------------------------

std::uint64_t random_u64();
// A whole number that fits 64 bits (no sign, no wrap-around of "-1"). `source` prefixes the
// message: "--seed ", "FAULTLINE_SEED=".
std::uint64_t parse_seed(std::string_view text, std::string_view source);
// `explicit_seed` (--seed, an API option), then FAULTLINE_SEED, then the policy's seed, then
// a fresh random one.
std::uint64_t choose_seed(std::optional<std::uint64_t> explicit_seed, const Policy& policy);
// `requested` when given (checked), else a fresh unique "fl-<pid>-<hex>".
std::string choose_session_name(const std::string& requested);
// `explicit_log` (--log, an API option) when not empty, then FAULTLINE_LOG; nullopt keeps the
// policy's [log] path.
// `what` names the explicit log in a refusal ("--log", or the API's option).
std::optional<std::string> log_path_override(const std::string& explicit_log,
                                             const char* what = "--log");

// ---- the program ---------------------------------------------------------------------------

// A name with a slash is checked as is; a bare name is searched in $PATH.
std::string resolve_command(const std::string& command);

// Refuses a program that no LD_PRELOAD library could reach: statically linked, set-id or
// file capabilities (secure execution), or built for another architecture than `shim`.
// A program that cannot be read (execute-only) is run anyway, with a warning added to
// `warnings` (without a "faultline: " prefix). With `seccomp` (the seccomp backend) a
// statically linked program is fine; set-id and other architectures are still refused.
// `preload_only` names a caller that has no seccomp backend (explore, whose stack sites need
// the preload): its refusal of a static program then says to use `faultline run`. The backend
// itself is chosen by launcher_backend.h.
void vet_program(const std::string& program, const std::string& shim,
                 std::vector<std::string>& warnings, bool seccomp = false,
                 std::string_view preload_only = {});

// ---- the shim ------------------------------------------------------------------------------

// A library the user named: it must be readable and loadable through LD_PRELOAD (no spaces
// or colons in its path). `label` names where the path came from in the message.
std::string named_shim(const std::string& path, std::string_view label);
// $FAULTLINE_SHIM when set (it must be usable), else the first usable of `defaults`.
std::string find_shim(const std::vector<std::string>& defaults);
// Where the `faultline` executable looks: next to itself (build tree), then
// ../lib/faultline (an installed prefix).
std::vector<std::string> executable_shim_defaults();

// ---- the environment -----------------------------------------------------------------------

// `base` ("KEY=VALUE" entries) with the shim preloaded first (ahead of an LD_PRELOAD `base`
// already has) and FAULTLINE_SESSION naming the session. FAULTLINE_POLICY, FAULTLINE_SEED and
// FAULTLINE_LOG are dropped: the block already holds what they would say, and no process of
// the tree may apply a stale copy on top of it.
std::vector<std::string> child_environment(const std::vector<std::string>& base,
                                           const std::string& shim, const std::string& session);
// This process's environment as "KEY=VALUE" entries.
std::vector<std::string> current_environment();

// FAULTLINE_DISABLE (any value but empty or "0", as the shim reads it) in `env` keeps the
// shim inert in every process of the session. With a policy that would run it unarmed
// without a word: refused (kUsage, status 2). Without one, a warning in `warnings`: faults
// added live would not reach the program either.
void check_not_disabled(const std::vector<std::string>& env, bool has_policy,
                        std::vector<std::string>& warnings);

// ---- the session ---------------------------------------------------------------------------

// Creates the block, naming the cause when the name is taken.
std::unique_ptr<ControlSession> create_session(const std::string& name, const Policy& policy);

// Registers, as members, the live processes of this user whose environment names the session
// (FAULTLINE_SESSION=<name>) but that are not in its pid table yet: a child forked inside libc
// (glibc's daemon(3) calls no interposed fork) registers itself only once it is scheduled,
// and its parent may have exited before. Called before a creator decides whether its
// session outlives it.
void register_stray_members(ControlSession& session);

// ---- starting it ---------------------------------------------------------------------------

// The descriptors open in this process now (to pass on exactly these with `inherited_fds`).
std::vector<int> open_fds();

// The seccomp backend (controller/seccomp/): a filter the child installs just before exec, with
// PR_SET_NO_NEW_PRIVS, SECCOMP_FILTER_FLAG_NEW_LISTENER and (where the kernel has it)
// SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV. The listener comes back to this process with
// pidfd_getfd while the child waits, before it execs: the program's first trapped call
// already has someone to answer it (once the caller serves `listener`).
struct SeccompSpawn {
  const void* filter = nullptr;  // a struct sock_fprog
  int listener = -1;             // out: the listener, close-on-exec, owned by the caller
  bool wait_killable = false;    // out: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV was accepted
};

struct SpawnOptions {
  // nullptr: no filter (the preload backend).
  SeccompSpawn* seccomp = nullptr;
  // The signal mask the program starts with; nullptr: an empty mask.
  const sigset_t* child_mask = nullptr;
  // Its own process group (so that the whole tree can be signalled at once).
  bool new_process_group = false;
  // Descriptors for its stdin/stdout/stderr; -1 keeps ours.
  int stdin_fd = -1;
  int stdout_fd = -1;
  int stderr_fd = -1;
  // nullptr: the program gets descriptors 0-2 only (the rest are closed at exec, in the child:
  // this process's own descriptors are left as they are). Otherwise exactly 0-2 and these:
  // every other descriptor of this process is marked close-on-exec (the CLI, which passes on
  // `3>file` as a shell would).
  const std::vector<int>* inherited_fds = nullptr;
  std::string cwd;  // empty: ours
  // SIGKILL when the thread that spawned it ends (PR_SET_PDEATHSIG): an experiment's
  // services must not outlive a runner that was itself SIGKILLed.
  bool die_with_parent = false;
  // [target] io_uring = "deny": io_uring_setup fails with ENOSYS in the program and its
  // whole tree (launcher_seccomp.h). Sets no_new_privs in the child.
  bool deny_io_uring = false;
};

// Starts `path` (resolved, with a slash) with `argv` and `env`; returns its pid once the exec
// has succeeded. An exec failure is reported as the shell would (127 not found, 126 other).
pid_t spawn(const std::string& path, const std::vector<std::string>& argv,
            const std::vector<std::string>& env, const SpawnOptions& options);

// waitpid retried on EINTR. Returns the wait status, or -1 when WNOHANG found it running.
int wait_for(pid_t child, int options);
// The shell's convention: the exit code, or 128+N when signal N ended it.
int exit_status(int wait_status);

}  // namespace faultline::launch
