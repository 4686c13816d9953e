//go:build linux

package integration

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cgirun/cgirun/internal/testlog"
)

// The two FastCGI back ends of the runner tests, side by side behind one
// nginx, each under its own URL prefix: /cgirun/hello-c, /fcgiwrap/hello-c.
const (
	runnerImpl   = "cgirun"
	fcgiwrapImpl = "fcgiwrap"
)

// Bounds of the runner tests. nginx's timeout for the runner is longer than
// the runner's own plus its kill grace, so that a 504 arriving before it
// comes from the runner; all of them are shorter than the harness client's
// clientTimeout.
const (
	runnerScriptTimeout = 1 * time.Second // cgirun --timeout
	runnerKillGrace     = 2 * time.Second // cgirun --kill-grace
	runnerReadTimeout   = 8 * time.Second // nginx's fastcgi_read_timeout for both back ends
	// fcgiwrap has no timeout of its own: nginx gives up on its sleep.sh
	// after this.
	fcgiwrapReadTimeout = 2 * time.Second
	runnerBigBody       = 10 << 20 // bytes posted to echo.pl
)

// The scripts of examples/cgi-bin copied into the root; hello.c is compiled
// there as hello-c.
var runnerExamples = []string{"hello.sh", "echo.pl", "wsgi.py"}

// Scripts written for the tests. sleep.sh writes its pid to the file its
// query names, then sleeps past every timeout without a header: exec, so
// that the pid is the sleeping process. die.sh exits 3 before its header.
const (
	runnerSleepScript = "#!/bin/sh\necho $$ > \"$QUERY_STRING\"\nexec sleep 30\n"
	runnerDieScript   = "#!/bin/sh\necho 'die.sh: exiting before the header' >&2\nexit 3\n"
)

// runnerEvilScript is the script outside the root that the traversal
// location names: it leaves a marker saying which back end ran it
// (TEST_BACKEND, a fastcgi_param of each back end's locations).
const runnerEvilScript = "#!/bin/sh\ntouch %s/ran-by-\"$TEST_BACKEND\"\nprintf 'Content-Type: text/plain\\r\\n\\r\\nevil.sh ran\\n'\n"

// runnerRig is cgirun fcgi and fcgiwrap serving the same root, behind one
// nginx; startRunnerRig's cleanups stop all three by PID.
type runnerRig struct {
	Root    string // the scripts, symbolic links resolved (as the runner logs them)
	Outside string // beside Root: evil.sh and its markers
	PIDDir  string // sleep.sh's pid files
	runner  *process
	wrap    *fcgiwrapServer
	nginx   *nginxServer
}

