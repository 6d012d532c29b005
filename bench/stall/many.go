// bench/stall/many.go: the Go side of `goro_stall many`: N goroutines each
// block their thread in one 10 ms nanosleep system call at once (Go hands
// the P of a thread in a system call to another thread, as goro's monitor
// does). Prints the time until all finished and the threads Go made.
//
//	go run bench/stall/many.go [n=10000]
package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"sync"
	"syscall"
	"time"
)

func main() {
	n := 10000
	if len(os.Args) > 1 {
		n, _ = strconv.Atoi(os.Args[1])
	}
	t0 := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ts := syscall.NsecToTimespec(int64(10 * time.Millisecond))
			syscall.Nanosleep(&ts, nil)
		}()
	}
	wg.Wait()
	took := time.Since(t0)
	fmt.Printf("kind=many-go n=%d procs=%d took_ms=%.0f threads_created=%d\n", n, runtime.GOMAXPROCS(0),
		float64(took.Microseconds())/1000, pprof.Lookup("threadcreate").Count())
}
