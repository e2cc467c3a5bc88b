// filecheck: a Go program writing a file and syncing it, for the seccomp backend's tests
// (tests/integration/seccomp_test.cpp). os.File.Write and Sync are Go's own system calls, which
// no preload sees. Prints "write: ok" or "write: ERR", "sync: ok" or "sync: ERR" (Go's own
// error text, e.g. "sync /tmp/x/data.bin: input/output error") and exits 0 either way.
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Println("usage: filecheck PATH")
		os.Exit(2)
	}
	f, err := os.Create(os.Args[1])
	if err != nil {
		fmt.Println("create:", err)
		os.Exit(1)
	}
	if _, err := f.Write([]byte("some data\n")); err != nil {
		fmt.Println("write:", err)
	} else {
		fmt.Println("write: ok")
	}
	if err := f.Sync(); err != nil {
		fmt.Println("sync:", err)
	} else {
		fmt.Println("sync: ok")
	}
	f.Close()
}
