package cgirun

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/yookoala/gofast"

	"github.com/cgirun/cgirun/bridge"

	"github.com/cgirun/cgirun/internal/testlog"
)

// syncBuffer is a log destination safe for a server's goroutines.
type syncBuffer = testlog.Buffer

// failing answers each path with a way a handler fails.
var failing = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html")
	w.Header().Set("Set-Cookie", "session=secret")
	switch r.URL.Path {
	case "/ok":
		io.WriteString(w, "fine")
	case "/panic":
		panic("boom")
	case "/panic-after-write":
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, "held, not sent")
		panic("boom")
	case "/panic-after-flush":
		io.WriteString(w, "partial")
		w.(http.Flusher).Flush()
		panic("late boom")
	case "/panic-after-big-write":
		io.WriteString(w, strings.Repeat("b", bridge.BufferSize+1))
		panic("boom")
	case "/abort":
		panic(http.ErrAbortHandler)
	case "/abort-after-flush":
		io.WriteString(w, "partial")
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	case "/goexit":
		runtime.Goexit()
	case "/goexit-after-flush":
		io.WriteString(w, "partial")
		w.(http.Flusher).Flush()
		runtime.Goexit()
	}
})

// answer is what a client got: the status, the headers an error response
// sets, the body, and whether the response was cut short.
type answer struct {
	status               int
	contentType, nosniff string
	cookie               string
	body                 string
	cut                  bool
}

func (a answer) String() string {
	return fmt.Sprintf("%d Content-Type=%q X-Content-Type-Options=%q Set-Cookie=%q body=%q cut=%v", a.status, a.contentType, a.nosniff, a.cookie, a.body, a.cut)
}

func answerOf(status int, h http.Header, body string, cut bool) answer {
	return answer{status, h.Get("Content-Type"), h.Get("X-Content-Type-Options"), h.Get("Set-Cookie"), body, cut}
}

// getHTTP sends GET path on a connection of its own; an empty reply or a
// body that ends early is a cut.
func getHTTP(t *testing.T, addr, path string) answer {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: example.org\r\n\r\n", path)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return answer{cut: true}
	}
	b, err := io.ReadAll(resp.Body)
	return answerOf(resp.StatusCode, resp.Header, string(b), err != nil)
}

// getFastCGI sends GET path to the FastCGI server on sock, as nginx does;
// a response without its end is a cut.
func getFastCGI(t *testing.T, sock, path string) answer {
	t.Helper()
	client, err := gofast.SimpleClientFactory(gofast.SimpleConnFactory("unix", sock))()
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	req := gofast.NewRequest(nil)
	req.Params = map[string]string{"REQUEST_METHOD": "GET", "REQUEST_URI": path, "SCRIPT_NAME": "", "PATH_INFO": path,
		"SERVER_PROTOCOL": "HTTP/1.1", "SERVER_NAME": "example.org", "SERVER_PORT": "80"}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	err = resp.WriteTo(w, io.Discard)
	return answerOf(w.Code, w.Header(), w.Body.String(), err != nil)
}

// startModes starts h in HTTP and in FastCGI mode with env, each logging
// to a buffer of its own, and returns the two ways to ask them.
func startModes(t *testing.T, h http.Handler, env map[string]string) (httpGet, fcgiGet func(path string) answer, httpLog, fcgiLog *syncBuffer) {
	t.Helper()
	httpLog, fcgiLog = new(syncBuffer), new(syncBuffer)
	httpEnv := map[string]string{"CGIRUN_HTTP": "127.0.0.1:0"}
	sock := filepath.Join(t.TempDir(), "app.sock")
	fcgiEnv := map[string]string{"CGIRUN_FASTCGI": "unix:" + sock}
	for k, v := range env {
		httpEnv[k], fcgiEnv[k] = v, v
	}
	hs := startServer(t, testConfig(t, httpEnv), h, Options{Logger: slog.New(slog.NewTextHandler(httpLog, nil))})
	startServer(t, testConfig(t, fcgiEnv), h, Options{Logger: slog.New(slog.NewTextHandler(fcgiLog, nil))})
	addr := hs.Addrs()[0].String()
	return func(path string) answer { return getHTTP(t, addr, path) },
		func(path string) answer { return getFastCGI(t, sock, path) },
		httpLog, fcgiLog
}

