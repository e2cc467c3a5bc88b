// Writes a tracked file through a shared writable mapping (as LMDB with MDB_WRITEMAP, or
// sqlite's -shm, do), msyncs it, then opens a marker file (where the test cuts the power).
// Stores through a mapping pass no call a preload sees: faultline must say the file is no
// longer tracked and leave it as it is at the cut — never revert what it could not watch.
// A second, ordinary file written with write() and not fsynced shows the cut still works.
//
// usage: fl_map_writer DIR MARKER
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char** argv) {
  if (argc != 3) return 2;
  char mapped[4096], plain[4096];
  snprintf(mapped, sizeof mapped, "%s/mapped", argv[1]);
  snprintf(plain, sizeof plain, "%s/plain", argv[1]);
  int fd = open(mapped, O_RDWR);
  if (fd < 0) return perror("open mapped"), 1;
  char* p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return perror("mmap"), 1;
  memcpy(p, "MAPPED", 6);
  if (msync(p, 4096, MS_SYNC) != 0) return perror("msync"), 1;
  int pfd = open(plain, O_WRONLY | O_APPEND);
  if (pfd < 0 || write(pfd, "unsynced\n", 9) != 9) return perror("plain"), 1;
  printf("written\n");
  fflush(stdout);
  open(argv[2], O_WRONLY | O_CREAT, 0644);
  printf("not cut\n");
  return 0;
}
