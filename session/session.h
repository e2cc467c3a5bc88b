// Sessions: create, attach, validate and edit the shared control block.
//
// A session is /dev/shm/faultline.<name> (mode 0600). A block is built complete under no name
// (O_TMPFILE, or a hidden temporary name) and linked into place with its creator already a
// member, so no process ever sees a half-made block or takes a starting session for dead.
// Writers (the CLI, the API) serialise with flock(2) on the shm file and publish each fault
// through its seqlock, then bump the block generation and recompute the armed mask. Readers
// (the shim, `status`) never lock; the shim keeps only the mapping (release_fd), so the
// program's descriptor numbers are its own, and reopens the file the rare time it must lock.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "faultline/control_block.h"
#include "policy/policy.h"

namespace faultline {

bool valid_session_name(std::string_view name);
std::string shm_object_name(std::string_view session);  // "/faultline.<session>"
std::string shm_file_path(std::string_view session);    // "/dev/shm/faultline.<session>"

// Checks a mapped block before anything in it is trusted. Returns what is wrong, or nullopt.
std::optional<std::string> validate_block(const void* mem, std::size_t mapped_size,
                                          uid_t file_owner, uid_t expected_owner);

std::int64_t monotonic_ns();
std::int64_t realtime_ns();

// Reads one fault's spec through its seqlock (retries while a writer is active).
FaultSpec read_fault_spec(const FaultSlot& slot);
// What is wrong with a spec read from shared memory (a corrupted or hostile block), or
// nullopt. The shim skips such a fault instead of trusting it (every = 0 would divide by
// zero); the CLI shows the reason.
std::optional<std::string> check_fault_spec(const FaultSpec& spec);
// The same for a whole slot: its state and enabled words, an edit left half done by a writer
// that died, and the spec. The spec is read once, so what was checked is what is used.
struct SlotInspection {
  bool used = false;  // a sound slot in use: `spec` is its checked spec
  FaultSpec spec{};
  std::optional<std::string> problem;  // set for a corrupt slot
};
SlotInspection inspect_fault_slot(const FaultSlot& slot);
// nullopt for a free or a sound used slot, else what is wrong.
std::optional<std::string> check_fault_slot(const FaultSlot& slot);

// Copies the armed-mask computation used by every writer: families of enabled faults, or 0
// when the session is panicked, expired or over budget.
std::uint64_t compute_armed_mask(const ControlBlock& block);
std::string read_log_path(const ControlHeader& header);

// Why a ControlSession operation failed (create, attach, attach_or_create, add_fault). The
// message is for people; code that acts on a failure (attach_or_create joins on kExists,
// retries on kNotFound) tests the kind.
enum class SessionErrc : std::uint8_t {
  kBadName,        // not a valid session name
  kTooManyFaults,  // the policy holds more faults than a block
  kExists,         // create: the name is taken
  kNotFound,       // attach: no such session
  kRefused,        // attach: a block not to trust (another user's, open to others, bad version)
  kSystem,         // a system call failed (shm_open, ftruncate, mmap, link)
  kReplaced,       // attach_or_create: the block kept being replaced by others; not joined
  kFaultExists,    // add_fault: the session has a fault of that name
  kFull,           // add_fault: every fault slot is taken
};
struct SessionError {
  SessionErrc kind = SessionErrc::kSystem;
  std::string message;
};

// The handle of one session's shared-memory control block. Named apart from the public API's
// faultline::Session (include/faultline/faultline.hpp, which owns a launched program) so the
// two can be used in one file without an alias.
class ControlSession {
 public:
  ~ControlSession();
  ControlSession(const ControlSession&) = delete;
  ControlSession& operator=(const ControlSession&) = delete;

