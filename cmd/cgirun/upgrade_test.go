package main

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cgirun/cgirun/upgrade"
)

// dupFD returns a duplicate of the descriptor of c (a listener or a
// file) that a child would inherit: without close-on-exec.
func dupFD(t *testing.T, c syscall.Conn) int {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	dup, derr := -1, error(nil)
	rc.Control(func(fd uintptr) { dup, derr = syscall.Dup(int(fd)) })
	if derr != nil {
		t.Fatal(derr)
	}
	return dup
}

// TestFCGIServesInheritedSockets starts cgirun with no command and no -s,
// as an upgrade starts the new runner: it serves the socket that
// CGIRUN_INHERIT_FDS names, and writes its ready byte to CGIRUN_READY_FD
// once it does.
func TestFCGIServesInheritedSockets(t *testing.T) {
	root := t.TempDir()
	hello := writeScript(t, filepath.Join(root, "hello.sh"), envScript)
	sock := filepath.Join(socketDir(t), "up.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	t.Setenv(upgrade.EnvInheritFDs, strconv.Itoa(dupFD(t, l.(*net.UnixListener))))
	t.Setenv(upgrade.EnvReadyFD, strconv.Itoa(dupFD(t, w)))
	w.Close() // the runner holds the only write end now
	t.Setenv("CGIRUN_ROOT", root)

	run := start(t, nil)
	run.waitLog(`serving FastCGI" on="sockets inherited from pid ` + strconv.Itoa(os.Getppid()))
	r.SetReadDeadline(time.Now().Add(waitLimit))
	if ready, err := io.ReadAll(r); string(ready) != "1" || err != nil {
		t.Errorf("CGIRUN_READY_FD got %q, %v; want the ready byte, then its end", ready, err)
	}
	for _, name := range []string{upgrade.EnvInheritFDs, upgrade.EnvReadyFD} {
		if v, ok := os.LookupEnv(name); ok {
			t.Errorf("%s=%s still set: CGI scripts would see it", name, v)
		}
	}
	rec := fcgiDo(t, "unix", sock, map[string]string{"REQUEST_METHOD": "GET", "SCRIPT_FILENAME": hello}, "")
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "REQUEST_METHOD=GET") {
		t.Errorf("FastCGI request on the inherited socket = %d %q, want 200 and the script's output", rec.Code, rec.Body)
	}
	if code := run.stop(); code != exitOK {
		t.Errorf("run() after SIGTERM = %d, want 0; stderr:\n%s", code, run.logs)
	}
}
