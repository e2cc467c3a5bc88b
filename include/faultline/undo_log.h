// The undo log of a session's power cuts (docs/policy.md, "Durability: power cuts"): the one
// file, `<undo_dir>/log`, that every process of the session appends records to (O_APPEND, one
// writev per record, so records of concurrent processes never interleave) and that the
// controller replays after a cut to put tracked files back in their durable state. Shared by
// the shim (writer, shim/engine/durability.cpp) and the reverter
// (controller/durability/revert.cpp).
//
// A record is a fixed header and a payload. A process killed in the middle of its append (the
// cut itself) or a full disk leaves a short record followed by other processes' records: both
// checksums let the reader skip it and find the next header. Such a record never matters:
// the program's own write comes after its record, so a process that died while appending it
// never made the change it describes.
#pragma once

#include <cstddef>
#include <cstdint>

namespace faultline {

inline constexpr std::uint32_t kUndoMagic = 0x4f444e55u;  // "UNDO"
inline constexpr const char* kUndoLogName = "log";

enum UndoType : std::uint16_t {
  // A tracked inode: payload = its absolute path when first written by a process (the revert's
  // way to it unless a rename or unlink made a hidden hard link); size = its size then.
  kUndoFile = 1,
  // Before a write (or a shrink) of [off, off + len): payload = the prior bytes of the part
  // below `size` (the file's size before the change), so payload length <= len.
  kUndoData = 2,
  // A sync starts: dev/ino say what (ino 0: every inode on dev; dev 0 too: everything, sync());
  // [off, off + len) is the range (len 0: all); size = the size then, or -1 when the sync
  // makes no size durable (sync_file_range). pid/seq identify it for its end record.
  kUndoSyncBegin = 3,
  kUndoSyncDone = 4,  // the sync pid/seq succeeded
  kUndoSyncFail = 5,  // the sync pid/seq failed (injected or real): "drop" loses its data
  kUndoUntrack = 6,   // dev/ino could not be tracked (undo write failed): the cut leaves it
  // Directory entries under tracked paths. dev/ino = the parent directory whose fsync makes
  // the entry durable; payload = NUL-separated paths (see each).
  kUndoCreate = 7,   // payload: path (a file the cut removes)
  kUndoMkdir = 8,    // payload: path (a directory the cut removes)
  kUndoLink = 9,     // payload: new path (the cut unlinks it)
  kUndoUnlink = 10,  // payload: path, hidden link name in the undo area (the cut links it back)
  kUndoRmdir = 11,   // payload: path; size = its mode (the cut makes it again)
  // payload: old path, new path, hidden link of the replaced target or "" (the cut renames new
  // back to old and links the replaced target back in place).
  kUndoRename = 12,
};

struct UndoHeader {
  std::uint32_t magic;
  std::uint16_t type;
  std::uint16_t flags;
  std::uint32_t payload;     // bytes following the header
  std::uint32_t header_sum;  // undo_header_sum() of this header with header_sum = 0
  std::uint64_t dev;
  std::uint64_t ino;
  std::int64_t off;
  std::uint64_t len;
  std::int64_t size;
  std::uint32_t pid;
  std::uint32_t seq;
  std::uint64_t payload_sum;  // undo_payload_sum() of the payload
};
static_assert(sizeof(UndoHeader) == 72);

// Cheap sums (not cryptographic: they tell a torn record from a whole one).
inline std::uint64_t undo_payload_sum(const void* data, std::size_t size) noexcept {
  const auto* p = static_cast<const unsigned char*>(data);
  std::uint64_t a = 0x9e3779b97f4a7c15ull, b = size;
  std::size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    std::uint64_t w;
    __builtin_memcpy(&w, p + i, 8);
    a = (a ^ w) * 0x100000001b3ull;
    b += a >> 29;
  }
  for (; i < size; ++i) a = (a ^ p[i]) * 0x100000001b3ull;
  return a ^ (b << 1);
}

inline std::uint32_t undo_header_sum(const UndoHeader& h) noexcept {
  UndoHeader copy = h;
  copy.header_sum = 0;
  const std::uint64_t s = undo_payload_sum(&copy, sizeof copy);
  return static_cast<std::uint32_t>(s ^ (s >> 32)) | 1u;
}

// Name of the hidden hard link that keeps a tracked inode reachable after a rename or an
// unlink changed its path (made just before that call; the unlink and rename records name it).
// Writes "i<dev>-<ino>" into out (>= 48 bytes), returns out.
inline char* undo_inode_name(char* out, std::uint64_t dev, std::uint64_t ino) noexcept {
  char digits[2][24];
  std::uint64_t v[2] = {dev, ino};
  std::size_t n[2] = {0, 0};
  for (int k = 0; k < 2; ++k) {
    do {
      digits[k][n[k]++] = static_cast<char>('0' + v[k] % 10);
      v[k] /= 10;
    } while (v[k] != 0);
  }
  std::size_t o = 0;
  out[o++] = 'i';
  for (std::size_t i = n[0]; i > 0; --i) out[o++] = digits[0][i - 1];
  out[o++] = '-';
  for (std::size_t i = n[1]; i > 0; --i) out[o++] = digits[1][i - 1];
  out[o] = '\0';
  return out;
}

}  // namespace faultline