  // Creates a new session block and publishes `policy` into it. Fails if it exists.
  static std::unique_ptr<ControlSession> create(const std::string& name, const Policy& policy,
                                                SessionError& error);
  // Attaches to an existing session after validating it (owner, magic, version, size).
  static std::unique_ptr<ControlSession> attach(const std::string& name, SessionError& error);
  // The same, with the message only.
  static std::unique_ptr<ControlSession> create(const std::string& name, const Policy& policy,
                                                std::string& error);
  static std::unique_ptr<ControlSession> attach(const std::string& name, std::string& error);
  // Attach, or create from `policy` if there is no such session yet (race-free: the block is
  // linked into place whole, and the loser of a race joins the winner's). A block whose
  // member processes have all exited is replaced by a fresh one.
  static std::unique_ptr<ControlSession> attach_or_create(const std::string& name,
                                                          const Policy& policy, bool& created,
                                                          SessionError& error);
  static bool remove(const std::string& name);

  // Closes the descriptor and keeps only the mapping (the shim: a preload holds no fd of the
  // program's). Writer operations afterwards reopen the shm file for the lock, and go on
  // without it when the name no longer refers to this block (nobody else can reach it then).
  void release_fd();

  const std::string& name() const { return name_; }
  ControlBlock& block() { return *block_; }
  const ControlBlock& block() const { return *block_; }

  // Index of the fault slot with this name, or -1.
  int find_fault(std::string_view fault_name) const;
  std::vector<int> used_slots() const;
  // Slots that fail check_fault_slot, with the reason (a corrupted block).
  std::vector<std::pair<int, std::string>> corrupt_slots() const;

  // Writer operations (each takes the block's flock and bumps the generation).
  // Fails (kFaultExists, kFull) with nothing written.
  bool add_fault(const FaultSpec& spec, SessionError& error);
  bool remove_fault(int index);
  bool set_enabled(int index, bool enabled);
  bool update_fault(int index, const FaultSpec& spec);
  // Read-modify-write of one fault under the writer lock, so concurrent `set`s never lose an
  // edit. If `edit` throws, nothing is published and the exception propagates.
  bool edit_fault(int index, const std::function<void(FaultSpec&)>& edit);
  void panic();
  void resume();
  void set_log_path(const std::string& path);
  void set_seed(std::uint64_t seed);
  // The undo area of [durability] (controller/durability/undo_area.h); arms kFamDurable.
  void set_undo_dir(const std::string& dir);

  // Membership: a process registers itself when it attaches. Returns its index in the pid
  // table (and in ControlBlock::members), or -1 when the table is full of live members.
  int register_pid(pid_t pid);
  void unregister_pid(pid_t pid);
  std::vector<pid_t> live_pids() const;
  // Unlinks the block if no member is alive (under the writer lock). True when the name no
  // longer refers to this block.
  bool remove_if_dead();
  // The end of a creator's part (`faultline run`, the API, the shim that made the session):
  // leaves the member table, then unlinks the block unless other members are still alive (a
  // daemon that double-forked away keeps its session, and so stays reachable by `panic`).
  // Returns the members still alive; empty when the block was removed.
  std::vector<pid_t> leave(pid_t self);

 private:
  ControlSession(std::string name, int fd, ControlBlock* block);
  template <class F>
  void write_locked(F&& edit);
  // The descriptor to flock: fd_, or the shm file reopened (owned) after release_fd; -1
  // when the name no longer refers to this block.
  struct LockFd {
    int fd = -1;
    bool owned = false;
  };
  LockFd lock_fd() const;

  std::string name_;
  int fd_ = -1;
  dev_t dev_ = 0;  // the block file's identity, to recognise it when reopened by name
  ino_t ino_ = 0;
  ControlBlock* block_ = nullptr;
};

struct SessionInfo {
  std::string name;
  uid_t owner = 0;
  std::vector<pid_t> pids;
  int faults = 0;
  int faults_enabled = 0;
  std::uint64_t armed_mask = 0;
  std::uint32_t flags = 0;
  std::int64_t age_ns = 0;
  std::string problem;  // non-empty: block failed validation (another user's, bad version...)
};
// The start time of a process (/proc/PID/stat field 22, clock ticks since boot), 0 when it
// cannot be read: with the pid, it names one process even after its pid is reused.
std::uint64_t process_start_time(pid_t pid);

// Every faultline session in /dev/shm. With remove_dead, blocks of this user whose member
// processes are all gone are unlinked (and not listed).
std::vector<SessionInfo> list_sessions(bool remove_dead);

}  // namespace faultline
