package serve

import (
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/cgirun/cgirun/fastcgi"
)

// TestListenWarnsBeyondLoopback: a FastCGI socket on TCP beyond loopback
// with no FCGI_WEB_SERVER_ADDRS serves any host that reaches it; Listen
// (the runner's -s and cgirun.Run's CGIRUN_FASTCGI) warns once, naming
// the address and the fix. The test binds 0.0.0.0 and connects nowhere.
func TestListenWarnsBeyondLoopback(t *testing.T) {
	sock := "unix:" + t.TempDir() + "/s.sock"
	tests := []struct {
		name, addr, allow string
		warn              bool
	}{
		{name: "every interface", addr: "tcp:0.0.0.0:0", warn: true},
		{name: "every interface, bare", addr: ":0", warn: true},
		{name: "loopback", addr: "tcp:127.0.0.1:0"},
		{name: "allowlist set", addr: "tcp:0.0.0.0:0", allow: "127.0.0.1"},
		{name: "unix socket", addr: sock},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("LISTEN_PID", "") // no systemd sockets
			os.Unsetenv("LISTEN_PID")
			t.Setenv("FCGI_WEB_SERVER_ADDRS", tt.allow)
			var logs strings.Builder
			set, err := Listen(tt.addr, "CGIRUN_FASTCGI", fastcgi.ListenConfig{Mode: 0o600}, nil, slog.New(slog.NewTextHandler(&logs, nil)))
			if err != nil {
				t.Fatalf("Listen(%s): %v", tt.addr, err)
			}
			for _, l := range set.Listeners {
				l.Close()
			}
			got := strings.Count(logs.String(), "beyond loopback")
			want := 0
			if tt.warn {
				want = 1
				line := `level=WARN msg="cgirun: FastCGI listens beyond loopback and FCGI_WEB_SERVER_ADDRS is empty: any host that reaches it is served; listen on 127.0.0.1 (such as CGIRUN_FASTCGI=tcp:127.0.0.1:9000) or a unix socket, or set FCGI_WEB_SERVER_ADDRS to the web server's addresses (such as 127.0.0.1,10.0.0.2)" addr=` + set.Listeners[0].Addr().String() + "\n"
				if !strings.Contains(logs.String(), line) {
					t.Errorf("Listen(%s) logged %q, want %q", tt.addr, logs.String(), line)
				}
			}
			if got != want {
				t.Errorf("Listen(%s) with FCGI_WEB_SERVER_ADDRS=%q logged %d warnings (%q), want %d", tt.addr, tt.allow, got, logs.String(), want)
			}
		})
	}
}

// TestWarnExposedHTTP: an HTTP listener beyond loopback is warned about,
// one on loopback or a unix socket is not.
func TestWarnExposedHTTP(t *testing.T) {
	for _, tt := range []struct {
		network, addr string
		warn          bool
	}{{"tcp", "0.0.0.0:0", true}, {"tcp", "127.0.0.1:0", false}, {"unix", t.TempDir() + "/h.sock", false}} {
		l, err := net.Listen(tt.network, tt.addr)
		if err != nil {
			t.Fatal(err)
		}
		var logs strings.Builder
		WarnExposedHTTP(slog.New(slog.NewTextHandler(&logs, nil)), l, "--addr")
		l.Close()
		if got := strings.Contains(logs.String(), "level=WARN msg=\"cgirun: HTTP listens beyond loopback"); got != tt.warn {
			t.Errorf("WarnExposedHTTP(%s %s) logged %q, want a warning: %v", tt.network, tt.addr, logs.String(), tt.warn)
		}
	}
}
