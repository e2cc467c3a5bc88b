// fl_durable_log: a tiny durable journal, the kind of program crash points are for.
//
//   fl_durable_log FILE append N   recover, then append N records: write, fsync, acknowledge
//   fl_durable_log FILE check      recover and report, append nothing
//
// A record is one line "rec <n> <payload> <checksum>\n". Recovery keeps the longest prefix of
// well-formed records numbered 1, 2, 3, ..., cuts a torn tail off (ftruncate + fsync) and
// prints "recovered K" and, when it cut something, "torn BYTES". Appending prints "ack <n>"
// only after the record's fsync returned, so every acknowledged record must survive a crash
// of this process. Errors print "error <errno> at <stage>" and exit 1.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

std::uint32_t checksum(const std::string& text) {
  std::uint32_t h = 2166136261u;
  for (unsigned char c : text) h = (h ^ c) * 16777619u;
  return h;
}

std::string record(long n) {
  const std::string body = "rec " + std::to_string(n) + " payload-" + std::to_string(n * 7919);
  char sum[16];
  std::snprintf(sum, sizeof sum, "%08x", checksum(body));
  return body + " " + sum + "\n";
}

// What this program says goes to stdout unbuffered: a crash must not eat acknowledgements.
void say(const std::string& line) {
  const std::string text = line + "\n";
  if (write(STDOUT_FILENO, text.data(), text.size()) < 0) std::exit(3);
}

[[noreturn]] void fail(const char* stage) {
  say("error " + std::to_string(errno) + " at " + stage);
  std::exit(1);
}

// Number of valid records; cuts anything after them.
long recover(int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0) fail("fstat");
  std::string data(static_cast<std::size_t>(st.st_size), '\0');
  std::size_t got = 0;
  while (got < data.size()) {
    const ssize_t n = pread(fd, data.data() + got, data.size() - got, static_cast<off_t>(got));
    if (n < 0) fail("read");
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  data.resize(got);
  long count = 0;
  std::size_t good = 0;
  while (good < data.size()) {
    const std::size_t end = data.find('\n', good);
    if (end == std::string::npos) break;
    if (data.compare(good, end + 1 - good, record(count + 1)) != 0) break;
    good = end + 1;
    ++count;
  }
  say("recovered " + std::to_string(count));
  if (good < data.size()) {
    say("torn " + std::to_string(data.size() - good));
    if (ftruncate(fd, static_cast<off_t>(good)) != 0) fail("ftruncate");
    if (fsync(fd) != 0) fail("fsync");
  }
  return count;
}

void append_all(int fd, const std::string& text) {
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = write(fd, text.data() + done, text.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("write");
    }
    done += static_cast<std::size_t>(n);  // a short write: write the rest
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3 || (std::strcmp(argv[2], "append") == 0 && argc < 4)) {
    std::fprintf(stderr, "usage: fl_durable_log FILE append N | FILE check\n");
    return 2;
  }
  const int fd = open(argv[1], O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) fail("open");
  long last = recover(fd);
  if (std::strcmp(argv[2], "append") == 0) {
    const long n = std::strtol(argv[3], nullptr, 10);
    for (long i = 0; i < n; ++i) {
      append_all(fd, record(last + 1));
      if (fsync(fd) != 0) fail("fsync");
      ++last;
      say("ack " + std::to_string(last));
    }
  }
  if (close(fd) != 0) fail("close");
  return 0;
}
