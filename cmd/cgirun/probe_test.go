package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestProbe(t *testing.T) {
	addr := "unix:" + startFastCGI(t, app(nil))
	dead := "unix:" + filepath.Join(socketDir(t), "dead.sock")
	silent := "unix:" + silentServer(t)
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string // the whole of stdout, when not empty
		want       []string
		wantStderr string // in the one line of stderr; "" means no stderr
	}{
		{name: "200", args: []string{addr, "/ok"}, wantCode: 0,
			wantStdout: "HTTP 200 OK\nContent-Length: 3\nContent-Type: text/plain\n\nok\n"},
		{name: "302 is healthy", args: []string{addr, "/moved"}, wantCode: 0, want: []string{"HTTP 302 Found\n", "Location: /ok\n"}},
		{name: "500", args: []string{addr, "/fail"}, wantCode: 1, want: []string{"HTTP 500 Internal Server Error\n", "\n\nbroken\n"}},
		{name: "method, headers and a query", args: []string{"--method", "POST", "-H", "X-Test: v", "-H", "Authorization: Bearer t", addr, "/echo?x=1"}, wantCode: 0,
			want: []string{"method=POST\n", "path=/echo\n", "query=x=1\n", "HTTP_X_TEST=v\n", "HTTP_AUTHORIZATION=Bearer t\n", "SCRIPT_FILENAME=/echo\n"}},
		{name: "--root", args: []string{"--root", "/srv/www", addr, "/echo"}, wantCode: 0, want: []string{"SCRIPT_FILENAME=/srv/www/echo\n", "DOCUMENT_ROOT=/srv/www\n"}},
		{name: "flags after the arguments", args: []string{addr, "/ok", "--timeout", "10s"}, wantCode: 0, want: []string{"HTTP 200 OK\n"}},
		{name: "path defaults to /", args: []string{addr}, wantCode: 0, want: []string{"path=/\n"}},
		{name: "dead socket", args: []string{dead, "/ok"}, wantCode: 1, wantStderr: "dead.sock"},
		{name: "a server that never answers", args: []string{"--timeout", "200ms", silent, "/ok"}, wantCode: 1, wantStderr: "timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"probe"}, tt.args...)
			code, stdout, stderr := runCmd(t, nil, args...)
			if code != tt.wantCode {
				t.Errorf("run(%q) = %d, want %d (stdout %q, stderr %q)", args, code, tt.wantCode, stdout, stderr)
			}
			if tt.wantStdout != "" && stdout != tt.wantStdout {
				t.Errorf("run(%q) stdout = %q, want %q", args, stdout, tt.wantStdout)
			}
			for _, w := range tt.want {
				if !strings.Contains(stdout, w) {
					t.Errorf("run(%q) stdout = %q, want it to contain %q", args, stdout, w)
				}
			}
			switch {
			case tt.wantStderr == "" && stderr != "":
				t.Errorf("run(%q) stderr = %q, want nothing", args, stderr)
			case tt.wantStderr != "" && (!strings.Contains(stderr, tt.wantStderr) || strings.Count(stderr, "\n") != 1):
				t.Errorf("run(%q) stderr = %q, want one line with %q", args, stderr, tt.wantStderr)
			}
		})
	}
}

// TestProbeAfterSIGTERM checks that ending the context ends a probe that
// waits for an answer.
func TestProbeAfterSIGTERM(t *testing.T) {
	silent := "unix:" + silentServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"probe", "--timeout", "1h", silent}, func(string) string { return "" }, nil, &stdout, &stderr)
	}()
	cancel()
	if code := <-done; code != exitFailure {
		t.Errorf("run(probe) cancelled = %d, want 1 (stderr %q)", code, stderr.String())
	}
}

// silentServer listens on a unix socket, reads what comes and never
// answers. It returns the socket's path.
func silentServer(t *testing.T) string {
	t.Helper()
	sock := filepath.Join(socketDir(t), "silent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				io.Copy(io.Discard, c)
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return sock
}
