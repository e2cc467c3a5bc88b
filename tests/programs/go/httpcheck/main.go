// httpcheck: a Go net/http server and client in one process, for the seccomp backend's tests
// (tests/integration/seccomp_test.cpp). Go makes its system calls itself, so no preload sees
// them. It serves "hello" on 127.0.0.1 (a free port), then GETs it -n times, each on a new
// connection, with the client's own timeout (-timeout). Prints "ok: BODY" or "error: ERR" (the
// Go client's own text) per request, and exits 1 if any failed, else 0.
package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

func main() {
	timeout := flag.Duration("timeout", 5*time.Second, "the client's http.Client.Timeout")
	count := flag.Int("n", 1, "requests, one after the other")
	flag.Parse()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println("listen:", err)
		os.Exit(2)
	}
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello")
	}))
	client := &http.Client{Timeout: *timeout}
	status := 0
	for i := 0; i < *count; i++ {
		// A fresh connection each time: every request connects.
		client.Transport = &http.Transport{DisableKeepAlives: true}
		resp, err := client.Get("http://" + ln.Addr().String() + "/")
		if err != nil {
			fmt.Println("error:", err)
			status = 1
			continue
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			fmt.Println("error:", err)
			status = 1
			continue
		}
		fmt.Println("ok:", string(body))
	}
	os.Exit(status)
}
