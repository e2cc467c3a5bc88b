// Stack capture and the per-address cache (see stack.h).
//
// libunwind is loaded with dlopen(RTLD_LOCAL) on first need, not linked: Debian's libunwind.a
// is not position-independent, so it cannot go into libfaultline.so, and a DT_NEEDED on
// libunwind.so.8 would put its _Unwind_* and backtrace into the program's global scope, where
// they would replace libgcc's unwinder for the program's own C++ exceptions and glibc's
// backtrace(). RTLD_LOCAL keeps every libunwind symbol private to our handle; the shim still
// exports exactly the table's names. unw_backtrace walks .eh_frame CFI and keeps a per-thread
// cache of how to step out of each address, so a hot stack is unwound without syscalls,
// locks or allocation.
//
// Naming (symbols.cpp) runs once per distinct return address, under a small lock; the answer
// goes into an append-only, open-addressed table that readers probe without locks. Each
// record also caches the match bits of one rules epoch behind a per-record seqlock, so a hot
// call site costs one probe per frame. Memory comes from mmap, never from the program.
#define UNW_LOCAL_ONLY
#include "shim/engine/stack.h"

#include <dlfcn.h>
#include <libunwind.h>
#include <link.h>
#include <sched.h>
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <new>

#include "faultline/glob.h"
#include "faultline_config.h"
#include "session/session.h"
#include "shim/engine/shim.h"
#include "shim/engine/symbols.h"

namespace faultline::shim {
namespace {

#define FL_STRINGIFY2(x) #x
#define FL_STRINGIFY(x) FL_STRINGIFY2(x)

// ---- the unwinder ---------------------------------------------------------------------------

// Frames of the shim itself (and of libunwind) lead every capture: room for them on top of
// the frames kept.
constexpr int kOwnFramesSlack = 24;

struct Range {
  std::uintptr_t lo = 0;
  std::uintptr_t hi = 0;
  bool contains(std::uintptr_t a) const { return a >= lo && a < hi; }
};

enum LoadState : int { kNotLoaded = 0, kLoading = 1, kLoaded = 2 };

std::atomic<BacktraceFn> g_backtrace{nullptr};
std::atomic<BacktraceFn> g_test_backtrace{nullptr};
std::atomic<int> g_load_state{kNotLoaded};
// Written before g_backtrace is published (release), read after it is loaded (acquire).
Range g_shim_range;
Range g_unwinder_range;

struct RangeQuery {
  std::uintptr_t address;
  Range range;
};

// The extent of the PT_LOAD segments of the object that holds query->address.
int find_object_range(struct dl_phdr_info* info, std::size_t, void* data) {
  auto* query = static_cast<RangeQuery*>(data);
  Range r{~std::uintptr_t{0}, 0};
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD) continue;
    const std::uintptr_t lo = info->dlpi_addr + ph.p_vaddr;
    if (lo < r.lo) r.lo = lo;
    if (lo + ph.p_memsz > r.hi) r.hi = lo + ph.p_memsz;
  }
  if (!r.contains(query->address)) return 0;
  query->range = r;
  return 1;
}

Range object_range(const void* address) {
  RangeQuery query{reinterpret_cast<std::uintptr_t>(address), {}};
  dl_iterate_phdr(find_object_range, &query);
  return query.range;
}

#if defined(__SANITIZE_THREAD__)
struct StepLoop {
  int (*getcontext)(unw_context_t*);
  int (*init_local)(unw_cursor_t*, unw_context_t*);
  int (*step)(unw_cursor_t*);
  int (*get_reg)(unw_cursor_t*, unw_regnum_t, unw_word_t*);
};
StepLoop g_step_loop;

bool load_step_loop(void* handle) {
  g_step_loop.getcontext = reinterpret_cast<decltype(g_step_loop.getcontext)>(
      dlsym(handle, FL_STRINGIFY(unw_tdep_getcontext)));
  g_step_loop.init_local = reinterpret_cast<decltype(g_step_loop.init_local)>(
      dlsym(handle, FL_STRINGIFY(unw_init_local)));
  g_step_loop.step =
      reinterpret_cast<decltype(g_step_loop.step)>(dlsym(handle, FL_STRINGIFY(unw_step)));
  g_step_loop.get_reg =
      reinterpret_cast<decltype(g_step_loop.get_reg)>(dlsym(handle, FL_STRINGIFY(unw_get_reg)));
  return g_step_loop.getcontext && g_step_loop.init_local && g_step_loop.step &&
         g_step_loop.get_reg;
}

