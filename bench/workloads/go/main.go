// The Go side of goro's side-by-side workloads (bench/compare). Each workload
// mirrors bench/workloads/goro/workloads.cc line for line in what it does.
//
// Usage: workloads <name> [n]   (GOMAXPROCS from the environment)
// Prints one line: name=<name> ns_per_op=<float> rss_kb=<int> [extra=...]
package main

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

func rssKB() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			v, _ := strconv.ParseInt(f[1], 10, 64)
			return v
		}
	}
	return 0
}

func report(name string, elapsed time.Duration, ops int, extra string) {
	fmt.Printf("name=%s ns_per_op=%.2f rss_kb=%d ops=%d%s\n", name, float64(elapsed.Nanoseconds())/float64(ops), rssKB(), ops, extra)
}

func spawnJoin(n int) {
	start := time.Now()
	var wg sync.WaitGroup
	wg.Add(n)
	for i := 0; i < n; i++ {
		go func() { wg.Done() }()
	}
	wg.Wait()
	report("spawn_join", time.Since(start), n, "")
}

func yieldSwitch(n int) {
	runtime.GOMAXPROCS(1)
	var wg sync.WaitGroup
	wg.Add(2)
	start := time.Now()
	for g := 0; g < 2; g++ {
		go func() {
			for i := 0; i < n; i++ {
				runtime.Gosched()
			}
			wg.Done()
		}()
	}
	wg.Wait()
	report("yield_switch", time.Since(start), 2*n, "")
}

func pingpong(n int) {
	a, b := make(chan int), make(chan int)
	go func() {
		for v := range a {
			b <- v + 1
		}
		close(b)
	}()
	start := time.Now()
	for i := 0; i < n; i++ {
		a <- i
		<-b
	}
	close(a)
	report("pingpong", time.Since(start), 2*n, "")
}

func chanSPSC(n int) {
	c := make(chan int, 128)
	start := time.Now()
	go func() {
		for i := 0; i < n; i++ {
			c <- i
		}
		close(c)
	}()
	sum := 0
	for v := range c {
		sum += v
	}
	if sum != n*(n-1)/2 {
		panic("lost values")
	}
	report("chan_spsc", time.Since(start), n, "")
}

func mpmc(name string, n, capacity int) {
	c := make(chan int, capacity)
	const P, C = 4, 4
	var pw, cw sync.WaitGroup
	sums := make([]int, C)
	start := time.Now()
	for p := 0; p < P; p++ {
		pw.Add(1)
		go func(p int) {
			for i := p; i < n; i += P {
				c <- i
			}
			pw.Done()
		}(p)
	}
	for k := 0; k < C; k++ {
		cw.Add(1)
		go func(k int) {
			s := 0
			for v := range c {
				s += v
			}
			sums[k] = s
			cw.Done()
		}(k)
	}
	pw.Wait()
	close(c)
	cw.Wait()
	total := 0
	for _, s := range sums {
		total += s
	}
	if total != n*(n-1)/2 {
		panic("lost values")
	}
	report(name, time.Since(start), n, "")
}

// receiveAllBySelect receives n values 0..n-1 from a and b through a
// two-case select and checks that each arrived once (their sum).
func receiveAllBySelect(a, b chan int, n int) {
	sum := 0
	for i := 0; i < n; i++ {
		select {
		case v := <-a:
			sum += v
		case v := <-b:
			sum += v
		}
	}
	if sum != n*(n-1)/2 {
		panic("lost values")
	}
}

func select2(n int) {
	a, b := make(chan int), make(chan int)
	go func() {
		for i := 0; i < n; i++ {
			if i%2 == 0 {
				a <- i
			} else {
				b <- i
			}
		}
	}()
	start := time.Now()
	receiveAllBySelect(a, b, n)
	report("select_2way", time.Since(start), n, "")
}

func selectBuffered(n int) {
	a, b := make(chan int, 128), make(chan int, 128)
	start := time.Now()
	go func() {
		for i := 0; i < n; i += 2 {
			a <- i
		}
	}()
	go func() {
		for i := 1; i < n; i += 2 {
			b <- i
		}
	}()
	receiveAllBySelect(a, b, n)
	report("select_buffered", time.Since(start), n, "")
}

func fanout(n int) {
	src := make(chan int, 256)
	sq := make(chan int, 256)
	start := time.Now()
	go func() {
		for i := 0; i < n; i++ {
			src <- i
		}
		close(src)
	}()
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			for v := range src {
				sq <- v * v
			}
			wg.Done()
		}()
	}
	go func() { wg.Wait(); close(sq) }()
	var sum uint64
	for v := range sq {
		sum += uint64(v)
	}
	var want uint64
	for i := 0; i < n; i++ {
		want += uint64(i * i)
	}
	if sum != want {
		panic("lost values")
	}
	report("fanout_pipeline", time.Since(start), n, "")
}

func sieveGen(ch chan<- int) {
	for i := 2; ; i++ {
		ch <- i
	}
}

