package cgi

import (
	"os"
	"sync"
	"syscall"
	"unsafe"

	"github.com/cgirun/cgirun/internal/proc"
)

// waiter tells how a script ended without reaping it (waitid's WNOWAIT):
// its pid, which is also its process group's id, cannot be another
// process's until reap reaps it. The script is reaped only once its group
// was sent its last signal, so that kill(-pgid) never reaches a group
// that a new process with a reused pid leads. A signal to the group, not
// to one process, is what is sent; pidfd_send_signal cannot send one, and
// needs not: the zombie holds the group's id.
type waiter struct {
	pid   int
	pidfd int // -1: no pidfd
	once  sync.Once
}

// Constants of waitid(2) that package syscall lacks.
const (
	pPID   = 1 // P_PID
	pPIDFD = 3 // P_PIDFD, Linux 5.4
	// si_code of a SIGCHLD siginfo.
	cldExited = 1
	cldKilled = 2
	cldDumped = 3
)

// pidfdWorks reports whether clone's CLONE_PIDFD and waitid's P_PIDFD
// work: as in package os, a pidfd of this process is opened and waited
// for, which must fail with ECHILD.
var pidfdWorks = sync.OnceValue(func() bool {
	fd, _, errno := syscall.Syscall(sysPidfdOpen, uintptr(os.Getpid()), 0, 0)
	if errno != 0 {
		return false
	}
	defer syscall.Close(int(fd))
	_, _, err := waitid(pPIDFD, int(fd), syscall.WEXITED|syscall.WNOHANG)
	return err == syscall.ECHILD
})

// sysPidfdOpen is pidfd_open(2)'s number, the same on every Linux
// architecture.
const sysPidfdOpen = 434

// wait waits for the script to exit, holding the thread, and returns how
// it ended (nil for status 0), leaving it a zombie.
func (w *waiter) wait() error {
	ws, _, err := waitid(pPID, w.pid, syscall.WEXITED|syscall.WNOWAIT)
	if err != nil {
		return os.NewSyscallError("waitid", err)
	}
	return waitError(ws)
}

// peek reports, without waiting, whether the script has exited, and how it
// ended.
func (w *waiter) peek() (bool, error) {
	id, idtype := w.pid, pPID
	if w.pidfd >= 0 {
		id, idtype = w.pidfd, pPIDFD
	}
	ws, exited, err := waitid(idtype, id, syscall.WEXITED|syscall.WNOHANG|syscall.WNOWAIT)
	return exited && err == nil, waitError(ws)
}

// reap reaps the script, which has exited; calls after the first do
// nothing.
func (w *waiter) reap() {
	w.once.Do(func() {
		waitid(pPID, w.pid, syscall.WEXITED|syscall.WNOHANG)
		proc.Waited(w.pid)
	})
}

// waitid calls waitid(2) on idtype and id with options, retrying on
// EINTR, and returns the status of the child it reports, and whether it
// reported one (with WNOHANG, none may have exited yet).
func waitid(idtype, id, options int) (syscall.WaitStatus, bool, error) {
	// siginfo_t is 128 bytes. For SIGCHLD, si_code is at offset 8;
	// si_pid and si_status follow si_code, after 4 bytes of padding on
	// 64-bit platforms, at offsets 16 and 24 (12 and 20 on 32-bit).
	var info [128 / 8]uint64
	for {
		_, _, errno := syscall.Syscall6(syscall.SYS_WAITID, uintptr(idtype), uintptr(id), uintptr(unsafe.Pointer(&info)), uintptr(options), 0, 0)
		switch errno {
		case 0:
		case syscall.EINTR:
			continue
		case syscall.EAGAIN: // a non-blocking pidfd, Linux 5.10: not yet
			return 0, false, nil
		default:
			return 0, false, errno
		}
		b := (*[128]byte)(unsafe.Pointer(&info))
		off := 12
		if unsafe.Sizeof(uintptr(0)) == 8 {
			off = 16
		}
		code := *(*int32)(unsafe.Pointer(&b[8]))
		pid := *(*int32)(unsafe.Pointer(&b[off]))
		status := *(*int32)(unsafe.Pointer(&b[off+8]))
		if pid == 0 {
			return 0, false, nil // WNOHANG: not yet
		}
		switch code {
		case cldExited:
			return syscall.WaitStatus(status&0xff) << 8, true, nil
		case cldKilled:
			return syscall.WaitStatus(status & 0x7f), true, nil
		case cldDumped:
			return syscall.WaitStatus(status&0x7f) | 0x80, true, nil
		}
		return syscall.WaitStatus(status), true, nil
	}
}
