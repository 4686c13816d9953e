package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cgirun/cgirun"
	"github.com/cgirun/cgirun/fastcgi"
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
	t.Setenv(cgirun.EnvInheritFDs, strconv.Itoa(dupFD(t, l.(*net.UnixListener))))
	t.Setenv(cgirun.EnvReadyFD, strconv.Itoa(dupFD(t, w)))
	w.Close() // the runner holds the only write end now
	t.Setenv("CGIRUN_ROOT", root)

	run := start(t, nil)
	run.waitLog(`serving FastCGI" on="sockets inherited from pid ` + strconv.Itoa(os.Getppid()))
	r.SetReadDeadline(time.Now().Add(waitLimit))
	if ready, err := io.ReadAll(r); string(ready) != "1" || err != nil {
		t.Errorf("CGIRUN_READY_FD got %q, %v; want the ready byte, then its end", ready, err)
	}
	for _, name := range []string{cgirun.EnvInheritFDs, cgirun.EnvReadyFD} {
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

// TestServeUpgradable: on SIGHUP the server upgrades; once the new
// process serves it shuts down and returns nil, and when the upgrade
// fails it logs why and serves on.
func TestServeUpgradable(t *testing.T) {
	tests := []struct {
		name    string
		upgrade error // what the upgrade returns
		wantLog string
	}{
		{name: "new process serves", wantLog: `msg="cgirun: upgraded: the new process serves; shutting down" pid=4242`},
		{name: "new process fails", upgrade: errors.New("cgirun: upgrade: new process exited"), wantLog: `upgrade failed; still serving`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs := newLogBuffer()
			log := slog.New(slog.NewTextHandler(logs, nil))
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			stopped := make(chan struct{})
			var stopOnce sync.Once
			shutdown := func(context.Context) error {
				stopOnce.Do(func() { close(stopped) })
				return nil
			}
			serve := func(int) error {
				<-stopped
				return fastcgi.ErrServerClosed
			}
			hup := make(chan os.Signal, 1)
			readies, upgrades := 0, make(chan struct{}, 1)
			up := upgrading{
				ready: func() error { readies++; return nil },
				hup:   hup,
				upgrade: func(context.Context) (int, error) {
					upgrades <- struct{}{}
					if tt.upgrade != nil {
						return 0, tt.upgrade
					}
					return 4242, nil
				},
			}
			done := make(chan error, 1)
			go func() {
				done <- serveUpgradable(ctx, log, time.Second, 2, serve, shutdown, func() error { return nil }, up)
			}()
			hup <- syscall.SIGHUP
			<-upgrades
			if tt.upgrade != nil {
				// Still serving: only the end of ctx stops it.
				select {
				case <-stopped:
					t.Fatalf("shut down after a failed upgrade; log:\n%s", logs)
				case err := <-done:
					t.Fatalf("returned %v after a failed upgrade; log:\n%s", err, logs)
				default:
				}
				cancel()
			}
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("serveUpgradable = %v, want nil", err)
				}
			case <-time.After(waitLimit):
				t.Fatalf("serveUpgradable still running %v later; log:\n%s", waitLimit, logs)
			}
			if readies != 1 {
				t.Errorf("ready called %d times, want once", readies)
			}
			if !strings.Contains(logs.String(), tt.wantLog) {
				t.Errorf("log lacks %q:\n%s", tt.wantLog, logs)
			}
		})
	}
}
