package cgirun

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/yookoala/gofast"

	"github.com/cgirun/cgirun/upgrade"
)

// The test binary is its own new process for Upgrade (os.Executable, with
// the test's arguments and environment): upgradeChildEnv tells TestMain to
// act as one, and upgradeDirEnv where to leave its report and log.
const (
	upgradeChildEnv = "CGIRUN_TEST_UPGRADE_CHILD"
	upgradeDirEnv   = "CGIRUN_TEST_UPGRADE_DIR"
)

// upgradeChildBound bounds a test child's life, should the test fail to
// stop it.
const upgradeChildBound = time.Minute

func TestMain(m *testing.M) {
	if mode := os.Getenv(upgradeChildEnv); mode != "" {
		// The child's arguments are the test binary's -test.* flags: it
		// parses them as a program with flags of its own does, which
		// Run then leaves alone.
		flag.Parse()
		os.Exit(upgradeChild(mode, os.Getenv(upgradeDirEnv)))
	}
	os.Exit(m.Run())
}

// upgradeChild is the new process of the upgrade tests. It first writes
// to dir/fds the descriptors it inherited (those above 2 without
// close-on-exec: everything the Go runtime opens has it) and the
// variables naming them; then, as mode says, it serves through RunWith
// ("serve"), exits 3 at once ("fail"), or waits for SIGTERM without ever
// saying it is ready ("hang").
func upgradeChild(mode, dir string) int {
	report := inheritedFDs() + fmt.Sprintf("%s=%s\n%s=%s\n", upgrade.EnvInheritFDs, os.Getenv(upgrade.EnvInheritFDs), upgrade.EnvReadyFD, os.Getenv(upgrade.EnvReadyFD))
	if err := os.WriteFile(filepath.Join(dir, "fds"), []byte(report), 0o644); err != nil {
		return 2
	}
	switch mode {
	case "serve":
		logf, err := os.Create(filepath.Join(dir, "child.log"))
		if err != nil {
			return 2
		}
		defer logf.Close()
		pid := os.Getpid()
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "child %d", pid)
		})
		go func() {
			time.Sleep(upgradeChildBound)
			os.Exit(4)
		}()
		if err := RunWith(h, Options{Logger: slog.New(slog.NewTextHandler(logf, nil))}); err != nil {
			fmt.Fprintln(logf, err)
			return 1
		}
		return 0
	case "fail":
		return 3
	case "hang":
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
		defer stop()
		select {
		case <-ctx.Done():
		case <-time.After(upgradeChildBound):
		}
		return 0
	}
	return 2
}

// inheritedFDs lists this process's descriptors above 2 that lack
// close-on-exec, one a line: "3 listener unix /path", "4 listener tcp
// 127.0.0.1:PORT", "5 pipe" or "6 other".
func inheritedFDs() string {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return "error " + err.Error() + "\n"
	}
	var fds []int
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			fds = append(fds, fd)
		}
	}
	slices.Sort(fds)
	var b strings.Builder
	for _, fd := range fds {
		flags, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_GETFD, 0)
		if errno != 0 || flags&syscall.FD_CLOEXEC != 0 {
			continue // closed meanwhile (ReadDir's own), or not inherited
		}
		var st syscall.Stat_t
		syscall.Fstat(fd, &st)
		switch {
		case st.Mode&syscall.S_IFMT == syscall.S_IFIFO:
			fmt.Fprintf(&b, "%d pipe\n", fd)
		case st.Mode&syscall.S_IFMT == syscall.S_IFSOCK:
			sa, err := syscall.Getsockname(fd)
			listening, _ := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_ACCEPTCONN)
			switch a := sa.(type) {
			case *syscall.SockaddrUnix:
				fmt.Fprintf(&b, "%d listener=%d unix %s\n", fd, listening, a.Name)
			case *syscall.SockaddrInet4:
				fmt.Fprintf(&b, "%d listener=%d tcp %s\n", fd, listening, net.JoinHostPort(net.IP(a.Addr[:]).String(), strconv.Itoa(a.Port)))
			default:
				fmt.Fprintf(&b, "%d socket %T %v\n", fd, sa, err)
			}
		default:
			fmt.Fprintf(&b, "%d other mode %o\n", fd, st.Mode)
		}
	}
	return b.String()
}

// fdOf returns the descriptor number a line of inheritedFDs starts with.
func fdOf(line string) int {
	fd, _, _ := strings.Cut(line, " ")
	n, _ := strconv.Atoi(fd)
	return n
}

