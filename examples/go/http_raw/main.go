// The Go twin of examples/http_hello.cc over raw connections: the same small
// HTTP/1.1 logic as examples/http_minimal.h (request line + headers,
// Content-Length bodies skipped, pipelined requests answered in one write,
// "Connection: close" and HTTP/1.0 honoured, chunked bodies refused with 501,
// heads over 8 KiB answered 431), one goroutine per net.Conn. Beside
// examples/go/http_hello (net/http), this is the row that compares runtimes
// rather than parsers. Usage: http_raw [address] (default 127.0.0.1:8080).
package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

const maxHeader = 8192

var body = []byte("Hello, World!")

// The Date header, formatted once per second (shared by all connections).
var date atomic.Value

func init() {
	date.Store(time.Now().UTC().Format("Mon, 02 Jan 2006 15:04:05 GMT"))
	go func() {
		for range time.Tick(time.Second) {
			date.Store(time.Now().UTC().Format("Mon, 02 Jan 2006 15:04:05 GMT"))
		}
	}()
}

type request struct {
	total     int
	keepAlive bool
	err       int
}

func parse(head []byte, bodyAt int) request {
	r := request{keepAlive: true}
	eol := bytes.Index(head, []byte("\r\n"))
	line := head
	if eol >= 0 {
		line = head[:eol]
	}
	sp1 := bytes.IndexByte(line, ' ')
	sp2 := bytes.LastIndexByte(line, ' ')
	if sp1 < 0 || sp2 == sp1 {
		return request{err: 400}
	}
	switch string(line[sp2+1:]) {
	case "HTTP/1.1":
		r.keepAlive = true
	case "HTTP/1.0":
		r.keepAlive = false
	default:
		return request{err: 400}
	}
	contentLength := 0
	for eol >= 0 {
		start := eol + 2
		next := bytes.Index(head[start:], []byte("\r\n"))
		var h []byte
		if next < 0 {
			h = head[start:]
			eol = -1
		} else {
			h = head[start : start+next]
			eol = start + next
		}
		colon := bytes.IndexByte(h, ':')
		if colon < 0 {
			continue
		}
		name := string(h[:colon])
		value := strings.Trim(string(h[colon+1:]), " \t")
		switch {
		case strings.EqualFold(name, "Connection"):
			if strings.EqualFold(value, "close") {
				r.keepAlive = false
			}
			if strings.EqualFold(value, "keep-alive") {
				r.keepAlive = true
			}
		case strings.EqualFold(name, "Content-Length"):
			contentLength, _ = strconv.Atoi(value)
		case strings.EqualFold(name, "Transfer-Encoding"):
			return request{err: 501}
		}
	}
	r.total = bodyAt + contentLength
	return r
}

func appendResponse(out []byte, status int, keepAlive bool) []byte {
	reason := map[int]string{200: "OK", 400: "Bad Request", 431: "Request Header Fields Too Large", 501: "Not Implemented"}[status]
	b := body
	if status != 200 {
		b = []byte(reason)
	}
	closing := ""
	if !keepAlive {
		closing = "Connection: close\r\n"
	}
	out = append(out, fmt.Sprintf("HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Length: %d\r\nContent-Type: text/plain; charset=utf-8\r\n%s\r\n",
		status, reason, date.Load().(string), len(b), closing)...)
	return append(out, b...)
}

// answer handles every complete request at the start of in; it returns the
// bytes consumed, the responses, and whether the connection stays open.
func answer(in []byte, out []byte) (int, []byte, bool) {
	pos := 0
	for {
		rest := in[pos:]
		end := bytes.Index(rest, []byte("\r\n\r\n"))
		if end < 0 {
			if len(rest) > maxHeader {
				return pos, appendResponse(out, 431, false), false
			}
			return pos, out, true
		}
		r := parse(rest[:end], end+4)
		if r.err != 0 {
			return pos, appendResponse(out, r.err, false), false
		}
		if len(rest) < r.total {
			return pos, out, true
		}
		out = appendResponse(out, 200, r.keepAlive)
		pos += r.total
		if !r.keepAlive {
			return pos, out, false
		}
	}
}

func serve(c net.Conn) {
	defer c.Close()
	in := make([]byte, maxHeader+4096)
	n := 0
	var out []byte
	for {
		if n == len(in) {
			in = append(in, make([]byte, len(in))...)
		}
		got, err := c.Read(in[n:])
		if err != nil {
			return
		}
		n += got
		pos, resp, keepAlive := answer(in[:n], out[:0])
		out = resp
		copy(in, in[pos:n])
		n -= pos
		if len(out) > 0 {
			if _, err := c.Write(out); err != nil {
				return
			}
		}
		if !keepAlive {
			return
		}
	}
}

func main() {
	addr := "127.0.0.1:8080"
	if len(os.Args) > 1 {
		addr = os.Args[1]
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "http_raw:", err)
		os.Exit(1)
	}
	fmt.Println("listening on", ln.Addr())
	for {
		c, err := ln.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, "http_raw: accept:", err)
			time.Sleep(5 * time.Millisecond)
			continue
		}
		go serve(c)
	}
}