int backtrace_by_steps(void** buffer, int size) {
  unw_context_t context;
  unw_cursor_t cursor;
  if (g_step_loop.getcontext(&context) != 0 || g_step_loop.init_local(&cursor, &context) != 0)
    return 0;
  int n = 0;
  do {
    unw_word_t ip = 0;
    if (g_step_loop.get_reg(&cursor, UNW_REG_IP, &ip) != 0) break;
    buffer[n++] = reinterpret_cast<void*>(ip);
  } while (n < size && g_step_loop.step(&cursor) > 0);
  return n;
}
#endif

void load_unwinder() {
  void* handle = dlopen(FL_LIBUNWIND_SONAME, RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char* why = dlerror();
    diag(
        "faultline: cannot load %s (%s): 'stack' selectors will not match and 'log_stack' "
        "is ignored",
        FL_LIBUNWIND_SONAME, why ? why : "unknown error");
    return;
  }
  // unw_backtrace keeps, per thread, how to step out of each address it has seen: about
  // 0.2 us for a known 20-frame stack, against 8-10 us for an unw_step loop. (Its caching
  // policy stays the default, global one: the per-thread policy measured slower.)
  auto backtrace = reinterpret_cast<BacktraceFn>(dlsym(handle, "unw_backtrace"));
#if defined(__SANITIZE_THREAD__)
  // ThreadSanitizer tears a thread down before the pthread key destructor that frees that
  // per-thread cache (it takes a mutex at thread exit) and crashes in it: TSan builds of the
  // unit tests step frame by frame instead, which keeps no per-thread state.
  backtrace = load_step_loop(handle) ? backtrace_by_steps : nullptr;
#endif
  if (!backtrace) {
    diag("faultline: %s has no unw_backtrace: 'stack' selectors will not match",
         FL_LIBUNWIND_SONAME);
    return;
  }
  g_shim_range = object_range(reinterpret_cast<const void*>(&capture_stack));
  g_unwinder_range = object_range(dlsym(handle, "unw_backtrace"));
  symbols_prepare();  // the demangler, while a dlsym is safe here
  g_backtrace.store(backtrace, std::memory_order_release);
}

// Another thread loading: wait for it (a dlopen takes about a millisecond), but not forever:
// a fork child whose parent was loading, or a loader stalled in dlopen, must not hang calls.
constexpr int kLoadWaitSpins = 20000;

BacktraceFn unwinder() {
  if (BacktraceFn test = g_test_backtrace.load(std::memory_order_acquire)) return test;
  if (BacktraceFn fn = g_backtrace.load(std::memory_order_acquire)) return fn;
  int state = kNotLoaded;
  if (g_load_state.compare_exchange_strong(state, kLoading, std::memory_order_acq_rel)) {
    load_unwinder();
    g_load_state.store(kLoaded, std::memory_order_release);
  } else {
    for (int i = 0; i < kLoadWaitSpins && g_load_state.load(std::memory_order_acquire) == kLoading;
         ++i)
      sched_yield();
  }
  return g_backtrace.load(std::memory_order_acquire);
}

bool own_frame(std::uintptr_t ip) {
  return g_shim_range.contains(ip) || g_unwinder_range.contains(ip);
}

// ---- the cache ------------------------------------------------------------------------------

struct FrameRecord {
  std::uintptr_t ip;
  FrameInfo info;
  // Match bits of one rules epoch, behind a seqlock (odd while written). A reader that loses
  // a race recomputes; a writer that loses one skips caching: nobody waits.
  std::atomic<std::uint64_t> seq{0};
  std::atomic<std::uint32_t> epoch{0};
  std::atomic<std::uint64_t> bits{0};
  std::atomic<std::uint64_t> negative_bits{0};
};

