package cgi

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cgirun/cgirun/bridge"
)

// flushRecorder is a bridge.Output that keeps the stream and tells each
// flush on a channel.
type flushRecorder struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	flushed chan string // the stream at each flush; nil: not told
}

func (f *flushRecorder) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.buf.Write(p)
}

func (f *flushRecorder) Flush() error {
	f.mu.Lock()
	s := f.buf.String()
	f.mu.Unlock()
	if f.flushed != nil {
		f.flushed <- s
	}
	return nil
}

func (f *flushRecorder) String() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.buf.String()
}

// syncLog is a log destination shared by goroutines.
type syncLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// scripts writes the test scripts into a new root and returns it.
func scripts(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	files := map[string]string{
		"hello.sh":    "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nhello %s' \"$QUERY_STRING\"\n",
		"env.sh":      "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\nexec /usr/bin/env\n",
		"cat.sh":      "#!/bin/sh\nprintf 'Content-Type: application/octet-stream\\n\\n'\nexec cat\n",
		"pwd.sh":      "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\npwd\n",
		"die.sh":      "#!/bin/sh\necho 'dying before any header' >&2\nexit 3\n",
		"garbage.sh":  "#!/bin/sh\necho 'this is not a header'\necho\n",
		"silent.sh":   "#!/bin/sh\nexit 0\n",
		"sleep.sh":    "#!/bin/sh\necho $$ > \"$QUERY_STRING\"\nexec sleep 30\n",
		"stubborn.sh": "#!/bin/sh\ntrap '' TERM\necho $$ > \"$QUERY_STRING\"\nwhile :; do sleep 1; done\n",
		"stream.sh":   "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nfirst\\n'\nwhile [ ! -e \"$QUERY_STRING\" ]; do sleep 0.01; done\nprintf 'second\\n'\n",
		"lingers.sh":  "#!/bin/sh\necho $$ > \"$QUERY_STRING\"\nprintf 'Content-Type: text/plain\\n\\ndone'\nexec >&-\nexec sleep 30\n",
		"redirect.sh": "#!/bin/sh\nprintf 'Location: /elsewhere?x=1\\n\\n'\n",
		"status.sh":   "#!/bin/sh\nprintf 'Status: 418 Teapot\\ncontent-type: text/plain\\nX-Raw: caf\\351\\n\\nshort'\n",
		"noexec.sh":   "#!/bin/sh\necho never\n",
		"lengths.sh":  "#!/bin/sh\nprintf 'Content-Type: text/plain\\nContent-Length: 5\\nContent-Length: 50\\n\\nhello'\n",
		"escape.sh":   "#!/bin/sh\nprintf 'Status: 200 OK\\033[2J\\nContent-Type: text/plain\\n\\nhello'\n",
	}
	for name, body := range files {
		mode := os.FileMode(0o755)
		if name == "noexec.sh" {
			mode = 0o644
		}
		if err := os.WriteFile(filepath.Join(root, name), []byte(body), mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(root, "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	return root
}

// cgiEnv is a request's environment for script under root.
func cgiEnv(root, script string, extra ...string) bridge.Environ {
	return bridge.EnvironFromList(append([]string{
		"GATEWAY_INTERFACE=CGI/1.1", "REQUEST_METHOD=GET", "SERVER_PROTOCOL=HTTP/1.1",
		"SCRIPT_NAME=/" + script, "SCRIPT_FILENAME=" + filepath.Join(root, script), "DOCUMENT_ROOT=" + root,
		"REQUEST_URI=/" + script, "QUERY_STRING=",
	}, extra...))
}

func respondScript(t *testing.T, e *Executor, env bridge.Environ, body io.Reader) (*bridge.Response, string, error) {
	t.Helper()
	out := new(flushRecorder)
	err := e.Respond(context.Background(), &bridge.Request{Env: env, Body: body}, out)
	stream := out.String()
	resp, perr := bridge.ReadResponse(bufioReader(stream), 0)
	if perr != nil {
		t.Fatalf("the executor's stream %q does not parse: %v", stream, perr)
	}
	_, rest, _ := strings.Cut(stream, "\r\n\r\n")
	return resp, rest, err
}

func newExecutor(t *testing.T, root string, configure func(*Executor)) (*Executor, *syncLog) {
	t.Helper()
	logs := new(syncLog)
	e := &Executor{Roots: []string{root}, KillGrace: 200 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(logs, nil))}
	if configure != nil {
		configure(e)
	}
	track(t, e)
	return e, logs
}

// waitLimit bounds a test's wait for an event that should come at once.
const waitLimit = 20 * time.Second

// executors holds every Executor the tests made.
var executors struct {
	sync.Mutex
	list []*Executor
}

// track adds e to executors and has the test, at its end, check that no
// script is left a zombie.
func track(t *testing.T, e *Executor) {
	executors.Lock()
	executors.list = append(executors.list, e)
	executors.Unlock()
	t.Cleanup(func() { noZombies(t) })
}

// noZombies waits for the scripts of every executor the tests made, then
// checks that the test process has no zombie child. Respond returns once
// the answer is relayed, which can be before its script is waited for; and
// a test may use several executors, or its parent's.
func noZombies(t *testing.T) {
	t.Helper()
	executors.Lock()
	list := slices.Clone(executors.list)
	executors.Unlock()
	for _, e := range list {
		waitScripts(t, e)
	}
	if z := zombies(); len(z) > 0 {
		t.Errorf("zombie children of the test process: %v", z)
	}
}

// waitScripts waits until every script e started is done with: waited for,
// its stderr logged, its group killed.
func waitScripts(t *testing.T, e *Executor) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		e.running.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(waitLimit):
		t.Fatalf("scripts still running %v after their answers", waitLimit)
	}
}