// TestHTTPPanicAnswersAsFastCGI: a handler that fails gets the same answer
// over plain HTTP as over FastCGI: bridge's clean 500 before its response
// started, whatever it had set or written, and a response cut short after
// it; one log line, bridge's, and never net/http's "http: panic serving".
func TestHTTPPanicAnswersAsFastCGI(t *testing.T) {
	clean500 := answer{status: 500, contentType: "text/plain; charset=utf-8", nosniff: "nosniff", body: "500 Internal Server Error\n"}
	tests := []struct {
		path    string
		want    answer // over HTTP; FastCGI's is the same unless cut
		wantLog string // "" means none
	}{
		{path: "/ok", want: answer{status: 200, contentType: "text/html", cookie: "session=secret", body: "fine"}},
		{path: "/panic", want: clean500, wantLog: `level=ERROR msg="bridge: handler panicked: boom" uri=/panic status=500 stack=`},
		{path: "/panic-after-write", want: clean500, wantLog: `msg="bridge: handler panicked: boom" uri=/panic-after-write status=500 stack=`},
		{path: "/panic-after-flush", want: answer{status: 200, contentType: "text/html", cookie: "session=secret", body: "partial", cut: true},
			wantLog: `msg="bridge: response cut short: handler panicked: late boom" uri=/panic-after-flush stack=`},
		{path: "/abort", want: clean500},
		{path: "/abort-after-flush", want: answer{status: 200, contentType: "text/html", cookie: "session=secret", body: "partial", cut: true}},
		{path: "/goexit", want: clean500, wantLog: `msg="bridge: handler called runtime.Goexit" uri=/goexit status=500 stack=`},
		{path: "/goexit-after-flush", want: answer{status: 200, contentType: "text/html", cookie: "session=secret", body: "partial", cut: true},
			wantLog: `msg="bridge: response cut short: handler called runtime.Goexit" uri=/goexit-after-flush stack=`},
	}
	httpGet, fcgiGet, httpLog, fcgiLog := startModes(t, failing, nil)
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			before := len(httpLog.String())
			got := httpGet(tt.path)
			logs := withoutServing(httpLog.String()[before:])
			if got != tt.want {
				t.Errorf("HTTP GET %s = %v, want %v", tt.path, got, tt.want)
			}
			// gofast takes a connection closed without END_REQUEST for
			// the end: package fastcgi's tests check the cut.
			if fc := fcgiGet(tt.path); fc.status != got.status || fc.contentType != got.contentType || fc.nosniff != got.nosniff ||
				fc.cookie != got.cookie || fc.body != got.body {
				t.Errorf("FastCGI GET %s = %v, want HTTP's %v", tt.path, fc, got)
			}
			if tt.wantLog == "" && logs != "" || strings.Count(logs, "\n") > 1 || !strings.Contains(logs, tt.wantLog) {
				t.Errorf("HTTP GET %s logged %q, want one line with %q", tt.path, logs, tt.wantLog)
			}
			if strings.Contains(logs, "http: panic serving") {
				t.Errorf("HTTP GET %s logged net/http's panic message: %q", tt.path, logs)
			}
		})
	}
	if strings.Contains(fcgiLog.String(), "http: panic serving") {
		t.Errorf("FastCGI log = %q", fcgiLog)
	}
}

// withoutServing drops the line a server logs when it starts serving,
// which may come after a first request.
func withoutServing(logs string) string {
	var kept []string
	for _, line := range strings.SplitAfter(logs, "\n") {
		if !strings.Contains(line, `msg="cgirun: serving `) {
			kept = append(kept, line)
		}
	}
	return strings.Join(kept, "")
}

// TestHTTPPanicDebug: with CGIRUN_DEBUG the 500 shows the panic and its
// stack, in HTTP mode as in FastCGI mode.
func TestHTTPPanicDebug(t *testing.T) {
	httpGet, fcgiGet, _, _ := startModes(t, failing, map[string]string{"CGIRUN_DEBUG": "true"})
	for _, get := range []struct {
		mode string
		get  func(string) answer
	}{{"HTTP", httpGet}, {"FastCGI", fcgiGet}} {
		got := get.get("/panic")
		if got.status != 500 || !strings.HasPrefix(got.body, "500 Internal Server Error\n\nhandler panicked: boom\n\ngoroutine ") || !strings.Contains(got.body, "panic_test.go") {
			t.Errorf("%s GET /panic with CGIRUN_DEBUG = %v, want a 500 with the panic and its stack", get.mode, got)
		}
	}
}

