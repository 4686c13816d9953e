//go:build linux

package integration

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cgirun/cgirun/internal/testlog"
)

// Bounds of the runner fault tests. The "strict" runner ends scripts after
// faultTimeout; the "patient" one has the default timeout, for the scripts
// that only take long (1 GiB of stderr).
const (
	faultTimeout   = 1 * time.Second
	faultKillGrace = 1 * time.Second
	faultChildren  = 4
	faultStorm     = 8        // concurrent requests to the fork storm
	faultForks     = 20       // sleepers each storm script starts
	faultStderr    = 1 << 30  // bytes flood.sh writes to stderr
	faultHeader    = 1 << 20  // bytes of bighead.sh's header line
	faultRSSBound  = 64 << 10 // KiB: the runner's peak RSS must stay under it
)

// Scripts of the fault tests. Those that leave processes behind write
// their pids to the file their query names, before they answer.
var faultScripts = map[string]string{
	// A child that keeps stdout open after the script exits.
	"grandchild.sh": "#!/bin/sh\nsleep 30 &\necho $! > \"$QUERY_STRING\"\nprintf 'Content-Type: text/plain\\r\\n\\r\\npartial\\n'\nexit 0\n",
	// SIGTERM ignored, by the script and by the sleep it waits for.
	"stubborn.sh": "#!/bin/sh\ntrap '' TERM\necho $$ > \"$QUERY_STRING\"\nsleep 30\n",
	// Answers, closes its output, then goes on running.
	"closer.sh": "#!/bin/sh\necho $$ > \"$QUERY_STRING\"\nprintf 'Content-Type: text/plain\\r\\n\\r\\ndone\\n'\nexec >&- 2>&-\nsleep 30\n",
	// Starts many sleepers, answers, and waits for them.
	"storm.sh": "#!/bin/sh\necho $$ > \"$QUERY_STRING\"\ni=0\nwhile [ $i -lt " + strconv.Itoa(faultForks) + " ]; do sleep 30 </dev/null >/dev/null 2>&1 & i=$((i+1)); done\nprintf 'Content-Type: text/plain\\r\\n\\r\\nstorm\\n'\nexec >&-\nwait\n",
	// 1 GiB of stderr lines, then the answer.
	"flood.sh": "#!/bin/sh\nyes 'a line of stderr' | head -c " + strconv.Itoa(faultStderr) + " >&2\nprintf 'Content-Type: text/plain\\r\\n\\r\\nflooded\\n'\n",
	// A header line of 1 MiB.
	"bighead.sh": "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\nX-Big: '\nhead -c " + strconv.Itoa(faultHeader) + " /dev/zero | tr '\\0' a\nprintf '\\r\\n\\r\\nbody\\n'\n",
	"hello.sh":   "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nhello\\n'\n",
}

// faultRig is two runners on one root behind one nginx: /strict/ and
// /patient/.
type faultRig struct {
	Root, Outside, PIDDir string
	strict, patient       *process
	nginx                 *nginxServer
}

