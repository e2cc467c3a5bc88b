// fl_explore_fsync: a tiny durable queue with one planted bug, for `faultline explore`.
//
//   fl_explore_fsync write   appends records 1..4 to ./data; after each record's sync it
//                            acknowledges it in ./acks ("ack N"). A sync that fails is reported
//                            ("fail N" in ./acks, a message, exit 1): the record is not durable
//                            and the client must know.
//   fl_explore_fsync check   the durability check: every sync of ./data that failed in the run
//                            (the events faultline logged, $FAULTLINE_EXPLORE_EVENTS) must have
//                            been reported with a "fail" line, and every acknowledged record
//                            must be in ./data. Exit 1 when not.
//
// The planted bug: record 3 is written by the "batch" path, which syncs with fdatasync and
// ignores its result, so a failure there is acknowledged as if it had succeeded. Nothing in the
// files shows it (the data is still in the page cache): only a check that knows which sync
// failed, as a power cut would, can tell.
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <string>

namespace {

void append(int fd, const char* text) {
  const size_t n = strlen(text);
  if (write(fd, text, n) != static_cast<ssize_t>(n)) {
    perror("fl_explore_fsync: write");
    exit(1);
  }
}

[[noreturn]] void report_failure(int acks, int record, const char* what) {
  char line[64];
  snprintf(line, sizeof line, "fail %d\n", record);
  append(acks, line);
  fprintf(stderr, "fl_explore_fsync: %s of record %d failed: not stored\n", what, record);
  exit(1);
}

__attribute__((noinline)) void sync_checked(int data, int acks, int record) {
  if (fsync(data) != 0) report_failure(acks, record, "fsync");
}

// The planted bug: the result of fdatasync is ignored.
__attribute__((noinline)) void sync_batch(int data) { fdatasync(data); }

__attribute__((noinline)) void acknowledge(int acks, int record) {
  char line[64];
  snprintf(line, sizeof line, "ack %d\n", record);
  append(acks, line);
  if (fsync(acks) != 0) {
    fprintf(stderr, "fl_explore_fsync: cannot sync the acknowledgements\n");
    exit(1);
  }
}

int write_records() {
  const int data = open("data", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  const int acks = open("acks", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (data < 0 || acks < 0) {
    perror("fl_explore_fsync: open");
    return 1;
  }
  for (int record = 1; record <= 4; ++record) {
    char line[64];
    snprintf(line, sizeof line, "rec %d\n", record);
    append(data, line);
    if (record == 3)
      sync_batch(data);
    else
      sync_checked(data, acks, record);
    acknowledge(acks, record);
  }
  return 0;
}

// The whole file, or "" when it cannot be read (no event log: nothing failed).
std::string read_all(const char* path) {
  std::string text;
  if (!path) return text;
  FILE* f = fopen(path, "r");
  if (!f) return text;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof buffer, f)) > 0) text.append(buffer, n);
  fclose(f);
  return text;
}

size_t count_lines_with(const std::string& text, const char* a, const char* b) {
  size_t count = 0, start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(start, end - start);
    if (line.find(a) != std::string::npos && (!b || line.find(b) != std::string::npos)) ++count;
    start = end + 1;
  }
  return count;
}

int check() {
  const std::string events = read_all(getenv("FAULTLINE_EXPLORE_EVENTS"));
  const size_t failed = count_lines_with(events, "\"call\":\"fsync\"", "/data\"") +
                        count_lines_with(events, "\"call\":\"fdatasync\"", "/data\"");
  const std::string acks = read_all("acks");
  const std::string data = read_all("data");
  const size_t reported = count_lines_with(acks, "fail ", nullptr);
  if (failed > reported) {
    printf(
        "check: %zu sync(s) of ./data failed, %zu reported: an acknowledged record may be "
        "lost\n",
        failed, reported);
    return 1;
  }
  for (int record = 1; record <= 4; ++record) {
    char ack[32], rec[32];
    snprintf(ack, sizeof ack, "ack %d\n", record);
    snprintf(rec, sizeof rec, "rec %d\n", record);
    if (acks.find(ack) != std::string::npos && data.find(rec) == std::string::npos) {
      printf("check: record %d acknowledged but not in ./data\n", record);
      return 1;
    }
  }
  printf("check: ok\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && strcmp(argv[1], "write") == 0) return write_records();
  if (argc == 2 && strcmp(argv[1], "check") == 0) return check();
  fprintf(stderr, "usage: fl_explore_fsync write|check\n");
  return 2;
}
