package bridge

import (
	"bufio"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/cgirun/cgirun/internal/testlog"
)

// syncBuffer is a log destination safe for a server's goroutines.
type syncBuffer = testlog.Buffer

// httpAnswer is what a client got over HTTP: the interim responses, the
// final status, the headers that tell an error response, the body, and
// whether it was cut short.
type httpAnswer struct {
	interim     string // "103 Link=..." per interim response
	status      int
	contentType string
	cookie      string
	length      int64
	body        string
	cut         bool
}

// getRaw sends GET path to addr on a connection of its own and reads the
// answer; a missing answer, or a body that ends early, is a cut.
func getRaw(t *testing.T, addr, path string) httpAnswer {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: example.org\r\n\r\n", path)
	br := bufio.NewReader(c)
	var a httpAnswer
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return httpAnswer{interim: a.interim, cut: true}
		}
		if resp.StatusCode < 200 {
			a.interim += fmt.Sprintf("%d Link=%s;", resp.StatusCode, resp.Header.Get("Link"))
			continue
		}
		b, err := io.ReadAll(resp.Body)
		a.status, a.contentType, a.cookie = resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Set-Cookie")
		a.length, a.body, a.cut = resp.ContentLength, string(b), err != nil
		return a
	}
}

// TestServeHTTPFailures: HandlerResponder.ServeHTTP answers a handler that
// fails behind net/http as Respond does: a clean 500 and one log line
// before the response started, a cut and one log line after it, and never
// net/http's "http: panic serving". Committed, asked on the way out, says
// which.
func TestServeHTTPFailures(t *testing.T) {
	clean500 := httpAnswer{status: 500, contentType: "text/plain; charset=utf-8", length: 26, body: "500 Internal Server Error\n"}
	partial := httpAnswer{status: 200, contentType: "text/html", cookie: "a=b", length: -1, body: "partial", cut: true}
	flush := func(w http.ResponseWriter) {
		io.WriteString(w, "partial")
		w.(http.Flusher).Flush()
	}
	tests := []struct {
		path          string
		h             func(w http.ResponseWriter)
		want          httpAnswer
		wantCommitted bool
		wantLog       string // "" means none
	}{
		{
			path: "/ok",
			h:    func(w http.ResponseWriter) { io.WriteString(w, "fine") },
			want: httpAnswer{status: 200, contentType: "text/html", cookie: "a=b", length: 4, body: "fine"},
		},
		{
			path: "/panic-before-start",
			h: func(w http.ResponseWriter) {
				w.WriteHeader(http.StatusCreated)
				io.WriteString(w, "held")
				panic("boom")
			},
			want:    clean500,
			wantLog: `level=ERROR msg="bridge: handler panicked: boom" uri=/panic-before-start status=500 stack=`,
		},
		{
			path:          "/panic-after-flush",
			h:             func(w http.ResponseWriter) { flush(w); panic("late boom") },
			want:          partial,
			wantCommitted: true,
			wantLog:       `level=ERROR msg="bridge: response cut short: handler panicked: late boom" uri=/panic-after-flush stack=`,
		},
		{
			path: "/panic-after-big-write",
			h: func(w http.ResponseWriter) {
				io.WriteString(w, strings.Repeat("b", BufferSize+1))
				panic("boom")
			},
			want:          httpAnswer{status: 200, contentType: "text/html", cookie: "a=b", length: -1, body: strings.Repeat("b", BufferSize+1), cut: true},
			wantCommitted: true,
			wantLog:       `msg="bridge: response cut short: handler panicked: boom"`,
		},
		{
			path:    "/goexit",
			h:       func(w http.ResponseWriter) { io.WriteString(w, "held"); runtime.Goexit() },
			want:    clean500,
			wantLog: `level=ERROR msg="bridge: handler called runtime.Goexit" uri=/goexit status=500 stack=`,
		},
		{
			path:          "/goexit-after-flush",
			h:             func(w http.ResponseWriter) { flush(w); runtime.Goexit() },
			want:          partial,
			wantCommitted: true,
			wantLog:       `msg="bridge: response cut short: handler called runtime.Goexit" uri=/goexit-after-flush`,
		},
		{
			path: "/abort",
			h:    func(w http.ResponseWriter) { io.WriteString(w, "held"); panic(http.ErrAbortHandler) },
			want: clean500,
		},
		{
			path:          "/abort-after-flush",
			h:             func(w http.ResponseWriter) { flush(w); panic(http.ErrAbortHandler) },
			want:          partial,
			wantCommitted: true,
		},
		{
			path: "/early-hints",
			h: func(w http.ResponseWriter) {
				w.Header().Set("Link", "</a.css>; rel=preload")
				w.WriteHeader(http.StatusEarlyHints)
				w.Header().Del("Link")
				io.WriteString(w, "hinted")
			},
			want: httpAnswer{interim: "103 Link=</a.css>; rel=preload;", status: 200, contentType: "text/html", cookie: "a=b", length: 6, body: "hinted"},
		},
	}
	handlers := make(map[string]func(http.ResponseWriter), len(tests))
	for _, tt := range tests {
		handlers[tt.path] = tt.h
	}
	var committed sync.Map // path -> Committed() as the handler failed or returned
	logs, serverLogs := new(syncBuffer), new(syncBuffer)
	hr := &HandlerResponder{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// As an access log does: ask the writer below on the way out,
			// the panic passing through.
			defer func() { committed.Store(r.URL.Path, w.(Committer).Committed()) }()
			w.Header().Set("Content-Type", "text/html")
			w.Header().Set("Set-Cookie", "a=b")
			handlers[r.URL.Path](w)
		}),
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
	}
	srv := httptest.NewUnstartedServer(hr)
	srv.Config.ErrorLog = log.New(serverLogs, "", 0)
	srv.Start()
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()

	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			before := len(logs.String())
			if got := getRaw(t, addr, tt.path); got != tt.want {
				t.Errorf("GET %s = %+v, want %+v", tt.path, got, tt.want)
			}
			if c, _ := committed.Load(tt.path); c != tt.wantCommitted {
				t.Errorf("GET %s: Committed() = %v on the way out, want %v", tt.path, c, tt.wantCommitted)
			}
			got := logs.String()[before:]
			if tt.wantLog == "" && got != "" || strings.Count(got, "\n") > 1 || !strings.Contains(got, tt.wantLog) {
				t.Errorf("GET %s logged %q, want one line with %q", tt.path, got, tt.wantLog)
			}
		})
	}
	if l := serverLogs.String(); strings.Contains(l, "panic serving") {
		t.Errorf("net/http logged %q, want no panic of its own", l)
	}
}