func sieveFilter(in <-chan int, out chan<- int, prime int) {
	for {
		i := <-in
		if i%prime != 0 {
			out <- i
		}
	}
}

func primeSieve(n int) {
	start := time.Now()
	ch := make(chan int)
	go sieveGen(ch)
	last := 0
	for i := 0; i < n; i++ {
		prime := <-ch
		last = prime
		ch1 := make(chan int)
		go sieveFilter(ch, ch1, prime)
		ch = ch1
	}
	report("prime_sieve", time.Since(start), n, fmt.Sprintf(" last_prime=%d", last))
}

func mutexContended(n int) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	counter := 0
	const G = 8
	start := time.Now()
	for g := 0; g < G; g++ {
		wg.Add(1)
		go func() {
			for i := 0; i < n/G; i++ {
				mu.Lock()
				counter++
				mu.Unlock()
			}
			wg.Done()
		}()
	}
	wg.Wait()
	if counter != (n/G)*G {
		panic("lost increments")
	}
	report("mutex_contended", time.Since(start), (n/G)*G, "")
}

func mutexUncontended(n int) {
	var mu sync.Mutex
	counter := 0
	start := time.Now()
	for i := 0; i < n; i++ {
		mu.Lock()
		counter++
		mu.Unlock()
	}
	if counter != n {
		panic("count")
	}
	report("mutex_uncontended", time.Since(start), n, "")
}

func wgRound(n int) {
	start := time.Now()
	for i := 0; i < n; i++ {
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { wg.Done() }()
		wg.Wait()
	}
	report("wg_round", time.Since(start), n, "")
}

func ctxFanout(n int) {
	ctx, cancel := context.WithCancel(context.Background())
	var started, finished sync.WaitGroup
	started.Add(n)
	finished.Add(n)
	for i := 0; i < n; i++ {
		go func() {
			started.Done()
			<-ctx.Done()
			finished.Done()
		}()
	}
	started.Wait()
	start := time.Now()
	cancel()
	finished.Wait()
	report("ctx_fanout", time.Since(start), n, "")
}

func timers(n int) {
	r := rand.New(rand.NewSource(1))
	delays := make([]time.Duration, n)
	for i := range delays {
		delays[i] = time.Duration(r.Int63n(int64(100 * time.Millisecond)))
	}
	var wg sync.WaitGroup
	wg.Add(n)
	start := time.Now()
	for i := 0; i < n; i++ {
		d := delays[i]
		go func() {
			time.Sleep(d)
			wg.Done()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	var ideal time.Duration
	for _, d := range delays {
		if d > ideal {
			ideal = d
		}
	}
	overshoot := elapsed - ideal
	fmt.Printf("name=timers ns_per_op=%d rss_kb=%d overshoot_ms=%.2f\n", overshoot.Nanoseconds(), rssKB(), float64(overshoot.Nanoseconds())/1e6)
}

func millionBlocked(n int) {
	runtime.GC()
	before := rssKB()
	block := make(chan int)
	var started sync.WaitGroup
	started.Add(n)
	start := time.Now()
	for i := 0; i < n; i++ {
		go func() {
			started.Done()
			<-block
		}()
	}
	started.Wait()
	elapsed := time.Since(start)
	after := rssKB()
	fmt.Printf("name=million_blocked ns_per_op=%.2f rss_kb=%d bytes_per_g=%.0f\n",
		float64(elapsed.Nanoseconds())/float64(n), after, float64(after-before)*1024/float64(n))
	close(block)
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: workloads <name> [n]")
		os.Exit(2)
	}
	name := os.Args[1]
	n := 0
	if len(os.Args) > 2 {
		n, _ = strconv.Atoi(os.Args[2])
	}
	def := func(d int) int {
		if n > 0 {
			return n
		}
		return d
	}
	switch name {
	case "spawn_join":
		spawnJoin(def(1000000))
	case "yield_switch":
		yieldSwitch(def(10000000))
	case "pingpong":
		pingpong(def(4000000))
	case "chan_spsc":
		chanSPSC(def(20000000))
	case "chan_mpmc":
		mpmc("chan_mpmc", def(16000000), 1024)
	case "chan_unbuffered_mpmc":
		mpmc("chan_unbuffered_mpmc", def(3000000), 0)
	case "select_2way":
		select2(def(4000000))
	case "select_buffered":
		selectBuffered(def(4000000))
	case "fanout_pipeline":
		fanout(def(6000000))
	case "prime_sieve":
		primeSieve(def(5000))
	case "mutex_contended":
		mutexContended(def(40000000))
	case "mutex_uncontended":
		mutexUncontended(def(100000000))
	case "wg_round":
		wgRound(def(2000000))
	case "ctx_fanout":
		ctxFanout(def(100000))
	case "timers":
		timers(def(100000))
	case "million_blocked":
		millionBlocked(def(1000000))
	default:
		fmt.Fprintln(os.Stderr, "unknown workload", name)
		os.Exit(2)
	}
}
