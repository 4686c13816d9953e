package proc

import (
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// TestEndOrphans: EndOrphans kills and reaps a child that no starter
// registered, and leaves alone one that Start registered, until Waited.
func TestEndOrphans(t *testing.T) {
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