func TestExecutorRuns(t *testing.T) {
	root := scripts(t)
	e, logs := newExecutor(t, root, nil)
	big := bytes.Repeat([]byte("0123456789abcdef"), 10<<20/16) // 10 MiB: both pipes fill
	tests := []struct {
		name    string
		env     bridge.Environ
		body    []byte
		status  int
		want    func(t *testing.T, body string)
		wantLog string
	}{
		{name: "hello", env: cgiEnv(root, "hello.sh", "QUERY_STRING=a=1"), status: 200,
			want: func(t *testing.T, body string) { check(t, body, "hello a=1") }},
		{name: "status, headers and raw bytes kept", env: cgiEnv(root, "status.sh"), status: 418,
			want: func(t *testing.T, body string) { check(t, body, "short") }},
		{name: "10 MiB in, 10 MiB out, no deadlock", env: cgiEnv(root, "cat.sh", "REQUEST_METHOD=POST", "CONTENT_LENGTH="+strconv.Itoa(len(big))),
			body: big, status: 200,
			want: func(t *testing.T, body string) {
				if sha256.Sum256([]byte(body)) != sha256.Sum256(big) {
					t.Errorf("echoed body: %d bytes, not the %d sent", len(body), len(big))
				}
			}},
		{name: "working directory is the script's", env: cgiEnv(root, "pwd.sh"), status: 200,
			want: func(t *testing.T, body string) {
				real, _ := filepath.EvalSymlinks(root)
				check(t, body, real+"\n")
			}},
		{name: "dies before its header: 502 naming the exit status", env: cgiEnv(root, "die.sh"), status: 502,
			wantLog: "exit status 3"},
		{name: "garbage: 502", env: cgiEnv(root, "garbage.sh"), status: 502, wantLog: "no colon"},
		{name: "response splitting by conflicting Content-Lengths: 502", env: cgiEnv(root, "lengths.sh"), status: 502, wantLog: "conflicting Content-Length"},
		{name: "terminal escape in the reason phrase: 502", env: cgiEnv(root, "escape.sh"), status: 502, wantLog: "control character"},
		{name: "no output, a clean exit: 502 logged as exit status 0", env: cgiEnv(root, "silent.sh"), status: 502, wantLog: `exit="exit status 0"`},
		{name: "stderr goes to the log", env: cgiEnv(root, "die.sh"), status: 502, wantLog: "dying before any header"},
		{name: "local redirect kept for the front end", env: cgiEnv(root, "redirect.sh"), status: 0,
			want: func(t *testing.T, body string) { check(t, body, "") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body, err := respondScript(t, e, tt.env, bytes.NewReader(tt.body))
			if err != nil {
				t.Errorf("Respond error: %v", err)
			}
			if resp.Status != tt.status {
				t.Errorf("status = %d, want %d; log:\n%s", resp.Status, tt.status, logs)
			}
			if tt.want != nil {
				tt.want(t, body)
			}
			if !strings.Contains(logs.String(), tt.wantLog) {
				t.Errorf("log lacks %q:\n%s", tt.wantLog, logs)
			}
			if tt.name == "status, headers and raw bytes kept" && (resp.Header.Get("X-Raw") != "caf\xe9" || resp.Reason != "Teapot") {
				t.Errorf("header = %v, reason %q", resp.Header, resp.Reason)
			}
			if tt.name == "local redirect kept for the front end" && (!resp.LocalRedirect || resp.Header.Get("Location") != "/elsewhere?x=1") {
				t.Errorf("local redirect = %+v", resp)
			}
		})
	}
}