constexpr std::size_t kTableSlots = 1u << 15;
constexpr std::size_t kMaxRecords = kTableSlots / 4 * 3;  // probes always end at an empty slot
constexpr std::size_t kArenaChunk = 1u << 20;
constexpr std::size_t kMaxArena = 64u << 20;
constexpr int kMaxInternedObjects = 256;
constexpr int kLockSpins = 2000;

struct Table {
  std::atomic<FrameRecord*> slot[kTableSlots];
};

std::atomic<Table*> g_table{nullptr};
std::atomic<bool> g_busy{false};
std::atomic<std::uint64_t> g_symbolised{0};

// Owned by the holder of g_busy.
struct Writer {
  SymbolCache* symbols = nullptr;
  char* arena = nullptr;
  std::size_t arena_left = 0;
  std::size_t arena_total = 0;
  std::size_t records = 0;
  int objects = 0;
  const char* object_paths[kMaxInternedObjects] = {};
};
Writer g_writer;

std::size_t slot_of(std::uintptr_t ip) {
  return static_cast<std::size_t>((ip * 0x9e3779b97f4a7c15ull) >> 49) & (kTableSlots - 1);
}

FrameRecord* find_record(const Table& table, std::uintptr_t ip) {
  for (std::size_t i = slot_of(ip), n = 0; n < kTableSlots; ++n, i = (i + 1) & (kTableSlots - 1)) {
    FrameRecord* r = table.slot[i].load(std::memory_order_acquire);
    if (!r || r->ip == ip) return r;
  }
  return nullptr;
}

// Bounded: a program's call never waits long on another thread's naming (the guard already
// keeps this thread from re-entering). The loser names the address without the cache: the
// same answer, more work.
bool lock() {
  for (int i = 0; i < kLockSpins; ++i) {
    if (!g_busy.exchange(true, std::memory_order_acquire)) return true;
    sched_yield();
  }
  return false;
}

void unlock() { g_busy.store(false, std::memory_order_release); }

