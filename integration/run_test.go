//go:build linux

package integration

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/yookoala/gofast"

	"github.com/cgirun/cgirun/bridge"
)

// The systemd units under test, read as they are: templates, read for
// the instance runInstance.
const (
	runSocketUnit  = "examples/deploy/cgirun@.socket"
	runServiceUnit = "examples/deploy/cgirun@.service"
	runInstance    = "app"
)

// runHello is examples/hello's answer to GET /.
const runHello = "Hello, World!\n"

// runStreamGrace is examples/stream's CGIRUN_SHUTDOWN_GRACE over plain
// HTTP: longer than the stream the test keeps in flight, shorter than the
// harness's stopTimeout.
const runStreamGrace = 10 * time.Second

// runUploadSize is the size of each upload of TestUploadExampleStreams;
// runMaxRSS is the project's bound on a streaming program's peak resident
// memory, which those uploads must stay under.
const (
	runUploadSize = 64 << 20
	runMaxRSS     = 64 << 20
)

// runEnv returns a child's whole environment: PATH and extra. Nothing is
// inherited from the test, whose environment may hold GATEWAY_INTERFACE or
// CGIRUN_* values that would change how the program starts.
func runEnv(extra ...string) []string {
	return append([]string{serverPath}, extra...)
}

// runNoFallback is set for the programs that must find a socket passed to
// them: should they miss it and fall back to plain HTTP, they take a port
// of nobody's rather than 8080.
const runNoFallback = "CGIRUN_HTTP=127.0.0.1:0"

