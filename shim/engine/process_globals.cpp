// Process-wide words of the shim that the engine and the wrappers share: the fast path's armed
// word (pointing at a zero until a block is attached), the reentrancy flag, the attached block
// and this process's member index. Kept apart from init.cpp (the constructor) so the engine
// links into unit tests without a preload; the real-function table is in real_functions.cpp.
#include "shim/engine/shim.h"

namespace faultline::shim {

constinit std::atomic<std::uint64_t> g_zero_sentinel{0};
std::atomic<std::atomic<std::uint64_t>*> g_armed_word{&g_zero_sentinel};
constinit thread_local bool t_in_shim __attribute__((tls_model("initial-exec"))) = false;
std::atomic<ControlBlock*> g_block{nullptr};
std::atomic<int> g_member{-1};

}  // namespace faultline::shim
