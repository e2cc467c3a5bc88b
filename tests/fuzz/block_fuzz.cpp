// Any contents of a control block — as a peer process or a stray write could leave it — must
// be refused by validation or read safely by the engine: never a crash, hang or wrong read.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>

#include "session/session.h"
#include "shim/engine/engine.h"

namespace {

// A well-formed header, so the fuzzer's bytes reach the fault slots and the engine too.
void make_valid_header(faultline::ControlBlock& block) {
  using namespace faultline;
  block.header.abi_version = kAbiVersion;
  block.header.header_size = sizeof(ControlHeader);
  block.header.block_size = sizeof(ControlBlock);
  block.header.owner_uid = geteuid();
  block.header.max_faults = kMaxFaults;
  block.header.abi_fingerprint = kAbiFingerprint;
  block.header.magic.store(kBlockMagic);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace faultline;
  static auto* block = new ControlBlock();
  std::memset(static_cast<void*>(block), 0, sizeof *block);
  std::memcpy(static_cast<void*>(block), data, std::min(size, sizeof *block));

  // 1. Raw bytes as a whole block: validation must answer, whatever they are.
  (void)validate_block(block, std::min(size, sizeof *block), geteuid(), geteuid());

  // 2. The bytes as fault slots behind a valid header: the engine must cope.
  if (size > sizeof(ControlHeader)) {
    std::memset(static_cast<void*>(&block->header), 0, sizeof block->header);
    make_valid_header(*block);
    block->header.armed_mask.store(~0ull);
    block->header.generation.fetch_add(1);
    if (size >= 8) {
      std::uint64_t seed;
      std::memcpy(&seed, data, 8);
      block->header.seed.store(seed);
    }
    shim::g_block.store(block);
    shim::Guard guard;
    for (std::uint32_t call = 0; call < kCallCount; ++call) {
      shim::CallArgs args{call};
      args.size = size;
      args.has_size = true;
      shim::Decision d;
      if (shim::decide(guard, args, d) && d.inject) {
        (void)shim::short_length(d, size);
        unsigned char scratch[64] = {};
        shim::corrupt_buffer(d, scratch, sizeof scratch);
      }
    }
    shim::g_block.store(nullptr);
    shim::engine_reclaim_retired_rules_unsafe();
  }
  return 0;
}
