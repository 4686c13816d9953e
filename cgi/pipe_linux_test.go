package cgi

import "syscall"

// cloexecPipe makes a pipe whose two ends are close-on-exec.
func cloexecPipe(p []int) error { return syscall.Pipe2(p, syscall.O_CLOEXEC) }
