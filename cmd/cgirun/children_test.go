package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// TestChildrenDefault: -c is bounded unless given: 16 per CPU the runner
// may use (GOMAXPROCS), as --help says; -c 0 and CGIRUN_CHILDREN=0 still
// lift the bound, and either sets another one.
func TestChildrenDefault(t *testing.T) {
	want := strconv.Itoa(16 * runtime.GOMAXPROCS(0))
	root := t.TempDir()
	tests := []struct {
		name string
		env  string // CGIRUN_CHILDREN; "-": unset
		args []string
		want string
	}{
		{"default", "-", nil, want},
		{"-c 0: no bound", "-", []string{"-c", "0"}, "0"},
		{"CGIRUN_CHILDREN=0: no bound", "0", nil, "0"},
		{"CGIRUN_CHILDREN=5", "5", nil, "5"},
		{"-c 7 over CGIRUN_CHILDREN=5", "5", []string{"-c", "7"}, "7"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.env == "-" {
				if v, ok := os.LookupEnv("CGIRUN_CHILDREN"); ok {
					os.Unsetenv("CGIRUN_CHILDREN")
					t.Cleanup(func() { os.Setenv("CGIRUN_CHILDREN", v) })
				}
			} else {
				t.Setenv("CGIRUN_CHILDREN", tt.env)
			}
			sock := filepath.Join(socketDir(t), "c"+strconv.Itoa(i)+".sock")
			r := start(t, nil, append([]string{"fcgi", "--root", root, "-s", "unix:" + sock}, tt.args...)...)
			r.waitLog(`serving FastCGI.* children=` + tt.want + `\b`)
			if code := r.stop(); code != exitOK {
				t.Errorf("run after SIGTERM = %d; stderr:\n%s", code, r.logs)
			}
		})
	}
	t.Run("--help", func(t *testing.T) {
		var out bytes.Buffer
		run(context.Background(), []string{"fcgi", "--help"}, os.Getenv, strings.NewReader(""), &out, io.Discard)
		if !strings.Contains(out.String(), "0: no bound (default "+want+")") {
			t.Errorf("fcgi --help does not give -c's default %s:\n%s", want, out.String())
		}
	})
}
