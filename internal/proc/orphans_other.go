//go:build !linux

package proc

import "errors"

// BecomeSubreaper makes this process a child subreaper; only Linux has
// them, elsewhere it returns an error and processes that descendants
// leave behind go to init.
func BecomeSubreaper() error {
	return errors.New("a child subreaper needs Linux's PR_SET_CHILD_SUBREAPER")
}

// EndOrphans does nothing where BecomeSubreaper cannot work.
func EndOrphans() {}

// Exiting reports whether process pid is exiting; where that cannot be
// told, it says no.
func Exiting(pid int) bool { return false }