func startFaultRig(t *testing.T) *faultRig {
	t.Helper()
	requireBinary(t, "nginx")
	requireFile(t, nginxFastCGIParams)
	dir := sharedTempDir(t)
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	rig := &faultRig{Root: filepath.Join(real, "root"), Outside: filepath.Join(real, "outside"), PIDDir: t.TempDir()}
	mkdirs(t, rig.Root, rig.Outside)
	for name, body := range faultScripts {
		writeFile(t, filepath.Join(rig.Root, name), body, 0o755)
	}
	writeFile(t, filepath.Join(rig.Outside, "evil.sh"), fmt.Sprintf(runnerEvilScript, rig.Outside), 0o755)
	if err := os.Symlink(filepath.Join(rig.Outside, "evil.sh"), filepath.Join(rig.Root, "link.sh")); err != nil {
		t.Fatal(err)
	}

	bin := filepath.Join(t.TempDir(), "cgirun")
	buildExample(t, "./cmd/cgirun", bin)
	start := func(name string, flags ...string) (*process, string) {
		sock := filepath.Join(dir, name+".sock")
		checkSocketPath(t, sock)
		argv := append([]string{bin, "fcgi", "--root", rig.Root, "-s", "unix:" + sock, "--socket-mode", "0666",
			"-c", strconv.Itoa(faultChildren), "--kill-grace", faultKillGrace.String()}, flags...)
		p := startProcess(t, name, argv, []string{serverPath, "LANG=C"}, filepath.Join(dir, name+".log"), false)
		if err := p.waitReady(nginxSocketReady(sock)); err != nil {
			t.Fatalf("%v\n%s", err, p.Output())
		}
		return p, sock
	}
	var strictSock, patientSock string
	rig.strict, strictSock = start("strict", "--timeout", faultTimeout.String())
	rig.patient, patientSock = start("patient")

	var server strings.Builder
	for _, b := range []struct{ name, sock string }{{"strict", strictSock}, {"patient", patientSock}} {
		fmt.Fprintf(&server, `location /%[1]s/ {
    rewrite ^/%[1]s(/.*)$ $1 break;
    include %[2]s;
    fastcgi_param SCRIPT_FILENAME %[3]s$fastcgi_script_name;
    fastcgi_param TEST_BACKEND %[1]s;
    fastcgi_read_timeout 30s;
    fastcgi_pass unix:%[4]s;
}
location = /%[1]s/proxy-form {
    include %[2]s;
    fastcgi_param SCRIPT_FILENAME proxy:fcgi://127.0.0.1:9000%[3]s/hello.sh;
    fastcgi_param TEST_BACKEND %[1]s;
    fastcgi_pass unix:%[4]s;
}
location = /%[1]s/dotdot {
    include %[2]s;
    fastcgi_param SCRIPT_FILENAME %[3]s/../outside/evil.sh;
    fastcgi_param TEST_BACKEND %[1]s;
    fastcgi_pass unix:%[4]s;
}
`, b.name, nginxFastCGIParams, rig.Root, b.sock)
	}
	rig.nginx = startNginx(t, nginxConfig{Server: server.String()})
	return rig
}

func (r *faultRig) Logs() string {
	return r.nginx.ErrorLog() + "\n--- strict runner ---\n" + r.strict.Output() + "\n--- patient runner ---\n" + r.patient.Output()
}

// faultAnswer is what a client got: a status and body, or an error (a
// response cut short is one).
type faultAnswer struct {
	status int
	body   string
	err    error
}