// TestServeHTTPDebug: with Debug the 500 shows the panic and its stack.
func TestServeHTTPDebug(t *testing.T) {
	hr := &HandlerResponder{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { panic("boom") }),
		Logger:  slog.New(slog.DiscardHandler),
		Debug:   true,
	}
	srv := httptest.NewServer(hr)
	t.Cleanup(srv.Close)
	got := getRaw(t, srv.Listener.Addr().String(), "/")
	if got.status != 500 || !strings.HasPrefix(got.body, "500 Internal Server Error\n\nhandler panicked: boom\n\ngoroutine ") || !strings.Contains(got.body, "hold_test.go") {
		t.Errorf("GET / with Debug = %+v, want a 500 with the panic and its stack", got)
	}
}

// TestServeHTTPHijack: Hijack reaches net/http's connection, through the
// writer and through http.ResponseController, and the response counts as
// started.
func TestServeHTTPHijack(t *testing.T) {
	tests := []struct {
		name   string
		hijack func(w http.ResponseWriter) (net.Conn, *bufio.ReadWriter, error)
	}{
		{"Hijacker", func(w http.ResponseWriter) (net.Conn, *bufio.ReadWriter, error) { return w.(http.Hijacker).Hijack() }},
		{"ResponseController", func(w http.ResponseWriter) (net.Conn, *bufio.ReadWriter, error) {
			return http.NewResponseController(w).Hijack()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			committed := make(chan bool, 1)
			hr := &HandlerResponder{
				Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					c, rw, err := tt.hijack(w)
					committed <- w.(Committer).Committed()
					if err != nil {
						t.Errorf("Hijack() error = %v", err)
						return
					}
					defer c.Close()
					rw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nhijacked")
					if err := rw.Flush(); err != nil {
						t.Errorf("Flush() of the hijacked connection = %v", err)
					}
				}),
				Logger: slog.New(slog.DiscardHandler),
			}
			srv := httptest.NewServer(hr)
			t.Cleanup(srv.Close)
			got := getRaw(t, srv.Listener.Addr().String(), "/")
			if got.status != 200 || got.body != "hijacked" || got.cut {
				t.Errorf("GET / = %+v, want the hijacker's 200 and its body", got)
			}
			if c := <-committed; !c {
				t.Errorf("Committed() after Hijack = false, want true")
			}
		})
	}
}
