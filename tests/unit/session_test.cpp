// The control block is never trusted before validation: truncated, foreign, wrong-version
// or wrong-size blocks are refused with a message.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <memory>

#include "test_session.h"

namespace faultline {
namespace {

std::unique_ptr<ControlBlock> good_block() {
  auto block = std::make_unique<ControlBlock>();
  block->header.abi_version = kAbiVersion;
  block->header.header_size = sizeof(ControlHeader);
  block->header.block_size = sizeof(ControlBlock);
  block->header.owner_uid = geteuid();
  block->header.max_faults = kMaxFaults;
  block->header.abi_fingerprint = kAbiFingerprint;
  block->header.magic.store(kBlockMagic);
  return block;
}

TEST(BlockValidation, AcceptsAWellFormedBlock) {
  auto block = good_block();
  EXPECT_FALSE(validate_block(block.get(), sizeof(ControlBlock), geteuid(), geteuid()));
}

TEST(BlockValidation, RefusesABlockOfAnotherBuild) {
  auto block = good_block();
  block->header.abi_fingerprint = kAbiFingerprint ^ 1;  // same version, another call table
  auto problem = validate_block(block.get(), sizeof(ControlBlock), geteuid(), geteuid());
  ASSERT_TRUE(problem);
  EXPECT_NE(problem->find("another faultline build"), std::string::npos) << *problem;
}

constexpr std::size_t kPinnedHeaderSize = 2560;
constexpr std::size_t kPinnedSpecSize = 3152;
constexpr std::size_t kPinnedSlotSize = 3224;
constexpr std::size_t kPinnedBlockSize = 344064;
constexpr std::uint32_t kPinnedCallCount = 87;

// The layout every build of this ABI version shares. A change here is a change of the ABI:
// bump kAbiVersion (docs/architecture.md, "The ABI"), then update these numbers.
TEST(BlockValidation, TheLayoutIsPinned) {
  EXPECT_EQ(kAbiVersion, 5u);
  EXPECT_EQ(offsetof(ControlHeader, magic), 0u);
  EXPECT_EQ(offsetof(ControlHeader, abi_version), 8u);
  EXPECT_EQ(offsetof(ControlHeader, header_size), 12u);
  EXPECT_EQ(offsetof(ControlHeader, block_size), 16u);
  EXPECT_EQ(offsetof(ControlHeader, abi_fingerprint), 32u);
  EXPECT_EQ(sizeof(ControlHeader), kPinnedHeaderSize);
  EXPECT_EQ(sizeof(FaultSpec), kPinnedSpecSize);
  EXPECT_EQ(sizeof(FaultSlot), kPinnedSlotSize);
  EXPECT_EQ(sizeof(ControlBlock), kPinnedBlockSize);
  EXPECT_EQ(kCallCount, kPinnedCallCount);
}

TEST(BlockValidation, RefusesTruncated) {
  auto block = good_block();
  auto problem = validate_block(block.get(), sizeof(ControlBlock) / 2, geteuid(), geteuid());
  ASSERT_TRUE(problem);
  EXPECT_NE(problem->find("size"), std::string::npos) << *problem;
  problem = validate_block(block.get(), 16, geteuid(), geteuid());
  ASSERT_TRUE(problem);
  EXPECT_NE(problem->find("truncated"), std::string::npos) << *problem;
}

TEST(BlockValidation, RefusesWrongVersionMagicAndOwner) {
  auto block = good_block();
  block->header.abi_version = kAbiVersion + 1;
  auto problem = validate_block(block.get(), sizeof(ControlBlock), geteuid(), geteuid());
  ASSERT_TRUE(problem);
  EXPECT_NE(problem->find("ABI version"), std::string::npos) << *problem;

  block = good_block();
  block->header.magic.store(0);
  problem = validate_block(block.get(), sizeof(ControlBlock), geteuid(), geteuid());
  ASSERT_TRUE(problem);
  EXPECT_NE(problem->find("magic"), std::string::npos) << *problem;

  block = good_block();
  problem = validate_block(block.get(), sizeof(ControlBlock), geteuid() + 1, geteuid());
  ASSERT_TRUE(problem);
  EXPECT_NE(problem->find("not to you"), std::string::npos) << *problem;
}

TEST(SessionAttach, RefusesATruncatedShmObject) {
  std::string name = testing::unique_session_name("trunc");
  int fd = shm_open(shm_object_name(name).c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, 100), 0);
  close(fd);
  std::string error;
  EXPECT_EQ(ControlSession::attach(name, error), nullptr);
  EXPECT_NE(error.find("truncated"), std::string::npos) << error;
  ControlSession::remove(name);
}

TEST(SessionAttach, RefusesABlockOfAnotherVersion) {
  testing::TestSession s("version = 1\n[[fault]]\nname='f'\ncalls=['fsync']\nerror='EIO'\n");
  s.session().block().header.abi_version = 99;
  std::string error;
  EXPECT_EQ(ControlSession::attach(s.session().name(), error), nullptr);
  EXPECT_NE(error.find("ABI version 99"), std::string::npos) << error;
  s.session().block().header.abi_version = kAbiVersion;
}

TEST(SessionEdits, EnablePanicResumeDriveTheArmedMask) {
  testing::TestSession s(
      "version = 1\n[[fault]]\nname='f'\ncalls=['fsync']\nerror='EIO'\n"
      "enabled=false\n");
  ControlSession& session = s.session();
  auto armed = [&] { return session.block().header.armed_mask.load(); };
  EXPECT_EQ(armed(), 0u);
  std::uint64_t gen = session.block().header.generation.load();
  session.set_enabled(session.find_fault("f"), true);
  EXPECT_EQ(armed(), std::uint64_t{kFamFsync});
  EXPECT_GT(session.block().header.generation.load(), gen);
  session.panic();
  EXPECT_EQ(armed(), 0u);
  session.resume();
  EXPECT_EQ(armed(), std::uint64_t{kFamFsync});
}

TEST(SessionEdits, SpecRoundTripsThroughTheSeqlock) {
  testing::TestSession s("version = 1\n[[fault]]\nname='f'\ncalls=['fsync']\nerror='EIO'\n");
  ControlSession& session = s.session();
  int index = session.find_fault("f");
  FaultSpec spec = read_fault_spec(session.block().faults[index]);
  ASSERT_FALSE(apply_fault_setting(spec, "probability", "0.25"));
  session.update_fault(index, spec);
  EXPECT_DOUBLE_EQ(read_fault_spec(session.block().faults[index]).probability, 0.25);
}

}  // namespace
}  // namespace faultline