// runStart starts cmd as startProcess does (its own process group, SIGTERM
// should the test binary die, stdout and stderr into the file output,
// stopped by PID in a cleanup), for the children that need what
// startProcess cannot give them: a socket on stdin or on fd 3.
func runStart(t *testing.T, name string, cmd *exec.Cmd, output string) *process {
	t.Helper()
	out, err := os.OpenFile(output, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &process{name: name, cmd: cmd, output: output, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() { p.stop(t, false) })
	return p
}

// runStartHTTP starts bin serving plain HTTP on a free port of 127.0.0.1
// (CGIRUN_HTTP, as the default 8080 may be taken), with extra in its
// environment, and returns it and its address once the port accepts.
// Nothing tells us when it listens: waitReady polls a dial, bounded by
// startTimeout. A port taken meanwhile is retried with another.
func runStartHTTP(t *testing.T, name, bin string, extra ...string) (*process, string) {
	t.Helper()
	output := filepath.Join(t.TempDir(), name+".log")
	var lastErr error
	for range startAttempts {
		addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		env := runEnv(append([]string{"CGIRUN_HTTP=" + addr}, extra...)...)
		p := startProcess(t, name, []string{bin}, env, output, false)
		// Ready once it says it serves on addr, not merely once addr
		// answers: another test's server may have taken the port.
		lastErr = p.waitReady(func() error {
			if !strings.Contains(p.Output(), "on="+addr) {
				return fmt.Errorf("%s does not say it serves on %s yet", name, addr)
			}
			return dialTCP(addr)()
		})
		if lastErr == nil {
			return p, addr
		}
		if !strings.Contains(p.Output(), "address already in use") {
			t.Fatalf("%v\n--- %s output ---\n%s", lastErr, name, p.Output())
		}
		p.stop(t, false)
		truncate(t, output)
	}
	t.Fatalf("%s: %v (port taken %d times)", name, lastErr, startAttempts)
	return nil, ""
}

// runListenUnix creates a listening unix socket at path and returns it as
// a file to hand to a child; the test keeps no listener of its own. The
// socket file stays until t.TempDir's cleanup.
func runListenUnix(t *testing.T, path string) *os.File {
	t.Helper()
	checkSocketPath(t, path)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	f, err := l.File() // a duplicate, which the child inherits
	if cerr := l.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// runWaitExit waits up to stopTimeout for p to exit after a SIGTERM, and
// checks that it shut down gracefully: exit status 0, and nothing left to
// cut when its grace period ended.
func runWaitExit(t *testing.T, p *process, logs func() string) {
	t.Helper()
	timer := time.NewTimer(stopTimeout)
	defer timer.Stop()
	select {
	case <-p.done:
	case <-timer.C:
		t.Fatalf("%s (pid %d) still running %v after SIGTERM\n%s", p.name, p.cmd.Process.Pid, stopTimeout, logs())
	}
	if p.waitErr != nil {
		t.Errorf("%s after SIGTERM: %v, want exit status 0\n%s", p.name, p.waitErr, logs())
	}
	if strings.Contains(p.Output(), "grace period over") {
		t.Errorf("%s did not finish its requests within its grace period\n%s", p.name, logs())
	}
}

// runStop stops p with sig, as a service manager does, and checks that it
// exits with status 0.
func runStop(t *testing.T, p *process, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("%v to %s (pid %d): %v\n%s", sig, p.name, p.cmd.Process.Pid, err, p.Output())
	}
	runWaitExit(t, p, p.Output)
}

// runFastCGIGet sends GET / to the FastCGI server on the unix socket path
// through gofast, a client independent of cgirun, and returns the status
// and body.
func runFastCGIGet(t *testing.T, path string, logs func() string) (int, string) {
	t.Helper()
	dial := gofast.SimpleConnFactory("unix", path)
	client, err := gofast.SimpleClientFactory(func() (net.Conn, error) {
		c, err := dial()
		if err != nil {
			return nil, err
		}
		// gofast has no timeout: a deadline on its connection bounds the
		// whole exchange.
		if err := c.SetDeadline(time.Now().Add(clientTimeout)); err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	})()
	if err != nil {
		t.Fatalf("connecting to %s: %v\n%s", path, err, logs())
	}
	defer client.Close()
	// What nginx's fastcgi_params sends for GET /: no PATH_INFO, the path
	// is REQUEST_URI's.
	req := gofast.NewRequest(nil)
	for name, value := range map[string]string{
		"GATEWAY_INTERFACE": "CGI/1.1",
		"REQUEST_METHOD":    "GET",
		"REQUEST_URI":       "/",
		"SCRIPT_NAME":       "/",
		"QUERY_STRING":      "",
		"SERVER_PROTOCOL":   "HTTP/1.1",
		"SERVER_NAME":       "localhost",
		"SERVER_PORT":       "80",
		"REMOTE_ADDR":       "127.0.0.1",
		"REMOTE_PORT":       "40000",
	} {
		req.Params[name] = value
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("FastCGI GET / on %s: %v\n%s", path, err, logs())
	}
	rec := httptest.NewRecorder()
	var stderr bytes.Buffer // FCGI_STDERR, and gofast's own errors
	if err := resp.WriteTo(rec, &stderr); err != nil || stderr.Len() > 0 {
		t.Fatalf("FastCGI GET / on %s: %v, stderr %q\n%s", path, err, stderr.String(), logs())
	}
	return rec.Code, rec.Body.String()
}

// runUnit returns the values of key in section of the systemd unit file
// at path (relative to the module root), in order, with the instance
// specifier %i replaced by runInstance; an empty assignment empties the
// list, as in systemd. It reads what the files under test use; a
// continued line, which it would misread, fails the test.
func runUnit(t *testing.T, path, section, key string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(moduleRoot(t), path))
	if err != nil {
		t.Fatal(err)
	}
	var values []string
	current := ""
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
			continue
		case strings.HasSuffix(line, `\`):
			t.Fatalf("%s:%d: a continued line; the test reads single lines only", path, i+1)
		case line[0] == '[':
			current = strings.Trim(line, "[]")
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s:%d: %q is not a Key=value line", path, i+1, line)
		}
		if current != section || strings.TrimSpace(k) != key {
			continue
		}
		if v = strings.ReplaceAll(strings.TrimSpace(v), "%i", runInstance); v == "" {
			values = nil
		} else {
			values = append(values, v)
		}
	}
	return values
}

// runOneValue is runUnit for a key that must be set exactly once.
func runOneValue(t *testing.T, path, section, key string) string {
	t.Helper()
	v := runUnit(t, path, section, key)
	if len(v) != 1 {
		t.Fatalf("%s: [%s] %s= set %d times (%q), want once", path, section, key, len(v), v)
	}
	return v[0]
}

// runSystemdEnv returns the assignments of the Environment= lines of the
// service unit. Quoting, escapes and specifiers would need systemd's
// parser: the test refuses them rather than guess.
func runSystemdEnv(t *testing.T) []string {
	t.Helper()
	var env []string
	for _, line := range runUnit(t, runServiceUnit, "Service", "Environment") {
		if strings.ContainsAny(line, `"'\%`) {
			t.Fatalf("%s: Environment=%s: quotes, escapes and specifiers are not understood by the test", runServiceUnit, line)
		}
		for _, kv := range strings.Fields(line) {
			if name, _, ok := strings.Cut(kv, "="); !ok || name == "" {
				t.Fatalf("%s: Environment=%s: %q is not NAME=value", runServiceUnit, line, kv)
			}
			env = append(env, kv)
		}
	}
	return env
}

