package cgi

import (
	"os"
	"syscall"
	"testing"
	"time"
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
