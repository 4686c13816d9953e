package cgirun

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/yookoala/gofast"
)

// TestMaxRequests crosses CGIRUN_MAX_REQUESTS in HTTP and FastCGI mode: with
// one request held in its handler, a second gets a real 503 with
// Retry-After (never FCGI_OVERLOADED, which nginx turns into a 502), or
// with CGIRUN_QUEUE_REQUESTS waits for the slot, up to
// CGIRUN_HEADER_TIMEOUT. The status and ping paths answer all along.
func TestMaxRequests(t *testing.T) {
	const body503 = "503 Service Unavailable\n"
	tests := []struct {
		name    string
		env     map[string]string
		release bool // release the held request while the second waits
		status  int
		body    string
	}{
		{"refused", map[string]string{}, false, http.StatusServiceUnavailable, body503},
		{"queued, then served", map[string]string{"CGIRUN_QUEUE_REQUESTS": "true"}, true, http.StatusOK, "ok"},
		{"queued past CGIRUN_HEADER_TIMEOUT", map[string]string{"CGIRUN_QUEUE_REQUESTS": "true", "CGIRUN_HEADER_TIMEOUT": "50ms"}, false, http.StatusServiceUnavailable, body503},
	}
	for _, mode := range []Mode{ModeHTTP, ModeFastCGI} {
		for _, tt := range tests {
			t.Run(string(mode)+"/"+tt.name, func(t *testing.T) {
				env := map[string]string{"CGIRUN_MAX_REQUESTS": "1", "CGIRUN_STATUS_PATH": "/status", "CGIRUN_PING_PATH": "/ping", "CGIRUN_HTTP": "127.0.0.1:0"}
				sock := filepath.Join(t.TempDir(), "app.sock")
				if mode == ModeFastCGI {
					env["CGIRUN_FASTCGI"] = "unix:" + sock
				}
				for k, v := range tt.env {
					env[k] = v
				}
				started, release := make(chan struct{}), make(chan struct{})
				var inHandler, maxInHandler atomic.Int32
				h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					n := inHandler.Add(1)
					defer inHandler.Add(-1)
					if n > maxInHandler.Load() {
						maxInHandler.Store(n)
					}
					if r.URL.Path == "/block" {
						close(started)
						<-release
					}
					io.WriteString(w, "ok")
				})
				var logs syncBuffer
				s := NewServer(testConfig(t, env), h, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
				queued := make(chan struct{})
				s.mon.queued = func() { close(queued) }
				served := serveInBackground(t, s)
				t.Cleanup(func() {
					s.Close()
					<-served
				})
				get := func(path string) *httptest.ResponseRecorder {
					t.Helper()
					w := httptest.NewRecorder()
					if mode == ModeHTTP {
						resp, err := http.Get("http://" + s.Addrs()[0].String() + path)
						if err != nil {
							t.Error(err)
							return w
						}
						defer resp.Body.Close()
						w.Code, w.HeaderMap = resp.StatusCode, resp.Header
						io.Copy(w.Body, resp.Body)
						return w
					}
					req := gofast.NewRequest(nil)
					req.Params = map[string]string{"REQUEST_METHOD": "GET", "REQUEST_URI": path, "SCRIPT_NAME": path, "SERVER_PROTOCOL": "HTTP/1.1", "SERVER_NAME": "example.org"}
					client, err := gofast.SimpleClientFactory(gofast.SimpleConnFactory("unix", sock))()
					if err != nil {
						t.Error(err)
						return w
					}
					defer client.Close()
					resp, err := client.Do(req)
					if err != nil {
						t.Error(err)
						return w
					}
					if err := resp.WriteTo(w, io.Discard); err != nil {
						t.Errorf("GET %s: %v", path, err)
					}
					return w
				}
				first := make(chan *httptest.ResponseRecorder, 1)
				go func() { first <- get("/block") }()
				<-started
				for _, path := range []string{"/status", "/ping"} {
					if w := get(path); w.Code != http.StatusOK {
						t.Errorf("GET %s with the one slot taken = %d %q, want 200", path, w.Code, w.Body)
					}
				}
				second := make(chan *httptest.ResponseRecorder, 1)
				go func() { second <- get("/") }()
				if tt.release {
					<-queued
					close(release)
				}
				w := <-second
				if w.Code != tt.status || w.Body.String() != tt.body {
					t.Errorf("GET / past CGIRUN_MAX_REQUESTS=1 = %d %q, want %d %q", w.Code, w.Body, tt.status, tt.body)
				}
				if tt.status == http.StatusServiceUnavailable {
					if got := w.Header().Get("Retry-After"); got != "1" {
						t.Errorf("Retry-After = %q, want 1", got)
					}
					if !strings.Contains(logs.String(), "CGIRUN_MAX_REQUESTS") {
						t.Errorf("log = %q, want a line naming CGIRUN_MAX_REQUESTS", logs.String())
					}
				}
				if !tt.release {
					close(release)
				}
				if w := <-first; w.Code != http.StatusOK || w.Body.String() != "ok" {
					t.Errorf("held request = %d %q, want 200 ok", w.Code, w.Body)
				}
				if got := maxInHandler.Load(); got != 1 {
					t.Errorf("most requests in the handler at once = %d, want 1", got)
				}
			})
		}
	}
}
