package cgi

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"io"
	"io/fs"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// envScript is a CGI script that prints some of its variables ("unset"
// when absent) and its stdin.
const envScript = `#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\n'
for v in SCRIPT_NAME PATH_INFO PATH_TRANSLATED QUERY_STRING REQUEST_METHOD CONTENT_LENGTH HTTP_X_TEST HTTP_AUTHORIZATION HTTP_PROXY SERVER_SOFTWARE; do
	eval "echo $v=\${$v-unset}"
done
echo "stdin=$(cat)"
`

// writeScript writes an executable file, and the directories it needs.
func writeScript(t *testing.T, name, text string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(text), 0o755); err != nil {
		t.Fatal(err)
	}
	return name
}

// cgiBin lays out a directory of scripts for the Handler's tests, and a
// script outside it that leaves a marker file when it runs.
func cgiBin(t *testing.T) (root, marker string) {
	t.Helper()
	base := t.TempDir()
	root = filepath.Join(base, "root")
	marker = filepath.Join(base, "marker")
	writeScript(t, filepath.Join(root, "env.cgi"), envScript)
	writeScript(t, filepath.Join(root, "dir", "nested.cgi"), envScript)
	writeScript(t, filepath.Join(root, "redirect.cgi"), "#!/bin/sh\nprintf 'Location: /env.cgi/redirected?from=redirect\\r\\n\\r\\nignored'\n")
	writeScript(t, filepath.Join(root, "loop.cgi"), "#!/bin/sh\necho run >> "+filepath.Join(base, "loops")+"\nprintf 'Location: /loop.cgi\\r\\n\\r\\n'\n")
	writeScript(t, filepath.Join(root, "badredirect.cgi"), "#!/bin/sh\nprintf 'Location: /%%zz\\r\\n\\r\\n'\n")
	writeScript(t, filepath.Join(root, "away.cgi"), "#!/bin/sh\nprintf 'Location: https://example.org/\\r\\n\\r\\n'\n")
	secret := writeScript(t, filepath.Join(base, "outside", "secret.cgi"), "#!/bin/sh\ntouch "+marker+"\nprintf 'Content-Type: text/plain\\r\\n\\r\\nsecret\\n'\n")
	if err := os.MkdirAll(filepath.Join(root, "dir", "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "data.txt"), []byte("data\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(root, "link.cgi")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Dir(secret), filepath.Join(root, "linkdir")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(root, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	return root, marker
}

// serveHandler serves h on a loopback port until the test ends, then waits
// for its scripts. A nil h.Logger becomes one into the returned log.
func serveHandler(t *testing.T, h *Handler) (*httptest.Server, *syncLog) {
	t.Helper()
	return serveFront(t, h, h)
}

// serveFront is serveHandler with front, a handler around h, serving.
func serveFront(t *testing.T, h *Handler, front http.Handler) (*httptest.Server, *syncLog) {
	t.Helper()
	logs := new(syncLog)
	if h.Logger == nil {
		h.Logger = slog.New(slog.NewTextHandler(logs, nil))
	}
	if err := h.Validate(); err != nil {
		t.Fatalf("Validate() = %v", err)
	}
	// Cleanups run last first: the server ends its requests, then the
	// scripts are waited for, then the server's own log is read.
	serverLog := new(syncLog)
	t.Cleanup(func() {
		if strings.Contains(serverLog.String(), "panic") {
			t.Errorf("the HTTP server logged a panic:\n%s", serverLog)
		}
	})
	track(t, h.exec)
	srv := httptest.NewUnstartedServer(front)
	srv.Config.ErrorLog = log.New(serverLog, "", 0)
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, logs
}

// fetch sends a request and returns the status and the body.
func fetch(t *testing.T, method, url, body string, header http.Header) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, url, err)
	}
	return resp.StatusCode, string(b)
}

