// Package testenv holds the preconditions the module's tests share.
package testenv

import (
	"os"
	"os/user"
	"testing"
)

// Nobody returns the user nobody and the group nogroup, for tests that give
// a file to another user; it skips the test, saying why, when the process
// is not root or either is missing.
func Nobody(t testing.TB) (*user.User, *user.Group) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("giving a socket file to another user needs root")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody to give the socket to:", err)
	}
	nogroup, err := user.LookupGroup("nogroup")
	if err != nil {
		t.Skip("no group nogroup to give the socket to:", err)
	}
	return nobody, nogroup
}