// startRunnerRig builds cmd/cgirun, fills a root with the example scripts
// and the test ones, and starts `cgirun fcgi` (-c children) and fcgiwrap
// (-c children) on unix sockets and nginx in front of both.
func startRunnerRig(tb testing.TB, children int) *runnerRig {
	tb.Helper()
	for _, name := range []string{"nginx", "fcgiwrap", "cc", "perl", "python3"} {
		requireBinary(tb, name)
	}
	requireFile(tb, nginxFastCGIParams)
	dir := sharedTempDir(tb)
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		tb.Fatal(err)
	}
	rig := &runnerRig{
		Root:    filepath.Join(real, "root"),
		Outside: filepath.Join(real, "outside"),
		PIDDir:  tb.TempDir(),
	}
	mkdirs(tb, rig.Root, rig.Outside)

	bin := filepath.Join(tb.TempDir(), "cgirun")
	buildExample(tb, "./cmd/cgirun", bin)
	examples := filepath.Join(moduleRoot(tb), "examples", "cgi-bin")
	for _, name := range runnerExamples {
		b, err := os.ReadFile(filepath.Join(examples, name))
		if err != nil {
			tb.Fatal(err)
		}
		writeFile(tb, filepath.Join(rig.Root, name), string(b), 0o755)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cc := exec.CommandContext(ctx, requireBinary(tb, "cc"), "-O2", "-o", filepath.Join(rig.Root, "hello-c"), filepath.Join(examples, "hello.c"))
	if out, err := cc.CombinedOutput(); err != nil {
		tb.Fatalf("%s: %v\n%s", strings.Join(cc.Args, " "), err, out)
	}
	writeFile(tb, filepath.Join(rig.Root, "sleep.sh"), runnerSleepScript, 0o755)
	writeFile(tb, filepath.Join(rig.Root, "die.sh"), runnerDieScript, 0o755)
	writeFile(tb, filepath.Join(rig.Outside, "evil.sh"), fmt.Sprintf(runnerEvilScript, rig.Outside), 0o755)

	// --socket-mode 0666: nginx's worker runs as www-data when the test
	// runs as root, and the runner's default 0660 would shut it out.
	sock := filepath.Join(dir, "cgirun.sock")
	checkSocketPath(tb, sock)
	argv := []string{bin, "fcgi", "--root", rig.Root, "-s", "unix:" + sock, "--socket-mode", "0666",
		"-c", strconv.Itoa(children), "--timeout", runnerScriptTimeout.String(), "--kill-grace", runnerKillGrace.String(),
		"--shutdown-grace", "5s"}
	rig.runner = startProcess(tb, "cgirun", argv, []string{serverPath, "LANG=C"}, filepath.Join(dir, "cgirun.log"), false)
	// waitReady polls (bounded by startTimeout): nothing tells us when the
	// socket is listening with its mode set.
	if err := rig.runner.waitReady(nginxSocketReady(sock)); err != nil {
		tb.Fatalf("%v\n--- cgirun log ---\n%s", err, rig.runner.Output())
	}
	rig.wrap = startFcgiwrap(tb, filepath.Join(dir, "fcgiwrap.sock"), children)

	var server strings.Builder
	server.WriteString("client_max_body_size 16m;\n")
	for _, b := range []struct {
		impl, socket string
		sleepTimeout time.Duration
	}{
		{runnerImpl, sock, runnerReadTimeout},
		{fcgiwrapImpl, rig.wrap.Socket, fcgiwrapReadTimeout},
	} {
		loc := func(match, scriptFilename string, readTimeout time.Duration) {
			// The rewrite strips the back end's prefix, so that both see
			// the same $uri, SCRIPT_NAME and PATH_INFO.
			fmt.Fprintf(&server, `location %s {
    rewrite ^/%s(/.*)$ $1 break;
    fastcgi_split_path_info ^(/[^/]+)(/.*)$;
    include %s;
    fastcgi_param SCRIPT_FILENAME %s;
    fastcgi_param PATH_INFO $fastcgi_path_info;
    fastcgi_param TEST_BACKEND %s;
    fastcgi_read_timeout %ds;
    fastcgi_pass unix:%s;
}
`, match, b.impl, nginxFastCGIParams, scriptFilename, b.impl, int(readTimeout/time.Second), b.socket)
		}
		loc("/"+b.impl+"/", rig.Root+"$fastcgi_script_name", runnerReadTimeout)
		loc("= /"+b.impl+"/sleep.sh", rig.Root+"$fastcgi_script_name", b.sleepTimeout)
		// A SCRIPT_FILENAME that leaves the root, as a careless or
		// hostile configuration could send.
		loc("= /"+b.impl+"/evil", rig.Root+"/../outside/evil.sh", runnerReadTimeout)
	}
	rig.nginx = startNginx(tb, nginxConfig{Server: server.String()})
	return rig
}

// URL returns the URL of path (such as "/hello-c") on back end impl.
func (r *runnerRig) URL(impl, path string) string {
	return r.nginx.URL("/" + impl + path)
}

// Logs returns nginx's error log and the back ends' logs, for failure
// messages.
func (r *runnerRig) Logs() string {
	return r.nginx.ErrorLog() + "\n--- cgirun log ---\n" + r.runner.Output() + "\n--- fcgiwrap log ---\n" + r.wrap.Log()
}

// PID returns the process ID of back end impl.
func (r *runnerRig) PID(impl string) int {
	if impl == runnerImpl {
		return r.runner.cmd.Process.Pid
	}
	return r.wrap.proc.cmd.Process.Pid
}

// PIDFile returns the file that sleep.sh, run by back end impl, writes its
// pid to.
func (r *runnerRig) PIDFile(impl string) string {
	return filepath.Join(r.PIDDir, impl+".pid")
}

// runnerAnswer is nginx's answer to one request.
type runnerAnswer struct {
	status  int
	header  http.Header
	body    []byte
	elapsed time.Duration
}

// String shows the answer in a message: the body in full when short.
func (a runnerAnswer) String() string {
	if len(a.body) <= 200 {
		return fmt.Sprintf("%d %q", a.status, a.body)
	}
	return fmt.Sprintf("%d (%d bytes, sha256 %x)", a.status, len(a.body), sha256.Sum256(a.body))
}

