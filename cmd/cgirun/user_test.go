package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestUserCannotReadRoot: --user with a root directory the user cannot
// read and search is refused at start, not at the first request (issue
// 14).
func TestUserCannotReadRoot(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("--user needs root")
	}
	root := t.TempDir() // 0700, root's
	args := []string{"http", "--root", root, "--user", "nobody", "--addr", "127.0.0.1:0"}
	code, _, stderr := runCmd(t, nil, args...)
	want := `cgirun http: --user (CGIRUN_USER) "nobody" cannot read and search --root ` + root + ": "
	if code != exitUsage || !strings.HasPrefix(stderr, want) || strings.Count(stderr, "\n") != 1 {
		t.Errorf("run(%q) = %d, stderr %q; want %d and a line starting %q", args, code, stderr, exitUsage, want)
	}
}

func TestCheckAccess(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("the table chowns directories")
	}
	top := t.TempDir()
	mkdir := func(name string, mode os.FileMode, gid int) string {
		t.Helper()
		d := filepath.Join(top, name)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(d, 0, gid); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, mode); err != nil {
			t.Fatal(err)
		}
		return d
	}
	// The directories above top are t.TempDir's, 0700.
	for d := top; d != os.TempDir(); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	open := mkdir("open", 0o755, 0)
	private := mkdir("private", 0o700, 0)
	group := mkdir("group", 0o750, 4242)
	searchOnly := mkdir("search-only", 0o711, 0)
	mkdir("private2", 0o700, 0)
	below := mkdir("private2/below", 0o755, 0)
	nobody := &syscall.Credential{Uid: 65534, Gid: 65534}
	tests := []struct {
		name string
		dir  string
		cred *syscall.Credential
		want string // in the error; "" means none
	}{
		{"no --user", private, nil, ""},
		{"root", private, &syscall.Credential{Uid: 0, Gid: 0}, ""},
		{"open", open, nobody, ""},
		{"private", private, nobody, private + " is mode -rwx------"},
		{"by the user's group", group, &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{4242}}, ""},
		{"by the user's primary group", group, &syscall.Credential{Uid: 65534, Gid: 4242}, ""},
		{"not in the group", group, nobody, group + " is mode -rwxr-x---"},
		{"not readable", searchOnly, nobody, searchOnly + " is mode -rwx--x--x"},
		{"a private directory above", below, nobody, filepath.Dir(below) + " is mode -rwx------"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkAccess(tt.dir, tt.cred)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("checkAccess(%s, %+v) = %v, want nil", tt.dir, tt.cred, err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("checkAccess(%s, %+v) = %v, want an error holding %q", tt.dir, tt.cred, err, tt.want)
			}
		})
	}
}