func check(t *testing.T, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("body = %q, want %q", got, want)
	}
}

// TestExecutorHeaderBlock: the header block a script sends reaches the
// front end in the bridge's own form: a Status line (none for a local
// redirect), the fields sorted, values byte for byte, CRLF line ends.
func TestExecutorHeaderBlock(t *testing.T) {
	root := t.TempDir()
	e, _ := newExecutor(t, root, nil)
	tests := []struct {
		name   string
		printf string // printf's format: the script's whole output
		want   string
	}{
		{"status, reason and fields sorted", `X-B: 2\nStatus: 418 Teapot\ncontent-type: text/plain\nX-A: 1\n\nbody`,
			"Status: 418 Teapot\r\nContent-Type: text/plain\r\nX-A: 1\r\nX-B: 2\r\n\r\nbody"},
		{"a known code without a reason gets its text", `Status: 404\nContent-Type: text/plain\n\n`,
			"Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\n"},
		{"an unknown code without a reason, as net/http writes it", `Status: 599\nContent-Type: text/plain\n\n`,
			"Status: 599 status code 599\r\nContent-Type: text/plain\r\n\r\n"},
		{"no Status: 200", `Content-Type: text/plain\n\nok`,
			"Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nok"},
		{"a client redirect: 302", `Location: https://example.org/\n\n`,
			"Status: 302 Found\r\nLocation: https://example.org/\r\n\r\n"},
		{"a local redirect keeps its missing Status", `Location: /elsewhere?x=1\n\n`,
			"Location: /elsewhere?x=1\r\n\r\n"},
		{"raw bytes kept", `Content-Type: text/plain\nX-Raw: caf\351\n\n`,
			"Status: 200 OK\r\nContent-Type: text/plain\r\nX-Raw: caf\xe9\r\n\r\n"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			script := fmt.Sprintf("head%d.sh", i)
			if err := os.WriteFile(filepath.Join(root, script), []byte("#!/bin/sh\nprintf '"+tt.printf+"'\n"), 0o755); err != nil {
				t.Fatal(err)
			}
			out := new(flushRecorder)
			if err := e.Respond(context.Background(), &bridge.Request{Env: cgiEnv(root, script)}, out); err != nil || out.String() != tt.want {
				t.Errorf("Respond(%s) = %v, stream %q; want %q", script, err, out.String(), tt.want)
			}
		})
	}
}