// runGetCGI runs bin as a CGI program for GET /, as Apache's mod_cgid
// does, and returns its answer once it has exited with status 0.
func runGetCGI(t *testing.T, bin string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), clientTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin)
	cmd.Env = runEnv(
		"GATEWAY_INTERFACE=CGI/1.1",
		"REQUEST_METHOD=GET",
		"SCRIPT_NAME=/cgi-bin/hello",
		"PATH_INFO=/",
		"QUERY_STRING=",
		"REQUEST_URI=/cgi-bin/hello/",
		"SERVER_PROTOCOL=HTTP/1.1",
		"SERVER_NAME=127.0.0.1",
		"SERVER_PORT=80",
		"REMOTE_ADDR=127.0.0.1",
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s as CGI: %v, want exit status 0\n--- stderr ---\n%s", bin, err, stderr.String())
	}
	out := stdout.String()
	br := bufio.NewReader(strings.NewReader(out))
	resp, err := bridge.ReadResponse(br, 0)
	if err != nil {
		t.Fatalf("%s as CGI: stdout %q: %v\n--- stderr ---\n%s", bin, out, err, stderr.String())
	}
	body, _ := io.ReadAll(br) // a strings.Reader does not fail
	return resp.Status, string(body), stderr.String()
}

// runGetFd0 starts bin with a listening unix socket as its stdin, as
// mod_fcgid and spawn-fcgi do, and sends it GET / over FastCGI. The socket
// listens before the program starts, so the request waits in its backlog:
// no readiness to wait for.
func runGetFd0(t *testing.T, bin string) (int, string, string) {
	t.Helper()
	dir := t.TempDir()
	sock := filepath.Join(dir, "hello.sock")
	f := runListenUnix(t, sock)
	cmd := exec.Command(bin)
	cmd.Env = runEnv(runNoFallback)
	cmd.Stdin = f
	p := runStart(t, "hello (fd 0)", cmd, filepath.Join(dir, "hello.log"))
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	status, body := runFastCGIGet(t, sock, p.Output)
	runStop(t, p, syscall.SIGTERM)
	return status, body, p.Output()
}

