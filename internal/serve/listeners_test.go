package serve

import (
	"log/slog"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/cgirun/cgirun/fastcgi"
	"github.com/cgirun/cgirun/upgrade"
)

// listeningFile returns a listening unix socket in a temporary directory
// as an *os.File, the way a process finds one on its stdin.
func listeningFile(t *testing.T, name string) (*os.File, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	f, err := l.(*net.UnixListener).File()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, path
}

// TestListenOrder: the sockets a process was handed come before a socket
// it would create, in one order: an upgrade's, then stdin's, then
// systemd's, then the address; an address not used is logged as ignored.
func TestListenOrder(t *testing.T) {
	dir := t.TempDir()
	addr := "unix:" + filepath.Join(dir, "made.sock")
	stdin, stdinPath := listeningFile(t, "stdin.sock")
	inherited, inheritedPath := listeningFile(t, "inherited.sock")
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devNull.Close()
	tests := []struct {
		name      string
		addr      string
		stdin     *os.File
		inherit   bool
		wantPath  string // the one listener's address; "" means none
		wantWhere string
		wantLog   string // "" means none
	}{
		{name: "nothing", stdin: devNull},
		{name: "the address", addr: addr, stdin: devNull, wantPath: filepath.Join(dir, "made.sock"), wantWhere: addr, wantLog: "created unix socket"},
		{name: "stdin alone", stdin: stdin, wantPath: stdinPath, wantWhere: "fd 0"},
		{name: "stdin before the address", addr: addr, stdin: stdin, wantPath: stdinPath, wantWhere: "fd 0", wantLog: "CGIRUN_FASTCGI is ignored"},
		{name: "an upgrade's before stdin", stdin: stdin, inherit: true, wantPath: inheritedPath, wantWhere: "sockets inherited from pid"},
		{name: "an upgrade's are the address's own", addr: addr, stdin: devNull, inherit: true, wantPath: inheritedPath, wantWhere: "sockets inherited from pid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("LISTEN_PID", "") // no systemd sockets
			os.Unsetenv("LISTEN_PID")
			if tt.inherit {
				dup, err := syscall.Dup(int(inherited.Fd()))
				if err != nil {
					t.Fatal(err)
				}
				t.Setenv(upgrade.EnvInheritFDs, strconv.Itoa(dup))
			}
			var logs strings.Builder
			set, err := Listen(tt.addr, "CGIRUN_FASTCGI", fastcgi.ListenConfig{Mode: 0o600}, tt.stdin, slog.New(slog.NewTextHandler(&logs, nil)))
			if err != nil {
				t.Fatalf("Listen: %v", err)
			}
			defer func() {
				for _, l := range set.Listeners {
					l.Close()
				}
			}()
			switch {
			case tt.wantPath == "" && len(set.Listeners) != 0:
				t.Fatalf("Listen = %v, want no listener", set.Listeners)
			case tt.wantPath == "":
			case len(set.Listeners) != 1 || set.Listeners[0].Addr().String() != tt.wantPath:
				t.Fatalf("Listen = %v, want one listener on %s", set.Listeners, tt.wantPath)
			}
			if !strings.HasPrefix(set.Where, tt.wantWhere) {
				t.Errorf("Where = %q, want it to start with %q", set.Where, tt.wantWhere)
			}
			if tt.wantLog == "" && logs.Len() > 0 || !strings.Contains(logs.String(), tt.wantLog) {
				t.Errorf("log = %q, want %q", logs.String(), tt.wantLog)
			}
			if set.Ready == nil || set.Ready() != nil {
				t.Errorf("Ready is nil or fails")
			}
			if tt.addr != "" && tt.wantWhere == tt.addr {
				if fi, err := os.Stat(tt.wantPath); err != nil || fi.Mode().Perm() != 0o600 {
					t.Errorf("created socket: %v, %v; want mode 0600", fi, err)
				}
			}
		})
	}
	// stdin itself is left open, still a listening socket.
	if !StdinIsListening(stdin) {
		t.Errorf("StdinIsListening(stdin) after Listen = false, want the socket untouched")
	}
}

