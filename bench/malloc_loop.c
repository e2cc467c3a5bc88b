/* malloc_loop N SIZE: N rounds of malloc(SIZE) + free, nothing else. Run under
 * `valgrind --tool=callgrind` at two values of N: the difference in total instructions,
 * divided by the difference in N, is the instruction cost of one malloc+free pair (loop,
 * PLT, any preloaded wrapper, the allocator), with start-up and exit cancelled out.
 * A NULL from malloc is counted, not fatal: under a fault policy some allocations fail. */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s N SIZE\n", argv[0]);
    return 2;
  }
  long long n = strtoll(argv[1], NULL, 10);
  size_t size = (size_t)strtoull(argv[2], NULL, 10);
  long long failed = 0;
  for (long long i = 0; i < n; ++i) {
    /* volatile: the compiler may not pair the malloc with the free and remove both. */
    void* volatile p = malloc(size);
    failed += p == NULL;
    free(p);
  }
  printf("%lld allocations, %lld failed\n", n, failed);
  return 0;
}