func TestHandlerMapsPathsToScripts(t *testing.T) {
	root, marker := cgiBin(t)
	srv, _ := serveHandler(t, &Handler{Root: root})
	tests := []struct {
		name       string
		method     string
		path       string
		body       string
		header     http.Header
		wantStatus int
		want       []string // in the body
	}{
		{name: "script", path: "/env.cgi", wantStatus: 200,
			want: []string{"SCRIPT_NAME=/env.cgi\n", "PATH_INFO=unset", "PATH_TRANSLATED=unset", "REQUEST_METHOD=GET", "SERVER_SOFTWARE=cgirun", "CONTENT_LENGTH=unset", "stdin=\n"}},
		{name: "path info and query", path: "/env.cgi/a/b?x=1&y=%41", wantStatus: 200,
			want: []string{"SCRIPT_NAME=/env.cgi\n", "PATH_INFO=/a/b\n", "PATH_TRANSLATED=" + filepath.Join(root, "a", "b") + "\n", "QUERY_STRING=x=1&y=%41\n"}},
		{name: "path info decoded", path: "/env.cgi/caf%C3%A9%20x", wantStatus: 200, want: []string{"PATH_INFO=/café x\n"}},
		{name: "trailing slash kept in path info", path: "/env.cgi/a/", wantStatus: 200, want: []string{"PATH_INFO=/a/\n"}},
		{name: "nested directory", path: "/dir/nested.cgi/x", wantStatus: 200, want: []string{"SCRIPT_NAME=/dir/nested.cgi\n", "PATH_INFO=/x\n"}},
		{name: "directory without a script", path: "/dir/empty/", wantStatus: 404},
		{name: "directory itself", path: "/dir", wantStatus: 404},
		{name: "root", path: "/", wantStatus: 404},
		{name: "missing script", path: "/nope.cgi", wantStatus: 404},
		{name: "missing directory", path: "/nope/env.cgi", wantStatus: 404},
		{name: "below a file that is not a directory", path: "/data.txt/x", wantStatus: 403},
		{name: "file not executable", path: "/data.txt", wantStatus: 403},
		{name: "neither a directory nor a file", path: "/fifo", wantStatus: 403},
		{name: "POST body reaches stdin", method: "POST", path: "/env.cgi", body: "hello=world", wantStatus: 200,
			want: []string{"REQUEST_METHOD=POST", "CONTENT_LENGTH=11\n", "stdin=hello=world\n"}},
		{name: "headers as HTTP_ variables", path: "/env.cgi", header: http.Header{"X-Test": {"a", "b"}}, wantStatus: 200, want: []string{"HTTP_X_TEST=a, b\n"}},
		{name: "httpoxy: no HTTP_PROXY", path: "/env.cgi", header: http.Header{"Proxy": {"http://evil:3128"}}, wantStatus: 200, want: []string{"HTTP_PROXY=unset"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := tt.method
			if method == "" {
				method = "GET"
			}
			status, body := fetch(t, method, srv.URL+tt.path, tt.body, tt.header)
			if status != tt.wantStatus {
				t.Errorf("%s %s = %d %q, want %d", method, tt.path, status, body, tt.wantStatus)
			}
			for _, w := range tt.want {
				if !strings.Contains(body, w) {
					t.Errorf("%s %s body = %q, want it to contain %q", method, tt.path, body, w)
				}
			}
		})
	}
	if _, err := os.Stat(marker); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the script outside the root ran (marker: %v)", err)
	}
}