// upgradeGet sends GET / over FastCGI to network address and returns the
// body.
func upgradeGet(t *testing.T, network, address string) string {
	t.Helper()
	dial := gofast.SimpleConnFactory(network, address)
	client, err := gofast.SimpleClientFactory(func() (net.Conn, error) {
		c, err := dial()
		if err == nil {
			c.SetDeadline(time.Now().Add(10 * time.Second))
		}
		return c, err
	})()
	if err != nil {
		t.Fatalf("connecting to %s %s: %v", network, address, err)
	}
	defer client.Close()
	req := gofast.NewRequest(nil)
	req.Params = map[string]string{"REQUEST_METHOD": "GET", "REQUEST_URI": "/", "SERVER_PROTOCOL": "HTTP/1.1"}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("FastCGI GET / on %s %s: %v", network, address, err)
	}
	w := httptest.NewRecorder()
	if err := resp.WriteTo(w, io.Discard); err != nil {
		t.Fatalf("FastCGI GET / on %s %s: %v", network, address, err)
	}
	return w.Body.String()
}

// upgradeTo upgrades to a new copy of the test binary on lns (see
// upgradeSetenv) and returns its pid once it serves; the new process is
// stopped, and waited for, at the end of the test.
func upgradeTo(t *testing.T, lns ...net.Listener) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	pid, err := upgrade.Start(ctx, lns, 0)
	if err != nil {
		t.Fatalf("Upgrade: %v", err)
	}
	t.Cleanup(func() {
		syscall.Kill(pid, syscall.SIGTERM)
		upgradeWaitGone(t, pid)
	})
	return pid
}

// upgradeWaitGone waits until process pid no longer exists. Upgrade's
// goroutine reaps it; nothing tells the test when: poll, for at most 10 s.
func upgradeWaitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("process %d still there 10 s after SIGTERM", pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func upgradeSetenv(t *testing.T, mode string) string {
	t.Helper()
	dir := t.TempDir()
	t.Setenv(upgradeChildEnv, mode)
	t.Setenv(upgradeDirEnv, dir)
	return dir
}

// TestUpgradePassesExactlyTheListeners upgrades to the test binary with a
// unix and a TCP listener: the new process inherits them, and a pipe, and
// nothing else, under the names its variables give; it serves both once
// the old listeners are closed; the socket file stays when the old
// process closes it, and goes when the new one exits.
func TestUpgradePassesExactlyTheListeners(t *testing.T) {
	dir := upgradeSetenv(t, "serve")
	sock := filepath.Join(dir, "app.sock")
	t.Setenv("CGIRUN_FASTCGI", "unix:"+sock)
	lu, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer lu.Close()
	lt, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lt.Close()

	inherited := inheritedFDs()
	pid := upgradeTo(t, lu, lt)
	report, err := os.ReadFile(filepath.Join(dir, "fds"))
	if err != nil {
		t.Fatal(err)
	}
	// What this process inherited without close-on-exec passes on as with
	// any exec (here: what the shell running go test leaves open), but
	// for the descriptors that Upgrade puts in place.
	want := []string{fmt.Sprintf("3 listener=1 unix %s", sock), fmt.Sprintf("4 listener=1 tcp %s", lt.Addr()), "5 pipe"}
	for line := range strings.Lines(inherited) {
		if fd, _, _ := strings.Cut(line, " "); fd != "3" && fd != "4" && fd != "5" {
			want = append(want, strings.TrimSuffix(line, "\n"))
		}
	}
	slices.SortFunc(want, func(a, b string) int { return fdOf(a) - fdOf(b) })
	want = append(want, upgrade.EnvInheritFDs+"=3,4", upgrade.EnvReadyFD+"=5")
	if got := strings.Split(strings.TrimSuffix(string(report), "\n"), "\n"); !slices.Equal(got, want) {
		t.Errorf("the new process inherited:\n%s\nwant:\n%s", report, strings.Join(want, "\n"))
	}

	// The old process stops accepting; the new one has everything.
	lu.Close()
	lt.Close()
	if _, err := os.Stat(sock); err != nil {
		t.Errorf("after the old listener closed: %v; want the socket file kept for the new process", err)
	}
	wantBody := fmt.Sprintf("child %d", pid)
	for _, a := range []net.Addr{lu.Addr(), lt.Addr()} {
		if got := upgradeGet(t, a.Network(), a.String()); got != wantBody {
			t.Errorf("GET / on %s after the upgrade = %q, want %q", a, got, wantBody)
		}
	}
	logs, _ := os.ReadFile(filepath.Join(dir, "child.log"))
	if want := fmt.Sprintf("sockets inherited from pid %d", os.Getpid()); !strings.Contains(string(logs), want) {
		t.Errorf("the new process's log lacks %q:\n%s", want, logs)
	}

	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	upgradeWaitGone(t, pid)
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after the new process exited: %v; want its socket file removed (CGIRUN_FASTCGI is its path)\n%s", err, logs)
	}
}

