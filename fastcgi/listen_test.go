package fastcgi

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// childListenEnv, set in the environment, makes the test binary a FastCGI
// server on an inherited socket: "fd0" (mod_fcgid, spawn-fcgi) or
// "systemd" (socket activation). It serves until SIGTERM, then shuts down
// gracefully.
const childListenEnv = "FASTCGI_TEST_LISTENER"

func serveInherited(how string) {
	var l net.Listener
	var err error
	switch how {
	case "fd0":
		l, err = InheritedListener(0)
	case "systemd":
		var ls []net.Listener
		if ls, err = SystemdListeners(); err == nil && len(ls) != 1 {
			err = fmt.Errorf("%d systemd listeners, want 1", len(ls))
		}
		if err == nil {
			l = ls[0]
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(1)
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// What a CGI child of this process would inherit.
		fmt.Fprintf(w, "LISTEN_FDS=%q LISTEN_PID=%q fd3-cloexec=%v", os.Getenv("LISTEN_FDS"), os.Getenv("LISTEN_PID"), closeOnExec(3))
	})
	s := &Server{Handler: h, Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		s.Shutdown(context.Background())
	}()
	if err := s.Serve(l); err != ErrServerClosed {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// closeOnExec reports whether fd is open and marked close-on-exec; an fd
// that is not open counts as closed-on-exec.
func closeOnExec(fd int) bool {
	flags, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_GETFD, 0)
	return errno != 0 || flags&syscall.FD_CLOEXEC != 0
}

func TestInheritedListeners(t *testing.T) {
	tests := []struct {
		name string
		how  string
		want string
	}{
		{"fd 0, as mod_fcgid passes it", "fd0", `LISTEN_FDS="" LISTEN_PID="" fd3-cloexec=true`},
		{"systemd socket activation", "systemd", `LISTEN_FDS="" LISTEN_PID="" fd3-cloexec=true`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := filepath.Join(t.TempDir(), "s")
			l, err := net.Listen("unix", addr)
			if err != nil {
				t.Fatal(err)
			}
			f, err := l.(*net.UnixListener).File()
			if err != nil {
				t.Fatal(err)
			}
			var cmd *exec.Cmd
			if tt.how == "fd0" {
				cmd = exec.Command(os.Args[0], "-test.run=^$")
				cmd.Stdin = f
				cmd.Env = append(os.Environ(), childListenEnv+"=fd0")
			} else {
				// systemd sets LISTEN_PID to the service's own pid: the
				// shell's, which exec keeps.
				cmd = exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" -test.run='^$'`, os.Args[0])
				cmd.ExtraFiles = []*os.File{f}
				cmd.Env = append(os.Environ(), childListenEnv+"=systemd")
			}
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			f.Close()
			l.(*net.UnixListener).SetUnlinkOnClose(false)
			l.Close() // only the child listens now
			rc := dialRaw(t, addr)
			rc.send(requestRecords(1, true, "", getHello...))
			got := rc.readResponses(1)[1]
			if !strings.HasSuffix(string(got.stdout), "\r\n\r\n"+tt.want) {
				t.Errorf("child answered %q, want body %q; stderr: %s", got.stdout, tt.want, stderr.String())
			}
			cmd.Process.Signal(syscall.SIGTERM)
			if err := cmd.Wait(); err != nil {
				t.Errorf("child after SIGTERM: %v; stderr: %s", err, stderr.String())
			}
		})
	}
}

func TestIsListeningSocket(t *testing.T) {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	lf, _ := l.(*net.TCPListener).File()
	defer lf.Close()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cf, _ := c.(*net.TCPConn).File()
	defer cf.Close()
	regular, err := os.CreateTemp(t.TempDir(), "f")
	if err != nil {
		t.Fatal(err)
	}
	defer regular.Close()
	tests := []struct {
		name string
		fd   uintptr
		want bool
	}{
		{"pipe", pr.Fd(), false},
		{"regular file", regular.Fd(), false},
		{"connected socket", cf.Fd(), false},
		{"listening socket", lf.Fd(), true},
	}
	for _, tt := range tests {
		if got := IsListeningSocket(int(tt.fd)); got != tt.want {
			t.Errorf("IsListeningSocket(%s) = %v, want %v", tt.name, got, tt.want)
		}
	}
	if _, err := InheritedListener(int(pr.Fd())); err == nil {
		t.Errorf("InheritedListener(pipe) succeeded")
	}
}
