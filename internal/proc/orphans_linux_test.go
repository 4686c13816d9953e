package proc

import (
	"os/exec"
	"syscall"
	"testing"
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
