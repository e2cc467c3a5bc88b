// httpload: a small HTTP load generator for bench/seccomp_http.sh. -c connections, each kept
// alive, send -n GET requests in all (split evenly) to -url, one at a time per connection.
// Prints "requests N failed F seconds S rps R" and exits 1 if any request failed.
package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	url := flag.String("url", "", "what to GET")
	total := flag.Int("n", 20000, "requests in all")
	conns := flag.Int("c", 4, "keep-alive connections")
	flag.Parse()
	if *url == "" || *conns < 1 {
		fmt.Println("usage: httpload -url URL [-n N] [-c C]")
		os.Exit(2)
	}
	var failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for c := 0; c < *conns; c++ {
		share := *total / *conns
		if c < *total%*conns {
			share++
		}
		wg.Add(1)
		go func(share int) {
			defer wg.Done()
			// One client per connection: a transport with one idle connection kept alive.
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1},
				Timeout: 10 * time.Second}
			for i := 0; i < share; i++ {
				resp, err := client.Get(*url)
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
				}
			}
		}(share)
	}
	wg.Wait()
	seconds := time.Since(start).Seconds()
	fmt.Printf("requests %d failed %d seconds %.3f rps %.0f\n", *total, failed.Load(), seconds,
		float64(*total)/seconds)
	if failed.Load() > 0 {
		os.Exit(1)
	}
}