// TestListenLogsTheSocket: the socket Listen creates is logged with its
// path, owner, group and mode, so that a web server's "Permission denied"
// can be checked against the program's own log.
func TestListenLogsTheSocket(t *testing.T) {
	me, err := user.LookupId(strconv.Itoa(os.Geteuid()))
	if err != nil {
		t.Skip("the process's user has no name:", err)
	}
	myGroup, err := user.LookupGroupId(strconv.Itoa(os.Getegid()))
	if err != nil {
		t.Skip("the process's group has no name:", err)
	}
	tests := []struct {
		name     string
		cfg      fastcgi.ListenConfig
		wantLog  string
		needRoot bool
	}{
		{"the process's", fastcgi.ListenConfig{Mode: 0o600}, "owner=" + me.Username + " group=" + myGroup.Name + " mode=0600", false},
		{"given away", fastcgi.ListenConfig{Owner: "nobody", Group: "nogroup"}, "owner=nobody group=nogroup mode=0660", true},
		{"a uid with no name", fastcgi.ListenConfig{Owner: "54321"}, "owner=54321 group=" + myGroup.Name, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.needRoot && os.Geteuid() != 0 {
				t.Skip("giving a socket file away needs root")
			}
			if _, _, err := tt.cfg.IDs(); err != nil {
				t.Skip("no such user or group here:", err)
			}
			t.Setenv("LISTEN_PID", "") // no systemd sockets
			os.Unsetenv("LISTEN_PID")
			path := filepath.Join(t.TempDir(), "app.sock")
			var logs strings.Builder
			set, err := Listen(path, "CGIRUN_FASTCGI", tt.cfg, nil, slog.New(slog.NewTextHandler(&logs, nil)))
			if err != nil {
				t.Fatalf("Listen(%s): %v", path, err)
			}
			for _, l := range set.Listeners {
				l.Close()
			}
			if want := "socket=" + path + " " + tt.wantLog; !strings.Contains(logs.String(), want) {
				t.Errorf("Listen(%s, %+v) logged %q, want %q", path, tt.cfg, logs.String(), want)
			}
		})
	}
}

// TestStatusRecorder: the final status and the body bytes, 200 by
// default, interim codes not final.
func TestStatusRecorder(t *testing.T) {
	tests := []struct {
		name   string
		do     func(w *StatusRecorder)
		status int
		bytes  int64
	}{
		{"nothing written", func(w *StatusRecorder) {}, 200, 0},
		{"body only", func(w *StatusRecorder) { w.Write([]byte("hello")) }, 200, 5},
		{"status then body", func(w *StatusRecorder) { w.WriteHeader(404); w.Write([]byte("no")) }, 404, 2},
		{"interim, then final", func(w *StatusRecorder) { w.WriteHeader(103); w.WriteHeader(201) }, 201, 0},
		{"a second WriteHeader does not count", func(w *StatusRecorder) { w.WriteHeader(500); w.WriteHeader(200) }, 500, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := NewStatusRecorder(new(discardWriter))
			tt.do(rec)
			if rec.Status != tt.status || rec.Bytes != tt.bytes {
				t.Errorf("Status, Bytes = %d, %d; want %d, %d", rec.Status, rec.Bytes, tt.status, tt.bytes)
			}
		})
	}
}

