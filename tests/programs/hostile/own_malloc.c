// An executable with its own allocator: it defines malloc, free, calloc and realloc itself, so
// the C library (and every library) binds to these, not to the shim's interposed ones. Whatever
// @memory fault is armed, no allocation reaches it: `faultline doctor` must say so, and a run
// must not end with a silent "0 injected". Bump allocation from a static arena; free is a no-op.
// Prints "ok" after an allocation of its own went through.
#include <stddef.h>
#include <stdio.h>
#include <string.h>

static _Alignas(16) unsigned char arena[1 << 22];
static size_t used;

void* malloc(size_t size) {
  if (size > sizeof arena) return NULL;
  size_t need = 16 + ((size + 15) & ~(size_t)15);  // a 16-byte header keeps the size
  if (need > sizeof arena - used) return NULL;
  unsigned char* block = arena + used;
  used += need;
  memcpy(block, &size, sizeof size);
  return block + 16;
}
void free(void* p) { (void)p; }
void* calloc(size_t n, size_t size) {
  if (size != 0 && n > (size_t)-1 / size) return NULL;
  void* p = malloc(n * size);
  if (p != NULL) memset(p, 0, n * size);
  return p;
}
void* realloc(void* p, size_t size) {
  void* q = malloc(size);
  if (p != NULL && q != NULL) {
    size_t old;
    memcpy(&old, (unsigned char*)p - 16, sizeof old);
    memcpy(q, p, old < size ? old : size);
  }
  return q;
}

int main(void) {
  char* s = malloc(32);
  if (s == NULL) return 1;
  strcpy(s, "ok");
  puts(s);
  return 0;
}
