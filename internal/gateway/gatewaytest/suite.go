// Package gatewaytest is the behaviour the module's one-request-per-
// connection gateway servers (scgi, uwsgi) share, as tests that each
// package runs against its own Server with its own wire format: requests
// written by hand on raw sockets, for what no client library sends.
package gatewaytest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cgirun/cgirun/bridge"
	"github.com/cgirun/cgirun/internal/testlog"
)

// Config is what a test sets of a Server.
type Config struct {
	Handler           http.Handler
	Responder         bridge.Responder
	Logger            *slog.Logger
	MaxConns          int
	MaxRequests       int
	MaxParamsBytes    int
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	HandlerTimeout    time.Duration
	WebServerAddrs    []string
}

// Server is a package's Server.
type Server interface {
	Serve(l net.Listener) error
	Shutdown(ctx context.Context) error
	Close() error
}

// Malformed is a header block a server must refuse.
type Malformed struct {
	Name  string
	Bytes []byte
	// Status is the answer: 400 or 431, 0 for none (the connection is
	// closed).
	Status int
	// Log is part of the log line that says why.
	Log string
}

// Suite describes a package to the tests.
type Suite struct {
	// New returns a Server configured as c says.
	New func(c Config) Server
	// Listen opens a listener as the package's Listen does.
	Listen func(addr string) (net.Listener, error)
	// Request returns a whole request: the header block of env
	// ("NAME=value", in order; CONTENT_LENGTH and the protocol's own
	// variables are added) and body.
	Request func(body string, env ...string) []byte
	// StatusPrefix starts every answer's first line: "Status: " or
	// "HTTP/1.1 ".
	StatusPrefix string
	// The package's errors.
	ErrServerClosed, ErrConnClosed, ErrHandlerTimeout error
	// Malformed are header blocks to refuse, each with why.
	Malformed []Malformed
}

// env is a test's view of a running server.
type env struct {
	t    *testing.T
	s    Server
	addr string // a unix socket
	logs *testlog.Buffer
}

func (su *Suite) start(t *testing.T, h http.Handler, configure func(*Config)) *env {
	t.Helper()
	addr := filepath.Join(t.TempDir(), "gw.sock")
	l, err := su.Listen("unix:" + addr)
	if err != nil {
		t.Fatal(err)
	}
	return su.serveOn(t, l, addr, h, configure)
}

func (su *Suite) serveOn(t *testing.T, l net.Listener, addr string, h http.Handler, configure func(*Config)) *env {
	t.Helper()
	logs := new(testlog.Buffer)
	c := Config{Handler: h, Logger: slog.New(slog.NewTextHandler(logs, nil))}
	if configure != nil {
		configure(&c)
	}
	s := su.New(c)
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; !errors.Is(err, su.ErrServerClosed) {
			t.Errorf("Serve = %v, want ErrServerClosed", err)
		}
	})
	return &env{t: t, s: s, addr: addr, logs: logs}
}

// dial connects to the server, with a bound on every read so that a
// broken server fails the test instead of hanging it.
func (e *env) dial() net.Conn {
	e.t.Helper()
	c, err := net.Dial("unix", e.addr)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return c
}

// do sends req on a new connection and returns all the server sends
// before it closes.
func (e *env) do(req []byte) string { return e.send(req, false) }

// send is do; with halfClose, the write side closes after req, as the
// web server's does when it is done or gone.
func (e *env) send(req []byte, halfClose bool) string {
	e.t.Helper()
	c := e.dial()
	if _, err := c.Write(req); err != nil {
		e.t.Fatalf("write: %v", err)
	}
	if halfClose {
		c.(*net.UnixConn).CloseWrite()
	}
	b, err := io.ReadAll(c)
	if err != nil && !isReset(err) {
		e.t.Fatalf("reading the answer: %v (got %q)", err, b)
	}
	return string(b)
}

func isReset(err error) bool { return err != nil && strings.Contains(err.Error(), "reset") }

// answer splits a response into its status line's rest, its header block
// and its body.
func (su *Suite) answer(t *testing.T, resp string) (status, head, body string) {
	t.Helper()
	head, body, ok := strings.Cut(resp, "\r\n\r\n")
	if !ok || !strings.HasPrefix(head, su.StatusPrefix) {
		t.Fatalf("answer %q: want %q, a header block and a body", resp, su.StatusPrefix+"...")
	}
	status, _, _ = strings.Cut(strings.TrimPrefix(head, su.StatusPrefix), "\r\n")
	return status, head, body
}

