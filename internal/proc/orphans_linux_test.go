package proc

import (
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestEndOrphans: EndOrphans kills and reaps a child that no starter
// registered, and leaves alone one that Start registered, until Waited.
func TestEndOrphans(t *testing.T) {
	// The children of every thread: the test's are not orphans, which
	// would be the main thread's.
	listChildren = allChildren
	t.Cleanup(func() { listChildren = orphanCandidates })
	var registered *exec.Cmd
	if _, err := Start(func() (int, error) {
		registered = exec.Command("sleep", "30")
		if err := registered.Start(); err != nil {
			return 0, err
		}
		return registered.Process.Pid, nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		registered.Process.Kill()
		registered.Wait()
		Waited(registered.Process.Pid)
	})
	orphan := exec.Command("sleep", "30")
	if err := orphan.Start(); err != nil {
		t.Fatal(err)
	}
	pid := orphan.Process.Pid

	EndOrphans()
	if state, _, ok := stat(pid); ok {
		t.Errorf("the unregistered child %d is still there, in state %c", pid, state)
	}
	if state, _, ok := stat(registered.Process.Pid); !ok || state == 'Z' {
		t.Errorf("the registered child %d was ended (%c, %v)", registered.Process.Pid, state, ok)
	}
	// os/exec finds its child already reaped.
	if err := orphan.Wait(); err == nil {
		t.Errorf("Wait for the ended orphan = nil, want an error")
	}
	if err := syscall.Kill(registered.Process.Pid, 0); err != nil {
		t.Errorf("the registered child cannot be signalled: %v", err)
	}
}

// TestExiting: a process that runs is not exiting; one that was killed
// and is not yet waited for (a zombie) is, and so is one that is gone.
func TestExiting(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	if Exiting(pid) {
		t.Errorf("Exiting(%d), a running sleep = true", pid)
	}
	cmd.Process.Kill()
	// Nothing tells the test when the kill is through: poll /proc,
	// bounded.
	deadline := time.Now().Add(20 * time.Second)
	for state, _, _ := stat(pid); state != 'Z'; state, _, _ = stat(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("sleep %d killed, still in state %c", pid, state)
		}
		time.Sleep(time.Millisecond)
	}
	if !Exiting(pid) {
		t.Errorf("Exiting(%d), a zombie = false", pid)
	}
	cmd.Wait()
	if !Exiting(pid) {
		t.Errorf("Exiting(%d), a process gone = false", pid)
	}
}

// TestEndOrphansSubreaper: in a subreaper, a process whose parent exits
// becomes this process's child, and EndOrphans, reading only the main
// thread's children, finds it, kills it and reaps it.
func TestEndOrphansSubreaper(t *testing.T) {
	if err := BecomeSubreaper(); err != nil {
		t.Skip(err)
	}
	var sh *exec.Cmd
	var out []byte
	if _, err := Start(func() (int, error) {
		sh = exec.Command("sh", "-c", "sleep 30 </dev/null >/dev/null 2>&1 & echo $!")
		pipe, err := sh.StdoutPipe()
		if err != nil {
			return 0, err
		}
		if err := sh.Start(); err != nil {
			return 0, err
		}
		out, err = io.ReadAll(pipe)
		return sh.Process.Pid, err
	}); err != nil {
		t.Fatal(err)
	}
	sh.Wait()
	Waited(sh.Process.Pid)
	orphan, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("sh wrote %q, not a pid", out)
	}
	if _, ppid, ok := stat(orphan); !ok || ppid != os.Getpid() {
		syscall.Kill(orphan, syscall.SIGKILL)
		t.Fatalf("the orphan %d has parent %d (%v), not this process", orphan, ppid, ok)
	}
	EndOrphans()
	if state, _, ok := stat(orphan); ok {
		syscall.Kill(orphan, syscall.SIGKILL)
		t.Errorf("the orphan %d is still there, in state %c", orphan, state)
	}
}
