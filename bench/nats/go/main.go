// bench/nats/go: Go's own NATS client (Debian's golang-github-nats-io-go-nats-dev)
// on the three shapes of bench/nats/goro_nats_bench.cc. Built offline:
//   GOPATH=/usr/share/gocode GO111MODULE=off go build
// queue uses a callback subscription (ChanQueueSubscribe drops messages that
// do not fit its channel: it cannot take this shape without loss).
package main

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

func conn(url string) *nats.Conn {
	nc, err := nats.Connect(url)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	return nc
}

func main() {
	mode, url := os.Args[1], os.Args[2]
	n, _ := strconv.Atoi(os.Args[3])
	size := 16
	if len(os.Args) > 4 {
		size, _ = strconv.Atoi(os.Args[4])
	}
	body := make([]byte, size)
	for i := range body {
		body[i] = 'x'
	}
	switch mode {
	case "pub":
		nc := conn(url)
		t0 := time.Now()
		for i := 0; i < n; i++ {
			nc.Publish("bench.pub", body)
		}
		nc.Flush()
		fmt.Printf("pub_rate=%.0f\n", float64(n)/time.Since(t0).Seconds())
	case "queue":
		snc := conn(url)
		var first, last time.Time
		done := make(chan struct{})
		var got int64
		sub, _ := snc.QueueSubscribe("bench.q", "q", func(m *nats.Msg) {
			g := atomic.AddInt64(&got, 1)
			if g == 1 {
				first = time.Now()
			}
			if g == int64(n) {
				last = time.Now()
				close(done)
			}
		})
		sub.SetPendingLimits(-1, -1)
		snc.Flush()
		pub := conn(url)
		for i := 0; i < n; i++ {
			pub.Publish("bench.q", body)
		}
		pub.Flush()
		<-done
		fmt.Printf("queue_rate=%.0f\n", float64(n-1)/last.Sub(first).Seconds())
	case "req":
		rnc := conn(url)
		rnc.Subscribe("bench.req", func(m *nats.Msg) { m.Respond(m.Data) })
		rnc.Flush()
		nc := conn(url)
		us := make([]float64, n)
		for i := 0; i < n; i++ {
			t0 := time.Now()
			if _, err := nc.Request("bench.req", body, 5*time.Second); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			us[i] = float64(time.Since(t0).Nanoseconds()) / 1e3
		}
		sort.Float64s(us)
		fmt.Printf("req_p50=%.1f req_p99=%.1f\n", us[n/2], us[n*99/100])
	}
}
