// What an event line says about the fault that decided it (its name and `log_stack`), as of
// the compiled rules copy that decided. decide() only records which copy that was (the copy's
// process-local epoch, Decision::epoch); the event reads the facts back here. Reading the fault
// slot's spec at the event instead would name whatever the slot holds by then: a live edit
// during the call's delay, or between decide() and the event, renames or replaces it.
//
// Why not the rule itself: a copy is freed once no thread reads it (hazard pointers,
// engine_rules.cpp), and a thread stops reading when decide() returns, so a `Rule*` in the
// Decision would dangle during a delay. Why not the name in the Decision: it lives in every
// armed wrapper's frame, which a signal handler on a small sigaltstack may run
// (docs/reliability.md's 1 KiB budget); the 4-byte epoch fits in padding the Decision had.
//
// A small history per fault slot, in .bss (64 slots × 4 entries): each rebuild notes the
// facts of each of its rules that changed since the slot's last entry (usually none: a
// rename, a replacement or a `log_stack` edit adds one). An event finds the newest entry at
// or before its epoch. Four renames of one slot between a decision and its event evict the
// entry the event needs: the event then goes nameless (never wrongly named). Lock-free and
// allocation-free: written only by the rebuilder (g_rebuilding held), read under a seqlock.
#pragma once

#include <cstdint>

#include "faultline/control_block.h"

namespace faultline::shim {

// The rebuilder, for each rule of the copy with `epoch`, before the copy is published.
void fault_facts_note(int slot, std::uint32_t epoch, const FaultSpec& spec) noexcept;

// The name (NUL-terminated) and log_stack of fault `slot` as the copy with `epoch` had them;
// false when no longer known (then `name` is "" and `log_stack` false).
bool fault_facts_read(int slot, std::uint32_t epoch, char (&name)[kNameMax],
                      bool& log_stack) noexcept;

// After fork in the child: another thread of the parent may have been noting (never repaired
// otherwise, since only the rebuilder writes).
void fault_facts_after_fork() noexcept;

}  // namespace faultline::shim
