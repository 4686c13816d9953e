package fastcgi

import (
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestWebServerAddrsRefusesOtherPeers: on TCP, a peer missing from
// FCGI_WEB_SERVER_ADDRS (or WebServerAddrs) is closed without an answer
// and logged, and never reaches the handler; a listed peer is served.
// Unix sockets are not checked: their mode guards them.
func TestWebServerAddrsRefusesOtherPeers(t *testing.T) {
	tests := []struct {
		name    string
		network string
		env     string   // FCGI_WEB_SERVER_ADDRS
		field   []string // WebServerAddrs
		served  bool
	}{
		{name: "environment without 127.0.0.1", network: "tcp", env: "10.0.0.1, ::1"},
		{name: "environment with 127.0.0.1", network: "tcp", env: "10.0.0.1,127.0.0.1", served: true},
		{name: "field without 127.0.0.1 over an environment with it", network: "tcp", env: "127.0.0.1", field: []string{"10.0.0.1"}},
		{name: "field with 127.0.0.1 over an environment without it", network: "tcp", env: "10.0.0.1", field: []string{"127.0.0.1"}, served: true},
		{name: "IPv4-mapped 127.0.0.1", network: "tcp", field: []string{"::ffff:127.0.0.1"}, served: true},
		{name: "unix socket, not checked", network: "unix", env: "10.0.0.1", served: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("FCGI_WEB_SERVER_ADDRS", tt.env)
			s, addr, logs := startServerOn(t, tt.network, hostileMux(), func(s *Server) { s.WebServerAddrs = tt.field })
			if tt.served {
				status, body, err := gofastGet(tt.network, addr, "/hello/peer")
				if err != nil || status != http.StatusOK || body != helloBody("peer") {
					t.Errorf("listed peer: %d %.40q %v, want 200 and its page", status, body, err)
				}
				return
			}
			c, err := net.Dial(tt.network, addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			c.Write(requestRecords(1, false, "", "REQUEST_METHOD=GET", "REQUEST_URI=/hello/peer"))
			n, err := io.Copy(io.Discard, c)
			if n > 0 || isTimeout(err) {
				t.Errorf("unlisted peer: read %d bytes, %v; want the connection closed without an answer", n, err)
			}
			want := `peer not in FCGI_WEB_SERVER_ADDRS" remote=` + c.LocalAddr().String()
			if !strings.Contains(logs.String(), want) {
				t.Errorf("log = %q, want %q", logs, want)
			}
			if st := s.Stats(); st.AcceptedConns != 0 || st.Requests != 0 {
				t.Errorf("Stats = %+v, want no connection accepted and no request", st)
			}
		})
	}

	t.Run("not an address: Serve fails", func(t *testing.T) {
		t.Setenv("FCGI_WEB_SERVER_ADDRS", "127.0.0.1,localhost")
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s := &Server{Handler: hostileMux(), Logger: slog.New(slog.DiscardHandler)}
		if err := s.Serve(l); err == nil || !strings.Contains(err.Error(), `FCGI_WEB_SERVER_ADDRS: "localhost"`) {
			t.Errorf("Serve = %v, want an error naming the bad address", err)
		}
		if _, err := net.Dial("tcp", l.Addr().String()); err == nil {
			t.Errorf("the listener is still open after Serve failed")
		}
	})
}

// TestListenUnixSocketModeAndOwner: the socket file Listen creates has
// the mode asked for (0660 when 0), whatever the umask, and belongs to the
// process's user and group.
func TestListenUnixSocketModeAndOwner(t *testing.T) {
	tests := []struct {
		mode, want fs.FileMode
	}{
		{0o600, 0o600},
		{0o660, 0o660},
		{0, 0o660},
	}
	for _, umask := range []int{0o022, 0o077, 0} {
		for _, tt := range tests {
			old := syscall.Umask(umask)
			path := filepath.Join(t.TempDir(), "app.sock")
			l, err := Listen("unix:"+path, tt.mode)
			syscall.Umask(old)
			if err != nil {
				t.Fatal(err)
			}
			fi, err := os.Lstat(path)
			if err != nil {
				t.Fatal(err)
			}
			st := fi.Sys().(*syscall.Stat_t)
			if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != tt.want || int(st.Uid) != os.Geteuid() || int(st.Gid) != os.Getegid() {
				t.Errorf("umask %#o: Listen(mode %#o) made %v owned by %d:%d, want a socket %v owned by %d:%d",
					umask, tt.mode, fi.Mode(), st.Uid, st.Gid, fs.ModeSocket|tt.want, os.Geteuid(), os.Getegid())
			}
			c, err := net.Dial("unix", path)
			if err != nil {
				t.Errorf("dialling the socket: %v", err)
			} else {
				c.Close()
			}
			l.Close()
			if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("socket file after Close: %v, want it removed", err)
			}
		}
	}
}
