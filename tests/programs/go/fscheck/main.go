// fscheck: a Go program changing directory entries and file sizes, for the seccomp backend's
// @fs tests (tests/integration/seccomp_fs_test.cpp). os.Mkdir, os.Rename, os.Remove,
// File.Truncate and File.Close are Go's own system calls (mkdirat, renameat, unlinkat,
// ftruncate, close), which no preload sees. In DIR it makes sub/, writes a.txt, truncates and
// closes it, renames a.txt to b.txt, renames keep.txt to kept.txt, removes b.txt and sub/.
// Prints one line per step, "STEP: ok" or "STEP: " and Go's own error text (e.g. "rename:
// rename DIR/a.txt DIR/b.txt: input/output error"), and exits 0 either way.
package main

import (
	"fmt"
	"os"
	"path/filepath"
)

func report(step string, err error) {
	if err != nil {
		fmt.Printf("%s: %v\n", step, err)
	} else {
		fmt.Printf("%s: ok\n", step)
	}
}

func main() {
	if len(os.Args) != 2 {
		fmt.Println("usage: fscheck DIR")
		os.Exit(2)
	}
	dir := os.Args[1]
	at := func(name string) string { return filepath.Join(dir, name) }
	report("mkdir", os.Mkdir(at("sub"), 0o755))
	f, err := os.Create(at("a.txt"))
	if err != nil {
		fmt.Println("create:", err)
		os.Exit(1)
	}
	if _, err := f.Write([]byte("some data\n")); err != nil {
		fmt.Println("write:", err)
	}
	report("truncate", f.Truncate(4))
	report("close", f.Close())
	report("rename", os.Rename(at("a.txt"), at("b.txt")))
	if err := os.WriteFile(at("keep.txt"), []byte("kept\n"), 0o644); err != nil {
		fmt.Println("create keep:", err)
	}
	report("rename other", os.Rename(at("keep.txt"), at("kept.txt")))
	report("remove", os.Remove(at("b.txt")))
	report("rmdir", os.Remove(at("sub")))
}