// TestListenAll: several addresses get a socket each, in their order;
// a socket the process was handed takes the place of the address it is
// bound to, and the others are logged as ignored; an upgrade's sockets
// are told apart by their addresses.
func TestListenAll(t *testing.T) {
	t.Setenv("LISTEN_PID", "")
	os.Unsetenv("LISTEN_PID")
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devNull.Close()
	dir := t.TempDir()
	addrs := []Address{
		{Setting: "CGIRUN_FASTCGI", Proto: "FastCGI"},
		{Setting: "CGIRUN_SCGI", Addr: "unix:" + filepath.Join(dir, "scgi.sock"), Proto: "SCGI"},
		{Setting: "CGIRUN_UWSGI", Addr: "tcp:127.0.0.1:0", Proto: "uwsgi"},
	}
	lc := fastcgi.ListenConfig{Mode: 0o600}
	t.Run("an error names the setting and its protocol", func(t *testing.T) {
		missing := filepath.Join(dir, "missing")
		for _, a := range []Address{
			{Setting: "CGIRUN_SCGI", Addr: "unix:" + missing + "/scgi.sock", Proto: "SCGI"},
			{Setting: "CGIRUN_LISTEN", Addr: "unix:" + missing + "/any.sock", Proto: "FastCGI, SCGI, uwsgi and HTTP"},
		} {
			_, err := ListenAll([]Address{a}, lc, devNull, slog.New(slog.DiscardHandler))
			prefix := map[string]string{"CGIRUN_SCGI": "scgi", "CGIRUN_LISTEN": "listen"}[a.Setting]
			want := a.Setting + " " + a.Addr + ": " + prefix + ": directory " + missing + " does not exist"
			if err == nil || !strings.HasPrefix(err.Error(), want) {
				t.Errorf("ListenAll(%s=%s) = %v, want an error starting %q", a.Setting, a.Addr, err, want)
			}
		}
	})
	t.Run("created", func(t *testing.T) {
		var logs strings.Builder
		set, err := ListenAll(addrs, lc, devNull, slog.New(slog.NewTextHandler(&logs, nil)))
		if err != nil {
			t.Fatal(err)
		}
		defer closeAll(set.Listeners)
		if len(set.Listeners) != 2 || set.Listeners[0].Addr().String() != filepath.Join(dir, "scgi.sock") || set.Listeners[1].Addr().Network() != "tcp" {
			t.Fatalf("ListenAll = %v, want the SCGI socket, then the uwsgi one", set.Listeners)
		}
		if !slices.Equal(set.Of, []int{1, 2}) {
			t.Errorf("Of = %v, want [1 2]", set.Of)
		}
		if want := addrs[1].Addr + ", " + addrs[2].Addr; set.Where != want {
			t.Errorf("Where = %q, want %q", set.Where, want)
		}
	})
	t.Run("a bad address closes the others", func(t *testing.T) {
		bad := append(slices.Clone(addrs), Address{Setting: "CGIRUN_LISTEN", Addr: "unix:" + filepath.Join(dir, "no", "such", "dir.sock")})
		_, err := ListenAll(bad, lc, devNull, slog.New(slog.DiscardHandler))
		if err == nil || !strings.HasPrefix(err.Error(), "CGIRUN_LISTEN unix:") {
			t.Fatalf("ListenAll = %v, want an error naming CGIRUN_LISTEN", err)
		}
		// The SCGI socket was closed and its file removed: it can be
		// made again.
		set, err := ListenAll(addrs[:2], lc, devNull, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatalf("ListenAll after the failure: %v", err)
		}
		closeAll(set.Listeners)
	})
	t.Run("stdin bound to an address", func(t *testing.T) {
		stdin, path := listeningFile(t, "handed.sock")
		handed := slices.Clone(addrs)
		handed[0].Addr = "unix:" + path // CGIRUN_FASTCGI's address is not it
		handed[1].Addr = path
		var logs strings.Builder
		set, err := ListenAll(handed, lc, stdin, slog.New(slog.NewTextHandler(&logs, nil)))
		if err != nil {
			t.Fatal(err)
		}
		defer closeAll(set.Listeners)
		// Both name the path: the first address bound to it wins.
		if len(set.Listeners) != 1 || !slices.Equal(set.Of, []int{0}) {
			t.Errorf("ListenAll = %v, Of %v; want fd 0's socket as CGIRUN_FASTCGI's", set.Listeners, set.Of)
		}
		for _, want := range []string{"CGIRUN_SCGI is ignored", "CGIRUN_UWSGI is ignored"} {
			if !strings.Contains(logs.String(), want) {
				t.Errorf("log = %q, want %q", logs.String(), want)
			}
		}
		if strings.Contains(logs.String(), "CGIRUN_FASTCGI is ignored") {
			t.Errorf("log = %q: CGIRUN_FASTCGI's address is fd 0's socket, not ignored", logs.String())
		}
	})
	t.Run("stdin bound to none", func(t *testing.T) {
		stdin, _ := listeningFile(t, "other.sock")
		set, err := ListenAll(addrs, lc, stdin, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		defer closeAll(set.Listeners)
		if !slices.Equal(set.Of, []int{-1}) {
			t.Errorf("Of = %v, want [-1]", set.Of)
		}
	})
	t.Run("an upgrade's", func(t *testing.T) {
		tcp, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer tcp.Close()
		unixFile, path := listeningFile(t, "up.sock")
		tcpFile, err := tcp.(*net.TCPListener).File()
		if err != nil {
			t.Fatal(err)
		}
		defer tcpFile.Close()
		var fds []string
		for _, f := range []*os.File{tcpFile, unixFile} {
			dup, err := syscall.Dup(int(f.Fd()))
			if err != nil {
				t.Fatal(err)
			}
			fds = append(fds, strconv.Itoa(dup))
		}
		t.Setenv(upgrade.EnvInheritFDs, strings.Join(fds, ","))
		up := []Address{
			{Setting: "CGIRUN_SCGI", Addr: "unix:" + path},
			{Setting: "CGIRUN_UWSGI", Addr: "localhost:" + strconv.Itoa(tcp.Addr().(*net.TCPAddr).Port)},
		}
		set, err := ListenAll(up, lc, devNull, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		defer closeAll(set.Listeners)
		if !slices.Equal(set.Of, []int{1, 0}) {
			t.Errorf("Of = %v, want [1 0]: the TCP socket is CGIRUN_UWSGI's, the unix one CGIRUN_SCGI's", set.Of)
		}
	})
}

func closeAll(lns []net.Listener) {
	for _, l := range lns {
		l.Close()
	}
}

func TestBoundTo(t *testing.T) {
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	all, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer all.Close()
	port := strconv.Itoa(tcp.Addr().(*net.TCPAddr).Port)
	anyPort := strconv.Itoa(all.Addr().(*net.TCPAddr).Port)
	uf, path := listeningFile(t, "b.sock")
	unix, err := fastcgi.InheritedListener(dupFD(t, uf))
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close()
	tests := []struct {
		name string
		l    net.Listener
		addr string
		want bool
	}{
		{"tcp: the same", tcp, "tcp:127.0.0.1:" + port, true},
		{"tcp: no prefix", tcp, "127.0.0.1:" + port, true},
		{"tcp: a host name", tcp, "localhost:" + port, true},
		{"tcp: another port", tcp, "127.0.0.1:1", false},
		{"tcp: port 0", tcp, "127.0.0.1:0", false},
		{"tcp: another host", tcp, "127.0.0.2:" + port, false},
		{"tcp: every interface", all, ":" + anyPort, true},
		{"tcp: 0.0.0.0", all, "0.0.0.0:" + anyPort, true},
		{"tcp: a unix address", tcp, "unix:/x", false},
		{"unix: the same", unix, "unix:" + path, true},
		{"unix: bare path", unix, path, true},
		{"unix: another path", unix, path + "x", false},
		{"unix: a tcp address", unix, "127.0.0.1:" + port, false},
		{"bad address", tcp, "unix:", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := boundTo(tt.l, tt.addr); got != tt.want {
				t.Errorf("boundTo(%v, %q) = %v, want %v", tt.l.Addr(), tt.addr, got, tt.want)
			}
		})
	}
}

func dupFD(t *testing.T, f *os.File) int {
	t.Helper()
	fd, err := syscall.Dup(int(f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	return fd
}
