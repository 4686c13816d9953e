package cgi

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/cgirun/cgirun/internal/testenv"
	"github.com/cgirun/cgirun/internal/testlog"
)

// suexecRoot makes a root that nobody can reach, and returns it with
// nobody's uid and gid.
func suexecRoot(t *testing.T) (root string, uid, gid int) {
	t.Helper()
	nobody, nogroup := testenv.Nobody(t)
	root = t.TempDir()
	for _, d := range []string{filepath.Dir(root), root} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	uid, gid = atoi(t, nobody.Uid), atoi(t, nogroup.Gid)
	return root, uid, gid
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// writeOwned writes a script owned by uid:gid with mode.
func writeOwned(t *testing.T, path, text string, uid, gid int, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	// chown before chmod: chown clears the setuid and setgid bits.
	if err := os.Chown(path, uid, gid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// TestExecutorSuexecChecks plays the scripts suEXEC refuses against an
// executor that runs scripts as nobody: a setuid script, a world-writable
// one, one in a group-writable directory, one owned by another user. Each
// is refused with 403 and a logged reason, and runs once its check is
// relaxed. Without Credential and StrictScripts they all run, as before.
func TestExecutorSuexecChecks(t *testing.T) {
	root, uid, gid := suexecRoot(t)
	const answer = "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nran'\n"
	writeOwned(t, filepath.Join(root, "ok.sh"), answer, uid, gid, 0o755)
	writeOwned(t, filepath.Join(root, "setuid.sh"), answer, uid, gid, 0o755|os.ModeSetuid)
	writeOwned(t, filepath.Join(root, "setgid.sh"), answer, uid, gid, 0o755|os.ModeSetgid)
	writeOwned(t, filepath.Join(root, "writable.sh"), answer, uid, gid, 0o757)
	writeOwned(t, filepath.Join(root, "groupw.sh"), answer, uid, gid, 0o775)
	writeOwned(t, filepath.Join(root, "other.sh"), answer, 0, 0, 0o755)
	writeOwned(t, filepath.Join(root, "gw", "ok.sh"), answer, uid, gid, 0o755)
	if err := os.Chmod(filepath.Join(root, "gw"), 0o775); err != nil {
		t.Fatal(err)
	}
	nobody := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	tests := []struct {
		script string
		reason string            // in the log of the refusal
		relax  func(e *Executor) // lets it run
	}{
		{"setuid.sh", "setuid or setgid", func(e *Executor) { e.AllowSetID = true }},
		{"setgid.sh", "setuid or setgid", func(e *Executor) { e.AllowSetID = true }},
		{"writable.sh", "writable by group or others", func(e *Executor) { e.AllowWritable = true }},
		{"groupw.sh", "writable by group or others", func(e *Executor) { e.AllowWritable = true }},
		{"gw/ok.sh", "writable by group or others", func(e *Executor) { e.AllowWritable = true }},
		{"other.sh", "is owned by uid 0, not by uid", func(e *Executor) { e.AllowAnyOwner = true }},
	}
	strict, logs := newExecutor(t, root, func(e *Executor) { e.Credential = nobody })
	if resp, body, _ := respondScript(t, strict, cgiEnv(root, "ok.sh"), nil); resp.Status != 200 || body != "ran" {
		t.Fatalf("ok.sh as nobody answered %d %q\n%s", resp.Status, body, logs)
	}
	plain, _ := newExecutor(t, root, nil)
	for _, tt := range tests {
		t.Run(tt.script, func(t *testing.T) {
			if resp, _, _ := respondScript(t, strict, cgiEnv(root, tt.script), nil); resp.Status != 403 {
				t.Errorf("%s as nobody answered %d, want 403", tt.script, resp.Status)
			}
			if line := testlog.Line(logs.String(), tt.script, tt.reason); line == "" {
				t.Errorf("no log line names %s and %q:\n%s", tt.script, tt.reason, logs)
			}
			relaxed, rlogs := newExecutor(t, root, func(e *Executor) { e.Credential = nobody; tt.relax(e) })
			if resp, body, _ := respondScript(t, relaxed, cgiEnv(root, tt.script), nil); resp.Status != 200 || body != "ran" {
				t.Errorf("%s with its check relaxed answered %d %q\n%s", tt.script, resp.Status, body, rlogs)
			}
			if resp, body, _ := respondScript(t, plain, cgiEnv(root, tt.script), nil); resp.Status != 200 || body != "ran" {
				t.Errorf("%s without Credential nor StrictScripts answered %d %q", tt.script, resp.Status, body)
			}
		})
	}
	// StrictScripts without Credential: the target user is the runner's.
	selfStrict, slogs := newExecutor(t, root, func(e *Executor) { e.StrictScripts = true })
	if resp, _, _ := respondScript(t, selfStrict, cgiEnv(root, "ok.sh"), nil); resp.Status != 403 || testlog.Line(slogs.String(), "not by uid 0") == "" {
		t.Errorf("ok.sh, owned by nobody, under StrictScripts as root answered %d\n%s", resp.Status, slogs)
	}
	if resp, body, _ := respondScript(t, selfStrict, cgiEnv(root, "other.sh"), nil); resp.Status != 200 || body != "ran" {
		t.Errorf("other.sh, owned by root, under StrictScripts as root answered %d %q\n%s", resp.Status, body, slogs)
	}
}

// TestExecutorNoNewPrivs: a script run as nobody execs a setuid-root copy
// of id, outside the root: with no_new_privs (the default under
// Credential) it runs with nobody's euid; with AllowPrivilegeGain, with
// root's. The runner's own threads keep no_new_privs off.
func TestExecutorNoNewPrivs(t *testing.T) {
	root, uid, gid := suexecRoot(t)
	idCopy := filepath.Join(filepath.Dir(root), "id-setuid")
	copyFile(t, "/usr/bin/id", idCopy, 0o755)
	if err := os.Chmod(idCopy, 0o755|os.ModeSetuid); err != nil {
		t.Fatal(err)
	}
	writeOwned(t, filepath.Join(root, "euid.sh"), "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\nexec "+idCopy+" -u\n", uid, gid, 0o755)
	nobody := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	gain, glogs := newExecutor(t, root, func(e *Executor) { e.Credential = nobody; e.AllowPrivilegeGain = true })
	resp, body, _ := respondScript(t, gain, cgiEnv(root, "euid.sh"), nil)
	if resp.Status != 200 {
		t.Fatalf("euid.sh answered %d %q\n%s", resp.Status, body, glogs)
	}
	if body != "0\n" {
		t.Skipf("the setuid-root copy of id runs with euid %q even without no_new_privs (a nosuid mount?)", body)
	}
	e, logs := newExecutor(t, root, func(e *Executor) { e.Credential = nobody })
	resp, body, _ = respondScript(t, e, cgiEnv(root, "euid.sh"), nil)
	if want := strconv.Itoa(uid) + "\n"; resp.Status != 200 || body != want {
		t.Errorf("euid.sh with no_new_privs answered %d %q, want 200 %q\n%s", resp.Status, body, want, logs)
	}
	if n := noNewPrivsThreads(t); n != 1 {
		t.Errorf("%d threads of the test process have no_new_privs set, want 1: the spawner's", n)
	}
}

// noNewPrivsThreads counts the threads of this process that have
// no_new_privs set.
func noNewPrivsThreads(t *testing.T) int {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, task := range tasks {
		b, err := os.ReadFile(filepath.Join("/proc/self/task", task.Name(), "status"))
		if err != nil {
			continue // the thread ended
		}
		if strings.Contains(string(b), "NoNewPrivs:\t1") {
			n++
		}
	}
	return n
}