// do sends method path (below impl's prefix) with body (nil: none) through
// nginx.
func (r *runnerRig) do(t *testing.T, method, impl, path string, body []byte) runnerAnswer {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, r.URL(impl, path), rd)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	resp, b := nginxDo(t, req, r.Logs)
	return runnerAnswer{status: resp.StatusCode, header: resp.Header, body: b, elapsed: time.Since(start)}
}

// runnerProc is what /proc/PID/stat says of a process.
type runnerProc struct {
	comm  string
	state string // R, S, D, Z, ...
	ppid  int
}

// runnerStat reads /proc/pid/stat; the error wraps fs.ErrNotExist once the
// process is gone and reaped.
func runnerStat(pid int) (runnerProc, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return runnerProc{}, err
	}
	// pid (comm) state ppid ...; comm may hold spaces and ')'.
	open, closing := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || closing < open {
		return runnerProc{}, fmt.Errorf("/proc/%d/stat: %q", pid, b)
	}
	f := strings.Fields(string(b[closing+1:]))
	if len(f) < 2 {
		return runnerProc{}, fmt.Errorf("/proc/%d/stat: %q", pid, b)
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return runnerProc{}, fmt.Errorf("/proc/%d/stat: ppid %q", pid, f[1])
	}
	return runnerProc{comm: string(b[open+1 : closing]), state: f[0], ppid: ppid}, nil
}

// runnerWaitGone waits until process pid has left /proc, or is a zombie of
// a parent other than notParent, and returns what is left of it ("" when
// gone). The process is not our child: nothing notifies us of its exit, so
// this polls with a backoff up to pollMax, for at most strayTimeout.
func runnerWaitGone(pid, notParent int) string {
	deadline := time.Now().Add(strayTimeout)
	backoff := time.Millisecond
	for {
		p, err := runnerStat(pid)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return ""
		case err == nil && p.state == "Z" && p.ppid != notParent:
			return fmt.Sprintf("zombie %s[%d] of parent %d", p.comm, pid, p.ppid)
		}
		if time.Now().After(deadline) {
			return fmt.Sprintf("%+v, %v", p, err)
		}
		time.Sleep(backoff)
		backoff = min(2*backoff, pollMax)
	}
}

// runnerReadPID waits for sleep.sh's pid file (nginxWaitForFile polls,
// bounded) and returns the pid in it.
func runnerReadPID(t *testing.T, file string, logs func() string) int {
	t.Helper()
	s, err := nginxWaitForFile(file)
	if err != nil {
		t.Fatalf("sleep.sh's pid file: %v\n%s", err, logs())
	}
	pid, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		t.Fatalf("sleep.sh's pid file %s holds %q: %v", file, s, err)
	}
	return pid
}

