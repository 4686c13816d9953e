package cgi

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cgirun/cgirun/bridge"
	"github.com/cgirun/cgirun/internal/testenv"
)

// swapRig is a root whose directory d is swapped, over and over, with a
// symlink to a directory outside the root. Both hold a program x: the one
// inside answers "inside"; the one outside is "#!/usr/bin/touch MARKER",
// which creates the marker file when it runs, with no shell involved.
type swapRig struct {
	root, outside, marker string
	stop                  func() error // ends the swapping
}

func startSwap(t *testing.T) *swapRig {
	t.Helper()
	if _, err := os.Stat("/usr/bin/touch"); err != nil {
		t.Skip("no /usr/bin/touch for the outside program:", err)
	}
	base := t.TempDir()
	r := &swapRig{
		root:    filepath.Join(base, "root"),
		outside: filepath.Join(base, "outside"),
		marker:  filepath.Join(base, "outside-ran"),
	}
	for _, d := range []string{filepath.Join(r.root, "d"), r.outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	inside := "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\ninside'\n"
	if err := os.WriteFile(filepath.Join(r.root, "d", "x"), []byte(inside), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(r.outside, "x"), []byte("#!/usr/bin/touch "+r.marker+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(r.outside, filepath.Join(r.root, "swap")); err != nil {
		t.Fatal(err)
	}
	r.stop = testenv.Swap(t, filepath.Join(r.root, "d"), filepath.Join(r.root, "swap"))
	return r
}

// Bounds of the swap attack: this many requests, or this long, whichever
// comes first.
const (
	swapRequests = 3000
	swapFor      = 5 * time.Second
)

// TestExecutorSwapAttack plays the check-then-exec race: while a directory
// of the root is swapped with a symlink to outside it (renameat2
// RENAME_EXCHANGE, in a loop), thousands of requests name the program in
// it. No request may run the program outside: each runs the file it
// checked, or is refused.
func TestExecutorSwapAttack(t *testing.T) {
	r := startSwap(t)
	e, logs := newExecutor(t, r.root, nil)
	env := cgiEnv(r.root, "d/x")
	statuses := map[int]int{}
	deadline := time.Now().Add(swapFor)
	for i := 0; i < swapRequests && time.Now().Before(deadline); i++ {
		out := new(flushRecorder)
		e.Respond(t.Context(), &bridge.Request{Env: env}, out)
		resp, err := bridge.ReadResponse(bufioReader(out.String()), 0)
		if err != nil {
			t.Fatalf("the executor's stream %q does not parse: %v", out, err)
		}
		statuses[resp.Status]++
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	waitScripts(t, e)
	t.Logf("answers while the directory was swapped: %v", statuses)
	if _, err := os.Stat(r.marker); err == nil {
		t.Fatalf("the program outside the root ran (answers %v)", statuses)
	}
	if statuses[200] == 0 || statuses[403] == 0 {
		t.Errorf("answers %v: want both 200 (inside) and 403 (outside), or the swap never raced\n%s", statuses, logs)
	}
}

// TestExecutorScriptArgv: a script sees the argv and $0 the kernel gives
// it when the runner execs its real path: a "#!" script gets
// [interpreter, its optional argument, the script's real path], also
// through a symlink inside the root; a binary gets [real path]; the
// working directory is the script's.
func TestExecutorScriptArgv(t *testing.T) {
	root := t.TempDir()
	root, err := filepath.EvalSymlinks(root)
	if err != nil {
		t.Fatal(err)
	}
	header := "Content-Type: text/plain\\n\\n"
	files := map[string]string{
		"argv.sh":     "#!/bin/sh\nprintf '" + header + "'; printf '%s|' \"$0\" \"$#\" \"$@\"; pwd\n",
		"opt.sh":      "#!  /bin/sh   -u  \nprintf '" + header + "'; printf '%s|' \"$0\" \"$#\"; case $- in *u*) echo nounset;; esac\n",
		"ps.sh":       "#!/bin/sh\nprintf '" + header + "'; tr '\\0' '|' < /proc/$$/cmdline\n",
		"env-sh.sh":   "#!/usr/bin/env sh\nprintf '" + header + "'; printf '%s|' \"$0\" \"$#\"\n",
		"sub/deep.sh": "#!/bin/sh\nprintf '" + header + "%s|' \"$0\"; pwd\n",
	}
	if _, err := exec.LookPath("perl"); err == nil {
		files["argv.pl"] = "#!/usr/bin/perl -w\nprint \"Content-Type: text/plain\\n\\n$0|\" . scalar(@ARGV);\n"
	}
	if _, err := exec.LookPath("python3"); err == nil {
		files["argv.py"] = "#!/usr/bin/env python3\nimport sys\nprint('Content-Type: text/plain\\n\\n' + '|'.join(sys.argv), end='')\n"
	}
	for name, text := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("sub/deep.sh", filepath.Join(root, "link.sh")); err != nil {
		t.Fatal(err)
	}
	e, logs := newExecutor(t, root, nil)
	tests := []struct {
		script, want string
	}{
		{"argv.sh", root + "/argv.sh|0|" + root + "\n"},
		{"opt.sh", root + "/opt.sh|0|nounset\n"},
		{"ps.sh", "/bin/sh|" + root + "/ps.sh|"},
		{"env-sh.sh", root + "/env-sh.sh|0|"},
		{"link.sh", root + "/sub/deep.sh|" + root + "/sub\n"},
		{"argv.pl", root + "/argv.pl|0"},
		{"argv.py", root + "/argv.py"},
	}
	for _, tt := range tests {
		t.Run(tt.script, func(t *testing.T) {
			if _, ok := files[tt.script]; !ok && tt.script != "link.sh" {
				t.Skip("no interpreter for", tt.script)
			}
			resp, body, err := respondScript(t, e, cgiEnv(root, tt.script), nil)
			if err != nil || resp.Status != 200 || body != tt.want {
				t.Errorf("%s answered %d %q, %v; want 200 %q\n%s", tt.script, resp.Status, body, err, tt.want, logs)
			}
		})
	}
	t.Run("binary", func(t *testing.T) {
		self, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		copyFile(t, self, filepath.Join(root, "child.bin"), 0o755)
		resp, body, err := respondScript(t, e, cgiEnv(root, "child.bin", childMarker+"=1", "PATH_INFO=/"), nil)
		if err != nil || resp.Status != 200 || body != "Hello, World!\n" {
			t.Errorf("child.bin answered %d %q, %v\n%s", resp.Status, body, err, logs)
		}
	})
}

func copyFile(t *testing.T, from, to string, mode fs.FileMode) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(to, mode); err != nil {
		t.Fatal(err)
	}
}

// TestShebang: the "#!" line is read as the kernel reads it.
func TestShebang(t *testing.T) {
	long := "#!/bin/sh " + strings.Repeat("a", 300)
	tests := []struct {
		name, buf   string
		interp, arg string
		ok, noexec  bool
	}{
		{"no #!", "\x7fELF...", "", "", false, false},
		{"plain", "#!/bin/sh\necho", "/bin/sh", "", true, false},
		{"blanks", "#! \t/bin/sh \t -e -u \t\nx", "/bin/sh", "-e -u", true, false},
		{"tab after the name", "#!/bin/sh\t-x\n", "/bin/sh", "-x", true, false},
		{"no newline", "#!/bin/sh", "/bin/sh", "", true, false},
		{"carriage return kept", "#!/bin/sh\r\n", "/bin/sh\r", "", true, false},
		{"argument cut at the buffer", long[:binprmBufSize], "/bin/sh", long[len("#!/bin/sh "):binprmBufSize], true, false},
		{"name past the buffer", "#!/" + strings.Repeat("b", binprmBufSize), "", "", true, true},
		{"no interpreter", "#!  \n", "", "", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			buf := tt.buf
			if len(buf) > binprmBufSize {
				buf = buf[:binprmBufSize]
			}
			interp, arg, ok, err := shebang([]byte(buf))
			if interp != tt.interp || arg != tt.arg || ok != tt.ok || (err != nil) != tt.noexec || err != nil && !errors.Is(err, syscall.ENOEXEC) {
				t.Errorf("shebang(%q) = %q, %q, %v, %v; want %q, %q, %v, ENOEXEC %v", buf, interp, arg, ok, err, tt.interp, tt.arg, tt.ok, tt.noexec)
			}
		})
	}
}
