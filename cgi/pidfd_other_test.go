//go:build !linux

package cgi

import "testing"

// waitExit needs Linux's pidfds.
func waitExit(t *testing.T, pid int) {
	t.Helper()
	t.Skip("waiting for a process that is not a child needs Linux's pidfds")
}

// pidfdWorks: there are no pidfds here.
func pidfdWorks() bool { return false }