var get = []string{"REQUEST_METHOD=GET", "REQUEST_URI=/hello?x=1", "QUERY_STRING=x=1", "PATH_INFO=/hello", "SERVER_PROTOCOL=HTTP/1.1", "SERVER_NAME=localhost", "SERVER_PORT=80"}

// Run runs every test of the suite.
func (su *Suite) Run(t *testing.T) {
	t.Run("GET", su.testGet)
	t.Run("POST echoed", su.testPost)
	t.Run("bytes that are not UTF-8", su.testBytes)
	t.Run("bodiless request has a nil Body", su.testNilBody)
	t.Run("unknown length reads to the end", su.testUnknownLength)
	t.Run("streamed in parts", su.testStream)
	t.Run("panic then the next connection", su.testPanic)
	t.Run("response cut short resets TCP", su.testCut)
	t.Run("client abort cancels", su.testAbort)
	t.Run("client abort after the body cancels", su.testAbortAfterBody)
	t.Run("header block past MaxParamsBytes", su.testTooLarge)
	t.Run("trickled header past ReadHeaderTimeout", su.testHeaderTimeout)
	t.Run("stalled body past ReadTimeout", su.testReadTimeout)
	t.Run("unread answer past WriteTimeout", su.testWriteTimeout)
	t.Run("MaxConns", su.testMaxConns)
	t.Run("MaxRequests", su.testMaxRequests)
	t.Run("HandlerTimeout", su.testHandlerTimeout)
	t.Run("WebServerAddrs", su.testWebServerAddrs)
	t.Run("malformed header blocks", su.testMalformed)
	t.Run("Shutdown waits for the request in flight", su.testShutdown)
	t.Run("Close cuts", su.testClose)
}

func (su *Suite) testGet(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.Path, r.URL.RawQuery)
	})
	e := su.start(t, h, nil)
	got := e.do(su.Request("", get...))
	want := su.StatusPrefix + "200 OK\r\nContent-Type: text/plain\r\nContent-Length: 14\r\n\r\nGET /hello x=1"
	if got != want {
		t.Errorf("answer = %q, want %q", got, want)
	}
}

func echo(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	sum := sha256.Sum256(b)
	fmt.Fprintf(w, "%d %d %s", r.ContentLength, len(b), hex.EncodeToString(sum[:]))
}

func (su *Suite) testPost(t *testing.T) {
	e := su.start(t, http.HandlerFunc(echo), nil)
	for _, size := range []int{1, 100, 300 << 10} {
		body := strings.Repeat("abcdefghijklmnopqrstuvwxyz0123456789", size/36+1)[:size]
		sum := sha256.Sum256([]byte(body))
		status, _, got := su.answer(t, e.do(su.Request(body, "REQUEST_METHOD=POST", "REQUEST_URI=/upload")))
		if want := fmt.Sprintf("%d %d %x", size, size, sum); status != "200 OK" || got != want {
			t.Errorf("POST of %d bytes: %s %q, want 200 OK %q", size, status, got, want)
		}
	}
}

func (su *Suite) testBytes(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s|%s|%s", r.URL.Path, r.URL.RawQuery, r.Header.Get("X-Name"))
	})
	e := su.start(t, h, nil)
	_, _, got := su.answer(t, e.do(su.Request("", "REQUEST_METHOD=GET", "REQUEST_URI=/caf%E9/%FF?q=%E9", "PATH_INFO=/caf\xe9/\xff", "QUERY_STRING=q=\xe9&r=\xff", "HTTP_X_NAME=\xfe\xff")))
	if want := "/caf\xe9/\xff|q=\xe9&r=\xff|\xfe\xff"; got != want {
		t.Errorf("handler saw %q, want %q byte for byte", got, want)
	}
}

// bodyResponder records whether a request had a nil Body.
type bodyResponder chan bool

func (br bodyResponder) Respond(ctx context.Context, req *bridge.Request, out bridge.Output) error {
	br <- req.Body == nil
	_, err := io.WriteString(out, "Status: 204 No Content\r\n\r\n")
	return err
}

func (su *Suite) testNilBody(t *testing.T) {
	nilBody := make(bodyResponder, 2)
	e := su.start(t, nil, func(c *Config) { c.Responder = nilBody })
	e.do(su.Request("", get...))
	if !<-nilBody {
		t.Errorf("a request with CONTENT_LENGTH 0 had a Body, want nil: the runner gives a script /dev/null then")
	}
	e.do(su.Request("x", "REQUEST_METHOD=POST"))
	if <-nilBody {
		t.Errorf("a request with a body had a nil Body")
	}
}

