package main

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
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
		{name: "a header that fills more than one record", args: []string{"-H", "X-Test: " + strings.Repeat("v", 70000), addr, "/echo"}, wantCode: 0,
			want: []string{"\nHTTP_X_TEST=" + strings.Repeat("v", 70000) + "\n"}},
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

// TestProbeAfterSIGTERM checks that ending the context (SIGTERM, SIGINT)
// ends a probe at once, whatever it waits for.
func TestProbeAfterSIGTERM(t *testing.T) {
	tests := []struct {
		name   string
		answer func(net.Conn)
	}{
		{name: "waiting for the answer", answer: peerWrites()},
		{name: "waiting for the rest of the header block", answer: peerWrites(peerRecord(peerStdout, "Content-Type: text/plain\n", 0))},
		{name: "waiting for the rest of the body", answer: peerWrites(peerRecord(peerStdout, "Content-Type: text/plain\n\npartial", 0))},
		{name: "waiting for the rest of a record", answer: peerWrites(peerRecord(peerStdout, "Content-Type: text/plain\n", 0)[:12])},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, asked := fakePeer(t, tt.answer)
			ctx, cancel := context.WithCancel(context.Background())
			go func() {
				<-asked
				cancel()
			}()
			got := runProbe(t, ctx, "--timeout", "1h", addr, "/ok")
			if got.code != exitFailure || !strings.Contains(got.stderr, "stopped: context canceled") {
				t.Errorf("probe cancelled = %d, stderr %q; want %d, \"stopped: context canceled\"", got.code, got.stderr, exitFailure)
			}
		})
	}
	t.Run("before it starts", func(t *testing.T) {
		silent := "unix:" + silentServer(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if got := runProbe(t, ctx, "--timeout", "1h", silent); got.code != exitFailure {
			t.Errorf("run(probe) cancelled = %d, want 1 (stderr %q)", got.code, got.stderr)
		}
	})
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

// FastCGI record types and values the fake peers use, from the FastCGI
// specification, section 8.
const (
	peerBeginRequest = 1
	peerEndRequest   = 3
	peerParams       = 4
	peerStdin        = 5
	peerStdout       = 6
	peerStderr       = 7
	peerOverloaded   = 2 // protocolStatus FCGI_OVERLOADED
)

// peerRecord returns a FastCGI record of request 1 holding content,
// followed by pad bytes of padding.
func peerRecord(typ byte, content string, pad int) []byte {
	b := []byte{1, typ, 0, 1, byte(len(content) >> 8), byte(len(content)), byte(pad), 0}
	b = append(b, content...)
	return append(b, make([]byte, pad)...)
}

// peerEnd returns an FCGI_END_REQUEST record with protocolStatus status.
func peerEnd(status byte) []byte {
	return peerRecord(peerEndRequest, string([]byte{0, 0, 0, 0, status, 0, 0, 0}), 0)
}

// peerStream returns s as FCGI_STDOUT or FCGI_STDERR records of at most
// 65535 bytes, then the empty record that ends the stream.
func peerStream(typ byte, s string) []byte {
	var b []byte
	for len(s) > 0 {
		n := min(len(s), 65535)
		b = append(b, peerRecord(typ, s[:n], 0)...)
		s = s[n:]
	}
	return append(b, peerRecord(typ, "", 0)...)
}

// fakePeer is a FastCGI server for one connection, written for the tests:
// it reads the request up to its empty FCGI_STDIN record, closes asked,
// then calls answer. answer misbehaves as it likes; it must return once
// the connection is closed. fakePeer returns the address for probe.
func fakePeer(t *testing.T, answer func(c net.Conn)) (addr string, asked <-chan struct{}) {
	t.Helper()
	sock := filepath.Join(socketDir(t), "peer.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan struct{})
	accepted := make(chan net.Conn, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := l.Accept()
		if err != nil {
			return
		}
		accepted <- c
		defer c.Close()
		for {
			var h [8]byte
			if _, err := io.ReadFull(c, h[:]); err != nil {
				t.Errorf("fake peer: reading the request: %v", err)
				return
			}
			n := int(h[4])<<8 | int(h[5]) + int(h[6])
			if _, err := io.CopyN(io.Discard, c, int64(n)); err != nil {
				t.Errorf("fake peer: reading the request: %v", err)
				return
			}
			if h[1] == peerStdin && n == 0 {
				break
			}
		}
		close(ch)
		answer(c)
	}()
	t.Cleanup(func() {
		l.Close()
		select {
		case c := <-accepted:
			c.Close()
		default:
		}
		<-done
	})
	return "unix:" + sock, ch
}

// peerWrites is a fake peer's answer: it writes b, then waits for the
// connection to close.
func peerWrites(b ...[]byte) func(net.Conn) {
	return func(c net.Conn) {
		for _, p := range b {
			if _, err := c.Write(p); err != nil {
				return
			}
		}
		io.Copy(io.Discard, c)
	}
}

// peerHangsUp is a fake peer's answer: it writes b and closes the
// connection.
func peerHangsUp(b ...[]byte) func(net.Conn) {
	return func(c net.Conn) {
		for _, p := range b {
			if _, err := c.Write(p); err != nil {
				return
			}
		}
	}
}

// probeResult is what one run of "cgirun probe" did.
type probeResult struct {
	code           int
	stdout, stderr string
	took           time.Duration
}

// runProbe runs "cgirun probe args" under ctx, and fails the test at once
// if it has not returned within waitLimit: a probe that hangs is the fault
// these tests look for.
func runProbe(t *testing.T, ctx context.Context, args ...string) probeResult {
	t.Helper()
	args = append([]string{"probe"}, args...)
	var stdout, stderr bytes.Buffer
	done := make(chan int, 1)
	start := time.Now()
	go func() {
		done <- run(ctx, args, func(string) string { return "" }, nil, &stdout, &stderr)
	}()
	select {
	case code := <-done:
		return probeResult{code, stdout.String(), stderr.String(), time.Since(start)}
	case <-time.After(waitLimit):
		t.Fatalf("run(%q) still running after %v", args, waitLimit)
		panic("unreachable")
	}
}

// TestProbeHostilePeer plays FastCGI servers that answer badly, slowly or
// not at all: every probe ends by its --timeout, or at once when the
// answer is over, with exit status 1 and one line on stderr that says
// what was wrong.
func TestProbeHostilePeer(t *testing.T) {
	const timeout = 300 * time.Millisecond
	header := "Content-Type: text/plain\r\n\r\n"
	tests := []struct {
		name       string
		answer     func(net.Conn)
		timeout    time.Duration // 0: one hour, so that only the answer can end the probe
		wantStdout string
		wantStderr string
	}{
		{name: "a body and no header block",
			answer:     peerWrites(peerStream(peerStdout, "hello\n"), peerEnd(0)),
			wantStderr: `no valid CGI header block: bridge: CGI response header line "hello" has no colon; stdout began "hello\n"`},
		{name: "a body of many records and no header block",
			answer:     peerWrites(peerStream(peerStdout, "hello\n"+strings.Repeat("x", 100<<10)), peerEnd(0)),
			wantStderr: `no valid CGI header block`},
		{name: "text without a newline",
			answer:     peerWrites(peerStream(peerStdout, "hello"), peerEnd(0)),
			wantStderr: `no CGI header block: its stdout ended after 5 bytes without the empty line that ends one; stdout was "hello"`},
		{name: "header fields and no empty line",
			answer:     peerWrites(peerStream(peerStdout, "Content-Type: text/plain\n"), peerEnd(0)),
			wantStderr: `no CGI header block: its stdout ended after 25 bytes`},
		{name: "an empty stdout",
			answer:     peerWrites(peerStream(peerStdout, ""), peerEnd(0)),
			wantStderr: `no CGI header block: its stdout ended after 0 bytes without the empty line that ends one; stdout was empty`},
		{name: "no stdout at all",
			answer:     peerWrites(peerEnd(0)),
			wantStderr: `no CGI header block: its stdout ended after 0 bytes without the empty line that ends one; stdout was empty`},
		{name: "a header block over the limit",
			answer:     peerWrites(peerStream(peerStdout, strings.Repeat("X-Long: "+strings.Repeat("y", 1000)+"\n", 70)), peerEnd(0)),
			wantStderr: "no valid CGI header block: bridge: CGI response header block too large"},
		{name: "never answers", timeout: timeout,
			answer:     peerWrites(),
			wantStderr: "no answer within --timeout " + timeout.String()},
		{name: "half a record, then silence", timeout: timeout,
			answer:     peerWrites(peerRecord(peerStdout, "Status: 200 OK\n", 0)[:10]),
			wantStderr: "no answer within --timeout " + timeout.String()},
		{name: "half a header block, then silence", timeout: timeout,
			answer:     peerWrites(peerRecord(peerStdout, "Content-Type: text/plain\n", 0)),
			wantStderr: "no answer within --timeout " + timeout.String()},
		{name: "the header block, then silence mid-body", timeout: timeout,
			answer:     peerWrites(peerRecord(peerStdout, header+"partial", 0)),
			wantStdout: "HTTP 200 OK\nContent-Type: text/plain\n\npartial",
			wantStderr: "the answer did not end within --timeout " + timeout.String()},
		{name: "hangs up mid-body",
			answer:     peerHangsUp(peerRecord(peerStdout, header+"partial", 0)),
			wantStdout: "HTTP 200 OK\nContent-Type: text/plain\n\npartial",
			wantStderr: "the server closed the connection before the end of its answer"},
		{name: "hangs up before answering",
			answer:     peerHangsUp(),
			wantStderr: "the server closed the connection before the end of its answer"},
		{name: "an HTTP server",
			answer:     peerWrites([]byte("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")),
			wantStderr: "not a FastCGI answer"},
		{name: "a record of another request",
			answer:     peerWrites([]byte{1, peerStdout, 0, 2, 0, 0, 0, 0}),
			wantStderr: "record for request 2"},
		{name: "overloaded",
			answer:     peerWrites(peerEnd(peerOverloaded)),
			wantStderr: "the server refused the request (FCGI_OVERLOADED)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, _ := fakePeer(t, tt.answer)
			timeout := cmp.Or(tt.timeout, time.Hour)
			got := runProbe(t, context.Background(), "--timeout", timeout.String(), addr, "/ok")
			if got.code != exitFailure {
				t.Errorf("probe = %d, want %d (stdout %q, stderr %q)", got.code, exitFailure, got.stdout, got.stderr)
			}
			if got.stdout != tt.wantStdout {
				t.Errorf("probe stdout = %q, want %q", got.stdout, tt.wantStdout)
			}
			if !strings.Contains(got.stderr, tt.wantStderr) || strings.Count(got.stderr, "\n") != 1 {
				t.Errorf("probe stderr = %q, want one line with %q", got.stderr, tt.wantStderr)
			}
			if got.took < tt.timeout {
				t.Errorf("probe took %v, want at least --timeout %v", got.took, tt.timeout)
			}
		})
	}
}

// TestProbeWire checks answers that are odd but valid: padding, stderr
// records between stdout records, stdout split mid-line.
func TestProbeWire(t *testing.T) {
	tests := []struct {
		name       string
		answer     [][]byte
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{name: "padded records",
			answer: [][]byte{
				peerRecord(peerStdout, "Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\nnope\n", 3),
				peerRecord(peerStdout, "", 7), peerEnd(0)},
			wantCode:   1,
			wantStdout: "HTTP 404 Not Found\nContent-Type: text/plain\n\nnope\n"},
		{name: "split mid-line, stderr between",
			answer: [][]byte{
				peerRecord(peerStdout, "Content-Ty", 0),
				peerRecord(peerStderr, "warning: one\nwarning: two\n", 0),
				peerRecord(peerStdout, "pe: text/plain\n", 0),
				peerRecord(peerStdout, "X-A: 1\n\nb", 0),
				peerRecord(peerStdout, "ody\n", 0),
				peerRecord(peerStdout, "", 0), peerRecord(peerStderr, "", 0), peerEnd(0)},
			wantStdout: "HTTP 200 OK\nContent-Type: text/plain\nX-A: 1\n\nbody\n",
			wantStderr: "cgirun probe: stderr: warning: one\ncgirun probe: stderr: warning: two\n"},
		{name: "a local redirect is a 302",
			answer:     [][]byte{peerStream(peerStdout, "Location: /elsewhere\n\n"), peerEnd(0)},
			wantStdout: "HTTP 302 Found\nLocation: /elsewhere\n\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, _ := fakePeer(t, peerWrites(tt.answer...))
			got := runProbe(t, context.Background(), addr, "/ok")
			if got.code != tt.wantCode || got.stdout != tt.wantStdout || got.stderr != tt.wantStderr {
				t.Errorf("probe = %d, stdout %q, stderr %q; want %d, %q, %q", got.code, got.stdout, got.stderr, tt.wantCode, tt.wantStdout, tt.wantStderr)
			}
		})
	}
}

