// fl_explore_alloc [verbose]: a program with several allocations, all handled but one. For
// `faultline explore`'s tests: failing any allocation but the planted one must be handled (a
// message and exit 1, or a fallback that changes nothing); failing the planted one is a NULL
// dereference.
//
// With `verbose`, a second bug hides on an error path: when the name cannot be allocated, the
// message saying so is formatted into a buffer that is not checked either. Only a run that
// fails the name's allocation reaches that allocation, so only a run that fails both finds it.
//
// Plain C allocation only: a C++ allocation that fails throws std::bad_alloc, which this
// program does not catch, and that would be a (real) finding of its own.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

namespace {

__attribute__((noinline)) char* copy_name(const char* name) {
  char* copy = static_cast<char*>(malloc(strlen(name) + 1));
  if (!copy) return nullptr;
  strcpy(copy, name);
  return copy;
}

// The planted bug: the greeting's buffer is used without checking the allocation.
__attribute__((noinline)) char* build_greeting(const char* name) {
  char* greeting = static_cast<char*>(malloc(64));
  greeting[0] = '\0';  // NULL dereference when malloc failed
  strncat(greeting, "hello ", 63);
  strncat(greeting, name, 63 - strlen(greeting));
  return greeting;
}

// Optional work: without its scratch buffer the program just skips it.
__attribute__((noinline)) unsigned checksum(const char* text) {
  unsigned char* scratch = static_cast<unsigned char*>(malloc(256));
  if (!scratch) return 0;
  unsigned sum = 0;
  for (size_t i = 0; text[i]; ++i) sum = sum * 31 + static_cast<unsigned char>(text[i]);
  memset(scratch, 0, 256);
  free(scratch);
  return sum;
}

// The second planted bug (verbose only): the message's buffer is used without a check.
__attribute__((noinline)) void report_out_of_memory(const char* what) {
  char* message = static_cast<char*>(malloc(128));
  message[0] = '\0';  // NULL dereference when this allocation fails too
  strncat(message, "fl_explore_alloc: out of memory for ", 127);
  strncat(message, what, 127 - strlen(message));
  fputs(message, stderr);
  fputc('\n', stderr);
  free(message);
}

}  // namespace

int main(int argc, char** argv) {
  const bool verbose = argc > 1 && strcmp(argv[1], "verbose") == 0;
  char* name = copy_name("world");
  if (!name) {
    if (verbose)
      report_out_of_memory("the name");
    else
      fputs("fl_explore_alloc: out of memory for the name\n", stderr);
    return 1;
  }
  int* table = static_cast<int*>(calloc(16, sizeof(int)));
  if (!table) {
    fputs("fl_explore_alloc: out of memory for the table\n", stderr);
    free(name);
    return 1;
  }
  char* longer = static_cast<char*>(realloc(name, 128));
  if (!longer) {
    fputs("fl_explore_alloc: out of memory growing the name\n", stderr);
    free(name);
    free(table);
    return 1;
  }
  name = longer;
  char* greeting = build_greeting(name);
  checksum(greeting);
  printf("%s\n", greeting);
  free(greeting);
  free(table);
  free(name);
  return 0;
}
