package cgi

import (
	"os"
	"sync"
	"syscall"
	"unsafe"

	"github.com/cgirun/cgirun/internal/proc"
)

// waiter waits for a script to exit without holding a thread: through
// its pidfd (Linux 5.3), which becomes readable when the process exits,
// served by the runtime's poller like a pipe. Where pidfds are missing, a
// goroutine blocks in waitid, one thread per script.
//
// The wait leaves the script a zombie (waitid's WNOWAIT): its pid, which
// is also its process group's id, cannot be another process's until reap
// reaps it. supervise reaps it only after its last signal to the group,
// so that kill(-pgid) never reaches a group that a new process with a
// reused pid leads. A signal to the group, not to one process, is what
// supervise sends; pidfd_send_signal cannot send one, and needs not: the
// zombie holds the group's id.
type waiter struct {
	pid   int
	pidfd *os.File // nil: no pidfd
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

// newWaiter returns the waiter of the child pid, whose pidfd is pidfd, or
// -1 for none.
func newWaiter(pid, pidfd int) *waiter {
	w := &waiter{pid: pid}
	if pidfd >= 0 {
		if err := syscall.SetNonblock(pidfd, true); err != nil {
			syscall.Close(pidfd)
		} else {
			w.pidfd = os.NewFile(uintptr(pidfd), "pidfd")
		}
	}
	return w
}

// wait waits for the script to exit and returns how it ended (nil for
// status 0), leaving it a zombie.
func (w *waiter) wait() error {
	if w.pidfd != nil {
		if rc, err := w.pidfd.SyscallConn(); err == nil {
			var ws syscall.WaitStatus
			var werr error
			if err := rc.Read(func(fd uintptr) bool {
				var exited bool
				ws, exited, werr = waitid(pPIDFD, int(fd), syscall.WEXITED|syscall.WNOHANG|syscall.WNOWAIT)
				return exited || werr != nil
			}); err == nil {
				if werr != nil {
					return os.NewSyscallError("waitid", werr)
				}
				return waitError(ws)
			}
			// The poller does not serve this pidfd: block below.
		}
	}
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
	if w.pidfd != nil {
		if rc, err := w.pidfd.SyscallConn(); err == nil {
			var ws syscall.WaitStatus
			var exited bool
			var werr error
			rc.Control(func(fd uintptr) {
				ws, exited, werr = waitid(pPIDFD, int(fd), syscall.WEXITED|syscall.WNOHANG|syscall.WNOWAIT)
			})
			return exited && werr == nil, waitError(ws)
		}
	}
	ws, exited, err := waitid(idtype, id, syscall.WEXITED|syscall.WNOHANG|syscall.WNOWAIT)
	return exited && err == nil, waitError(ws)
}

// reap reaps the script, which wait saw exit, and frees its pidfd; calls
// after the first do nothing.
func (w *waiter) reap() {
	w.once.Do(func() {
		waitid(pPID, w.pid, syscall.WEXITED|syscall.WNOHANG)
		proc.Waited(w.pid)
		if w.pidfd != nil {
			w.pidfd.Close()
		}
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
