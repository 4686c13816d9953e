package cgi

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cgirun/cgirun/bridge"
)

// escapeScripts are scripts that leave a process behind in a session of
// its own, out of reach of a signal to the script's group, holding the
// script's stdout, stdin and stderr. Each writes that process's pid to
// the file its query names, then answers in part.
var escapeScripts = map[string]string{
	// setsid execs sleep: $! is sleep's pid.
	"daemon.sh": "#!/bin/sh\nsetsid sleep 40 &\necho $! > \"$QUERY_STRING\"\nprintf 'Content-Type: text/plain\\n\\npartial'\nexit 0\n",
	// A double fork: the subshell that starts the daemon exits too.
	"doublefork.sh": "#!/bin/sh\n( setsid sleep 40 & echo $! > \"$QUERY_STRING\" ) &\nwait\nprintf 'Content-Type: text/plain\\n\\npartial'\nexit 0\n",
	// The daemon, and a script that runs on past the timeout.
	"daemonslow.sh": "#!/bin/sh\nsetsid sleep 40 &\necho $! > \"$QUERY_STRING\"\nprintf 'Content-Type: text/plain\\n\\npartial'\nexec sleep 30\n",
}

// respondEscape runs script, which leaves a daemon behind, with a body
// larger than a pipe holds (the daemon holds stdin too and never reads
// it), and returns the answer's body, the daemon's pid and Respond's
// error.
// Respond must return within waitLimit, well before the daemon's end.
func respondEscape(t *testing.T, e *Executor, root, script string) (string, int, error) {
	t.Helper()
	pidFile := filepath.Join(t.TempDir(), "pid")
	out := new(flushRecorder)
	done := make(chan error, 1)
	in := strings.NewReader(strings.Repeat("x", 200<<10))
	go func() {
		done <- e.Respond(context.Background(), &bridge.Request{Env: cgiEnv(root, script, "REQUEST_METHOD=POST", "QUERY_STRING="+pidFile), Body: in}, out)
	}()
	select {
	case err := <-done:
		_, rest, _ := strings.Cut(out.String(), "\r\n\r\n")
		return rest, readPID(t, pidFile), err
	case <-time.After(waitLimit):
		t.Fatalf("Respond(%s) still runs %v after the script answered: its daemon holds the request", script, waitLimit)
	}
	return "", 0, nil
}

