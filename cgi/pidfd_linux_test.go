package cgi

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cgirun/cgirun/bridge"
)

// waitExit waits until process pid, which need not be a child of this
// process, has exited: its pidfd (Linux 5.3) becomes readable then.
func waitExit(t *testing.T, pid int) {
	t.Helper()
	fd, _, errno := syscall.Syscall(sysPidfdOpen, uintptr(pid), 0, 0)
	switch {
	case errno == syscall.ESRCH:
		return // gone already
	case errno != 0:
		t.Skipf("pidfd_open: %v", errno)
	}
	if err := syscall.SetNonblock(int(fd), true); err != nil {
		syscall.Close(int(fd))
		t.Fatal(err)
	}
	f := os.NewFile(fd, "pidfd")
	defer f.Close()
	f.SetReadDeadline(time.Now().Add(waitLimit))
	rc, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	// Read calls the function again each time the pidfd is readable.
	if err := rc.Read(func(uintptr) bool { return !running(pid) }); err != nil {
		t.Fatalf("waiting for process %d to exit: %v", pid, err)
	}
}

// TestExecutorWithoutPidfd: where pidfds are missing (Linux before 5.3),
// a goroutine waits for each script in waitid and makes an eventfd in the
// script's epoll set readable: the answers, the exit statuses, the
// timeout and the end of a script that lingers after its answer are the
// same, and no script is left a zombie.
func TestExecutorWithoutPidfd(t *testing.T) {
	works := pidfdWorks
	pidfdWorks = func() bool { return false }
	t.Cleanup(func() { pidfdWorks = works })
	root := scripts(t)
	os.WriteFile(filepath.Join(root, "fails.sh"), []byte("#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\npartial'\nexit 4\n"), 0o755)
	e, logs := newExecutor(t, root, func(e *Executor) { e.Timeout = 300 * time.Millisecond })
	tests := []struct {
		name, script string
		status       int
		body         string
		cut          bool
		wantLog      string
	}{
		{"hello", "hello.sh", 200, "hello ", false, ""},
		{"dies before its header", "die.sh", 502, "502 Bad Gateway\n", false, "exit status 3"},
		{"fails after its header", "fails.sh", 200, "partial", true, "exit status 4"},
		{"past the timeout", "sleep.sh", 504, "504 Gateway Timeout\n", false, "timed out"},
		{"lingers after its answer", "lingers.sh", 200, "done", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pidFile := filepath.Join(t.TempDir(), "pid")
			resp, body, err := respondScript(t, e, cgiEnv(root, tt.script, "QUERY_STRING="+pidFile), nil)
			if tt.script == "hello.sh" {
				body = strings.TrimSuffix(body, pidFile)
			}
			if resp.Status != tt.status || body != tt.body || errors.Is(err, bridge.ErrCutShort) != tt.cut {
				t.Errorf("answer = %d %q %v; want %d %q, cut %v", resp.Status, body, err, tt.status, tt.body, tt.cut)
			}
			waitScripts(t, e)
			if !strings.Contains(logs.String(), tt.wantLog) {
				t.Errorf("log lacks %q:\n%s", tt.wantLog, logs)
			}
			if tt.script == "sleep.sh" || tt.script == "lingers.sh" {
				if pid := readPID(t, pidFile); running(pid) {
					t.Errorf("script %d still runs once done with", pid)
				}
			}
		})
	}
}
