package proc

import (
	"os/exec"
	"testing"
)

func TestExitReason(t *testing.T) {
	if got := ExitReason(nil); got != "exit status 0" {
		t.Errorf("ExitReason(nil) = %q, want exit status 0", got)
	}
	err := exec.Command("sh", "-c", "exit 3").Run()
	if got := ExitReason(err); got != "exit status 3" {
		t.Errorf("ExitReason(sh exit 3) = %q, want exit status 3", got)
	}
	err = exec.Command("sh", "-c", "kill -KILL $$").Run()
	if got := ExitReason(err); got != "signal: killed" {
		t.Errorf("ExitReason(killed) = %q, want signal: killed", got)
	}
}