// TestUpgradeFailureKeepsServing: a new process that exits, or never says
// it serves, is given up; the old server goes on serving on its socket,
// whose file is still there.
func TestUpgradeFailureKeepsServing(t *testing.T) {
	tests := []struct {
		mode           string
		timeout        time.Duration // of the context given to upgrade.Start
		upgradeTimeout time.Duration // CGIRUN_UPGRADE_TIMEOUT
		want           string        // in the error
	}{
		{mode: "fail", timeout: 20 * time.Second, want: "exit status 3"},
		{mode: "hang", timeout: 300 * time.Millisecond, want: "did not serve within"},
		{mode: "hang", timeout: 20 * time.Second, upgradeTimeout: 300 * time.Millisecond, want: "did not serve within"},
		{mode: "bad variable", timeout: 20 * time.Second, want: "exit status 1"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s, upgrade timeout %v", tt.mode, tt.upgradeTimeout), func(t *testing.T) {
			dir := upgradeSetenv(t, tt.mode)
			if tt.mode == "bad variable" {
				// A new process that finds something else than a listener
				// where the variable says: its Start fails.
				t.Setenv(upgradeChildEnv, "serve")
			}
			sock := filepath.Join(dir, "app.sock")
			env := map[string]string{"CGIRUN_FASTCGI": "unix:" + sock}
			if tt.upgradeTimeout > 0 {
				env["CGIRUN_UPGRADE_TIMEOUT"] = tt.upgradeTimeout.String()
			}
			cfg := testConfig(t, env)
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "parent") })
			s := startServer(t, cfg, h, Options{Logger: slog.New(slog.DiscardHandler)})
			lns := s.lns
			if tt.mode == "bad variable" {
				// The pipe of the ready byte in place of a listener.
				r, w, err := os.Pipe()
				if err != nil {
					t.Fatal(err)
				}
				defer r.Close()
				defer w.Close()
				lns = []net.Listener{fileListener{Listener: s.lns[0], f: r}}
			}

			ctx, cancel := context.WithTimeout(t.Context(), tt.timeout)
			defer cancel()
			var pid int
			var err error
			if tt.mode == "bad variable" {
				pid, err = upgrade.Start(ctx, lns, 0)
			} else {
				// Through the Server: CGIRUN_UPGRADE_TIMEOUT applies.
				pid, err = s.Upgrade(ctx)
			}
			if err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
				t.Fatalf("Upgrade = pid %d, want an error", pid)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Upgrade = %v, want an error saying %q", err, tt.want)
			}
			if got := upgradeGet(t, "unix", sock); got != "parent" {
				t.Errorf("GET / after the failed upgrade = %q, want the old server's %q", got, "parent")
			}
			if _, err := os.Stat(sock); err != nil {
				t.Errorf("socket file after the failed upgrade: %v", err)
			}
			// The descriptor passed on shares its mode with the listener,
			// which must not have been put in blocking mode.
			if !nonBlocking(t, s.lns[0]) {
				t.Errorf("the listener is in blocking mode after the upgrade")
			}
			if tt.mode == "bad variable" {
				logs, _ := os.ReadFile(filepath.Join(dir, "child.log"))
				if !strings.Contains(string(logs), "not a listening socket") {
					t.Errorf("the new process's log = %q, want it to say why it did not start", logs)
				}
			}
		})
	}
}

// nonBlocking reports whether l's descriptor has O_NONBLOCK.
func nonBlocking(t *testing.T, l net.Listener) bool {
	t.Helper()
	rc, err := l.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var flags uintptr
	var errno syscall.Errno
	rc.Control(func(fd uintptr) {
		flags, _, errno = syscall.Syscall(syscall.SYS_FCNTL, fd, syscall.F_GETFL, 0)
	})
	if errno != 0 {
		t.Fatal(errno)
	}
	return flags&syscall.O_NONBLOCK != 0
}

// fileListener is a listener whose descriptor, as Upgrade passes it on,
// is f's.
type fileListener struct {
	net.Listener
	f *os.File
}

func (l fileListener) SyscallConn() (syscall.RawConn, error) { return l.f.SyscallConn() }

// TestServerUpgradeOnlyFastCGI: a plain HTTP server has nothing to pass on.
func TestServerUpgradeOnlyFastCGI(t *testing.T) {
	cfg := testConfig(t, map[string]string{"CGIRUN_HTTP": "127.0.0.1:0"})
	s := startServer(t, cfg, http.NotFoundHandler(), Options{Logger: slog.New(slog.DiscardHandler)})
	if _, err := s.Upgrade(t.Context()); err == nil || !strings.Contains(err.Error(), "only in FastCGI mode") {
		t.Errorf("Upgrade in HTTP mode = %v, want an error", err)
	}
}
