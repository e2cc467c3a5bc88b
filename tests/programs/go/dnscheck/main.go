// dnscheck: a Go program resolving a name with Go's own resolver, for the seccomp backend's
// tests (tests/integration/seccomp_test.cpp). With PreferGo the lookup is Go's own UDP
// exchange, no libc resolver a preload's @dns could see, so under faultline it is reached as
// @net. Dial sends every query to -server (the test's DNS server on 127.0.0.1, since the test
// cannot edit /etc/resolv.conf). Prints "ok: ADDR" per address, or "error: ERR" (Go's own
// text) and exits 1.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"time"
)

func main() {
	server := flag.String("server", "127.0.0.1:53", "the DNS server every query goes to")
	timeout := flag.Duration("timeout", 5*time.Second, "the whole lookup's deadline")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Println("usage: dnscheck [-server HOST:PORT] [-timeout D] NAME")
		os.Exit(2)
	}
	resolver := &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "udp", *server)
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	// "ip4": one A query, which is all the test's server answers.
	addrs, err := resolver.LookupIP(ctx, "ip4", flag.Arg(0))
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	for _, a := range addrs {
		fmt.Println("ok:", a)
	}
}