// TestHandlerRefusesTraversal sends request targets as they are, which an
// HTTP client would clean, and links that lead out of the root: the script
// outside it never runs.
func TestHandlerRefusesTraversal(t *testing.T) {
	root, marker := cgiBin(t)
	srv, logs := serveHandler(t, &Handler{Root: root})
	addr := srv.Listener.Addr().String()
	tests := []struct {
		name   string
		target string
		status int
	}{
		{"dot dot", "/../outside/secret.cgi", 403},
		{"dot dot below a directory", "/dir/../../outside/secret.cgi", 403},
		{"dot dot that stays inside", "/dir/../env.cgi", 403},
		{"encoded dot dot", "/%2e%2e/outside/secret.cgi", 403},
		{"upper-case encoded dot dot", "/%2E%2E/outside/secret.cgi", 403},
		{"encoded slashes too", "/%2e%2e%2foutside%2fsecret.cgi", 403},
		{"after a script", "/env.cgi/../../outside/secret.cgi", 403},
		{"to /etc/passwd", "/../../../../etc/passwd", 403},
		{"encoded NUL", "/env.cgi%00.txt", 400},
		{"symbolic link to a script outside the root", "/link.cgi", 403},
		{"symbolic link to a directory outside the root", "/linkdir/secret.cgi", 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if status := rawGet(t, addr, tt.target); status != tt.status {
				t.Errorf("GET %s = %d, want %d", tt.target, status, tt.status)
			}
			if _, err := os.Stat(marker); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("GET %s ran the script outside the root", tt.target)
			}
		})
	}
	if !strings.Contains(logs.String(), "cgi: path refused") || !strings.Contains(logs.String(), "outside the roots") {
		t.Errorf("log lacks the refusals:\n%s", logs)
	}
}

// rawGet sends a GET for target exactly as given and returns the status.
func rawGet(t *testing.T, addr, target string) int {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, waitLimit)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(waitLimit))
	if _, err := io.WriteString(c, "GET "+target+" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestFindScript(t *testing.T) {
	root, _ := cgiBin(t)
	tests := []struct {
		name                 string
		path                 string
		wantScript, wantInfo string
		wantFile             string
		wantStatus           int
	}{
		{name: "script", path: "/env.cgi", wantScript: "/env.cgi", wantFile: "env.cgi"},
		{name: "path info", path: "/env.cgi/a/b", wantScript: "/env.cgi", wantInfo: "/a/b", wantFile: "env.cgi"},
		{name: "script with a slash", path: "/env.cgi/", wantScript: "/env.cgi", wantInfo: "/", wantFile: "env.cgi"},
		{name: "doubled slashes cleaned", path: "//dir///nested.cgi//x", wantScript: "/dir/nested.cgi", wantInfo: "/x", wantFile: "dir/nested.cgi"},
		{name: "dot segments cleaned", path: "/./dir/./nested.cgi", wantScript: "/dir/nested.cgi", wantFile: "dir/nested.cgi"},
		{name: "a file that is not executable is still the script", path: "/data.txt/x", wantScript: "/data.txt", wantInfo: "/x", wantFile: "data.txt"},
		{name: "dot dot refused", path: "/dir/../env.cgi", wantStatus: 403},
		{name: "dot dot at the end refused", path: "/env.cgi/..", wantStatus: 403},
		{name: "a fifo refused", path: "/fifo", wantStatus: 403},
		{name: "NUL refused", path: "/env.cgi\x00.txt", wantStatus: 400},
		{name: "relative path refused", path: "env.cgi", wantStatus: 400},
		{name: "empty path refused", path: "", wantStatus: 400},
		{name: "directory", path: "/dir/", wantStatus: 404},
		{name: "the root", path: "/", wantStatus: 404},
		{name: "below a missing file", path: "/nope/x", wantStatus: 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			script, info, file, status := findScript(root, tt.path)
			wantFile := ""
			if tt.wantFile != "" {
				wantFile = filepath.Join(root, tt.wantFile)
			}
			if script != tt.wantScript || info != tt.wantInfo || file != wantFile || status != tt.wantStatus {
				t.Errorf("findScript(%q) = %q, %q, %q, %d; want %q, %q, %q, %d",
					tt.path, script, info, file, status, tt.wantScript, tt.wantInfo, wantFile, tt.wantStatus)
			}
		})
	}
}