void* arena_alloc(std::size_t size) {
  size = (size + 15) & ~std::size_t{15};
  if (size > kArenaChunk) return nullptr;
  if (size > g_writer.arena_left) {
    if (g_writer.arena_total + kArenaChunk > kMaxArena) return nullptr;
    void* p =
        mmap(nullptr, kArenaChunk, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return nullptr;
    g_writer.arena = static_cast<char*>(p);
    g_writer.arena_left = kArenaChunk;
    g_writer.arena_total += kArenaChunk;
  }
  void* out = g_writer.arena;
  g_writer.arena += size;
  g_writer.arena_left -= size;
  return out;
}

const char* intern(const char* text) {
  const std::size_t n = std::strlen(text) + 1;
  auto* p = static_cast<char*>(arena_alloc(n));
  if (p) std::memcpy(p, text, n);
  return p;
}

// Object paths repeat across records: one copy each.
const char* intern_object(const char* path) {
  for (int i = 0; i < g_writer.objects; ++i)
    if (std::strcmp(g_writer.object_paths[i], path) == 0) return g_writer.object_paths[i];
  const char* copy = intern(path);
  if (copy && g_writer.objects < kMaxInternedObjects)
    g_writer.object_paths[g_writer.objects++] = copy;
  return copy;
}

FrameInfo frame_info(const SymbolText& text, std::uintptr_t ip) {
  FrameInfo info;
  info.function = text.function;
  info.symbol = text.symbol;
  info.object = text.object;
  info.object_name = path_basename(text.object);
  info.offset = ip - text.base;
  return info;
}

// Under the lock: names ip and publishes a record, or nullptr when out of room.
FrameRecord* add_record(Table& table, std::uintptr_t ip) {
  if (g_writer.records >= kMaxRecords) return nullptr;
  if (!g_writer.symbols) g_writer.symbols = symbol_cache_create();
  SymbolText text;
  symbolize(ip - 1, g_writer.symbols, text);
  g_symbolised.fetch_add(1, std::memory_order_relaxed);
  void* mem = arena_alloc(sizeof(FrameRecord));
  const char* function = mem ? intern(text.function) : nullptr;
  const char* symbol =
      std::strcmp(text.symbol, text.function) == 0 ? function : intern(text.symbol);
  const char* object = function && symbol ? intern_object(text.object) : nullptr;
  if (!object) return nullptr;
  auto* record = new (mem) FrameRecord();
  record->ip = ip;
  record->info = frame_info(text, ip);
  record->info.function = function;
  record->info.symbol = symbol;
  record->info.object = object;
  record->info.object_name = path_basename(object);
  std::size_t i = slot_of(ip);
  while (table.slot[i].load(std::memory_order_relaxed)) i = (i + 1) & (kTableSlots - 1);
  table.slot[i].store(record, std::memory_order_release);
  ++g_writer.records;
  return record;
}

FrameRecord* record_for(std::uintptr_t ip) {
  if (Table* table = g_table.load(std::memory_order_acquire))
    if (FrameRecord* r = find_record(*table, ip)) return r;
  if (!lock()) return nullptr;
  Table* table = g_table.load(std::memory_order_relaxed);
  if (!table) {
    void* p =
        mmap(nullptr, sizeof(Table), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p != MAP_FAILED) {
      table = new (p) Table();
      g_table.store(table, std::memory_order_release);
    }
  }
  FrameRecord* r = nullptr;
  if (table) {
    r = find_record(*table, ip);
    if (!r) r = add_record(*table, ip);
  }
  unlock();
  return r;
}

FrameBits record_bits(FrameRecord& r, std::uint32_t epoch, FrameMatcher match, const void* ctx) {
  // Payload stores are release and its loads acquire (no fences): a reader that sees any word
  // of a write in progress also sees that write's odd sequence when it checks again.
  std::uint64_t seq = r.seq.load(std::memory_order_acquire);
  if (!(seq & 1)) {
    const std::uint32_t cached_epoch = r.epoch.load(std::memory_order_acquire);
    FrameBits cached;
    cached.positive = r.bits.load(std::memory_order_acquire);
    cached.negative = r.negative_bits.load(std::memory_order_acquire);
    if (r.seq.load(std::memory_order_relaxed) == seq && cached_epoch == epoch && epoch != 0)
      return cached;
  }
  const FrameBits bits = match(r.info, ctx);
  if (!(seq & 1) && r.seq.compare_exchange_strong(seq, seq + 1, std::memory_order_acquire)) {
    r.epoch.store(epoch, std::memory_order_release);
    r.bits.store(bits.positive, std::memory_order_release);
    r.negative_bits.store(bits.negative, std::memory_order_release);
    r.seq.store(seq + 2, std::memory_order_release);
  }
  return bits;
}

}  // namespace

bool capture_stack(CapturedStack& out) noexcept {
  out.count = 0;
  BacktraceFn backtrace = unwinder();
  if (!backtrace) return false;
  void* raw[kMaxStackFrames + kOwnFramesSlack];
  const int n = backtrace(raw, static_cast<int>(std::size(raw)));
  int i = 0;
  while (i < n && own_frame(reinterpret_cast<std::uintptr_t>(raw[i]))) ++i;
  for (; i < n && out.count < kMaxStackFrames; ++i) {
    const auto ip = reinterpret_cast<std::uintptr_t>(raw[i]);
    if (ip) out.ip[out.count++] = ip;
  }
  return out.count > 0;
}

int capture_return_addresses(std::uintptr_t* out, int max) noexcept {
  BacktraceFn backtrace = unwinder();
  if (!backtrace || max <= 0) return 0;
  if (max > kMaxStackFrames) max = kMaxStackFrames;
  void* raw[kMaxStackFrames + kOwnFramesSlack];
  const int n = backtrace(raw, max + kOwnFramesSlack);
  int i = 0;
  while (i < n && own_frame(reinterpret_cast<std::uintptr_t>(raw[i]))) ++i;
  int count = 0;
  for (; i < n && count < max; ++i)
    if (const auto ip = reinterpret_cast<std::uintptr_t>(raw[i])) out[count++] = ip;
  return count;
}

