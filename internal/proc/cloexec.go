package proc

import (
	"fmt"
	"os"
	"strconv"
	"syscall"
)

// maxFallbackFDs bounds the descriptors CloseOnExecFrom tries one by one
// when /proc is missing and RLIMIT_NOFILE is unlimited or larger.
const maxFallbackFDs = 1 << 20

// CloseOnExecFrom marks every open descriptor numbered lowfd or more
// close-on-exec, so that no process this one execs inherits it. A program
// that starts other users' code calls it with 3 before it opens anything:
// a descriptor it was started with ("7< root-only-file", one a parent
// leaked) would otherwise reach every child, whatever its user. The
// descriptors are those of /proc/self/fd or, where it cannot be read, every number
// up to the RLIMIT_NOFILE soft limit. Descriptors passed on on purpose
// (exec.Cmd.ExtraFiles) are unaffected: the child's copies are new.
func CloseOnExecFrom(lowfd int) error {
	return closeOnExecFrom(lowfd, "/proc/self/fd")
}

func closeOnExecFrom(lowfd int, dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		// No /proc mounted, or one that hides it: try every number.
		var lim syscall.Rlimit
		if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return fmt.Errorf("marking descriptors close-on-exec: %w", err)
		}
		// Cur is a uint64 on Linux and an int64 on the BSDs, where
		// RLIM_INFINITY is -1: converted, it is the largest uint64.
		n := uint64(maxFallbackFDs)
		if cur := uint64(lim.Cur); cur < n {
			n = cur
		}
		for fd := lowfd; uint64(fd) < n; fd++ {
			if err := setCloseOnExec(fd); err != nil {
				return err
			}
		}
		return nil
	}
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd < lowfd {
			continue
		}
		if err := setCloseOnExec(fd); err != nil {
			return err
		}
	}
	return nil
}

// setCloseOnExec sets FD_CLOEXEC on fd; a descriptor that is not open
// (the directory listing /proc/self/fd, now closed) is no error.
func setCloseOnExec(fd int) error {
	flags, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_GETFD, 0)
	if errno == syscall.EBADF {
		return nil
	}
	if errno == 0 && flags&syscall.FD_CLOEXEC == 0 {
		_, _, errno = syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_SETFD, flags|syscall.FD_CLOEXEC)
	}
	if errno != 0 && errno != syscall.EBADF {
		return fmt.Errorf("marking fd %d close-on-exec: %w", fd, errno)
	}
	return nil
}