namespace faultline {
namespace {

// A block scribbled on while a program runs must not crash it: the engine skips any slot
// whose spec breaks the compiler's invariants.
TEST(CorruptBlock, ABadSpecIsSkippedNotTrusted) {
  testing::TestSession s("version = 1\n[[fault]]\nname='f'\ncalls=['fsync']\nerror='EIO'\n");
  ControlSession& session = s.session();
  int index = session.find_fault("f");
  FaultSpec spec = read_fault_spec(session.block().faults[index]);
  ASSERT_FALSE(check_fault_spec(spec));
  spec.every = 0;  // would divide by zero in the trigger
  EXPECT_EQ(check_fault_spec(spec).value_or(""), "every = 0");
  session.update_fault(index, spec);
  shim::Guard guard;
  shim::Decision d;
  EXPECT_FALSE(shim::decide(guard, shim::CallArgs{kCall_fsync}, d));

  spec.every = 1;
  spec.probability = 7.5;
  EXPECT_TRUE(check_fault_spec(spec));
  std::memset(spec.name, 'x', sizeof spec.name);  // unterminated
  EXPECT_TRUE(check_fault_spec(spec));
}

TEST(CorruptBlock, RandomBytesNeverCrashTheEngine) {
  testing::TestSession s("version = 1\n[[fault]]\nname='f'\ncalls=['fsync']\nerror='EIO'\n");
  ControlBlock& block = s.session().block();
  std::uint64_t state = 0x12345678;
  for (int round = 0; round < 50; ++round) {
    for (auto& word : block.faults[0].spec_words) {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      word.store(state, std::memory_order_relaxed);
    }
    block.header.generation.fetch_add(1);
    shim::Guard guard;
    shim::Decision d;
    shim::decide(guard, shim::CallArgs{kCall_fsync}, d);  // must not crash or hang
  }
  SUCCEED();
}

}  // namespace
}  // namespace faultline