// TestProbeStderrLimit sends more FCGI_STDERR than probe keeps: the rest
// is counted, not held.
func TestProbeStderrLimit(t *testing.T) {
	tests := []struct {
		name     string
		size     int // bytes of the server's stderr, lines of "e\n"
		wantNote string
	}{
		{name: "at the limit", size: probeMaxStderr},
		{name: "one line over", size: probeMaxStderr + 2, wantNote: "cgirun probe: stderr: (2 more bytes dropped)\n"},
		{name: "far over", size: 4 * probeMaxStderr, wantNote: fmt.Sprintf("cgirun probe: stderr: (%d more bytes dropped)\n", 3*probeMaxStderr)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stderr := strings.Repeat("e\n", tt.size/2)
			addr, _ := fakePeer(t, peerWrites(peerStream(peerStderr, stderr), peerStream(peerStdout, "Content-Type: text/plain\n\nok\n"), peerEnd(0)))
			got := runProbe(t, context.Background(), addr, "/ok")
			if got.code != 0 {
				t.Errorf("probe = %d, want 0 (stderr %.200q)", got.code, got.stderr)
			}
			want := strings.Repeat("cgirun probe: stderr: e\n", probeMaxStderr/2) + tt.wantNote
			if got.stderr != want {
				t.Errorf("probe stderr = %d bytes ending %q, want %d bytes ending %q",
					len(got.stderr), got.stderr[max(0, len(got.stderr)-60):], len(want), want[len(want)-60:])
			}
		})
	}
}

