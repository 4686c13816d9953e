package fastcgi

import (
	"bufio"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// childServeEnv, set in the environment, makes the test binary a FastCGI
// server on the unix socket it names, for measurements of a process's own
// memory. It serves until its stdin closes.
const childServeEnv = "FASTCGI_TEST_SERVE"

// serveChild runs in the child process; it never returns.
func serveChild(addr string) {
	mux := http.NewServeMux()
	mux.HandleFunc("/upload", func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "%d %x", n, h.Sum(nil))
	})
	mux.HandleFunc("/download", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
		chunk := make([]byte, 64<<10)
		for ; n > 0; n -= int64(len(chunk)) {
			if _, err := w.Write(chunk[:min(n, int64(len(chunk)))]); err != nil {
				return
			}
		}
	})
	mux.HandleFunc("/limited", func(w http.ResponseWriter, r *http.Request) {
		// The body cap is the handler's: the server has none.
		n, err := io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, 1<<20))
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
			return
		}
		fmt.Fprintf(w, "%d", n)
	})
	l, err := Listen("unix:"+addr, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	s := &Server{Handler: mux, Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))}
	go func() {
		io.Copy(io.Discard, os.Stdin)
		s.Close()
	}()
	s.Serve(l)
	os.Exit(0)
}

// peakRSS reads a process's peak resident set size in bytes.
func peakRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}

// BenchmarkStream1GiB sends a 1 GiB upload to a server in its own process
// (the body of unknown length, as nginx sends with
// fastcgi_request_buffering off) and takes a 1 GiB streamed response, and
// reports the throughput and the server's peak RSS. Target: under 64 MiB.
func BenchmarkStream1GiB(b *testing.B) {
	const size = 1 << 30
	addr := filepath.Join(b.TempDir(), "s")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childServeEnv+"="+addr)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { stdin.Close(); cmd.Wait() }()
	var c net.Conn
	for deadline := time.Now().Add(10 * time.Second); ; {
		if c, err = net.Dial("unix", addr); err == nil {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("the child server did not start: %v", err)
		}
		time.Sleep(10 * time.Millisecond) // bounded poll for a process we cannot signal on
	}
	defer c.Close()
	br := bufio.NewReaderSize(c, 64<<10)
	readAll := func() (int64, string) {
		var n int64
		var head []byte
		for {
			r, err := (&rawConn{br: br}).read()
			if err != nil {
				b.Fatal(err)
			}
			if r.h.Type == typeEndRequest {
				return n, string(head)
			}
			if r.h.Type == typeStdout {
				n += int64(len(r.content))
				if len(head) < 512 {
					head = append(head, r.content[:min(len(r.content), 512)]...)
				}
			}
		}
	}
	chunk := make([]byte, maxStreamChunk)
	rec := make([]byte, 0, len(chunk)+2*headerLen)
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		w := bufio.NewWriterSize(c, 256<<10)
		w.Write(beginRecord(1, roleResponder, true))
		w.Write(paramsRecords(1, "REQUEST_METHOD=POST", "REQUEST_URI=/upload", "CONTENT_LENGTH="))
		errc := make(chan error, 1)
		go func() {
			for sent := 0; sent < size; sent += len(chunk) {
				rec = appendRecord(rec[:0], typeStdin, 1, chunk[:min(len(chunk), size-sent)])
				if _, err := w.Write(rec); err != nil {
					errc <- err
					return
				}
			}
			w.Write(appendRecord(nil, typeStdin, 1, nil))
			errc <- w.Flush()
		}()
		_, answer := readAll()
		if err := <-errc; err != nil {
			b.Fatal(err)
		}
		if !strings.Contains(answer, "\r\n\r\n"+strconv.Itoa(size)+" ") {
			b.Fatalf("upload answer = %q", answer)
		}
		up := time.Since(start)

		start = time.Now()
		c.Write(requestRecords(2, true, "", "REQUEST_METHOD=GET", "REQUEST_URI=/download?n="+strconv.Itoa(size)))
		n, _ := readAll()
		if n < size {
			b.Fatalf("download: %d bytes", n)
		}
		down := time.Since(start)
		b.ReportMetric(float64(size)/up.Seconds()/1e6, "upload-MB/s")
		b.ReportMetric(float64(size)/down.Seconds()/1e6, "download-MB/s")
	}
	b.StopTimer()
	rss, err := peakRSS(cmd.Process.Pid)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(rss)/(1<<20), "server-peak-RSS-MiB")
}

// BenchmarkIdleConn measures what an idle kept connection costs: n
// connections each answer one request with FCGI_KEEP_CONN and stay open.
// The figure includes the client's side of each connection, so it bounds
// the server's. Target: at most 16 KiB.
func BenchmarkIdleConn(b *testing.B) {
	const n = 1000
	for b.Loop() {
		addr := filepath.Join(b.TempDir(), "s")
		l, err := Listen("unix:"+addr, 0)
		if err != nil {
			b.Fatal(err)
		}
		s := &Server{Handler: helloHandler(), Logger: slog.New(slog.DiscardHandler)}
		done := make(chan error, 1)
		go func() { done <- s.Serve(l) }()
		measure := func() (heap, stack uint64) {
			runtime.GC()
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			return m.HeapInuse, m.StackInuse
		}
		heap0, stack0 := measure()
		conns := make([]*rawConn, 0, n)
		req := requestRecords(1, true, "", nginxHello...)
		for range n {
			c, err := net.Dial("unix", addr)
			if err != nil {
				b.Fatal(err)
			}
			rc := &rawConn{c: c, br: bufio.NewReaderSize(c, 16)}
			c.Write(req)
			for {
				r, err := rc.read()
				if err != nil {
					b.Fatal(err)
				}
				if r.h.Type == typeEndRequest {
					break
				}
			}
			conns = append(conns, rc)
		}
		heap1, stack1 := measure()
		b.ReportMetric(float64(heap1+stack1-heap0-stack0)/n, "B/idle-conn")
		b.ReportMetric(float64(stack1-stack0)/n, "stack-B/idle-conn")
		for _, rc := range conns {
			rc.c.Close()
		}
		s.Close()
		<-done
	}
}