// testUnknownLength: lighttpd sends CONTENT_LENGTH=-1 for a body it
// streams without knowing its length; the body ends when the web server
// stops sending.
func (su *Suite) testUnknownLength(t *testing.T) {
	e := su.start(t, http.HandlerFunc(echo), nil)
	c := e.dial()
	req := su.Request("", "REQUEST_METHOD=POST", "CONTENT_LENGTH=-1")
	c.Write(append(req, "streamed body"...))
	c.(*net.UnixConn).CloseWrite()
	b, _ := io.ReadAll(c)
	sum := sha256.Sum256([]byte("streamed body"))
	if _, _, got := su.answer(t, string(b)); got != fmt.Sprintf("-1 13 %x", sum) {
		t.Errorf("body of unknown length: handler answered %q", got)
	}
}

func (su *Suite) testStream(t *testing.T) {
	next := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "first part;")
		w.(http.Flusher).Flush()
		<-next
		io.WriteString(w, "second part")
	})
	e := su.start(t, h, nil)
	c := e.dial()
	c.Write(su.Request("", get...))
	br := bufio.NewReader(c)
	var seen []byte
	for !bytes.HasSuffix(seen, []byte("first part;")) {
		b, err := br.ReadByte()
		if err != nil {
			t.Fatalf("reading the first part: %v (got %q)", err, seen)
		}
		seen = append(seen, b)
	}
	// The handler has not returned: it waits for next.
	close(next)
	rest, _ := io.ReadAll(br)
	if _, _, body := su.answer(t, string(seen)+string(rest)); body != "first part;second part" {
		t.Errorf("streamed body = %q", body)
	}
}

func (su *Suite) testPanic(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/panic" {
			panic("boom")
		}
		io.WriteString(w, "fine")
	})
	e := su.start(t, h, nil)
	if status, _, _ := su.answer(t, e.do(su.Request("", "REQUEST_METHOD=GET", "REQUEST_URI=/panic"))); status != "500 Internal Server Error" {
		t.Errorf("panic answered %q, want 500", status)
	}
	if _, _, body := su.answer(t, e.do(su.Request("", get...))); body != "fine" {
		t.Errorf("after a panic: %q, want fine", body)
	}
}

// testCut: a handler that fails after its response started leaves it
// incomplete; over TCP the connection is reset, so that the web server
// does not take the part it got for the whole.
func (su *Suite) testCut(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "a start")
		w.(http.Flusher).Flush()
		panic("after the start")
	})
	l, err := su.Listen("tcp:127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := su.serveOn(t, l, "", h, nil)
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write(su.Request("", get...))
	b, err := io.ReadAll(c)
	if !isReset(err) || !strings.HasSuffix(string(b), "a start") {
		t.Errorf("a cut response: %q, %v; want its start, then a reset", b, err)
	}
	if _, ok := e.logs.Wait("response cut short", 10*time.Second); !ok {
		t.Errorf("no log line for the cut; logs:\n%s", e.logs)
	}
}

// startWaiting starts a server whose handler waits for its context to
// end, and sends it a request; it returns once the handler runs, with the
// connection and the channel the context's cause comes on.
func (su *Suite) startWaiting(t *testing.T) (*env, net.Conn, <-chan error) {
	causes := make(chan error, 1)
	started := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-r.Context().Done()
		causes <- context.Cause(r.Context())
	})
	e := su.start(t, h, nil)
	c := e.dial()
	c.Write(su.Request("", get...))
	<-started
	return e, c, causes
}

func (su *Suite) testAbort(t *testing.T) {
	_, c, causes := su.startWaiting(t)
	c.Close()
	if err := <-causes; !errors.Is(err, su.ErrConnClosed) {
		t.Errorf("context.Cause = %v, want %v", err, su.ErrConnClosed)
	}
}

func (su *Suite) testAbortAfterBody(t *testing.T) {
	causes := make(chan error, 1)
	read := make(chan string, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		read <- string(b)
		<-r.Context().Done()
		causes <- context.Cause(r.Context())
	})
	e := su.start(t, h, nil)
	c := e.dial()
	c.Write(su.Request("the body", "REQUEST_METHOD=POST"))
	if got := <-read; got != "the body" {
		t.Fatalf("handler read %q", got)
	}
	c.Close()
	if err := <-causes; !errors.Is(err, su.ErrConnClosed) {
		t.Errorf("context.Cause = %v, want %v", err, su.ErrConnClosed)
	}
}