// TestProbeRequest compares the request's bytes with the FastCGI
// specification's layout: names in sorted order, one-byte lengths below
// 128 and four-byte ones from 128.
func TestProbeRequest(t *testing.T) {
	long := strings.Repeat("v", 128)
	tests := []struct {
		name   string
		params map[string]string
		want   []byte
	}{
		{name: "short", params: map[string]string{"B": "2", "A": ""},
			want: slices.Concat(
				[]byte{1, 1, 0, 1, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0},
				[]byte{1, 4, 0, 1, 0, 7, 0, 0, 1, 0, 'A', 1, 1, 'B', '2'},
				[]byte{1, 4, 0, 1, 0, 0, 0, 0},
				[]byte{1, 5, 0, 1, 0, 0, 0, 0})},
		{name: "a value of 128 bytes", params: map[string]string{"A": long},
			want: slices.Concat(
				[]byte{1, 1, 0, 1, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0},
				[]byte{1, 4, 0, 1, 0, 134, 0, 0, 1, 0x80, 0, 0, 128, 'A'}, []byte(long),
				[]byte{1, 4, 0, 1, 0, 0, 0, 0},
				[]byte{1, 5, 0, 1, 0, 0, 0, 0})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := probeRequest(tt.params); !bytes.Equal(got, tt.want) {
				t.Errorf("probeRequest(%v) = %v, want %v", tt.params, got, tt.want)
			}
		})
	}
}
