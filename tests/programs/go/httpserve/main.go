// httpserve: a Go net/http server for bench/seccomp_http.sh, the throughput of a Go program
// under the seccomp backend. Serves "hello" on -addr (127.0.0.1, a free port by default),
// prints "listening HOST:PORT" once it accepts, and runs until killed.
package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "where to listen")
	flag.Parse()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Println("listen:", err)
		os.Exit(2)
	}
	fmt.Println("listening", ln.Addr().String())
	err = http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello")
	}))
	fmt.Println("serve:", err)
	os.Exit(1)
}