// TestHandlerLocalRedirects: a Location path without Status is served in
// the script's place as a GET, up to the bound; past it, 500.
func TestHandlerLocalRedirects(t *testing.T) {
	tests := []struct {
		name       string
		max        int // MaxLocalRedirects
		method     string
		path       string
		wantStatus int
		want       []string // in the body
		wantRuns   int      // of loop.cgi
	}{
		{name: "followed as a GET, the body dropped", method: "POST", path: "/redirect.cgi", wantStatus: 200,
			want: []string{"SCRIPT_NAME=/env.cgi\n", "PATH_INFO=/redirected\n", "QUERY_STRING=from=redirect\n", "REQUEST_METHOD=GET", "CONTENT_LENGTH=unset", "stdin=\n"}},
		{name: "a loop ends in 500 past the default bound", path: "/loop.cgi", wantStatus: 500,
			want: []string{"too many local redirects"}, wantRuns: 1 + DefaultMaxLocalRedirects},
		{name: "a loop ends in 500 past MaxLocalRedirects", max: 2, path: "/loop.cgi", wantStatus: 500, wantRuns: 1 + 2},
		{name: "a Location that does not parse: 500", path: "/badredirect.cgi", wantStatus: 500},
		{name: "a client redirect is passed on", path: "/away.cgi", wantStatus: 302},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root, _ := cgiBin(t)
			srv, _ := serveHandler(t, &Handler{Root: root, MaxLocalRedirects: tt.max})
			client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			req, err := http.NewRequest(cmp.Or(tt.method, "GET"), srv.URL+tt.path, strings.NewReader("dropped"))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("%s %s = %d %q, want %d", req.Method, tt.path, resp.StatusCode, body, tt.wantStatus)
			}
			for _, w := range tt.want {
				if !strings.Contains(string(body), w) {
					t.Errorf("%s %s body = %q, want it to contain %q", req.Method, tt.path, body, w)
				}
			}
			runs, _ := os.ReadFile(filepath.Join(filepath.Dir(root), "loops"))
			if n := strings.Count(string(runs), "\n"); n != tt.wantRuns {
				t.Errorf("%s %s ran loop.cgi %d times, want %d", req.Method, tt.path, n, tt.wantRuns)
			}
		})
	}
}

// TestHandlerPassAuth: credentials reach a script only when PassAuth says
// so.
func TestHandlerPassAuth(t *testing.T) {
	tests := []struct {
		passAuth bool
		want     string
	}{
		{false, "HTTP_AUTHORIZATION=unset\n"},
		{true, "HTTP_AUTHORIZATION=Basic dTpw\n"},
	}
	for _, tt := range tests {
		t.Run("PassAuth="+strconv.FormatBool(tt.passAuth), func(t *testing.T) {
			root, _ := cgiBin(t)
			srv, _ := serveHandler(t, &Handler{Root: root, PassAuth: tt.passAuth})
			status, body := fetch(t, "GET", srv.URL+"/env.cgi", "", http.Header{"Authorization": {"Basic dTpw"}})
			if status != 200 || !strings.Contains(body, tt.want) {
				t.Errorf("GET /env.cgi with Authorization = %d %q, want 200 and %q", status, body, tt.want)
			}
		})
	}
}