// readPID reads the pid a script wrote into file.
func readPID(t *testing.T, file string) int {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("the script wrote no pid: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("the script wrote %q, not a pid", b)
	}
	return pid
}

// running reports whether process pid is still there (a zombie counts as
// gone: it no longer runs; so does one being reaped, whose state is X
// for an instant while supervise reaps it).
func running(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses.
	_, after, _ := strings.Cut(string(stat), ") ")
	return !strings.HasPrefix(after, "Z") && !strings.HasPrefix(after, "X")
}

func TestExecutorEndsScripts(t *testing.T) {
	root := scripts(t)
	e, logs := newExecutor(t, root, func(e *Executor) { e.Timeout = 300 * time.Millisecond })
	tests := []struct {
		name    string
		script  string
		status  int
		wantLog string
	}{
		{"a script past the timeout: 504, group killed", "sleep.sh", 504, "timed out"},
		{"a script that ignores SIGTERM: SIGKILL after the grace", "stubborn.sh", 504, "timed out"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pidFile := filepath.Join(t.TempDir(), "pid")
			resp, _, _ := respondScript(t, e, cgiEnv(root, tt.script, "QUERY_STRING="+pidFile), nil)
			if resp.Status != tt.status {
				t.Errorf("status = %d, want %d", resp.Status, tt.status)
			}
			if pid := readPID(t, pidFile); running(pid) {
				t.Errorf("script process %d still runs after the answer", pid)
			}
			if !strings.Contains(logs.String(), tt.wantLog) {
				t.Errorf("log lacks %q:\n%s", tt.wantLog, logs)
			}
		})
	}

	t.Run("client gone: group killed", func(t *testing.T) {
		// The script writes its pid into a fifo: the test reads it once
		// the script runs.
		fifo := filepath.Join(t.TempDir(), "pid")
		if err := syscall.Mkfifo(fifo, 0o600); err != nil {
			t.Skipf("mkfifo: %v", err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		e, _ := newExecutor(t, root, nil)
		go func() {
			done <- e.Respond(ctx, &bridge.Request{Env: cgiEnv(root, "stubborn.sh", "QUERY_STRING="+fifo)}, new(flushRecorder))
		}()
		read := make(chan []byte, 1)
		go func() {
			// Blocks until the script has opened the fifo, written and
			// closed it.
			b, _ := os.ReadFile(fifo)
			read <- b
		}()
		var pid int
		select {
		case b := <-read:
			var err error
			if pid, err = strconv.Atoi(strings.TrimSpace(string(b))); err != nil {
				t.Fatalf("the script wrote %q, not a pid", b)
			}
		case err := <-done:
			t.Fatalf("Respond = %v before the script started", err)
		case <-time.After(waitLimit):
			t.Fatal("the script never started")
		}
		cancel()
		<-done
		if running(pid) {
			t.Errorf("script process %d still runs after the client went", pid)
		}
	})

	t.Run("a child of the script holds stdout after it exits: cut after the grace, group gone", func(t *testing.T) {
		os.WriteFile(filepath.Join(root, "forks.sh"), []byte("#!/bin/sh\necho $$ > \"$QUERY_STRING\"\nprintf 'Content-Type: text/plain\\n\\npartial'\nsleep 30 &\nexit 0\n"), 0o755)
		pidFile := filepath.Join(t.TempDir(), "pid")
		e, logs := newExecutor(t, root, nil)
		resp, body, err := respondScript(t, e, cgiEnv(root, "forks.sh", "QUERY_STRING="+pidFile), nil)
		if resp.Status != 200 || body != "partial" || !errors.Is(err, bridge.ErrCutShort) {
			t.Errorf("answer = %d %q %v; want 200 %q cut short", resp.Status, body, err, "partial")
		}
		pid := readPID(t, pidFile)
		// The strays are not this process's children: their end is
		// seen through their pidfds.
		waitScripts(t, e) // the group was sent its SIGKILL
		for _, stray := range groupRunning(t, pid) {
			waitExit(t, stray)
		}
		if left := groupRunning(t, pid); len(left) > 0 {
			t.Errorf("processes of the script's group %d still run: %v", pid, left)
		}
		if !strings.Contains(logs.String(), "hold its output") {
			t.Errorf("log lacks the strays:\n%s", logs)
		}
	})

	t.Run("stdout closed early, process lingers: answer at once, then ended", func(t *testing.T) {
		pidFile := filepath.Join(t.TempDir(), "pid")
		e, _ := newExecutor(t, root, nil)
		resp, body, err := respondScript(t, e, cgiEnv(root, "lingers.sh", "QUERY_STRING="+pidFile), nil)
		if err != nil || resp.Status != 200 || body != "done" {
			t.Errorf("answer = %d %q %v", resp.Status, body, err)
		}
		// supervise ends it after the grace (200 ms), then waits for it.
		waitScripts(t, e)
		if pid := readPID(t, pidFile); running(pid) {
			t.Errorf("the lingering script %d was never ended", pid)
		}
	})
}

// TestExecutorStreams: a script's body reaches the client as it comes:
// the executor flushes the first line while the script still runs.
func TestExecutorStreams(t *testing.T) {
	root := scripts(t)
	e, _ := newExecutor(t, root, nil)
	flag := filepath.Join(t.TempDir(), "go-on")
	out := &flushRecorder{flushed: make(chan string, 16)}
	done := make(chan error, 1)
	go func() {
		done <- e.Respond(context.Background(), &bridge.Request{Env: cgiEnv(root, "stream.sh", "QUERY_STRING="+flag)}, out)
	}()
	for first := range out.flushed {
		if strings.HasSuffix(first, "first\n") {
			break
		}
	}
	os.WriteFile(flag, nil, 0o644)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(out.String(), "\r\n\r\nfirst\nsecond\n") {
		t.Errorf("stream = %q", out.String())
	}
}

func TestExecutorLimits(t *testing.T) {
	root := scripts(t)
	t.Run("MaxBodyBytes: a declared body over it gets 413", func(t *testing.T) {
		e, _ := newExecutor(t, root, func(e *Executor) { e.MaxBodyBytes = 10 })
		resp, _, _ := respondScript(t, e, cgiEnv(root, "cat.sh", "REQUEST_METHOD=POST", "CONTENT_LENGTH=11"), strings.NewReader("01234567890"))
		if resp.Status != 413 {
			t.Errorf("status = %d, want 413", resp.Status)
		}
	})
	t.Run("MaxBodyBytes: a body of unknown length is cut", func(t *testing.T) {
		e, _ := newExecutor(t, root, func(e *Executor) { e.MaxBodyBytes = 10 })
		_, body, _ := respondScript(t, e, cgiEnv(root, "cat.sh", "REQUEST_METHOD=POST"), strings.NewReader("0123456789 and more"))
		check(t, body, "0123456789")
	})
	t.Run("a negative CONTENT_LENGTH is an unknown length", func(t *testing.T) {
		// Caddy's FastCGI transport sends -1 for a chunked body: the
		// script gets no CONTENT_LENGTH and the whole body.
		e, _ := newExecutor(t, root, nil)
		_, body, _ := respondScript(t, e, cgiEnv(root, "cat.sh", "REQUEST_METHOD=POST", "CONTENT_LENGTH=-1"), strings.NewReader("a body of unknown length"))
		check(t, body, "a body of unknown length")
		_, body, _ = respondScript(t, e, cgiEnv(root, "env.sh", "REQUEST_METHOD=POST", "CONTENT_LENGTH=-1"), strings.NewReader("x"))
		if strings.Contains(body, "CONTENT_LENGTH=") {
			t.Errorf("the script's environment holds %q, want no CONTENT_LENGTH", body)
		}
	})
	t.Run("MaxChildren: a request past it waits, then 503", func(t *testing.T) {
		e, logs := newExecutor(t, root, func(e *Executor) { e.MaxChildren, e.QueueTimeout = 1, 100*time.Millisecond })
		flag := filepath.Join(t.TempDir(), "go-on")
		out := &flushRecorder{flushed: make(chan string, 16)}
		done := make(chan error, 1)
		go func() {
			done <- e.Respond(context.Background(), &bridge.Request{Env: cgiEnv(root, "stream.sh", "QUERY_STRING="+flag)}, out)
		}()
		<-out.flushed // the first request holds the only slot
		resp, _, _ := respondScript(t, e, cgiEnv(root, "hello.sh"), nil)
		if resp.Status != 503 || !strings.Contains(logs.String(), "no free slot") {
			t.Errorf("status = %d, want 503; log:\n%s", resp.Status, logs)
		}
		os.WriteFile(flag, nil, 0o644)
		<-done
		if resp, _, _ := respondScript(t, e, cgiEnv(root, "hello.sh"), nil); resp.Status != 200 {
			t.Errorf("after the slot freed: %d", resp.Status)
		}
	})
	t.Run("MaxChildren: a script lingering after its answer keeps its slot", func(t *testing.T) {
		pidFile := filepath.Join(t.TempDir(), "pid")
		os.WriteFile(filepath.Join(root, "linger.sh"), []byte("#!/bin/sh\necho $$ > \"$QUERY_STRING\"\nprintf 'Content-Type: text/plain\\n\\nanswered'\nexec >&-\ntrap '' TERM\nsleep 5\n"), 0o755)
		os.WriteFile(filepath.Join(root, "check.sh"), []byte("#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\nif kill -0 $(cat \"$QUERY_STRING\") 2>/dev/null; then echo alive; else echo gone; fi\n"), 0o755)
		e, _ := newExecutor(t, root, func(e *Executor) { e.MaxChildren, e.QueueTimeout = 1, 5*time.Second })
		if resp, body, err := respondScript(t, e, cgiEnv(root, "linger.sh", "QUERY_STRING="+pidFile), nil); resp.Status != 200 || body != "answered" || err != nil {
			t.Fatalf("linger.sh: %d %q %v", resp.Status, body, err)
		}
		// linger.sh ignores SIGTERM: it goes only at SIGKILL, KillGrace
		// after its answer. Until then check.sh waits for the slot.
		resp, body, _ := respondScript(t, e, cgiEnv(root, "check.sh", "QUERY_STRING="+pidFile), nil)
		if resp.Status != 200 || body != "gone\n" {
			t.Errorf("check.sh ran while linger.sh was %q (status %d), want it gone first", body, resp.Status)
		}
	})
	t.Run("MaxHeaderBytes", func(t *testing.T) {
		os.WriteFile(filepath.Join(root, "bighead.sh"), []byte("#!/bin/sh\nprintf 'Content-Type: text/plain\\nX-Big: '\nhead -c 5000 /dev/zero | tr '\\0' a\nprintf '\\n\\n'\n"), 0o755)
		e, logs := newExecutor(t, root, func(e *Executor) { e.MaxHeaderBytes = 1024 })
		resp, _, _ := respondScript(t, e, cgiEnv(root, "bighead.sh"), nil)
		if resp.Status != 502 || !strings.Contains(logs.String(), "too large") {
			t.Errorf("status = %d, want 502; log:\n%s", resp.Status, logs)
		}
	})
	t.Run("StderrToWebServer", func(t *testing.T) {
		e, _ := newExecutor(t, root, func(e *Executor) { e.StderrToWebServer = true })
		var webLog bytes.Buffer
		e.Respond(context.Background(), &bridge.Request{Env: cgiEnv(root, "die.sh"), Stderr: &webLog}, new(flushRecorder))
		if !strings.Contains(webLog.String(), "dying before any header") {
			t.Errorf("web server's error log = %q", webLog.String())
		}
	})
	t.Run("MaxStderrBytes: stderr read to its end, logged up to the bound", func(t *testing.T) {
		// 1 MiB of stderr, then the answer: the script must not block on
		// a stderr that nobody reads.
		os.WriteFile(filepath.Join(root, "noisy.sh"), []byte("#!/bin/sh\nyes 'noise line' | head -c 1048576 >&2\nprintf 'Content-Type: text/plain\\n\\ndone'\n"), 0o755)
		e, logs := newExecutor(t, root, func(e *Executor) { e.MaxStderrBytes = 1100 })
		var webLog bytes.Buffer
		e.StderrToWebServer = true
		out := new(flushRecorder)
		err := e.Respond(context.Background(), &bridge.Request{Env: cgiEnv(root, "noisy.sh"), Stderr: &webLog}, out)
		if err != nil || !strings.HasSuffix(out.String(), "\r\n\r\ndone") {
			t.Fatalf("Respond = %v, stream %q", err, out.String())
		}
		// Respond does not wait for stderr to end: the last line comes
		// when the script is gone.
		waitScripts(t, e)
		if !strings.Contains(logs.String(), "dropped_bytes=1047476") {
			t.Errorf("no line telling the 1048576-1100 bytes dropped; log:\n%s", logs)
		}
		if n := strings.Count(logs.String(), "noise line"); n != 100 {
			t.Errorf("%d stderr lines logged, want the 100 that fit in 1100 bytes", n)
		}
		if webLog.Len() != 1100 {
			t.Errorf("the web server's error log got %d bytes, want 1100", webLog.Len())
		}
	})
	t.Run("Credential", func(t *testing.T) {
		os.WriteFile(filepath.Join(root, "id.sh"), []byte("#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\nid -u\n"), 0o755)
		// The user must reach the script: open the temporary directories.
		os.Chmod(root, 0o755)
		os.Chmod(filepath.Dir(root), 0o755)
		e, _ := newExecutor(t, root, func(e *Executor) { e.Credential = &syscall.Credential{Uid: 65534, Gid: 65534} })
		if os.Geteuid() != 0 {
			if err := e.Validate(); err == nil || !strings.Contains(err.Error(), "needs the runner to run as root") {
				t.Errorf("Validate as uid %d = %v, want a refusal", os.Geteuid(), err)
			}
			return
		}
		// Under Credential a script must be owned by the user that runs
		// it (see StrictScripts).
		if err := os.Chown(filepath.Join(root, "id.sh"), 65534, 65534); err != nil {
			t.Fatal(err)
		}
		resp, body, _ := respondScript(t, e, cgiEnv(root, "id.sh"), nil)
		if resp.Status != 200 || body != "65534\n" {
			t.Errorf("script as uid 65534 answered %d %q", resp.Status, body)
		}
	})
}

// TestExecutorLeavesNoDescriptors runs scripts down every path that makes
// pipes (an answer, a body read to its end, a script dying before its
// header, a bad header, one that cannot be executed, one refused before
// anything runs) and checks that the runner holds no descriptor it did not
// hold before, and that a script gets none of the runner's own: only its
// stdin, stdout and stderr.
func TestExecutorLeavesNoDescriptors(t *testing.T) {
	if _, err := os.ReadDir("/proc/self/fd"); err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	root := scripts(t)
	// A script whose interpreter is missing passes resolve and fails in
	// execve, after the pipes were made.
	if err := os.WriteFile(filepath.Join(root, "badinterp.sh"), []byte("#!/nonexistent/interpreter\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "fds.sh"), []byte("#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\nexec ls /proc/self/fd\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	// One slot: once a request has it, the script before has been
	// waited for and its descriptors closed.
	e, _ := newExecutor(t, root, func(e *Executor) { e.MaxChildren = 1 })
	respondScript(t, e, cgiEnv(root, "hello.sh"), nil) // opens the shared /dev/null
	before := openFDs(t)
	tests := []struct {
		script string
		body   io.Reader
	}{
		{"hello.sh", nil},
		{"hello.sh", strings.NewReader("")},
		{"cat.sh", strings.NewReader(strings.Repeat("x", 200<<10))}, // more than a pipe holds
		{"die.sh", nil},
		{"garbage.sh", nil},
		{"badinterp.sh", nil},
		{"noexec.sh", nil},
	}
	for _, tt := range tests {
		respondScript(t, e, cgiEnv(root, tt.script), tt.body)
	}
	if !e.acquire(context.Background()) {
		t.Fatal("no slot after the scripts ended")
	}
	e.release()
	if leaked := slices.DeleteFunc(openFDs(t), func(fd string) bool { return slices.Contains(before, fd) }); len(leaked) > 0 {
		t.Errorf("descriptors open after the scripts, not before: %v", leaked)
	}

	// The script's view: ls lists its own 0, 1, 2 and the directory it
	// reads (3); the same ls started by os/exec sees the same.
	_, got, err := respondScript(t, e, cgiEnv(root, "fds.sh"), strings.NewReader("body"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := exec.Command("ls", "/proc/self/fd").Output()
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("descriptors a script holds = %q, want %q (as under os/exec)", got, want)
	}
}

// openFDs lists this process's open descriptors.
func openFDs(t *testing.T) []string {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	fds := make([]string, 0, len(ents))
	for _, ent := range ents {
		fds = append(fds, ent.Name())
	}
	return fds
}

// zombies lists the zombie children of this process; none where there is
// no /proc.
func zombies() []int {
	me := strconv.Itoa(os.Getpid())
	z, _ := procsWhere(func(f []string) bool { return len(f) > 1 && f[0] == "Z" && f[1] == me })
	return z
}

// procsWhere lists the processes whose /proc/PID/stat fields after the
// command name (state, ppid, pgrp, ...) match; an error when there is no
// /proc.
func procsWhere(match func(fields []string) bool) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, ent := range entries {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		_, after, _ := strings.Cut(string(stat), ") ")
		if match(strings.Fields(after)) {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

func bufioReader(s string) *bufio.Reader { return bufio.NewReader(strings.NewReader(s)) }

// groupRunning lists the processes of group pgid that still run (zombies,
// which an init that does not reap may keep, do not run).
func groupRunning(t *testing.T, pgid int) []int {
	t.Helper()
	group := strconv.Itoa(pgid)
	running, err := procsWhere(func(f []string) bool { return len(f) > 2 && f[0] != "Z" && f[2] == group })
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	return running
}

// TestExecutorEmptyBody: a nil Body, a body known to be empty, gives the
// script the shared /dev/null; any other body a pipe that carries it.
func TestExecutorEmptyBody(t *testing.T) {
	if _, err := os.Readlink("/proc/self/fd/0"); err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "stdin.sh"), []byte("#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\nreadlink /proc/self/fd/0\ncat\n"), 0o755)
	e, _ := newExecutor(t, root, nil)
	tests := []struct {
		name  string
		body  io.Reader
		stdin string // readlink's answer, up to its first "["
		want  string // what cat read
	}{
		{"nil: known to be empty", nil, "/dev/null\n", ""},
		{"a reader that turns out empty", strings.NewReader(""), "pipe:[", ""},
		{"a reader with a body", strings.NewReader("body"), "pipe:[", "body"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, got, err := respondScript(t, e, cgiEnv(root, "stdin.sh"), tt.body)
			stdin, read, _ := strings.Cut(got, "\n")
			if err != nil || !strings.HasPrefix(stdin+"\n", tt.stdin) || read != tt.want {
				t.Errorf("script's stdin = %q, it read %q, %v; want %q, %q", stdin, read, err, tt.stdin, tt.want)
			}
		})
	}
}