// runGetSystemd starts bin as systemd starts cgirun@app.service when a
// client connects to cgirun@app.socket, both files read as they are, and
// sends it GET / over FastCGI.
func runGetSystemd(t *testing.T, bin string) (int, string, string) {
	t.Helper()
	listen := runOneValue(t, runSocketUnit, "Socket", "ListenStream")
	if !filepath.IsAbs(listen) {
		t.Fatalf("%s: ListenStream=%s, want the absolute path of a unix socket", runSocketUnit, listen)
	}
	mode, err := strconv.ParseUint(runOneValue(t, runSocketUnit, "Socket", "SocketMode"), 8, 32)
	if err != nil {
		t.Fatalf("%s: SocketMode: %v", runSocketUnit, err)
	}
	// The test puts its own binary in place of ExecStart=, which must then
	// be a path alone: arguments would be lost.
	if exe := runOneValue(t, runServiceUnit, "Service", "ExecStart"); len(strings.Fields(exe)) != 1 || !filepath.IsAbs(exe) {
		t.Fatalf("%s: ExecStart=%s, want an absolute path without arguments", runServiceUnit, exe)
	}
	stop := syscall.SIGTERM // systemd's default
	if v := runUnit(t, runServiceUnit, "Service", "KillSignal"); len(v) > 0 {
		signals := map[string]syscall.Signal{"SIGTERM": syscall.SIGTERM, "SIGINT": syscall.SIGINT}
		var ok bool
		if stop, ok = signals[v[len(v)-1]]; !ok {
			t.Fatalf("%s: KillSignal=%s, want SIGTERM or SIGINT (what cgirun.Run stops on)", runServiceUnit, v[len(v)-1])
		}
	}

	// systemd creates and binds ListenStream= itself, /run/cgirun/app.sock,
	// which a test must not touch: the test creates the socket under the
	// same name in a temporary directory instead, with SocketMode=. The
	// rest is what systemd does: the listening socket on fd 3 (the first
	// of LISTEN_FDS), LISTEN_FDS=1, LISTEN_PID the program's own pid,
	// LISTEN_FDNAMES the socket unit's name, and the Environment= values.
	dir := t.TempDir()
	sock := filepath.Join(dir, filepath.Base(listen))
	f := runListenUnix(t, sock)
	if err := os.Chmod(sock, os.FileMode(mode)); err != nil {
		t.Fatal(err)
	}
	// The program's pid is known only once it runs: the shell sets
	// LISTEN_PID to its own pid, $$, which exec keeps for the program.
	cmd := exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ LISTEN_FDS=1 exec "$0"`, bin)
	fdName := strings.Replace(filepath.Base(runSocketUnit), "@", "@"+runInstance, 1)
	cmd.Env = runEnv(append([]string{"LISTEN_FDNAMES=" + fdName, runNoFallback}, runSystemdEnv(t)...)...)
	cmd.ExtraFiles = []*os.File{f}
	p := runStart(t, "hello (systemd)", cmd, filepath.Join(dir, "hello.log"))
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	// As with fd 0, the socket listened before the program started.
	status, body := runFastCGIGet(t, sock, p.Output)
	runStop(t, p, stop)
	return status, body, p.Output()
}

// runGetFastCGIAddr starts bin with CGIRUN_FASTCGI=unix:<socket> and sends
// it GET / over FastCGI.
func runGetFastCGIAddr(t *testing.T, bin string) (int, string, string) {
	t.Helper()
	dir := t.TempDir()
	sock := filepath.Join(dir, "hello.sock")
	checkSocketPath(t, sock)
	p := startProcess(t, "hello (CGIRUN_FASTCGI)", []string{bin}, runEnv("CGIRUN_FASTCGI=unix:"+sock), filepath.Join(dir, "hello.log"), false)
	// Nothing tells us when the program listens: waitReady polls a dial,
	// bounded by startTimeout.
	if err := p.waitReady(dialUnix(sock)); err != nil {
		t.Fatalf("%v\n%s", err, p.Output())
	}
	status, body := runFastCGIGet(t, sock, p.Output)
	runStop(t, p, syscall.SIGTERM)
	return status, body, p.Output()
}

// runGetHTTP starts bin with nothing but CGIRUN_HTTP set and sends it
// GET / over plain HTTP.
func runGetHTTP(t *testing.T, bin string) (int, string, string) {
	t.Helper()
	p, addr := runStartHTTP(t, "hello", bin)
	resp, body := nginxGet(t, "http://"+addr+"/", nil, p.Output)
	runStop(t, p, syscall.SIGTERM)
	return resp.StatusCode, string(body), p.Output()
}

// TestRunSameAnswerEveryWay starts the one built examples/hello in each of
// the ways cgirun.Run tells apart, and asks each GET /: the answer must be
// the same. Each program, stopped with SIGTERM (CGI: after its request),
// exits with status 0. A bad setting stops the program at start.
func TestRunSameAnswerEveryWay(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "hello")
	buildExample(t, "examples/hello", bin)

	tests := []struct {
		name string
		// get starts bin, sends it GET /, stops it, checks its exit
		// status, and returns the answer and the program's output.
		get func(t *testing.T, bin string) (status int, body, output string)
	}{
		{name: "CGI", get: runGetCGI},
		{name: "fd 0", get: runGetFd0},
		{name: "systemd socket activation", get: runGetSystemd},
		{name: "CGIRUN_FASTCGI", get: runGetFastCGIAddr},
		{name: "plain HTTP", get: runGetHTTP},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body, output := tt.get(t, bin)
			if status != http.StatusOK || body != runHello {
				t.Errorf("GET / = %d %q, want 200 %q\n--- hello output ---\n%s", status, body, runHello, output)
			}
		})
	}

	bad := []struct {
		name string
		env  string
		want string // in stderr
	}{
		{name: "CGIRUN_FASTCGI not an address", env: "CGIRUN_FASTCGI=nonsense", want: "CGIRUN_FASTCGI"},
		{name: "CGIRUN_SOCKET_MODE not octal", env: "CGIRUN_SOCKET_MODE=rw", want: "CGIRUN_SOCKET_MODE"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), clientTimeout)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin)
			cmd.Env = runEnv(tt.env, runNoFallback)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			cmd.WaitDelay = time.Second
			err := cmd.Run()
			if ctx.Err() != nil {
				t.Fatalf("%s: still running after %v, want it to stop at start\n%s", tt.env, clientTimeout, stderr.String())
			}
			if err == nil {
				t.Fatalf("%s: exit status 0, want non-zero\n%s", tt.env, stderr.String())
			}
			var exit *exec.ExitError
			if !errors.As(err, &exit) {
				t.Fatalf("%s: %v, want a non-zero exit status", tt.env, err)
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("%s: %v, stderr %q, want it to name %s", tt.env, err, stderr.String(), tt.want)
			}
		})
	}
}

// runEvent is one event of examples/stream.
type runEvent struct {
	n  int
	at time.Time
}

var runEventRE = regexp.MustCompile(`^data: (\d+) (\S+)\n\n`)

// runParseEvents parses a whole examples/stream body: events, nothing else.
func runParseEvents(body string) ([]runEvent, error) {
	var events []runEvent
	for rest := body; rest != ""; {
		m := runEventRE.FindStringSubmatch(rest)
		if m == nil {
			return events, fmt.Errorf("not an event at byte %d: %q", len(body)-len(rest), rest)
		}
		n, err := strconv.Atoi(m[1])
		if err != nil {
			return events, err
		}
		at, err := time.Parse(time.RFC3339, m[2])
		if err != nil {
			return events, err
		}
		events = append(events, runEvent{n: n, at: at})
		rest = rest[len(m[0]):]
	}
	return events, nil
}

// runInFlight is examples/stream running, as a TestRunSIGTERMFinishesInFlight
// row starts it.
type runInFlight struct {
	base string   // URL of the root, where clients connect
	proc *process // the program
	addr string   // where the program listens, as for nginxWaitRefused
	logs func() string
}

// TestRunSIGTERMFinishesInFlight starts examples/stream over plain HTTP
// and behind nginx over FastCGI, opens a stream of 3 events, and sends the
// program SIGTERM once the first event arrived: the stream must run to its
// end, and the program exit with status 0.
func TestRunSIGTERMFinishesInFlight(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "stream")
	buildExample(t, "examples/stream", bin)

	tests := []struct {
		name  string
		start func(t *testing.T) runInFlight
	}{
		{
			name: "plain HTTP",
			start: func(t *testing.T) runInFlight {
				p, addr := runStartHTTP(t, "stream", bin, "CGIRUN_SHUTDOWN_GRACE="+runStreamGrace.String())
				return runInFlight{base: "http://" + addr, proc: p, addr: "tcp:" + addr, logs: p.Output}
			},
		},
		{
			name: "FastCGI behind nginx",
			start: func(t *testing.T) runInFlight {
				requireBinary(t, "nginx")
				requireFile(t, nginxFastCGIParams)
				app := startNginxApp(t, bin, "unix")
				srv := startNginx(t, nginxConfig{
					HTTP:   nginxUpstream(t, app.Upstream()),
					Server: "include " + filepath.Join(moduleRoot(t), nginxSnippetLocation) + ";\n",
				})
				logs := func() string { return srv.ErrorLog() + "\n--- stream output ---\n" + app.Log() }
				return runInFlight{base: srv.URL(""), proc: app.proc, addr: app.Addr, logs: logs}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app := tt.start(t)
			const n = 3
			url := fmt.Sprintf("%s/events?n=%d", app.base, n)
			resp, br, first := nginxFirstLine(t, url, app.logs)
			defer resp.Body.Close()
			for name, want := range map[string]string{"Content-Type": "text/event-stream", "Cache-Control": "no-cache"} {
				if got := resp.Header.Get(name); got != want {
					t.Errorf("GET %s: %s = %q, want %q", url, name, got, want)
				}
			}
			blank, err := br.ReadString('\n')
			if err != nil || blank != "\n" {
				t.Fatalf("GET %s: first event %q then %q, %v; want an empty line\n%s", url, first, blank, err, app.logs())
			}

			signalled := time.Now()
			nginxTerminate(t, app.proc)
			// The program has begun its shutdown once it refuses
			// connections; the next events are a second away.
			if err := nginxWaitRefused(app.addr); err != nil {
				t.Fatalf("after SIGTERM: %v\n%s", err, app.logs())
			}
			rest, err := io.ReadAll(br)
			if err != nil {
				t.Fatalf("GET %s across SIGTERM: %v after %q\n%s", url, err, rest, app.logs())
			}
			body := first + blank + string(rest)
			events, err := runParseEvents(body)
			if err != nil || len(events) != n {
				t.Fatalf("GET %s across SIGTERM: body %q: %d events, %v; want %d\n%s", url, body, len(events), err, n, app.logs())
			}
			for i, e := range events {
				if e.n != i+1 {
					t.Errorf("event %d is numbered %d, want %d", i, e.n, i+1)
				}
			}
			// Events are a second apart and stamped to the second: the
			// last, 2 s after the first, is stamped later than the second
			// in which SIGTERM was sent, unless something held the first
			// event back until the response had ended.
			if last := events[n-1].at; !last.After(signalled.Truncate(time.Second)) {
				t.Errorf("last event stamped %v, SIGTERM sent at %v: the response had ended before SIGTERM\n%s", last, signalled, app.logs())
			}
			runWaitExit(t, app.proc, app.logs)
		})
	}
}

// runGenerator is a pseudo-random stream of a fixed size, generated as it
// is read and hashed on the way. The mutex orders the transport's reads
// before the test's answer.
type runGenerator struct {
	mu sync.Mutex
	r  io.Reader
	h  hash.Hash
	n  int64
}

func newRunGenerator(size int64) *runGenerator {
	src := rand.NewChaCha8([32]byte{'c', 'g', 'i', 'r', 'u', 'n', 'u', 'p'})
	return &runGenerator{r: io.LimitReader(src, size), h: sha256.New()}
}

func (g *runGenerator) Read(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	n, err := g.r.Read(p)
	g.h.Write(p[:n]) // a hash.Hash never fails
	g.n += int64(n)
	return n, err
}

// answer returns examples/upload's answer for what was read so far.
func (g *runGenerator) answer() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return fmt.Sprintf("%d %x\n", g.n, g.h.Sum(nil))
}

// runMultipart returns a multipart/form-data body, written as it is read,
// holding a text field and then, unless file is nil, file as the part
// named "file". The goroutine writing it ends when the body is read to its
// end or closed, which the transport does and a cleanup makes sure of.
func runMultipart(t *testing.T, file io.Reader) (io.Reader, string) {
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	contentType := mw.FormDataContentType()
	done := make(chan struct{})
	go func() {
		defer close(done)
		err := mw.WriteField("note", "a field before the file")
		if err == nil && file != nil {
			var part io.Writer
			if part, err = mw.CreateFormFile("file", "big.bin"); err == nil {
				_, err = io.Copy(part, file)
			}
		}
		if err == nil {
			err = mw.Close()
		}
		pw.CloseWithError(err) // nil: EOF for the reader
	}()
	t.Cleanup(func() {
		pr.Close()
		<-done
	})
	return pr, contentType
}

// runPeakRSS returns the peak resident memory of process pid (VmHWM).
func runPeakRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("VmHWM: %q: %w", v, err)
			}
			return kb << 10, nil
		}
	}
	return 0, errors.New("no VmHWM line in /proc/PID/status")
}

// TestUploadExampleStreams sends examples/upload, over plain HTTP, 64 MiB
// as a raw body and again as a form's file, generated as they are sent,
// and checks the answers against the hashes computed while generating and
// the program's peak memory against the project's bound for streaming.
func TestUploadExampleStreams(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "upload")
	buildExample(t, "examples/upload", bin)
	p, addr := runStartHTTP(t, "upload", bin)
	base := "http://" + addr

	resp, body := nginxGet(t, base+"/", nil, p.Output)
	if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(`enctype="multipart/form-data"`)) || !bytes.Contains(body, []byte(`name="file"`)) {
		t.Errorf("GET / = %d %q, want 200 and a multipart form with a field named file", resp.StatusCode, body)
	}

	tests := []struct {
		name string
		path string
		// body returns the request body, its Content-Type and its length
		// (-1: chunked), and the generator of the file, if any.
		body       func(t *testing.T) (io.Reader, string, int64, *runGenerator)
		wantStatus int
		want       string // the answer, or what a 400's message holds; "" with a generator: its answer
	}{
		{
			name: "raw body to /upload",
			path: "/upload",
			body: func(t *testing.T) (io.Reader, string, int64, *runGenerator) {
				g := newRunGenerator(runUploadSize)
				return g, "application/octet-stream", runUploadSize, g
			},
			wantStatus: http.StatusOK,
		},
		{
			name: "file of a form to /",
			path: "/",
			body: func(t *testing.T) (io.Reader, string, int64, *runGenerator) {
				g := newRunGenerator(runUploadSize)
				r, ct := runMultipart(t, g)
				return r, ct, -1, g
			},
			wantStatus: http.StatusOK,
		},
		{
			name: "form without a file",
			path: "/",
			body: func(t *testing.T) (io.Reader, string, int64, *runGenerator) {
				r, ct := runMultipart(t, nil)
				return r, ct, -1, nil
			},
			wantStatus: http.StatusBadRequest,
			want:       `no part named "file"`,
		},
		{
			name: "not a form",
			path: "/",
			body: func(t *testing.T) (io.Reader, string, int64, *runGenerator) {
				return strings.NewReader("x"), "text/plain", 1, nil
			},
			wantStatus: http.StatusBadRequest,
			want:       "want a multipart/form-data body",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, contentType, length, g := tt.body(t)
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, base+tt.path, r)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", contentType)
			req.ContentLength = length
			resp, body := nginxDo(t, req, p.Output)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("POST %s = %d %q, want %d\n%s", tt.path, resp.StatusCode, body, tt.wantStatus, p.Output())
			}
			if g != nil {
				if want := g.answer(); string(body) != want {
					t.Errorf("POST %s = %q, want %q", tt.path, body, want)
				}
			} else if !strings.Contains(string(body), tt.want) {
				t.Errorf("POST %s = %q, want it to hold %q", tt.path, body, tt.want)
			}
		})
	}

	peak, err := runPeakRSS(p.cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("upload's peak RSS after two uploads of %d MiB: %.1f MiB", runUploadSize>>20, float64(peak)/(1<<20))
	if peak > runMaxRSS {
		t.Errorf("upload's peak RSS = %.1f MiB, want at most %d MiB: an upload was held in memory", float64(peak)/(1<<20), runMaxRSS>>20)
	}
	runStop(t, p, syscall.SIGTERM)
}

// TestRunHelp: --help prints the settings and exits 0, but never in CGI
// mode, where a web server puts a query without "=" on the command line
// and any client could write --help there.
func TestRunHelp(t *testing.T) {
	bin := filepath.Join(sharedTempDir(t), "hello")
	buildExample(t, "./examples/hello", bin)
	tests := []struct {
		name string
		env  []string
		want string
	}{
		{"from a terminal", runEnv(), "CGIRUN_FASTCGI"},
		{"as CGI", runEnv("GATEWAY_INTERFACE=CGI/1.1", "REQUEST_METHOD=GET", "PATH_INFO=/", "QUERY_STRING=--help"), "Status: 200 OK\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), clientTimeout)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "--help")
			cmd.Env = tt.env
			out, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(out), tt.want) {
				t.Errorf("hello --help: %v, output %q; want exit 0 and %q", err, out, tt.want)
			}
			if tt.name == "as CGI" && strings.Contains(string(out), "CGIRUN_") {
				t.Errorf("hello --help as CGI printed the settings: %q", out)
			}
		})
	}
}

// TestRunVersion: "hello version" prints one line naming the program and
// exits 0 rather than start a server; as CGI, where the argument is a
// client's query, it answers the request.
func TestRunVersion(t *testing.T) {
	bin := filepath.Join(sharedTempDir(t), "hello")
	buildExample(t, "./examples/hello", bin)
	for _, arg := range []string{"version", "--version"} {
		ctx, cancel := context.WithTimeout(t.Context(), clientTimeout)
		cmd := exec.CommandContext(ctx, bin, arg)
		cmd.Env = runEnv()
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil || !strings.HasPrefix(string(out), "hello ") || strings.Count(string(out), "\n") != 1 || !strings.Contains(string(out), "go1.") {
			t.Errorf("hello %s: %v, output %q; want exit 0 and one line \"hello VERSION (... goX)\"", arg, err, out)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), clientTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "version")
	cmd.Env = runEnv("GATEWAY_INTERFACE=CGI/1.1", "REQUEST_METHOD=GET", "PATH_INFO=/", "QUERY_STRING=version")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "Status: 200 OK\r\n") {
		t.Errorf("hello version as CGI: %v, output %q; want the request's answer", err, out)
	}
}