// TestHandlerCutsShort: a script that stops in the middle of its body
// leaves the client a response it can tell is incomplete, never one that
// passes for whole.
func TestHandlerCutsShort(t *testing.T) {
	root := t.TempDir()
	// Each script sends its header block and part of its body, then hangs
	// until its timeout, or dies.
	writeScript(t, filepath.Join(root, "hangs.cgi"), "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\npartial'\nexec sleep 30\n")
	writeScript(t, filepath.Join(root, "dies.cgi"), "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\nContent-Length: 100\\r\\n\\r\\npartial'\nkill -9 $$\n")
	e, logs := newExecutor(t, root, func(e *Executor) { e.Timeout = 300 * time.Millisecond })
	srv, _ := serveHandler(t, &Handler{Root: root, Executor: e, Logger: e.Logger})
	tests := []struct {
		name, path string
		wantLog    string
	}{
		{"killed at its timeout mid-body", "/hangs.cgi", "response cut short"},
		{"dies before its Content-Length is sent", "/dies.cgi", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := http.Get(srv.URL + tt.path)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(body) != "partial" || !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("GET %s = %d %q, %v; want 200 %q cut short (%v)", tt.path, resp.StatusCode, body, err, "partial", io.ErrUnexpectedEOF)
			}
			if !strings.Contains(logs.String(), tt.wantLog) {
				t.Errorf("log lacks %q:\n%s", tt.wantLog, logs)
			}
		})
	}
}

// TestHandlerBodyAfterTheAnswerStarts sends the request body only once the
// script's answer has begun: net/http must not discard it when the header
// goes out (a script may answer before it reads its input).
func TestHandlerBodyAfterTheAnswerStarts(t *testing.T) {
	root := t.TempDir()
	writeScript(t, filepath.Join(root, "duplex.cgi"), "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nready\\n'\ncat\n")
	srv, _ := serveHandler(t, &Handler{Root: root})
	body, send := io.Pipe()
	// net/http's client does not give up while it is still reading the
	// request body; closing the pipe bounds the test when the answer
	// never comes.
	stop := time.AfterFunc(waitLimit, func() { send.CloseWithError(errors.New("no answer in time")) })
	defer stop.Stop()
	req, err := http.NewRequest("POST", srv.URL+"/duplex.cgi", body)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: waitLimit}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("POST /duplex.cgi: %v", err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if line, err := br.ReadString('\n'); line != "ready\n" {
		t.Fatalf("POST /duplex.cgi first line = %q, %v; want \"ready\\n\"", line, err)
	}
	for _, chunk := range []string{"first ", "second"} {
		io.WriteString(send, chunk)
		// The script echoes each chunk as it comes.
		got := make([]byte, len(chunk))
		if _, err := io.ReadFull(br, got); string(got) != chunk {
			t.Fatalf("POST /duplex.cgi echoed %q, %v; want %q", got, err, chunk)
		}
	}
	send.Close()
	if rest, err := io.ReadAll(br); len(rest) != 0 || err != nil {
		t.Errorf("POST /duplex.cgi rest = %q, %v; want the end", rest, err)
	}
}

// bodyWatch is an HTTP request's body that counts the reads in flight and
// those begun once its handler returned.
type bodyWatch struct {
	io.ReadCloser
	inFlight, late atomic.Int32
	over           atomic.Bool
}

func (b *bodyWatch) Read(p []byte) (int, error) {
	if b.over.Load() {
		b.late.Add(1)
	}
	b.inFlight.Add(1)
	defer b.inFlight.Add(-1)
	return b.ReadCloser.Read(p)
}

// TestHandlerStopsReadingTheBody: a script that answers without reading
// its stdin leaves the executor's stdin copier waiting for the client's
// body; the Handler ends that read, after the grace, before it returns,
// since net/http forbids reading the body after ServeHTTP (its next read
// of the connection would meet ours and panic).
func TestHandlerStopsReadingTheBody(t *testing.T) {
	root := t.TempDir()
	writeScript(t, filepath.Join(root, "quick.cgi"), "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nquick'\n")
	e, _ := newExecutor(t, root, nil) // KillGrace 200ms
	h := &Handler{Root: root, Executor: e}
	watches := make(chan *bodyWatch, 1)
	inFlight := make(chan int32, 1)
	srv, _ := serveFront(t, h, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := &bodyWatch{ReadCloser: r.Body}
		r.Body = b
		watches <- b
		h.ServeHTTP(w, r)
		inFlight <- b.inFlight.Load()
		b.over.Store(true)
	}))
	// The body never comes: the client sends its header block and waits.
	body, send := io.Pipe()
	defer send.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", srv.URL+"/quick.cgi", body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST /quick.cgi: %v", err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(got) != "quick" || err != nil {
		t.Errorf("POST /quick.cgi = %d %q, %v; want 200 %q", resp.StatusCode, got, err, "quick")
	}
	if n := <-inFlight; n != 0 {
		t.Errorf("reads of the request body in flight when ServeHTTP returned = %d, want 0", n)
	}
	send.CloseWithError(errors.New("the test is over"))
	srv.Close() // waits for the connection's goroutine
	if n := (<-watches).late.Load(); n != 0 {
		t.Errorf("reads of the request body begun after ServeHTTP returned = %d, want 0", n)
	}
}

