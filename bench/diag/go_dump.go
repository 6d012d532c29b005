// bench/diag/go_dump.go: Go's side of tests/diag/dump_scale.cc, the same
// shape (100,000 goroutines, half parked on a channel receive, half on a
// Mutex) dumped with runtime.Stack(buf, true), which stops the world for the
// whole dump. Run: /usr/lib/go-1.19/bin/go run bench/diag/go_dump.go
package main

import (
	"fmt"
	"runtime"
	"sync"
	"time"
)

//go:noinline
func parkedReader(c chan int) { <-c }

//go:noinline
func parkedLocker(m *sync.Mutex) { m.Lock(); m.Unlock() }

func main() {
	n := 100000
	c := make(chan int)
	var m sync.Mutex
	m.Lock()
	for i := 0; i < n; i++ {
		if i%2 == 0 {
			go parkedReader(c)
		} else {
			go parkedLocker(&m)
		}
	}
	time.Sleep(500 * time.Millisecond)
	buf := make([]byte, 256<<20)
	t0 := time.Now()
	k := runtime.Stack(buf, true)
	fmt.Printf("go: dump of %d goroutines: %.3f s, %d bytes\n", n, time.Since(t0).Seconds(), k)
	t0 = time.Now()
	k = runtime.Stack(buf, true)
	fmt.Printf("go: second dump: %.3f s, %d bytes\n", time.Since(t0).Seconds(), k)
}