func (su *Suite) testTooLarge(t *testing.T) {
	e := su.start(t, http.HandlerFunc(echo), func(c *Config) { c.MaxParamsBytes = 1024 })
	// Just below the bound: served.
	if status, _, _ := su.answer(t, e.do(su.Request("", "REQUEST_METHOD=GET", "HTTP_X_BIG="+strings.Repeat("a", 700)))); status != "200 OK" {
		t.Errorf("a header block under MaxParamsBytes: %s, want 200 OK", status)
	}
	status, _, _ := su.answer(t, e.do(su.Request("", "REQUEST_METHOD=GET", "HTTP_X_BIG="+strings.Repeat("a", 2048))))
	if status != "431 Request Header Fields Too Large" {
		t.Errorf("a header block past MaxParamsBytes: %s, want 431", status)
	}
	if _, ok := e.logs.Wait("status=431", 10*time.Second); !ok {
		t.Errorf("no log line for the 431; logs:\n%s", e.logs)
	}
}

func (su *Suite) testHeaderTimeout(t *testing.T) {
	e := su.start(t, http.HandlerFunc(echo), func(c *Config) { c.ReadHeaderTimeout = 100 * time.Millisecond })
	c := e.dial()
	req := su.Request("", get...)
	c.Write(req[:5]) // and nothing more: the rest never comes
	b, err := io.ReadAll(c)
	if len(b) != 0 || (err != nil && !isReset(err)) {
		t.Errorf("a trickled header block got %q, %v; want the connection closed", b, err)
	}
	if _, ok := e.logs.Wait("header read timeout", 10*time.Second); !ok {
		t.Errorf("no log line for the timeout; logs:\n%s", e.logs)
	}
}

func (su *Suite) testReadTimeout(t *testing.T) {
	errs := make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		errs <- err
	})
	e := su.start(t, h, func(c *Config) { c.ReadTimeout = 100 * time.Millisecond })
	c := e.dial()
	c.Write(su.Request("", "REQUEST_METHOD=POST", "CONTENT_LENGTH=10"))
	c.Write([]byte("half")) // and the other half never comes
	if err := <-errs; !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("reading a stalled body: %v, want a timeout", err)
	}
	if _, ok := e.logs.Wait("request body read failed", 10*time.Second); !ok {
		t.Errorf("no log line for the stalled body; logs:\n%s", e.logs)
	}
}

func (su *Suite) testWriteTimeout(t *testing.T) {
	causes := make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		for r.Context().Err() == nil {
			if _, err := w.Write(chunk); err != nil {
				break
			}
		}
		<-r.Context().Done()
		causes <- context.Cause(r.Context())
	})
	e := su.start(t, h, func(c *Config) { c.WriteTimeout = 100 * time.Millisecond })
	c := e.dial()
	c.Write(su.Request("", get...)) // and never reads the answer
	if err := <-causes; !errors.Is(err, su.ErrConnClosed) {
		t.Errorf("context.Cause = %v, want %v", err, su.ErrConnClosed)
	}
	if _, ok := e.logs.Wait("write failed", 10*time.Second); !ok {
		t.Errorf("no log line for the failed write; logs:\n%s", e.logs)
	}
}

func (su *Suite) testMaxConns(t *testing.T) {
	release := make(chan struct{})
	started := make(chan string, 2)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- r.URL.Path
		if r.URL.Path == "/first" {
			<-release
		}
		io.WriteString(w, r.URL.Path)
	})
	e := su.start(t, h, func(c *Config) { c.MaxConns = 1 })
	a := e.dial()
	a.Write(su.Request("", "REQUEST_METHOD=GET", "REQUEST_URI=/first"))
	<-started
	b := e.dial() // connects: the kernel's backlog holds it
	b.Write(su.Request("", "REQUEST_METHOD=GET", "REQUEST_URI=/second"))
	// The second waits for the first's slot: its handler starts only
	// once the first connection is done.
	close(release)
	first, _ := io.ReadAll(a)
	if got := <-started; got != "/second" {
		t.Fatalf("handler started for %q", got)
	}
	second, _ := io.ReadAll(b)
	if !strings.HasSuffix(string(first), "/first") || !strings.HasSuffix(string(second), "/second") {
		t.Errorf("answers %q and %q", first, second)
	}
}