// TestExecutorDaemonHoldsNoRequest: a process that a script starts in a
// session of its own ("setsid sleep 40 &"), which the kill of the
// script's group does not reach, holds its stdout and stdin: the request
// ends all the same, the KillGrace after the script's exit or at the
// timeout, cut short, and the runner holds no more descriptors than
// before. Without EndOrphans the daemon itself is not the runner's to
// end; the test kills it.
func TestExecutorDaemonHoldsNoRequest(t *testing.T) {
	root := t.TempDir()
	for name, body := range escapeScripts {
		if err := os.WriteFile(filepath.Join(root, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	e, logs := newExecutor(t, root, func(e *Executor) { e.Timeout = 2 * time.Second })
	respondScript(t, e, cgiEnv(root, "daemon.sh", "QUERY_STRING="+filepath.Join(t.TempDir(), "pid")), nil) // opens the shared /dev/null
	waitScripts(t, e)
	before := openFDs(t)
	for _, script := range []string{"daemon.sh", "doublefork.sh", "daemonslow.sh"} {
		t.Run(script, func(t *testing.T) {
			body, daemon, err := respondEscape(t, e, root, script)
			t.Cleanup(func() { syscall.Kill(daemon, syscall.SIGKILL) })
			if !errors.Is(err, bridge.ErrCutShort) || body != "partial" {
				t.Errorf("Respond(%s) = %v, body %q; want %q cut short", script, err, body, "partial")
			}
			waitScripts(t, e)
			if leaked := slices.DeleteFunc(openFDs(t), func(fd string) bool { return slices.Contains(before, fd) }); len(leaked) > 0 {
				t.Errorf("descriptors open after %s, not before: %v", script, leaked)
			}
		})
	}
	if !strings.Contains(logs.String(), "hold its output") {
		t.Errorf("log lacks the held output:\n%s", logs)
	}
}

// subreaperEnv, set to the name of a test, has the test binary run that
// test as a child subreaper: EndOrphans changes the whole process, so the
// test runs in a process of its own.
const subreaperEnv = "CGIRUN_TEST_SUBREAPER"

// inOwnProcess runs the calling test again in a new test binary process
// with subreaperEnv set, and reports whether this is that process.
func inOwnProcess(t *testing.T) bool {
	t.Helper()
	if os.Getenv(subreaperEnv) == t.Name() {
		return true
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), subreaperEnv+"="+t.Name())
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("--- PASS: "+t.Name())) {
		t.Errorf("%s in its own process: %v\n%s", t.Name(), err, out)
	}
	return false
}

// TestExecutorEndOrphans: with EndOrphans, the daemons scripts start in
// sessions of their own (setsid, a double fork) become the runner's
// children as their parents exit, and are killed and reaped once the
// script is done with: none is left running, none a zombie.
func TestExecutorEndOrphans(t *testing.T) {
	if !inOwnProcess(t) {
		return
	}
	root := t.TempDir()
	for name, body := range escapeScripts {
		if err := os.WriteFile(filepath.Join(root, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	e, _ := newExecutor(t, root, func(e *Executor) { e.Timeout, e.EndOrphans = 2*time.Second, true })
	if err := e.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, script := range []string{"daemon.sh", "doublefork.sh", "daemonslow.sh"} {
		t.Run(script, func(t *testing.T) {
			body, daemon, err := respondEscape(t, e, root, script)
			if !errors.Is(err, bridge.ErrCutShort) || body != "partial" {
				t.Errorf("Respond(%s) = %v, body %q; want %q cut short", script, err, body, "partial")
			}
			waitScripts(t, e)
			waitGone(t, daemon)
		})
	}
	t.Run("a daemon that holds nothing of the request", func(t *testing.T) {
		os.WriteFile(filepath.Join(root, "quiet.sh"), []byte("#!/bin/sh\nsetsid sleep 40 </dev/null >/dev/null 2>&1 &\necho $! > \"$QUERY_STRING\"\nprintf 'Content-Type: text/plain\\n\\nwhole'\n"), 0o755)
		pidFile := filepath.Join(t.TempDir(), "pid")
		resp, body, err := respondScript(t, e, cgiEnv(root, "quiet.sh", "QUERY_STRING="+pidFile), nil)
		if err != nil || resp.Status != 200 || body != "whole" {
			t.Errorf("answer = %d %q %v; want 200 %q", resp.Status, body, err, "whole")
		}
		waitScripts(t, e)
		waitGone(t, readPID(t, pidFile))
	})
}

// waitGone waits until process pid no longer exists (a zombie still
// does), for at most waitLimit.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		_, err := os.Stat("/proc/" + strconv.Itoa(pid))
		if errors.Is(err, os.ErrNotExist) {
			return
		}
		if time.Now().After(deadline) {
			stat, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
			t.Fatalf("process %d still there %v after its script: %s", pid, waitLimit, stat)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestExecutorFailureAfterHeader: a script that dies on a signal, or
// exits with a status other than 0, after its header block went out has
// its answer cut short (an error wrapping bridge.ErrCutShort, which the
// front ends turn into a cut the client sees), and a log line names it
// and its status; the same answer with a clean exit is whole.
func TestExecutorFailureAfterHeader(t *testing.T) {
	root := t.TempDir()
	e, logs := newExecutor(t, root, nil)
	tests := []struct {
		name, script string
		wantLog      string // "": a whole answer
	}{
		{"SIGSEGV after part of the body", "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\npartial'\nkill -SEGV $$\n", "signal: segmentation fault"},
		{"exit 3 after the whole body", "#!/bin/sh\nprintf 'Content-Type: text/plain\\nContent-Length: 7\\n\\npartial'\nexit 3\n", "exit status 3"},
		{"a child holds stdout; the script fails last", "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\n(printf partial; exit 0)\nexit 4\n", "exit status 4"},
		{"exit 0: whole", "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\npartial'\nexit 0\n", ""},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			script := "fail" + strconv.Itoa(i) + ".sh"
			if err := os.WriteFile(filepath.Join(root, script), []byte(tt.script), 0o755); err != nil {
				t.Fatal(err)
			}
			resp, body, err := respondScript(t, e, cgiEnv(root, script), nil)
			if resp.Status != 200 || body != "partial" {
				t.Errorf("answer = %d %q, want 200 %q", resp.Status, body, "partial")
			}
			if tt.wantLog == "" {
				if err != nil {
					t.Errorf("Respond(%s) = %v, want nil", script, err)
				}
				return
			}
			if !errors.Is(err, bridge.ErrCutShort) || !strings.Contains(err.Error(), tt.wantLog) {
				t.Errorf("Respond(%s) = %v, want it cut short with %q", script, err, tt.wantLog)
			}
			line := ""
			for l := range strings.SplitSeq(logs.String(), "\n") {
				if strings.Contains(l, "failed after its header block") && strings.Contains(l, script) {
					line = l
				}
			}
			if !strings.Contains(line, tt.wantLog) {
				t.Errorf("no log line naming %s and %q:\n%s", script, tt.wantLog, logs)
			}
		})
	}
}

// TestExecutorWaitsWithoutThreads: 100 scripts running at once are waited
// for by the poller, through their pidfds, not by 100 threads blocked in
// wait4: the process's thread count stays far below 100. Nor do they hold
// a goroutine each beside their requests': each request's goroutine waits
// for its script's stdout, stderr and exit at once.
func TestExecutorWaitsWithoutThreads(t *testing.T) {
	if !pidfdWorks() {
		t.Skip("no pidfds: scripts are waited for by a thread each")
	}
	// goroutineSlack allows for goroutines of the runtime and the
	// testing package that come and go.
	const scripts, threadBound, goroutineSlack = 100, 40, 10
	root := t.TempDir()
	started := filepath.Join(t.TempDir(), "started")
	// Each script says it runs, then sleeps without answering: its
	// request waits for it.
	os.WriteFile(filepath.Join(root, "wait.sh"), []byte("#!/bin/sh\necho x >> \"$QUERY_STRING\"\nexec sleep 30\n"), 0o755)
	e, _ := newExecutor(t, root, func(e *Executor) { e.KillGrace = 100 * time.Millisecond })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	goroutines := runtime.NumGoroutine()
	done := make(chan error, scripts)
	for range scripts {
		go func() {
			done <- e.Respond(ctx, &bridge.Request{Env: cgiEnv(root, "wait.sh", "QUERY_STRING="+started)}, new(flushRecorder))
		}()
	}
	// The scripts write to a file, not to us: poll it, bounded.
	deadline := time.Now().Add(waitLimit)
	for {
		b, _ := os.ReadFile(started)
		if bytes.Count(b, []byte("x\n")) == scripts {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d scripts started within %v", bytes.Count(b, []byte("x\n")), scripts, waitLimit)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := threads(t); n >= threadBound {
		t.Errorf("%d threads with %d scripts running, want fewer than %d", n, scripts, threadBound)
	} else {
		t.Logf("%d threads with %d scripts running", n, scripts)
	}
	if n := runtime.NumGoroutine() - goroutines; n > scripts+goroutineSlack {
		t.Errorf("%d more goroutines with %d scripts running, want at most %d: one a request", n, scripts, scripts+goroutineSlack)
	}
	cancel()
	for range scripts {
		<-done
	}
}

// threads returns the number of threads of this process.
func threads(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc/self/status: %v", err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatalf("/proc/self/status: %q", line)
			}
			return n
		}
	}
	t.Fatal("no Threads line in /proc/self/status")
	return 0
}

// TestExecutorClientLeavesAfterWholeAnswer: a client that closes once it
// has every byte of a declared Content-Length (curl does, while the
// script, such as a Python WSGI program, is still shutting down) cut
// nothing: Respond returns nil, not ErrCutShort. Without a declared
// length the same departure is a cut.
func TestExecutorClientLeavesAfterWholeAnswer(t *testing.T) {
	root := t.TempDir()
	for name, text := range map[string]string{
		"length.sh":   "#!/bin/sh\nprintf 'Content-Type: text/plain\\nContent-Length: 5\\n\\nhello'\nexec sleep 30\n",
		"nolength.sh": "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nhello'\nexec sleep 30\n",
	} {
		if err := os.WriteFile(filepath.Join(root, name), []byte(text), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	e, logs := newExecutor(t, root, nil)
	for _, tt := range []struct {
		script string
		cut    bool
	}{{"length.sh", false}, {"nolength.sh", true}} {
		ctx, cancel := context.WithCancel(context.Background())
		out := &flushRecorder{flushed: make(chan string, 4)}
		done := make(chan error, 1)
		go func() { done <- e.Respond(ctx, &bridge.Request{Env: cgiEnv(root, tt.script)}, out) }()
		// The client has the body, then leaves.
		for s := range out.flushed {
			if strings.HasSuffix(s, "hello") {
				break
			}
		}
		cancel()
		var err error
		select {
		case err = <-done:
		case <-time.After(waitLimit):
			t.Fatalf("%s: Respond still running %v after the client left", tt.script, waitLimit)
		}
		if got := errors.Is(err, bridge.ErrCutShort); got != tt.cut {
			t.Errorf("%s: Respond = %v after the client left with the whole body; want cut %v\n%s", tt.script, err, tt.cut, logs)
		}
	}
}
