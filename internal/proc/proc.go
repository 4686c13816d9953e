// Package proc holds what the module's packages that start processes (the
// CGI executor, the upgrade hand-over) say and do about them alike.
package proc

import (
	"fmt"
	"syscall"
)

// ExitReason says how a process ended, from the error of its wait: "exit
// status 0" for nil, else the error's text ("exit status 3", "signal:
// killed"), as os.ProcessState and exec.ExitError say it.
func ExitReason(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// DupCloseOnExec returns a close-on-exec duplicate of c's descriptor, made
// under c's own lock (RawConn.Control) and not through File.Fd, which
// would put c in blocking mode. The duplicate shares its file status flags
// (O_NONBLOCK) with c's.
func DupCloseOnExec(c syscall.Conn) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return -1, err
	}
	var dup uintptr
	var errno syscall.Errno
	if err := rc.Control(func(fd uintptr) {
		dup, _, errno = syscall.Syscall(syscall.SYS_FCNTL, fd, syscall.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return -1, err
	}
	if errno != 0 {
		return -1, fmt.Errorf("duplicating a descriptor: %w", errno)
	}
	return int(dup), nil
}
