package serve

import (
	"log/slog"
	"net"
	"os"
	"os/user"
	"path/filepath"
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