func (r *faultRig) get(path string) faultAnswer {
	resp, err := client.Get(r.nginx.URL(path))
	if err != nil {
		return faultAnswer{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return faultAnswer{status: resp.StatusCode, body: string(b), err: err}
}

// pidFile returns a new pid file name for one request's script.
func (r *faultRig) pidFile(name string, i int) string {
	return filepath.Join(r.PIDDir, fmt.Sprintf("%s-%d", name, i))
}

// procStatusKB returns a field in KiB of /proc/pid/status (VmHWM, VmRSS).
func procStatusKB(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// openFDs counts the open descriptors of process pid.
func openFDs(pid int) (int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(ents), err
}

// childrenOf lists the processes whose parent is pid, and which of them are
// zombies.
func childrenOf(pid int) (all, zombies []int) {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p, err := runnerStat(child); err == nil && p.ppid == pid {
			all = append(all, child)
			if p.state == "Z" {
				zombies = append(zombies, child)
			}
		}
	}
	return all, zombies
}

// scriptsOf lists the children of runner pid that lead their own process
// group: the scripts it runs, not the processes they left behind.
func scriptsOf(pid int) []int {
	all, _ := childrenOf(pid)
	var scripts []int
	for _, child := range all {
		if pgid, err := syscall.Getpgid(child); err == nil && pgid == child {
			scripts = append(scripts, child)
		}
	}
	return scripts
}

// deadOrGone waits (bounded by strayTimeout) until process pid is gone or
// dead: a zombie of a parent other than runner, reparented to an init that
// does not reap (as in some containers), is dead. It returns what is left
// of it, or "".
func deadOrGone(pid, runner int) string {
	deadline := time.Now().Add(strayTimeout)
	for {
		p, err := runnerStat(pid)
		if err != nil || p.state == "Z" && p.ppid != runner {
			return ""
		}
		if time.Now().After(deadline) {
			return fmt.Sprintf("%s[%d] in state %s, parent %d", p.comm, pid, p.state, p.ppid)
		}
		time.Sleep(pollMax / 10)
	}
}

// settle waits (bounded by strayTimeout) until runner pid has no child
// and at most fds open descriptors, and returns how many it has then.
func settle(pid, fds int) (children, open int) {
	deadline := time.Now().Add(strayTimeout)
	for {
		all, _ := childrenOf(pid)
		open, _ = openFDs(pid)
		if len(all) == 0 && open <= fds || time.Now().After(deadline) {
			return len(all), open
		}
		time.Sleep(pollMax)
	}
}

// reliabilityRow prints one row of the reliability summary: scenario,
// requests sent, failed, peak RSS in KiB of the process under test, and
// what it leaked (goroutines, descriptors; "-" where not measured).
// integration/reliability.sh gathers these lines into a table.
func reliabilityRow(t *testing.T, scenario string, sent, failed int, peakKB int64, goroutines, fds string) {
	t.Helper()
	t.Logf("RELIABILITY\t%s\t%d\t%d\t%d\t%s\t%s", scenario, sent, failed, peakKB, goroutines, fds)
}

// TestRunnerFaults runs misbehaving scripts through nginx and `cgirun
// fcgi`: each gets its documented answer, every process it started is gone
// afterwards, the runner is left with no child, zombie or extra
// descriptor, and its memory stays bounded. Each scenario prints a
// RELIABILITY row.
func TestRunnerFaults(t *testing.T) {
	rig := startFaultRig(t)
	strictPID, patientPID := rig.strict.cmd.Process.Pid, rig.patient.cmd.Process.Pid
	// The baseline: descriptors of each runner after one request served.
	baseFDs := map[int]int{}
	for _, b := range []struct {
		name string
		pid  int
	}{{"strict", strictPID}, {"patient", patientPID}} {
		if a := rig.get("/" + b.name + "/hello.sh"); a.status != 200 || a.body != "hello\n" {
			t.Fatalf("GET /%s/hello.sh = %d %q %v\n%s", b.name, a.status, a.body, a.err, rig.Logs())
		}
		_, baseFDs[b.pid] = settle(b.pid, 0)
	}

	// check runs n requests to path on the strict or patient runner at
	// once, judges each answer with ok, then checks the pids the scripts
	// wrote are gone, the runner is back to its baseline, and prints the
	// row.
	check := func(t *testing.T, scenario, runner, script string, n int, ok func(faultAnswer) error) {
		pid := strictPID
		if runner == "patient" {
			pid = patientPID
		}
		answers := make([]faultAnswer, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				answers[i] = rig.get(fmt.Sprintf("/%s/%s?%s", runner, script, rig.pidFile(script, i)))
			})
		}
		wg.Wait()
		failed := 0
		for i, a := range answers {
			if err := ok(a); err != nil {
				failed++
				t.Errorf("request %d: %v", i, err)
			}
		}
		// Every pid a script wrote down is gone (not even a zombie).
		for i := range n {
			b, err := os.ReadFile(rig.pidFile(script, i))
			if err != nil {
				continue // the script never got that far
			}
			p, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil {
				t.Fatalf("pid file %d: %q", i, b)
			}
			if left := deadOrGone(p, pid); left != "" {
				failed++
				t.Errorf("process %d of request %d is still there: %s", p, i, left)
				syscall.Kill(-p, syscall.SIGKILL)
			}
		}
		children, fds := settle(pid, baseFDs[pid])
		if _, zombies := childrenOf(pid); len(zombies) > 0 {
			t.Errorf("the runner has zombies: %v", zombies)
		}
		if children > 0 {
			t.Errorf("the runner still has %d children", children)
		}
		if fds > baseFDs[pid] {
			t.Errorf("the runner has %d descriptors open, %d before", fds, baseFDs[pid])
		}
		peak, err := procStatusKB(pid, "VmHWM")
		if err != nil {
			t.Fatal(err)
		}
		if peak > faultRSSBound {
			t.Errorf("the runner's peak RSS is %d KiB, over %d KiB", peak, faultRSSBound)
		}
		reliabilityRow(t, scenario, n, failed, peak, "-", strconv.Itoa(fds-baseFDs[pid]))
		if t.Failed() {
			t.Log(rig.Logs())
		}
	}
	status := func(want int, body string) func(faultAnswer) error {
		return func(a faultAnswer) error {
			if a.err != nil || a.status != want || body != "" && a.body != body {
				return fmt.Errorf("got %d %q %v, want %d %q", a.status, a.body, a.err, want, body)
			}
			return nil
		}
	}

	t.Run("grandchild holds stdout", func(t *testing.T) {
		// The script is gone but its output is not over: after the kill
		// grace its group is ended and the answer cut short, which the
		// runner tells nginx by closing the connection without
		// FCGI_END_REQUEST. nginx 1.22 ends a chunked response there as
		// if it were whole: the client may get what was sent, or an
		// error; never a hang.
		check(t, "runner: a grandchild keeps stdout open", "patient", "grandchild.sh", 4, func(a faultAnswer) error {
			if a.err == nil && (a.status != 200 || a.body != "partial\n") {
				return fmt.Errorf("got %d %q, want what was sent (200 \"partial\\n\") or an error", a.status, a.body)
			}
			return nil
		})
		if testlog.Line(rig.patient.Output(), "closing connection: response cut short", "processes the script left held its stdout") == "" {
			t.Errorf("no log line about the processes left holding stdout\n%s", rig.patient.Output())
		}
	})
	t.Run("SIGTERM ignored", func(t *testing.T) {
		check(t, "runner: a script ignores SIGTERM past its timeout", "strict", "stubborn.sh", 4, status(http.StatusGatewayTimeout, ""))
	})
	t.Run("stdout closed early", func(t *testing.T) {
		check(t, "runner: a script closes stdout and runs on", "strict", "closer.sh", 4, status(200, "done\n"))
	})
	t.Run("fork storm under -c", func(t *testing.T) {
		// Sample the runner's scripts while the storm runs: never more
		// at once than -c. The runner, a child subreaper, also has for
		// children the sleepers whose script died before them, until
		// they die: a script is a child that leads its process group.
		stop, most := make(chan struct{}), make(chan int)
		go func() {
			m := 0
			for {
				m = max(m, len(scriptsOf(strictPID)))
				select {
				case <-stop:
					most <- m
					return
				case <-time.After(5 * time.Millisecond):
				}
			}
		}()
		check(t, fmt.Sprintf("runner: %d scripts of %d sleepers each, -c %d", faultStorm, faultForks, faultChildren),
			"strict", "storm.sh", faultStorm, status(200, "storm\n"))
		close(stop)
		if m := <-most; m > faultChildren {
			t.Errorf("%d scripts ran at once, over -c %d", m, faultChildren)
		} else {
			t.Logf("at most %d scripts at once (-c %d)", m, faultChildren)
		}
	})
	t.Run("1 GiB of stderr", func(t *testing.T) {
		check(t, "runner: a script writes 1 GiB to stderr", "patient", "flood.sh", 1, status(200, "flooded\n"))
		if testlog.Line(rig.patient.Output(), "dropped_bytes=") == "" {
			t.Errorf("no log line about the stderr dropped")
		}
	})
	t.Run("1 MiB header line", func(t *testing.T) {
		check(t, "runner: a script's header block is 1 MiB", "patient", "bighead.sh", 2, status(http.StatusBadGateway, ""))
	})
	t.Run("outside the root", func(t *testing.T) {
		marker := filepath.Join(rig.Outside, "ran-by-strict")
		sent, failed := 0, 0
		for _, tt := range []struct {
			path string
			want int
		}{
			{"/strict/dotdot", http.StatusForbidden},               // SCRIPT_FILENAME with ..
			{"/strict/link.sh", http.StatusForbidden},              // a symlink out of the root
			{"/strict/proxy-form", http.StatusForbidden},           // Apache's proxy:fcgi:// form
			{"/strict/hello.sh%0a/../../outside/evil.sh", 0},       // CVE-2019-11043's newline
			{"/strict/%2e%2e/outside/evil.sh", 0},                  // an encoded ..
			{"/strict/hello.sh%00/../../outside/evil.sh", 0},       // a NUL byte
			{"/strict/..%2foutside%2fevil.sh", 0},                  // an encoded slash
			{"/strict/hello.sh/..%2f..%2f..%2foutside/evil.sh", 0}, // .. in the path info
		} {
			sent++
			a := rig.get(tt.path)
			if a.err != nil || tt.want != 0 && a.status != tt.want || a.status == 200 && a.body != "hello\n" {
				failed++
				t.Errorf("GET %s = %d %q %v, want %d", tt.path, a.status, a.body, a.err, tt.want)
			}
			if _, err := os.Stat(marker); err == nil {
				failed++
				t.Errorf("GET %s ran %s", tt.path, filepath.Join(rig.Outside, "evil.sh"))
				os.Remove(marker)
			}
			t.Logf("GET %s: %d", tt.path, a.status)
		}
		peak, _ := procStatusKB(strictPID, "VmHWM")
		reliabilityRow(t, "runner: scripts outside the root (.., symlink, proxy:fcgi://, %0a, NUL)", sent, failed, peak, "-", "-")
	})
}