bool frame_object(std::uintptr_t ip, char* name, std::size_t size,
                  std::uintptr_t& offset) noexcept {
  if (size == 0) return false;
  const char* object = "";
  SymbolText text;  // only for an address the cache could not take
  if (FrameRecord* r = record_for(ip)) {
    object = r->info.object_name;
    offset = r->info.offset;
  } else {
    symbolize(ip - 1, nullptr, text);
    object = path_basename(text.object);
    offset = ip - text.base;
  }
  if (!object[0]) return false;
  const std::size_t n = std::min(std::strlen(object), size - 1);
  std::memcpy(name, object, n);
  name[n] = '\0';
  return true;
}

bool frame_matches(const char* glob, const FrameInfo& f) noexcept {
  return (f.function[0] && glob_match(glob, f.function)) ||
         (f.symbol[0] && f.symbol != f.function && glob_match(glob, f.symbol)) ||
         (f.object_name[0] && glob_match(glob, f.object_name)) ||
         (f.object[0] && f.object != f.object_name && glob_match(glob, f.object));
}

std::uint64_t stack_match_bits(std::uint32_t epoch, FrameMatcher match, const void* ctx) noexcept {
  CapturedStack stack;
  if (!capture_stack(stack)) return 0;
  std::uint64_t positive = 0;
  std::uint64_t negative = 0;
  for (int i = 0; i < stack.count; ++i) {
    FrameBits bits;
    if (FrameRecord* r = record_for(stack.ip[i])) {
      bits = record_bits(*r, epoch, match, ctx);
    } else {
      SymbolText text;
      symbolize(stack.ip[i] - 1, nullptr, text);
      bits = match(frame_info(text, stack.ip[i]), ctx);
    }
    positive |= bits.positive;
    negative |= bits.negative;
  }
  return positive & ~negative;
}

void visit_frames(const CapturedStack& stack, void (*fn)(const FrameInfo&, void*),
                  void* ctx) noexcept {
  for (int i = 0; i < stack.count; ++i) {
    if (FrameRecord* r = record_for(stack.ip[i])) {
      fn(r->info, ctx);
    } else {
      SymbolText text;
      symbolize(stack.ip[i] - 1, nullptr, text);
      fn(frame_info(text, stack.ip[i]), ctx);
    }
  }
}

void format_frame(const FrameInfo& f, char* out, std::size_t size) noexcept {
  if (f.function[0])
    std::snprintf(out, size, "%s (%s)", f.function, f.object_name[0] ? f.object_name : "??");
  else if (f.object_name[0])
    std::snprintf(out, size, "?? (%s+0x%zx)", f.object_name, static_cast<std::size_t>(f.offset));
  else
    std::snprintf(out, size, "?? (0x%zx)", static_cast<std::size_t>(f.offset));
}

void stack_prepare(const ControlBlock& block) noexcept {
  for (const FaultSlot& slot : block.faults) {
    if (slot.state.load(std::memory_order_acquire) != kSlotUsed) continue;
    const FaultSpec spec = read_fault_spec(slot);
    if (spec.stack[0] || spec.log_stack || spec.site[0] || spec.record[0]) {
      unwinder();
      return;
    }
  }
}

void stack_after_fork_child() noexcept {
  g_busy.store(false, std::memory_order_relaxed);
  // A load interrupted by the fork (another thread of the parent) never finishes here.
  if (g_load_state.load(std::memory_order_relaxed) == kLoading &&
      !g_backtrace.load(std::memory_order_relaxed))
    g_load_state.store(kNotLoaded, std::memory_order_relaxed);
}

std::uint64_t stack_symbolised_count() noexcept {
  return g_symbolised.load(std::memory_order_relaxed);
}

void stack_set_backtrace_for_tests(BacktraceFn fn) noexcept {
  if (fn) {
    // The shim's own frames must be recognisable even when libunwind never loaded.
    if (!g_shim_range.hi)
      g_shim_range = object_range(reinterpret_cast<const void*>(&capture_stack));
  }
  g_test_backtrace.store(fn, std::memory_order_release);
}

}  // namespace faultline::shim
