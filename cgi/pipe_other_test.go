//go:build !linux

package cgi

import "syscall"

// cloexecPipe makes a pipe whose two ends are close-on-exec, under
// syscall.ForkLock, as there is no pipe2 here.
func cloexecPipe(p []int) error {
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	if err := syscall.Pipe(p); err != nil {
		return err
	}
	syscall.CloseOnExec(p[0])
	syscall.CloseOnExec(p[1])
	return nil
}
