package fastcgi

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/cgirun/cgirun/internal/testenv"
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

func TestParseAddr(t *testing.T) {
	tests := []struct {
		addr, network, address string
		err                    string // "" means valid
	}{
		{"unix:/run/app/app.sock", "unix", "/run/app/app.sock", ""},
		{"/run/php/php-fpm.sock", "unix", "/run/php/php-fpm.sock", ""}, // as php-fpm and nginx write it
		{"tcp:127.0.0.1:9000", "tcp", "127.0.0.1:9000", ""},
		{"127.0.0.1:9000", "tcp", "127.0.0.1:9000", ""},
		{"[::1]:9000", "tcp", "[::1]:9000", ""},
		{"unix:", "", "", "empty socket path"},
		{"run/app.sock", "", "", "/path"},
		{"nonsense", "", "", "/path"},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			network, address, err := ParseAddr(tt.addr)
			switch {
			case tt.err == "" && err != nil:
				t.Errorf("ParseAddr(%q) = %v, want %s %s", tt.addr, err, tt.network, tt.address)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Errorf("ParseAddr(%q) = %q, %q, %v; want an error containing %q", tt.addr, network, address, err, tt.err)
			case network != tt.network || address != tt.address:
				t.Errorf("ParseAddr(%q) = %q, %q; want %q, %q", tt.addr, network, address, tt.network, tt.address)
			}
		})
	}
}

// TestListenMissingDirectory: a socket in a directory that does not exist
// is refused with what to do, systemd's RuntimeDirectory= for one under
// /run.
func TestListenMissingDirectory(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "app")
	runDir := fmt.Sprintf("/run/cgirun-test-missing-%d", os.Getpid())
	tests := []struct {
		name, addr string
		want       string
		wantNot    string // "" means none
	}{
		{"outside /run", "unix:" + missing + "/app.sock", "directory " + missing + " does not exist: create it", "RuntimeDirectory"},
		{"under /run", "unix:" + runDir + "/app.sock", "directory " + runDir + " does not exist: create it, or set RuntimeDirectory=" + runDir[len("/run/"):] + " under systemd", ""},
		{"a bare path", runDir + "/app.sock", "RuntimeDirectory=", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := Listen(tt.addr, 0)
			if err == nil {
				l.Close()
				t.Fatalf("Listen(%q) succeeded, want an error", tt.addr)
			}
			if !strings.Contains(err.Error(), tt.want) || tt.wantNot != "" && strings.Contains(err.Error(), tt.wantNot) {
				t.Errorf("Listen(%q) = %v, want an error containing %q and not %q", tt.addr, err, tt.want, tt.wantNot)
			}
		})
	}
}

// TestListenConfigOwnerGroup: the socket file gets php-fpm's listen.owner
// and listen.group, names or numbers; an unknown one is refused, naming
// what it is.
func TestListenConfigOwnerGroup(t *testing.T) {
	nobody, nogroup := testenv.Nobody(t)
	uid, gid := os.Geteuid(), os.Getegid()
	nobodyUID, _ := strconv.Atoi(nobody.Uid)
	nogroupGID, _ := strconv.Atoi(nogroup.Gid)
	tests := []struct {
		name             string
		cfg              ListenConfig
		wantUID, wantGID int
		err              string // "" means none
	}{
		{"neither", ListenConfig{Mode: 0o660}, uid, gid, ""},
		{"owner and group by name", ListenConfig{Owner: "nobody", Group: "nogroup"}, nobodyUID, nogroupGID, ""},
		{"owner by number", ListenConfig{Owner: nobody.Uid}, nobodyUID, gid, ""},
		{"group by number", ListenConfig{Group: nogroup.Gid}, uid, nogroupGID, ""},
		{"unknown owner", ListenConfig{Owner: "no-such-user-cgirun"}, 0, 0, `socket owner "no-such-user-cgirun"`},
		{"unknown group", ListenConfig{Group: "no-such-group-cgirun"}, 0, 0, `socket group "no-such-group-cgirun"`},
		{"negative number", ListenConfig{Owner: "-2"}, 0, 0, `socket owner "-2"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "app.sock")
			l, err := tt.cfg.Listen(path)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Errorf("%+v.Listen(%s) = %v, want an error containing %q", tt.cfg, path, err, tt.err)
				}
				if err == nil {
					l.Close()
				}
				if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("socket file after a failed Listen: %v, want none", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("%+v.Listen(%s): %v", tt.cfg, path, err)
			}
			defer l.Close()
			fi, err := os.Lstat(path)
			if err != nil {
				t.Fatal(err)
			}
			st := fi.Sys().(*syscall.Stat_t)
			if int(st.Uid) != tt.wantUID || int(st.Gid) != tt.wantGID || fi.Mode().Perm() != 0o660 {
				t.Errorf("%+v.Listen made a socket %v owned by %d:%d, want %v owned by %d:%d", tt.cfg, fi.Mode().Perm(), st.Uid, st.Gid, fs.FileMode(0o660), tt.wantUID, tt.wantGID)
			}
		})
	}
}
