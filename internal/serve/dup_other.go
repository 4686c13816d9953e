//go:build !linux

package serve

import "syscall"

// dupOnto makes newfd a copy of oldfd, closing what newfd was; the copy is
// not close-on-exec.
func dupOnto(oldfd, newfd int) error { return syscall.Dup2(oldfd, newfd) }
