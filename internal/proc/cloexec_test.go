package proc

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// inheritable opens a file without O_CLOEXEC, as a descriptor a runner
// could be started with (7< file), and checks that it is inheritable.
func inheritable(t *testing.T) int {
	t.Helper()
	name := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(name, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	fd, err := syscall.Open(name, syscall.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if closeOnExec(t, fd) {
		t.Fatalf("fd %d opened without O_CLOEXEC is close-on-exec", fd)
	}
	return fd
}

func closeOnExec(t *testing.T, fd int) bool {
	t.Helper()
	flags, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_GETFD, 0)
	if errno != 0 {
		t.Fatalf("F_GETFD on fd %d: %v", fd, errno)
	}
	return flags&syscall.FD_CLOEXEC != 0
}

func TestCloseOnExecFromMarksInheritedDescriptors(t *testing.T) {
	tests := []struct {
		name string
		dir  string
	}{
		{"from /proc/self/fd", "/proc/self/fd"},
		{"no /proc: every descriptor up to RLIMIT_NOFILE", "/no/such/proc/self/fd"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := os.Stat(tt.dir); tt.dir == "/proc/self/fd" && err != nil {
				t.Skipf("no /proc/self/fd: %v", err)
			}
			fd := inheritable(t)
			if err := closeOnExecFrom(3, tt.dir); err != nil {
				t.Fatalf("closeOnExecFrom(3, %s) = %v", tt.dir, err)
			}
			if !closeOnExec(t, fd) {
				t.Errorf("after closeOnExecFrom(3, %s), fd %d is not close-on-exec", tt.dir, fd)
			}
		})
	}
}

func TestCloseOnExecFromLeavesLowerDescriptors(t *testing.T) {
	fd := inheritable(t)
	if err := CloseOnExecFrom(fd + 1); err != nil {
		t.Fatalf("CloseOnExecFrom(%d) = %v", fd+1, err)
	}
	if closeOnExec(t, fd) {
		t.Errorf("CloseOnExecFrom(%d) marked fd %d close-on-exec", fd+1, fd)
	}
	if closeOnExec(t, 0) || closeOnExec(t, 1) || closeOnExec(t, 2) {
		t.Errorf("CloseOnExecFrom(%d) marked stdin, stdout or stderr close-on-exec", fd+1)
	}
}