// TestHandlerUnreadBody: requests whose scripts answer without reading
// their body, one after the other on a kept-alive connection, all get
// their answer, and the server never panics (golang/go#68560: after
// EnableFullDuplex, net/http's own reading of an unread body once the
// handler returned raced with its read of the next request).
func TestHandlerUnreadBody(t *testing.T) {
	root := t.TempDir()
	writeScript(t, filepath.Join(root, "quick.cgi"), "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nquick'\n")
	srv, _ := serveHandler(t, &Handler{Root: root}) // its cleanup reads the server's log
	for i := range 100 {
		if status, body := fetch(t, "POST", srv.URL+"/quick.cgi", "a body nobody reads", nil); status != 200 || body != "quick" {
			t.Fatalf("POST /quick.cgi #%d = %d %q, want 200 %q", i, status, body, "quick")
		}
	}
}

// TestHandlerKeepsTheRequestAfterItsBody: once the body is done with, the
// request lives on for as long as its local redirects take, longer than
// the grace the body's rest got.
func TestHandlerKeepsTheRequestAfterItsBody(t *testing.T) {
	root := t.TempDir()
	writeScript(t, filepath.Join(root, "form.cgi"), "#!/bin/sh\ncat >/dev/null\nprintf 'Location: /slow.cgi\\r\\n\\r\\n'\n")
	// It takes longer than KillGrace to answer.
	writeScript(t, filepath.Join(root, "slow.cgi"), "#!/bin/sh\nsleep 0.5\nprintf 'Content-Type: text/plain\\r\\n\\r\\nslow'\n")
	e, _ := newExecutor(t, root, nil) // KillGrace 200ms
	srv, _ := serveHandler(t, &Handler{Root: root, Executor: e})
	if status, body := fetch(t, "POST", srv.URL+"/form.cgi", "a=1", nil); status != 200 || body != "slow" {
		t.Errorf("POST /form.cgi = %d %q, want 200 %q", status, body, "slow")
	}
}

// TestHandlerValidate: a Handler without a usable root answers 500 to
// every request, and says why.
func TestHandlerValidate(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		h    *Handler
		want string // in Validate's error
	}{
		{"no root", &Handler{}, "needs a Root"},
		{"root missing", &Handler{Root: filepath.Join(file, "nope")}, "not a directory"},
		{"root a file", &Handler{Root: file}, "not a directory"},
		{"the executor's error", &Handler{Root: t.TempDir(), Executor: &Executor{}}, "at least one root"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs := new(syncLog)
			tt.h.Logger = slog.New(slog.NewTextHandler(logs, nil))
			if err := tt.h.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "cgi: ") {
				t.Errorf("Validate() = %v, want a cgi: error holding %q", err, tt.want)
			}
			w := httptest.NewRecorder()
			tt.h.ServeHTTP(w, httptest.NewRequest("GET", "/env.cgi", nil))
			if w.Code != 500 || !strings.Contains(logs.String(), tt.want) {
				t.Errorf("ServeHTTP answered %d, log %q; want 500 and the reason", w.Code, logs)
			}
		})
	}
}
