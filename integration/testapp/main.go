// Command testapp is the handler the integration tests put behind real web
// servers, started through cgirun.Run like any cgirun program.
//
//	/              "Hello, World!\n"
//	/echo/...      method, path, query, the X-Raw header and the body,
//	               separated by "|", all byte for byte; X-Raw is echoed
//	               back in the X-Echo-Raw response header
//	/stream?wait=F "first\n", flushed; then, once file F exists, "second\n"
//	/env           the raw CGI variables, one NAME=value a line
//	/upload        reads the body to its end without holding it; answers
//	               its length and SHA-256
//	/download?n=N  N bytes of 'x', streamed
//	/slow?mark=F   streams a line every 10 ms until its context ends, then
//	               writes the context's cause into file F
//	/private/...   "private" (behind an authorizer)
//	/panic         panics before it writes anything: every mode answers 500
//	/pid?echo=X&sleep=D
//	               after D (at most 2 s; 0 without it), "X PID VERSION\n":
//	               which process answered, and which build (VERSION is
//	               set with -ldflags "-X main.version=...")
//	/drip?n=N&every=D
//	               N lines "line I\n", one every D, flushed, until its
//	               context ends; counted in /debug/counts
//	/debug/counts  JSON: goroutines, and the /drip handlers started,
//	               completed, ended by their context (cancelled) and
//	               ended by a failed write whose context then did not end
//	               within 5 s (uncancelled)
//
// As a FastCGI Authorizer it allows REMOTE_USER alice (or a request whose
// Authorization header is "Bearer good") and passes Variable-USER_LEVEL;
// it denies everyone else with 403.
//
// Any other way it is started, it serves through cgirun.Run.
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/cgirun/cgirun"
	"github.com/cgirun/cgirun/bridge"
)

// version is the build's, for /pid.
var version = "dev"

// The /drip handlers, for /debug/counts.
var dripStarted, dripCompleted, dripCancelled, dripUncancelled atomic.Int64

func handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/pid", func(w http.ResponseWriter, r *http.Request) {
		if d, err := time.ParseDuration(r.URL.Query().Get("sleep")); err == nil && d > 0 {
			t := time.NewTimer(min(d, 2*time.Second))
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "%s %d %s\n", r.URL.Query().Get("echo"), os.Getpid(), version)
	})
	mux.HandleFunc("/drip", drip)
	mux.HandleFunc("/panic", func(w http.ResponseWriter, r *http.Request) {
		panic("testapp: /panic")
	})
	mux.HandleFunc("/debug/counts", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"goroutines":%d,"started":%d,"completed":%d,"cancelled":%d,"uncancelled":%d}`+"\n",
			runtime.NumGoroutine(), dripStarted.Load(), dripCompleted.Load(), dripCancelled.Load(), dripUncancelled.Load())
	})
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "Hello, World!\n")
	})
	mux.HandleFunc("/echo/", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "reading the body: "+err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("X-Echo-Raw", r.Header.Get("X-Raw"))
		fmt.Fprintf(w, "%s|%s|%s|%s|%s", r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("X-Raw"), body)
	})
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("X-Accel-Buffering", "no")
		io.WriteString(w, "first\n")
		if err := http.NewResponseController(w).Flush(); err != nil {
			return
		}
		// The test creates the file once it has read the first line;
		// give up after a bound so that a failed test leaves no process.
		deadline := time.Now().Add(10 * time.Second)
		for {
			if _, err := os.Stat(r.URL.Query().Get("wait")); err == nil {
				break
			}
			if time.Now().After(deadline) {
				io.WriteString(w, "gave up waiting\n")
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		io.WriteString(w, "second\n")
	})
	mux.HandleFunc("/upload", func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, "reading the body: "+err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "%d %x", n, h.Sum(nil))
	})
	mux.HandleFunc("/download", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
		if err != nil {
			http.Error(w, "n: "+err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		for n > 0 {
			k := min(n, int64(len(chunk)))
			if _, err := w.Write(chunk[:k]); err != nil {
				return
			}
			n -= k
		}
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Accel-Buffering", "no")
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for i := 0; ; i++ {
			select {
			case <-r.Context().Done():
				os.WriteFile(r.URL.Query().Get("mark"), []byte(context.Cause(r.Context()).Error()), 0o644)
				return
			case <-t.C:
			}
			fmt.Fprintf(w, "line %d\n", i)
			http.NewResponseController(w).Flush()
			if i > 3000 { // 30 s: a bound for a test gone wrong
				return
			}
		}
	})
	mux.HandleFunc("/private/", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "private")
	})
	mux.HandleFunc("/env", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		for name, value := range bridge.EnvironOf(r).All() {
			fmt.Fprintf(w, "%s=%s\n", name, value)
		}
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if req := bridge.RequestOf(r); req != nil && req.Role == bridge.RoleAuthorizer {
			authorize(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// drip streams n lines, one every d, and counts how it ended.
func drip(w http.ResponseWriter, r *http.Request) {
	n, err1 := strconv.Atoi(r.URL.Query().Get("n"))
	every, err2 := time.ParseDuration(r.URL.Query().Get("every"))
	if err1 != nil || err2 != nil || n < 1 || n > 10000 || every <= 0 || every > time.Second {
		http.Error(w, "want n=1..10000 and every=a duration up to 1s", http.StatusBadRequest)
		return
	}
	dripStarted.Add(1)
	ctx := r.Context()
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("X-Accel-Buffering", "no")
	rc := http.NewResponseController(w)
	t := time.NewTicker(every)
	defer t.Stop()
	for i := range n {
		_, err := fmt.Fprintf(w, "line %d\n", i)
		if err == nil {
			err = rc.Flush()
		}
		if err != nil {
			// The connection went first: its context must end too.
			bound := time.NewTimer(5 * time.Second)
			defer bound.Stop()
			select {
			case <-ctx.Done():
				dripCancelled.Add(1)
			case <-bound.C:
				dripUncancelled.Add(1)
			}
			return
		}
		if i == n-1 {
			break
		}
		select {
		case <-ctx.Done():
			dripCancelled.Add(1)
			return
		case <-t.C:
		}
	}
	dripCompleted.Add(1)
}

func authorize(w http.ResponseWriter, r *http.Request) {
	env := bridge.EnvironOf(r)
	if env.Get("REMOTE_USER") == "alice" || r.Header.Get("Authorization") == "Bearer good" {
		bridge.SetVariable(w.Header(), "USER_LEVEL", "admin")
		w.WriteHeader(http.StatusOK)
		return
	}
	http.Error(w, "Forbidden", http.StatusForbidden)
}

func main() {
	if err := cgirun.Run(handler()); err != nil {
		fmt.Fprintln(os.Stderr, "testapp:", err)
		os.Exit(1)
	}
}