func (su *Suite) testMaxRequests(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-release
		io.WriteString(w, "done")
	})
	e := su.start(t, h, func(c *Config) { c.MaxRequests = 1 })
	a := e.dial()
	a.Write(su.Request("", get...))
	<-started
	status, head, _ := su.answer(t, e.do(su.Request("", get...)))
	if status != "503 Service Unavailable" || !strings.Contains(head, "\r\nRetry-After: 1\r\n") {
		t.Errorf("a request past MaxRequests: %q, want 503 with Retry-After: 1", head)
	}
	close(release)
	if b, _ := io.ReadAll(a); !strings.HasSuffix(string(b), "done") {
		t.Errorf("the request holding the slot answered %q", b)
	}
}

func (su *Suite) testHandlerTimeout(t *testing.T) {
	causes := make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
		causes <- context.Cause(r.Context())
		io.WriteString(w, "too late")
	})
	e := su.start(t, h, func(c *Config) { c.HandlerTimeout = 50 * time.Millisecond })
	status, _, body := su.answer(t, e.do(su.Request("", get...)))
	if status != "503 Service Unavailable" || strings.Contains(body, "too late") {
		t.Errorf("past HandlerTimeout: %s %q, want 503 alone", status, body)
	}
	if err := <-causes; !errors.Is(err, su.ErrHandlerTimeout) {
		t.Errorf("context.Cause = %v, want %v", err, su.ErrHandlerTimeout)
	}
}

func (su *Suite) testWebServerAddrs(t *testing.T) {
	l, err := su.Listen("tcp:127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := su.serveOn(t, l, "", http.HandlerFunc(echo), func(c *Config) { c.WebServerAddrs = []string{"127.0.0.2"} })
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write(su.Request("", get...))
	if b, err := io.ReadAll(c); len(b) != 0 || (err != nil && !isReset(err)) {
		t.Errorf("a peer outside WebServerAddrs read %q, %v", b, err)
	}
	if _, ok := e.logs.Wait("peer not in FCGI_WEB_SERVER_ADDRS", 10*time.Second); !ok {
		t.Errorf("no log line for the refused peer; logs:\n%s", e.logs)
	}
}

func (su *Suite) testMalformed(t *testing.T) {
	e := su.start(t, http.HandlerFunc(echo), func(c *Config) { c.MaxParamsBytes = 1024 })
	for _, m := range su.Malformed {
		t.Run(m.Name, func(t *testing.T) {
			got := e.send(m.Bytes, true)
			switch m.Status {
			case 0:
				if got != "" {
					t.Errorf("answer %q, want the connection closed", got)
				}
			default:
				status, _, _ := su.answer(t, got)
				if want := fmt.Sprintf("%d %s", m.Status, http.StatusText(m.Status)); status != want {
					t.Errorf("status %q, want %q", status, want)
				}
			}
			if _, ok := e.logs.Wait(m.Log, 10*time.Second); !ok {
				t.Errorf("no log line holding %q; logs:\n%s", m.Log, e.logs)
			}
			// The server goes on.
			if status, _, _ := su.answer(t, e.do(su.Request("", get...))); status != "200 OK" {
				t.Errorf("the next request: %s", status)
			}
		})
	}
}

func (su *Suite) testShutdown(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		io.WriteString(w, "finished")
	})
	e := su.start(t, h, nil)
	idle := e.dial() // sends nothing
	busy := e.dial()
	busy.Write(su.Request("", get...))
	<-started
	shut := make(chan error, 1)
	go func() { shut <- e.s.Shutdown(context.Background()) }()
	if b, err := io.ReadAll(idle); len(b) != 0 || (err != nil && !isReset(err)) {
		t.Errorf("an idle connection got %q, %v; want it closed", b, err)
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a request in flight", err)
	default:
	}
	close(release)
	b, _ := io.ReadAll(busy)
	if _, _, body := su.answer(t, string(b)); body != "finished" {
		t.Errorf("in-flight request answered %q", body)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown = %v", err)
	}
}

func (su *Suite) testClose(t *testing.T) {
	e, c, causes := su.startWaiting(t)
	e.s.Close()
	if err := <-causes; !errors.Is(err, su.ErrServerClosed) {
		t.Errorf("context.Cause = %v, want %v", err, su.ErrServerClosed)
	}
	if b, _ := io.ReadAll(c); len(b) != 0 {
		t.Errorf("a request cut by Close got %q", b)
	}
}
