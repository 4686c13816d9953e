package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/yookoala/gofast"
)

// waitLimit bounds every wait of these tests for something that should
// happen at once: a failing test ends instead of hanging.
const waitLimit = 20 * time.Second

// logBuffer is the stderr of a run: safe for concurrent writes, and it
// tells waiters when something was written.
type logBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{} // closed at the next write
}

func newLogBuffer() *logBuffer { return &logBuffer{changed: make(chan struct{})} }

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	close(b.changed)
	b.changed = make(chan struct{})
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// running is run() serving in the background.
type running struct {
	t      *testing.T
	args   []string
	logs   *logBuffer
	cancel context.CancelFunc
	done   chan struct{} // closed when run returned
	code   int
}

// start calls run(args) in a goroutine with stdin; t's cleanup stops it.
func start(t *testing.T, stdin io.Reader, args ...string) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{t: t, args: args, logs: newLogBuffer(), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.code = run(ctx, args, os.Getenv, stdin, io.Discard, r.logs)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(waitLimit):
			t.Errorf("run(%q) still running %v after its context ended", args, waitLimit)
		}
	})
	return r
}

// waitLog waits until the log matches re and returns the submatches. A
// serving command logs "serving" once its socket listens: that line is
// its readiness, and nothing needs to poll.
func (r *running) waitLog(re string) []string {
	r.t.Helper()
	rx := regexp.MustCompile(re)
	limit := time.After(waitLimit)
	for {
		r.logs.mu.Lock()
		m := rx.FindStringSubmatch(r.logs.buf.String())
		changed := r.logs.changed
		r.logs.mu.Unlock()
		if m != nil {
			return m
		}
		select {
		case <-changed:
		case <-r.done:
			r.t.Fatalf("run(%q) = %d before logging %q; stderr:\n%s", r.args, r.code, re, r.logs)
		case <-limit:
			r.t.Fatalf("run(%q) logged no %q in %v; stderr:\n%s", r.args, re, waitLimit, r.logs)
		}
	}
}

// httpAddr waits for the "serving HTTP" line and returns its address.
func (r *running) httpAddr() string {
	r.t.Helper()
	return r.waitLog(`serving HTTP" addr=(127\.0\.0\.1:\d+)`)[1]
}

// stop ends the run as SIGTERM would and returns its exit status.
func (r *running) stop() int {
	r.t.Helper()
	r.cancel()
	select {
	case <-r.done:
		return r.code
	case <-time.After(waitLimit):
		r.t.Fatalf("run(%q) still running %v after its context ended", r.args, waitLimit)
	}
	return -1
}

