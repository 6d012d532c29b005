// bench/stall/du.go: the Go side of bench/stall/du (du4 from The Go
// Programming Language): one goroutine per directory, at most 20
// ioutil.ReadDir calls in flight, sizes summed through a channel.
//
//	go run bench/stall/du.go [root=/usr]
package main

import (
	"fmt"
	"io/ioutil"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sync"
	"time"
)

var sema = make(chan struct{}, 20)

func walkDir(dir string, n *sync.WaitGroup, sizes chan<- int64) {
	defer n.Done()
	for _, e := range dirents(dir) {
		if e.IsDir() {
			n.Add(1)
			go walkDir(filepath.Join(dir, e.Name()), n, sizes)
		} else {
			sizes <- e.Size()
		}
	}
}

func dirents(dir string) []os.FileInfo {
	sema <- struct{}{}
	defer func() { <-sema }()
	es, err := ioutil.ReadDir(dir)
	if err != nil {
		return nil
	}
	return es
}

func main() {
	root := "/usr"
	if len(os.Args) > 1 {
		root = os.Args[1]
	}
	t0 := time.Now()
	sizes := make(chan int64, 256)
	var n sync.WaitGroup
	n.Add(1)
	go walkDir(root, &n, sizes)
	go func() {
		n.Wait()
		close(sizes)
	}()
	var files, bytes int64
	for s := range sizes {
		files++
		bytes += s
	}
	fmt.Printf("mode=go procs=%d files=%d bytes=%d took_ms=%.0f threads_created=%d\n", runtime.GOMAXPROCS(0), files, bytes,
		float64(time.Since(t0).Microseconds())/1000, pprof.Lookup("threadcreate").Count())
}