// TestRunnerBehindNginx puts `cgirun fcgi` and fcgiwrap side by side
// behind one nginx, serving the same root, and sends each row's request to
// both. Where fcgiwrap answers right, the runner must answer the same;
// where fcgiwrap has a known fault (no timeout, trusting SCRIPT_FILENAME),
// the row asserts the runner's stricter behaviour and only records
// fcgiwrap's. Last, the runner must stop on SIGTERM with exit status 0.
func TestRunnerBehindNginx(t *testing.T) {
	rig := startRunnerRig(t, 4)
	big := make([]byte, runnerBigBody)
	rand.NewChaCha8([32]byte{'r', 'u', 'n', 'n', 'e', 'r'}).Read(big)
	bigSum := sha256.Sum256(big)

	// want checks an answer's status and body.
	want := func(t *testing.T, impl string, a runnerAnswer, status int, body string) {
		t.Helper()
		if a.status != status || string(a.body) != body {
			t.Errorf("%s: answer %v, want %d %q\n%s", impl, a, status, body, rig.Logs())
		}
	}

	tests := []struct {
		name   string
		method string
		path   string // below the back end's prefix; {pid} becomes its pid file
		body   []byte // nil: none
		// same: fcgiwrap answers right, and the runner's answer (status
		// and body) must equal it.
		same  bool
		check func(t *testing.T, impl string, a runnerAnswer)
	}{
		{
			name: "shell script with path info and query", method: "GET", path: "/hello.sh/extra?q=1", same: true,
			check: func(t *testing.T, impl string, a runnerAnswer) {
				want(t, impl, a, 200, "Hello, World!\nPATH_INFO=/extra QUERY_STRING=q=1\n")
			},
		},
		{
			name: "compiled C program", method: "GET", path: "/hello-c", same: true,
			check: func(t *testing.T, impl string, a runnerAnswer) {
				want(t, impl, a, 200, "Hello, World!\n")
			},
		},
		{
			name: "WSGI hello", method: "GET", path: "/wsgi.py", same: true,
			check: func(t *testing.T, impl string, a runnerAnswer) {
				want(t, impl, a, 200, "Hello from WSGI\n")
			},
		},
		{
			name: "WSGI environ", method: "GET", path: "/wsgi.py/env/REQUEST_METHOD", same: true,
			check: func(t *testing.T, impl string, a runnerAnswer) {
				want(t, impl, a, 200, "GET")
			},
		},
		{
			name: "WSGI echo", method: "POST", path: "/wsgi.py/echo", body: []byte("posted through WSGI\n"), same: true,
			check: func(t *testing.T, impl string, a runnerAnswer) {
				want(t, impl, a, 200, "posted through WSGI\n")
			},
		},
		{
			// fcgiwrap writes the whole body before it reads the output;
			// echo.pl reads all before it writes, and nginx buffers both
			// ways, so both back ends manage 10 MiB.
			name: "10 MiB through echo.pl", method: "POST", path: "/echo.pl", body: big, same: true,
			check: func(t *testing.T, impl string, a runnerAnswer) {
				if got := sha256.Sum256(a.body); a.status != 200 || got != bigSum {
					t.Errorf("%s: answer %v, want 200 (%d bytes, sha256 %x)\n%s", impl, a, len(big), bigSum, rig.Logs())
				}
				if got := a.header.Get("X-Length"); got != strconv.Itoa(runnerBigBody) {
					t.Errorf("%s: X-Length = %q, want %d", impl, got, runnerBigBody)
				}
				if got := a.header.Get("X-Method"); got != "POST" {
					t.Errorf("%s: X-Method = %q, want POST", impl, got)
				}
			},
		},
		{
			// fcgiwrap's fault: no timeout, and nginx giving up does not
			// stop its script. The runner ends the script's process
			// group at --timeout and answers 504 itself.
			name: "script past the timeout", method: "GET", path: "/sleep.sh?{pid}",
			check: func(t *testing.T, impl string, a runnerAnswer) {
				pid := runnerReadPID(t, rig.PIDFile(impl), rig.Logs)
				if impl == fcgiwrapImpl {
					// Killed in any case, before the harness stops
					// fcgiwrap (cleanups run last in, first out).
					t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
					p, err := runnerStat(pid)
					t.Logf("fcgiwrap: nginx answered %d after %v (its fastcgi_read_timeout %v); sleep.sh (pid %d) afterwards: %+v, %v",
						a.status, a.elapsed.Round(time.Millisecond), fcgiwrapReadTimeout, pid, p, err)
					if err == nil && p.state != "Z" {
						t.Logf("fcgiwrap: its script still runs after nginx gave up (the known fcgiwrap fault: no timeout); killing pid %d", pid)
					}
					if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
						t.Logf("fcgiwrap: kill %d: %v", pid, err)
					}
					return
				}
				// 504, not 502: the runner answers "Status: 504" once the
				// script was ended for running past --timeout, before
				// nginx's own fastcgi_read_timeout. nginx's own 504 would
				// come after runnerReadTimeout with an HTML body.
				want(t, impl, a, http.StatusGatewayTimeout, "504 Gateway Timeout\n")
				if a.elapsed >= runnerReadTimeout {
					t.Errorf("%s: 504 after %v, want it before nginx's fastcgi_read_timeout %v\n%s", impl, a.elapsed, runnerReadTimeout, rig.Logs())
				}
				if line := testlog.Line(rig.runner.Output(), "timed out", filepath.Join(rig.Root, "sleep.sh")); line == "" {
					t.Errorf("%s: no log line saying sleep.sh timed out\n%s", impl, rig.Logs())
				} else {
					t.Logf("%s: logged %s", impl, line)
				}
				// The runner waits for its child before it answers, so
				// the process should already be gone. A zombie is
				// accepted only if another process is its parent (one
				// the runner cannot reap: impossible here, as exec makes
				// sleep the runner's own child).
				if left := runnerWaitGone(pid, rig.PID(runnerImpl)); left != "" {
					if !strings.HasPrefix(left, "zombie ") {
						t.Errorf("%s: sleep.sh (pid %d) still there after the 504: %s\n%s", impl, pid, left, rig.Logs())
					} else {
						t.Logf("%s: sleep.sh (pid %d) left as a %s, not the runner's to reap", impl, pid, left)
					}
				}
			},
		},
		{
			name: "script dying before its header", method: "GET", path: "/die.sh",
			check: func(t *testing.T, impl string, a runnerAnswer) {
				if impl == fcgiwrapImpl {
					t.Logf("fcgiwrap: nginx answered %v; fcgiwrap's log:\n%s", a, rig.wrap.Log())
					return
				}
				want(t, impl, a, http.StatusBadGateway, "502 Bad Gateway\n")
				script := filepath.Join(rig.Root, "die.sh")
				if line := testlog.Line(rig.runner.Output(), script, "exit status 3"); line == "" {
					t.Errorf("%s: no log line naming %s and \"exit status 3\"\n%s", impl, script, rig.Logs())
				} else {
					t.Logf("%s: logged %s", impl, line)
				}
			},
		},
		{
			// fcgiwrap's fault: it runs whatever SCRIPT_FILENAME names.
			// The runner resolves it and refuses what leaves its root.
			name: "SCRIPT_FILENAME outside the root", method: "GET", path: "/evil",
			check: func(t *testing.T, impl string, a runnerAnswer) {
				marker := filepath.Join(rig.Outside, "ran-by-"+impl)
				_, err := os.Stat(marker)
				ran := err == nil
				if impl == runnerImpl {
					// The runner's row comes first: any marker at all
					// (even one without the back end's name) is its.
					found, err := filepath.Glob(filepath.Join(rig.Outside, "ran-by-*"))
					if err != nil {
						t.Fatal(err)
					}
					ran, marker = len(found) > 0, strings.Join(found, " ")
				}
				if impl == fcgiwrapImpl {
					t.Logf("fcgiwrap: nginx answered %v; evil.sh ran: %v", a, ran)
					if ran {
						t.Logf("fcgiwrap ran %s outside its root (the fcgiwrap fault the runner fixes)", filepath.Join(rig.Outside, "evil.sh"))
					}
					return
				}
				want(t, impl, a, http.StatusForbidden, "403 Forbidden\n")
				if ran {
					t.Errorf("%s: evil.sh ran (marker %s exists)\n%s", impl, marker, rig.Logs())
				}
				if line := testlog.Line(rig.runner.Output(), "outside the roots"); line == "" {
					t.Errorf("%s: no log line saying the script is outside the roots\n%s", impl, rig.Logs())
				} else {
					t.Logf("%s: logged %s", impl, line)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := map[string]runnerAnswer{}
			for _, impl := range []string{runnerImpl, fcgiwrapImpl} {
				t.Run("impl="+impl, func(t *testing.T) {
					path := strings.ReplaceAll(tt.path, "{pid}", rig.PIDFile(impl))
					a := rig.do(t, tt.method, impl, path, tt.body)
					t.Logf("%s %s: %v in %v", tt.method, path, a, a.elapsed.Round(time.Millisecond))
					tt.check(t, impl, a)
					got[impl] = a
				})
			}
			r, rok := got[runnerImpl]
			w, wok := got[fcgiwrapImpl]
			if tt.same && rok && wok && (r.status != w.status || !bytes.Equal(r.body, w.body)) {
				t.Errorf("cgirun answered %v, fcgiwrap %v; want the same\n%s", r, w, rig.Logs())
			}
		})
	}

	t.Run("SIGTERM", func(t *testing.T) {
		p := rig.runner
		nginxTerminate(t, p)
		timer := time.NewTimer(stopTimeout)
		defer timer.Stop()
		select {
		case <-p.done:
		case <-timer.C:
			t.Fatalf("cgirun (pid %d) still running %v after SIGTERM\n%s", p.cmd.Process.Pid, stopTimeout, rig.Logs())
		}
		if p.waitErr != nil {
			t.Errorf("cgirun after SIGTERM: %v, want exit status 0\n%s", p.waitErr, rig.Logs())
		}
		if !strings.Contains(p.Output(), "shutting down") {
			t.Errorf("cgirun's log does not say it is shutting down\n%s", rig.Logs())
		}
	})
}
