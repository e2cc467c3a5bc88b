// writeloop: a Go program writing a file every -every for -n rounds, for the seccomp backend's
// tests of the TTL and of panic (tests/integration/seccomp_test.cpp). Each write is Go's own
// system call, which no preload sees. Prints "write I: ok" or "write I: ERR" (Go's own error
// text) as each write returns, and exits 0.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"
)

func main() {
	every := flag.Duration("every", 100*time.Millisecond, "pause between writes")
	rounds := flag.Int("n", 30, "writes")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Println("usage: writeloop [-every D] [-n N] PATH")
		os.Exit(2)
	}
	f, err := os.Create(flag.Arg(0))
	if err != nil {
		fmt.Println("create:", err)
		os.Exit(1)
	}
	for i := 0; i < *rounds; i++ {
		if _, err := f.Write([]byte("tick\n")); err != nil {
			fmt.Printf("write %d: %v\n", i, err)
		} else {
			fmt.Printf("write %d: ok\n", i)
		}
		time.Sleep(*every)
	}
}