// runCmd runs a command that returns by itself and gives its exit status,
// stdout and stderr.
func runCmd(t *testing.T, getenv func(string) string, args ...string) (int, string, string) {
	t.Helper()
	if getenv == nil {
		getenv = os.Getenv
	}
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	code := run(ctx, args, getenv, nil, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// writeScript writes an executable file, and the directories above it.
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

// socketDir returns a short temporary directory for unix sockets: a
// socket path must fit in 108 bytes, which t.TempDir's long names may
// not.
func socketDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "cgirun")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// fcgiDo sends one FastCGI request with params to the server at network,
// address through gofast, and returns the recorded answer.
func fcgiDo(t *testing.T, network, address string, params map[string]string, body string) *httptest.ResponseRecorder {
	t.Helper()
	client, err := gofast.SimpleClientFactory(gofast.SimpleConnFactory(network, address))()
	if err != nil {
		t.Fatalf("connecting to %s: %v", address, err)
	}
	defer client.Close()
	req := gofast.NewRequest(nil)
	for k, v := range params {
		req.Params[k] = v
	}
	if body != "" {
		req.Params["CONTENT_LENGTH"] = strconv.Itoa(len(body))
		req.Stdin = io.NopCloser(strings.NewReader(body))
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("gofast Do(%v) = %v", params, err)
	}
	rec := httptest.NewRecorder()
	var stderr bytes.Buffer
	if err := resp.WriteTo(rec, &stderr); err != nil {
		t.Fatalf("gofast WriteTo = %v (stderr %q)", err, stderr.String())
	}
	return rec
}

func TestHelp(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    []string // substrings of stdout
		wantEnv bool     // stdout lists CGIRUN_ variables
	}{
		{name: "top --help", args: []string{"--help"}, want: []string{"Usage: cgirun COMMAND", "fcgi", "http", "proxy", "probe", "CGIRUN_*"}},
		{name: "top -h", args: []string{"-h"}, want: []string{"Usage: cgirun COMMAND"}},
		{name: "help", args: []string{"help"}, want: []string{"Usage: cgirun COMMAND"}},
		{name: "fcgi --help", args: []string{"fcgi", "--help"}, want: []string{"Usage: cgirun fcgi", "-s ADDR", "--root DIR", "-c N", "-p PATH", "CGIRUN_ROOT", "CGIRUN_FASTCGI", "CGIRUN_CHILDREN", "CGIRUN_SCRIPT_TIMEOUT", "--status-path PATH", "CGIRUN_STATUS_PATH"}, wantEnv: true},
		{name: "fcgi -h", args: []string{"fcgi", "-h"}, want: []string{"Usage: cgirun fcgi"}, wantEnv: true},
		{name: "help fcgi", args: []string{"help", "fcgi"}, want: []string{"Usage: cgirun fcgi"}, wantEnv: true},
		{name: "http --help", args: []string{"http", "--help"}, want: []string{"Usage: cgirun http", "--addr HOST:PORT", "CGIRUN_HTTP", "CGIRUN_PASS_AUTH", "--status-path PATH", "CGIRUN_STATUS_PATH"}, wantEnv: true},
		{name: "proxy --help", args: []string{"proxy", "--help"}, want: []string{"Usage: cgirun proxy", "--to ADDR", "CGIRUN_INDEX"}, wantEnv: true},
		{name: "probe --help", args: []string{"probe", "--help"}, want: []string{"Usage: cgirun probe", "-H \"Name: value\"", "CGIRUN_PROBE_TIMEOUT"}, wantEnv: true},
		{name: "probe -h after an argument", args: []string{"probe", "unix:/x", "-h"}, want: []string{"Usage: cgirun probe"}, wantEnv: true},
		{name: "version --help", args: []string{"version", "--help"}, want: []string{"Usage: cgirun version"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCmd(t, nil, tt.args...)
			if code != exitOK || stderr != "" {
				t.Fatalf("run(%q) = %d, stderr %q; want 0 and nothing on stderr", tt.args, code, stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(stdout, w) {
					t.Errorf("run(%q) stdout = %q, want it to contain %q", tt.args, stdout, w)
				}
			}
			if tt.wantEnv && !strings.Contains(stdout, "\n  CGIRUN_") {
				t.Errorf("run(%q) stdout = %q, want a table of CGIRUN_ variables", tt.args, stdout)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		code, stdout, _ := runCmd(t, nil, args...)
		if code != exitOK || !regexp.MustCompile(`^cgirun \S+ go1\.\S+ \w+/\w+\n$`).MatchString(stdout) {
			t.Errorf("run(%q) = %d, %q; want 0, \"cgirun VERSION goX.Y OS/ARCH\"", args, code, stdout)
		}
	}
}

// TestUsageErrors checks that every mistake gets exit status 2 and one
// line on stderr that says what is wrong.
func TestUsageErrors(t *testing.T) {
	root := t.TempDir()
	sock := "unix:" + filepath.Join(socketDir(t), "s.sock")
	tests := []struct {
		name string
		args []string
		want string // in the line
	}{
		{name: "unknown command", args: []string{"frobnicate"}, want: `unknown command "frobnicate"`},
		{name: "mistyped flag", args: []string{"fcgi", "--rot", root}, want: "-rot"},
		{name: "bad flag value", args: []string{"fcgi", "--root", root, "-s", sock, "-c", "many"}, want: `"many"`},
		{name: "negative -c", args: []string{"fcgi", "--root", root, "-s", sock, "-c", "-1"}, want: "-c (CGIRUN_CHILDREN) = -1"},
		{name: "bad -s", args: []string{"fcgi", "--root", root, "-s", "nowhere"}, want: "-s (CGIRUN_FASTCGI)"},
		{name: "empty unix path", args: []string{"fcgi", "--root", root, "-s", "unix:"}, want: "empty socket path"},
		{name: "bad socket mode", args: []string{"fcgi", "--root", root, "-s", sock, "--socket-mode", "rw"}, want: "--socket-mode"},
		{name: "unknown socket owner", args: []string{"fcgi", "--root", root, "-s", sock, "--socket-owner", "no-such-user-cgirun"},
			want: `--socket-owner (CGIRUN_SOCKET_OWNER) = "no-such-user-cgirun": no such user: want a user name or uid, such as www-data`},
		{name: "unknown socket group", args: []string{"fcgi", "--root", root, "-s", sock, "--socket-group", "no-such-group-cgirun"},
			want: `--socket-group (CGIRUN_SOCKET_GROUP) = "no-such-group-cgirun": no such group: want a group name or gid, such as www-data`},
		{name: "negative upgrade timeout", args: []string{"fcgi", "--root", root, "-s", sock, "--upgrade-timeout", "-1s"}, want: "--upgrade-timeout"},
		{name: "bad log format", args: []string{"fcgi", "--root", root, "-s", sock, "--log-format", "xml"}, want: "--log-format"},
		{name: "no root", args: []string{"fcgi", "-s", sock}, want: "no root"},
		{name: "no root names the opt-in", args: []string{"fcgi", "-s", sock}, want: "or --root-from-request (CGIRUN_ROOT_FROM_REQUEST) to confine each request to its DOCUMENT_ROOT"},
		{name: "status path not a path", args: []string{"fcgi", "--root", root, "-s", sock, "--status-path", "status"},
			want: `--status-path (CGIRUN_STATUS_PATH) = "status": want a path starting with /, such as /cgirun-status`},
		{name: "root is not a directory", args: []string{"fcgi", "--root", "/etc/passwd", "-s", sock}, want: "not a directory"},
		{name: "unknown user", args: []string{"fcgi", "--root", root, "-s", sock, "--user", "no-such-user-here"}, want: "--user"},
		{name: "no socket", args: []string{"fcgi", "--root", root}, want: "no socket: give -s or start with a socket on fd 0"},
		{name: "fcgi extra argument", args: []string{"fcgi", "--root", root, "-s", sock, "extra"}, want: `unexpected argument "extra"`},
		{name: "http without root", args: []string{"http"}, want: "no root"},
		{name: "http bad addr", args: []string{"http", "--root", root, "--addr", "nowhere"}, want: "--addr (CGIRUN_HTTP)"},
		{name: "fcgi bad access log format", args: []string{"fcgi", "--root", root, "-s", sock, "--access-log", "--access-log-format", "apache"},
			want: `--access-log-format (CGIRUN_ACCESS_LOG_FORMAT) = "apache": want slog or combined`},
		{name: "http bad access log format", args: []string{"http", "--root", root, "--access-log-format", "apache"},
			want: `--access-log-format (CGIRUN_ACCESS_LOG_FORMAT) = "apache": want slog or combined`},
		{name: "http bad kill grace", args: []string{"http", "--root", root, "--kill-grace", "0s"}, want: "--kill-grace"},
		{name: "proxy without --to", args: []string{"proxy"}, want: "--to"},
		{name: "proxy bad --to", args: []string{"proxy", "--to", "nowhere"}, want: "--to (CGIRUN_FASTCGI)"},
		{name: "proxy bad --index", args: []string{"proxy", "--to", sock, "--index", "a/b"}, want: "--index"},
		{name: "probe without address", args: []string{"probe"}, want: "no FastCGI server"},
		{name: "probe bad address", args: []string{"probe", "nowhere"}, want: `address "nowhere"`},
		{name: "probe relative path", args: []string{"probe", sock, "healthz"}, want: `path "healthz"`},
		{name: "probe bad header", args: []string{"probe", "-H", "no colon", sock}, want: "-H"},
		{name: "probe three arguments", args: []string{"probe", sock, "/a", "/b"}, want: `unexpected argument "/b"`},
		{name: "man extra argument", args: []string{"man", "now"}, want: `unexpected argument "now"`},
		{name: "version extra argument", args: []string{"version", "now"}, want: `unexpected argument "now"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCmd(t, nil, tt.args...)
			if code != exitUsage {
				t.Errorf("run(%q) = %d, want %d (stderr %q)", tt.args, code, exitUsage, stderr)
			}
			if strings.Count(stderr, "\n") != 1 || !strings.HasSuffix(stderr, "\n") {
				t.Errorf("run(%q) stderr = %q, want one line", tt.args, stderr)
			}
			if !strings.Contains(stderr, tt.want) {
				t.Errorf("run(%q) stderr = %q, want it to contain %q", tt.args, stderr, tt.want)
			}
			if stdout != "" {
				t.Errorf("run(%q) stdout = %q, want nothing", tt.args, stdout)
			}
		})
	}
}

func TestNoCommandWithoutSocketPrintsUsage(t *testing.T) {
	code, stdout, stderr := runCmd(t, nil)
	if code != exitUsage || stdout != "" || !strings.Contains(stderr, "Usage: cgirun COMMAND") {
		t.Errorf("run() = %d, stdout %q, stderr %q; want 2 and the usage on stderr", code, stdout, stderr)
	}
}

// TestRefusesToRunAsCGI: in a cgi-bin, Apache puts a query without '=' in
// argv, so that any client would pick the command and its flags.
func TestRefusesToRunAsCGI(t *testing.T) {
	getenv := func(name string) string {
		if name == "GATEWAY_INTERFACE" {
			return "CGI/1.1"
		}
		return ""
	}
	args := []string{"http", "--root", "/", "--addr", "0.0.0.0:80"}
	code, _, stderr := runCmd(t, getenv, args...)
	if code != exitUsage || !strings.Contains(stderr, "GATEWAY_INTERFACE") {
		t.Errorf("run(%q) as CGI = %d, stderr %q; want 2 and a refusal", args, code, stderr)
	}
}

// TestEnvironment covers the CGIRUN_* variables: read when no flag is
// given, overridden by flags, and named in errors.
func TestEnvironment(t *testing.T) {
	root := t.TempDir()
	dead := "unix:" + filepath.Join(socketDir(t), "dead.sock")
	tests := []struct {
		name     string
		env      map[string]string
		args     []string
		wantCode int
		want     string // in stderr
	}{
		{name: "bad CGIRUN_CHILDREN", env: map[string]string{"CGIRUN_CHILDREN": "many"}, args: []string{"fcgi", "--root", root, "-s", dead}, wantCode: exitUsage, want: `CGIRUN_CHILDREN="many"`},
		{name: "bad CGIRUN_SCRIPT_TIMEOUT", env: map[string]string{"CGIRUN_SCRIPT_TIMEOUT": "soon"}, args: []string{"http", "--root", root}, wantCode: exitUsage, want: "CGIRUN_SCRIPT_TIMEOUT"},
		{name: "CGIRUN_FASTCGI read by fcgi", env: map[string]string{"CGIRUN_FASTCGI": "nowhere", "CGIRUN_ROOT": root}, args: []string{"fcgi"}, wantCode: exitUsage, want: "CGIRUN_FASTCGI"},
		{name: "bad CGIRUN_UPGRADE_TIMEOUT", env: map[string]string{"CGIRUN_UPGRADE_TIMEOUT": "soon"}, args: []string{"fcgi", "--root", root, "-s", dead}, wantCode: exitUsage, want: "CGIRUN_UPGRADE_TIMEOUT"},
		{name: "CGIRUN_ROOT read by fcgi", env: map[string]string{"CGIRUN_ROOT": "/no/such/dir"}, args: []string{"fcgi", "-s", dead}, wantCode: exitUsage, want: "/no/such/dir"},
		{name: "CGIRUN_HTTP read by http", env: map[string]string{"CGIRUN_HTTP": "nowhere", "CGIRUN_ROOT": root}, args: []string{"http"}, wantCode: exitUsage, want: "CGIRUN_HTTP"},
		{name: "a flag overrides CGIRUN_HTTP", env: map[string]string{"CGIRUN_HTTP": "127.0.0.1:0", "CGIRUN_ROOT": root}, args: []string{"http", "--addr", "nowhere"}, wantCode: exitUsage, want: `"nowhere"`},
		{name: "a flag overrides CGIRUN_LOG_FORMAT", env: map[string]string{"CGIRUN_LOG_FORMAT": "xml"}, args: []string{"fcgi", "--log-format", "json", "--root", "/no/such/dir", "-s", dead}, wantCode: exitUsage, want: "/no/such/dir"},
		{name: "CGIRUN_FASTCGI read by probe", env: map[string]string{"CGIRUN_FASTCGI": dead}, args: []string{"probe", "/healthz"}, wantCode: exitFailure, want: "dead.sock"},
		{name: "CGIRUN_FASTCGI read by proxy", env: map[string]string{"CGIRUN_FASTCGI": "nowhere"}, args: []string{"proxy"}, wantCode: exitUsage, want: "CGIRUN_FASTCGI"},
		{name: "bad CGIRUN_PROBE_TIMEOUT", env: map[string]string{"CGIRUN_PROBE_TIMEOUT": "-1s"}, args: []string{"probe", dead}, wantCode: exitUsage, want: "CGIRUN_PROBE_TIMEOUT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			code, _, stderr := runCmd(t, nil, tt.args...)
			if code != tt.wantCode || !strings.Contains(stderr, tt.want) {
				t.Errorf("run(%q) with %v = %d, stderr %q; want %d and %q", tt.args, tt.env, code, stderr, tt.wantCode, tt.want)
			}
			if strings.Count(stderr, "\n") != 1 {
				t.Errorf("run(%q) with %v stderr = %q, want one line", tt.args, tt.env, stderr)
			}
		})
	}
}

// get fetches url and returns the status and body.
func get(t *testing.T, method, url, body string, header http.Header) (int, http.Header, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, url, err)
	}
	return resp.StatusCode, resp.Header, string(b)
}