// TestHTTPHeldResponse: holding the response start keeps what net/http
// does for a handler that returns: headers fixed at WriteHeader, a body
// held whole gets its Content-Length, a larger one streams, trailers and
// interim responses pass.
func TestHTTPHeldResponse(t *testing.T) {
	big := strings.Repeat("b", 3*bridge.BufferSize)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/late-header":
			w.WriteHeader(http.StatusAccepted)
			w.Header().Set("X-Late", "dropped")
			io.WriteString(w, "small")
		case "/big":
			io.WriteString(w, big)
		case "/trailer":
			w.Header().Set("Trailer", "X-Sum")
			io.WriteString(w, "body")
			w.Header().Set("X-Sum", "42")
		}
	})
	s := startServer(t, testConfig(t, map[string]string{"CGIRUN_HTTP": "127.0.0.1:0"}), h, Options{Logger: slog.New(slog.DiscardHandler)})
	base := "http://" + s.Addrs()[0].String()
	tests := []struct {
		path      string
		status    int
		length    int64 // -1: none, chunked
		body      string
		late, sum string
	}{
		{path: "/late-header", status: 202, length: 5, body: "small"},
		{path: "/big", status: 200, length: -1, body: big},
		{path: "/trailer", status: 200, length: -1, body: "body", sum: "42"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			resp, err := http.Get(base + tt.path)
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != tt.status || resp.ContentLength != tt.length || string(b) != tt.body ||
				resp.Header.Get("X-Late") != tt.late || resp.Trailer.Get("X-Sum") != tt.sum {
				t.Errorf("GET %s = %d length %d X-Late=%q X-Sum=%q body of %d bytes, %v; want %d length %d X-Late=%q X-Sum=%q body of %d bytes",
					tt.path, resp.StatusCode, resp.ContentLength, resp.Header.Get("X-Late"), resp.Trailer.Get("X-Sum"), len(b), err,
					tt.status, tt.length, tt.late, tt.sum, len(tt.body))
			}
		})
	}
}

// TestAccessLogAfterFailure: the access log says what the client got from
// a handler that failed, in HTTP and in FastCGI mode: the clean 500, or
// the status sent and cut=true for a response cut short.
func TestAccessLogAfterFailure(t *testing.T) {
	tests := []struct {
		path string
		want string // the end of the access line, from status on
	}{
		{"/ok", "status=200 bytes=4 "},
		{"/panic", "status=500 bytes=26 "},
		{"/panic-after-write", "status=500 bytes=26 "},
		{"/panic-after-flush", "status=200 bytes=7 .* cut=true"},
		{"/panic-after-big-write", fmt.Sprintf("status=200 bytes=%d .* cut=true", bridge.BufferSize+1)},
		{"/abort", "status=500 bytes=26 "},
		{"/abort-after-flush", "status=200 bytes=7 .* cut=true"},
		{"/goexit", "status=500 bytes=26 "},
		{"/goexit-after-flush", "status=200 bytes=7 .* cut=true"},
	}
	httpGet, fcgiGet, httpLog, fcgiLog := startModes(t, failing, map[string]string{"CGIRUN_ACCESS_LOG": "true"})
	for _, mode := range []struct {
		name string
		get  func(string) answer
		logs *syncBuffer
	}{{"HTTP", httpGet, httpLog}, {"FastCGI", fcgiGet, fcgiLog}} {
		for _, tt := range tests {
			t.Run(mode.name+tt.path, func(t *testing.T) {
				before := len(mode.logs.String())
				mode.get(tt.path)
				logs := mode.logs.String()[before:]
				re := regexp.MustCompile(`msg=access .* uri=` + regexp.QuoteMeta(tt.path) + ` .*` + tt.want + `[^\n]*\n`)
				if line := re.FindString(logs); line == "" || !strings.Contains(tt.want, "cut") && strings.Contains(line, "cut=") {
					t.Errorf("%s GET %s logged %q, want an access line with %q", mode.name, tt.path, logs, tt.want)
				}
			})
		}
	}
}
