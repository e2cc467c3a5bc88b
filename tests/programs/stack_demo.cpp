// fl_stack_demo: one write path reached from two callers, for the `stack` selector.
//
//   fl_stack_demo DIR ROUNDS
//
// Each round appends a line to DIR/journal.log through write_journal_record() and one to
// DIR/data.log through write_data_record(); both reach write(2) through the same helper,
// append_all(). Built -O2 without frame pointers, with static functions that only the
// executable's .symtab names: what a `stack` glob must see through. Prints
// "journal <round> ok|err <errno>" and "data <round> ok|err <errno>".
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

// Barriers keep -O2 from inlining these or turning their calls into tail calls: each keeps
// its own frame.
__attribute__((noinline)) int append_all(int fd, const std::string& text) {
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = write(fd, text.data() + done, text.size() - done);
    if (n < 0) return errno;
    done += static_cast<std::size_t>(n);
  }
  asm volatile("" ::: "memory");
  return 0;
}

__attribute__((noinline)) int write_journal_record(int fd, int round) {
  const int err = append_all(fd, "journal " + std::to_string(round) + "\n");
  asm volatile("" ::: "memory");
  return err;
}

__attribute__((noinline)) int write_data_record(int fd, int round) {
  const int err = append_all(fd, "data " + std::to_string(round) + "\n");
  asm volatile("" ::: "memory");
  return err;
}

void report(const char* what, int round, int err) {
  const std::string line = std::string(what) + " " + std::to_string(round) +
                           (err ? " err " + std::to_string(err) : std::string(" ok")) + "\n";
  if (write(STDOUT_FILENO, line.data(), line.size()) < 0) std::exit(3);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: fl_stack_demo DIR ROUNDS\n");
    return 2;
  }
  const std::string dir = argv[1];
  const int rounds = std::atoi(argv[2]);
  const int journal = open((dir + "/journal.log").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  const int data = open((dir + "/data.log").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (journal < 0 || data < 0) {
    std::perror("fl_stack_demo: open");
    return 1;
  }
  for (int round = 1; round <= rounds; ++round) {
    report("journal", round, write_journal_record(journal, round));
    report("data", round, write_data_record(data, round));
  }
  return 0;
}
