package cgirun

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/yookoala/gofast"

	"github.com/cgirun/cgirun/bridge"
	"github.com/cgirun/cgirun/internal/serve"

	"github.com/cgirun/cgirun/internal/testenv"
)

func TestLoadConfig(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		err  string // "" means valid
	}{
		{"defaults", nil, ""},
		{"fastcgi unix", map[string]string{"CGIRUN_FASTCGI": "unix:/run/app.sock", "CGIRUN_SOCKET_MODE": "0600"}, ""},
		{"bad fastcgi address", map[string]string{"CGIRUN_FASTCGI": "nowhere"}, `CGIRUN_FASTCGI: fastcgi: address "nowhere"`},
		{"bad socket mode", map[string]string{"CGIRUN_SOCKET_MODE": "rw-rw----"}, "CGIRUN_SOCKET_MODE"},
		{"socket mode too large", map[string]string{"CGIRUN_SOCKET_MODE": "7777"}, "CGIRUN_SOCKET_MODE"},
		{"fastcgi bare path", map[string]string{"CGIRUN_FASTCGI": "/run/php/app.sock"}, ""},
		{"socket owner and group by number", map[string]string{"CGIRUN_SOCKET_OWNER": "0", "CGIRUN_SOCKET_GROUP": "0"}, ""},
		{"unknown socket owner", map[string]string{"CGIRUN_SOCKET_OWNER": "no-such-user-cgirun"}, `CGIRUN_SOCKET_OWNER="no-such-user-cgirun": no such user: want a user name or uid, such as www-data`},
		{"unknown socket group", map[string]string{"CGIRUN_SOCKET_GROUP": "no-such-group-cgirun"}, `CGIRUN_SOCKET_GROUP="no-such-group-cgirun": no such group: want a group name or gid, such as www-data`},
		{"negative socket owner", map[string]string{"CGIRUN_SOCKET_OWNER": "-1"}, "CGIRUN_SOCKET_OWNER"},
		{"bad log format", map[string]string{"CGIRUN_LOG_FORMAT": "xml"}, "CGIRUN_LOG_FORMAT"},
		{"bad duration", map[string]string{"CGIRUN_SHUTDOWN_GRACE": "soon"}, "SHUTDOWN_GRACE"},
		{"negative count", map[string]string{"CGIRUN_MAX_CONNS": "-1"}, "CGIRUN_MAX_CONNS"},
		{"negative upgrade timeout", map[string]string{"CGIRUN_UPGRADE_TIMEOUT": "-1s"}, "CGIRUN_UPGRADE_TIMEOUT"},
		{"cert without key", map[string]string{"CGIRUN_TLS_CERT": "cert.pem"}, "CGIRUN_TLS_KEY"},
		{"an unprefixed name is not read", map[string]string{"FASTCGI": "nowhere", "HTTP": "x"}, ""},
		{"scgi, uwsgi and listen", map[string]string{"CGIRUN_SCGI": "unix:/run/app-scgi.sock", "CGIRUN_UWSGI": "tcp:127.0.0.1:3031", "CGIRUN_LISTEN": "/run/app.sock"}, ""},
		{"bad scgi address", map[string]string{"CGIRUN_SCGI": "nowhere"}, `CGIRUN_SCGI: scgi: address "nowhere"`},
		{"bad uwsgi address", map[string]string{"CGIRUN_UWSGI": "udp:127.0.0.1:3031"}, `CGIRUN_UWSGI: uwsgi: address "udp:127.0.0.1:3031"`},
		{"bad listen address", map[string]string{"CGIRUN_LISTEN": "unix:"}, `CGIRUN_LISTEN: listen: address "unix:": empty socket path`},
		{"two settings, one socket", map[string]string{"CGIRUN_FASTCGI": "unix:/run/app.sock", "CGIRUN_SCGI": "/run/app.sock"},
			`CGIRUN_SCGI="/run/app.sock": CGIRUN_FASTCGI names the same socket: give each its own address, such as CGIRUN_SCGI=unix:/run/app-scgi.sock, or serve every protocol on one with CGIRUN_LISTEN`},
		{"listen on another setting's socket", map[string]string{"CGIRUN_UWSGI": "tcp:127.0.0.1:3031", "CGIRUN_LISTEN": "127.0.0.1:3031"},
			`CGIRUN_LISTEN="127.0.0.1:3031": CGIRUN_UWSGI names the same socket: give each its own address, such as CGIRUN_LISTEN=unix:/run/app-listen.sock, or leave CGIRUN_UWSGI unset: CGIRUN_LISTEN's socket serves its protocol too`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			cfg, err := LoadConfig()
			switch {
			case tt.err == "" && err != nil:
				t.Errorf("LoadConfig() error: %v", err)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Errorf("LoadConfig() = %v, want an error naming %s", err, tt.err)
			case tt.name == "defaults" && (cfg.HTTP != "127.0.0.1:8080" || cfg.SocketMode != "0660" || cfg.LogFormat != "text"):
				t.Errorf("defaults = %+v", cfg)
			}
		})
	}
}

func TestMonitor(t *testing.T) {
	hello := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, "made")
	})
	tests := []struct {
		name     string
		cfg      func(*Config)
		target   string
		header   http.Header
		status   int
		body     string // substring
		wantLog  string // substring; "" means no log line
		noHandle bool   // the handler must not run
	}{
		{name: "plain request, no logs", target: "/x", status: 201, body: "made"},
		{name: "status page in text", cfg: func(c *Config) { c.StatusPath = "/status" }, target: "/status", status: 200,
			body: "mode:                fastcgi\n", noHandle: true},
		{name: "status page in JSON", cfg: func(c *Config) { c.StatusPath = "/status" }, target: "/status?json", status: 200,
			body: `"mode":"fastcgi"`, noHandle: true},
		{name: "status path off by default", target: "/status", status: 201, body: "made"},
		{name: "ping", cfg: func(c *Config) { c.PingPath = "/ping" }, target: "/ping", status: 200, body: "pong\n", noHandle: true},
		{name: "URI too long", cfg: func(c *Config) { c.MaxURLLength = 10 }, target: "/" + strings.Repeat("a", 10), status: 414,
			wantLog: "request URI too long", noHandle: true},
		{name: "access log with X-Forwarded-For", cfg: func(c *Config) { c.AccessLog, c.LogXForwardedFor = true, true },
			target: "/x?y=1", header: http.Header{"X-Forwarded-For": {"203.0.113.9"}}, status: 201,
			wantLog: `client=203.0.113.9,192.0.2.1 method=GET uri="/x?y=1" proto=HTTP/1.1 status=201 bytes=4`},
		{name: "access log, combined format", cfg: func(c *Config) { c.AccessLog, c.AccessLogFormat = true, "combined" },
			target: "/x", status: 201, wantLog: `192.0.2.1 - - [`},
		{name: "slow requests logged", cfg: func(c *Config) { c.SlowlogTimeout = time.Nanosecond }, target: "/x", status: 201,
			wantLog: "cgirun: slow request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{MaxURLLength: 8192, AccessLogFormat: "slog"}
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			var logs strings.Builder
			handled := false
			m := newMonitor(cfg, slog.New(slog.NewTextHandler(&logs, nil)), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				handled = true
				hello.ServeHTTP(w, r)
			}))
			r := httptest.NewRequest("GET", tt.target, nil)
			for k, v := range tt.header {
				r.Header[k] = v
			}
			w := httptest.NewRecorder()
			m.handler("fastcgi").ServeHTTP(w, r)
			if w.Code != tt.status || !strings.Contains(w.Body.String(), tt.body) {
				t.Errorf("GET %s = %d %q, want %d with %q", tt.target, w.Code, w.Body.String(), tt.status, tt.body)
			}
			if handled == tt.noHandle {
				t.Errorf("handler ran = %v, want %v", handled, !tt.noHandle)
			}
			if tt.wantLog == "" && logs.Len() > 0 || !strings.Contains(logs.String(), tt.wantLog) {
				t.Errorf("log = %q, want %q", logs.String(), tt.wantLog)
			}
		})
	}
}

// startServer starts a Server for cfg in the background and shuts it down
// at the end of the test.
func startServer(t *testing.T, cfg Config, h http.Handler, opts Options) *Server {
	t.Helper()
	s := NewServer(cfg, h, opts)
	served := serveInBackground(t, s)
	t.Cleanup(func() {
		if err := s.Shutdown(context.Background()); err != nil {
			t.Errorf("Shutdown = %v", err)
		}
		if err := <-served; err != ErrServerClosed {
			t.Errorf("Serve = %v, want ErrServerClosed", err)
		}
	})
	return s
}

// serveInBackground listens, then serves s in a goroutine whose result
// arrives on the channel returned.
func serveInBackground(t *testing.T, s *Server) <-chan error {
	t.Helper()
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()
	return served
}

func testConfig(t *testing.T, env map[string]string) Config {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	cfg, err := LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestServerHTTPStopFinishesInFlight: Shutdown waits for a request in flight,
// which completes; the server stops accepting at once.
func TestServerHTTPStopFinishesInFlight(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(started)
			<-release
		}
		io.WriteString(w, "done "+r.URL.Path)
	})
	cfg := testConfig(t, map[string]string{"CGIRUN_HTTP": "127.0.0.1:0", "CGIRUN_STATUS_PATH": "/status"})
	s := NewServer(cfg, h, Options{Logger: slog.New(slog.DiscardHandler)})
	served := serveInBackground(t, s)
	if s.Mode() != ModeHTTP {
		t.Fatalf("Mode = %s, want http", s.Mode())
	}
	base := "http://" + s.Addrs()[0].String()
	got := make(chan string, 1)
	go func() {
		resp, err := http.Get(base + "/slow")
		if err != nil {
			got <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- string(b)
	}()
	<-started
	resp, err := http.Get(base + "/status?json")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `"active_requests":1`) || !strings.Contains(string(b), `"mode":"http"`) {
		t.Errorf("status during a request = %s", b)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- s.Shutdown(context.Background()) }()
	close(release)
	if body := <-got; body != "done /slow" {
		t.Errorf("in-flight request got %q", body)
	}
	if err := <-stopped; err != nil {
		t.Errorf("Shutdown = %v", err)
	}
	if err := <-served; err != ErrServerClosed {
		t.Errorf("Serve = %v, want ErrServerClosed", err)
	}
	if _, err := http.Get(base + "/"); err == nil {
		t.Errorf("a request after Shutdown succeeded")
	}
}

// TestServerFastCGI: FastCGI on CGIRUN_FASTCGI, with Options.Environ and
// the status page answered before the handler.
func TestServerFastCGI(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "app.sock")
	cfg := testConfig(t, map[string]string{"CGIRUN_FASTCGI": "unix:" + sock, "CGIRUN_STATUS_PATH": "/status", "CGIRUN_SOCKET_MODE": "0600"})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		env := bridge.EnvironOf(r)
		io.WriteString(w, env.Get("APP_SITE")+" "+env.Get("SERVER_NAME"))
	})
	s := startServer(t, cfg, h, Options{
		Logger:  slog.New(slog.DiscardHandler),
		Environ: map[string]string{"APP_SITE": "blue", "SERVER_NAME": "not used: the web server sets it"},
	})
	if s.Mode() != ModeFastCGI {
		t.Fatalf("Mode = %s, want fastcgi", s.Mode())
	}
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	tests := []struct{ uri, want string }{
		{"/", "blue example.org"},
		{"/status", "requests:            1\n"},
	}
	for _, tt := range tests {
		req := gofast.NewRequest(nil)
		req.Params = map[string]string{"REQUEST_METHOD": "GET", "REQUEST_URI": tt.uri, "SERVER_PROTOCOL": "HTTP/1.1", "SERVER_NAME": "example.org"}
		client, err := gofast.SimpleClientFactory(gofast.SimpleConnFactory("unix", sock))()
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		w := httptest.NewRecorder()
		resp.WriteTo(w, io.Discard)
		client.Close()
		if !strings.Contains(w.Body.String(), tt.want) {
			t.Errorf("%s = %q, want %q", tt.uri, w.Body.String(), tt.want)
		}
	}
}

// TestServerSocketOwner: CGIRUN_SOCKET_OWNER and CGIRUN_SOCKET_GROUP give
// the socket of CGIRUN_FASTCGI, a bare path, to the web server's user and
// group, and the log says so.
func TestServerSocketOwner(t *testing.T) {
	nobody, nogroup := testenv.Nobody(t)
	clearSettings(t)
	sock := filepath.Join(t.TempDir(), "app.sock")
	cfg := testConfig(t, map[string]string{"CGIRUN_FASTCGI": sock, "CGIRUN_SOCKET_OWNER": "nobody", "CGIRUN_SOCKET_GROUP": "nogroup"})
	var logs strings.Builder
	s := NewServer(cfg, http.NotFoundHandler(), Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err := s.Listen(); err != nil {
		t.Fatalf("Listen: %v", err)
	}
	defer func() {
		for _, l := range s.lns {
			l.Close()
		}
	}()
	fi, err := os.Lstat(sock)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if got, want := fmt.Sprintf("%d:%d %04o", st.Uid, st.Gid, fi.Mode().Perm()), nobody.Uid+":"+nogroup.Gid+" 0660"; got != want {
		t.Errorf("socket %s = %s, want %s", sock, got, want)
	}
	if want := "socket=" + sock + " owner=nobody group=nogroup mode=0660"; !strings.Contains(logs.String(), want) {
		t.Errorf("log = %q, want %q", logs.String(), want)
	}
}

// TestREADMEListsEverySetting keeps the README's table of settings whole.
func TestREADMEListsEverySetting(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	var usage strings.Builder
	if err := Usage(&usage); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(usage.String(), "\n") {
		name, _, ok := strings.Cut(line, "\t")
		if !ok || !strings.HasPrefix(name, "CGIRUN_") {
			continue
		}
		n++
		if !strings.Contains(string(readme), "| `"+name+"` |") {
			t.Errorf("README.md's settings table lacks %s", name)
		}
	}
	if n < 20 {
		t.Errorf("Usage listed %d settings; the parse of its table is broken", n)
	}
}

// TestHTTPLimits crosses each limit of the plain HTTP mode.
func TestHTTPLimits(t *testing.T) {
	block := make(chan struct{})
	t.Cleanup(func() { close(block) })
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hang" {
			select {
			case <-r.Context().Done():
			case <-block:
			}
			return
		}
		io.WriteString(w, "ok")
	})
	tests := []struct {
		name   string
		env    map[string]string
		send   func(t *testing.T, base string) (int, string)
		status int
		body   string
	}{
		{
			name: "header block over CGIRUN_MAX_HEADER_BYTES: 431",
			env:  map[string]string{"CGIRUN_MAX_HEADER_BYTES": "1024"},
			send: func(t *testing.T, base string) (int, string) {
				req, _ := http.NewRequest("GET", base+"/", nil)
				req.Header.Set("X-Big", strings.Repeat("b", 8<<10))
				return send(t, req)
			},
			status: 431,
		},
		{
			name: "URI over CGIRUN_MAX_URL_LENGTH: 414",
			env:  map[string]string{"CGIRUN_MAX_URL_LENGTH": "64"},
			send: func(t *testing.T, base string) (int, string) {
				req, _ := http.NewRequest("GET", base+"/"+strings.Repeat("u", 100), nil)
				return send(t, req)
			},
			status: 414,
		},
		{
			name: "request over CGIRUN_REQUEST_TIMEOUT: 503",
			env:  map[string]string{"CGIRUN_REQUEST_TIMEOUT": "50ms"},
			send: func(t *testing.T, base string) (int, string) {
				req, _ := http.NewRequest("GET", base+"/hang", nil)
				return send(t, req)
			},
			status: 503, body: "Service Unavailable\n",
		},
		{
			name: "CGIRUN_KEEPALIVE=false closes after each response",
			env:  map[string]string{"CGIRUN_KEEPALIVE": "false"},
			send: func(t *testing.T, base string) (int, string) {
				req, _ := http.NewRequest("GET", base+"/", nil)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				if !resp.Close {
					t.Errorf("response without Connection: close")
				}
				return resp.StatusCode, string(b)
			},
			status: 200, body: "ok",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"CGIRUN_HTTP": "127.0.0.1:0"}
			for k, v := range tt.env {
				env[k] = v
			}
			s := startServer(t, testConfig(t, env), h, Options{Logger: slog.New(slog.DiscardHandler)})
			status, body := tt.send(t, "http://"+s.Addrs()[0].String())
			if status != tt.status || (tt.body != "" && body != tt.body) {
				t.Errorf("answer = %d %q, want %d %q", status, body, tt.status, tt.body)
			}
		})
	}
}

// TestHTTPMaxConns: a connection past CGIRUN_MAX_CONNS waits until one
// closes.
func TestHTTPMaxConns(t *testing.T) {
	s := startServer(t, testConfig(t, map[string]string{"CGIRUN_HTTP": "127.0.0.1:0", "CGIRUN_MAX_CONNS": "1", "CGIRUN_STATUS_PATH": "/status"}),
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }), Options{Logger: slog.New(slog.DiscardHandler)})
	addr := s.Addrs()[0].String()
	first, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(first, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(first)
	if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("first connection: %v, %v", resp, err)
	}
	second := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + addr + "/status")
		if err != nil {
			second <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		second <- string(b)
	}()
	// While the first connection is open the second waits in the
	// backlog. The window can only make this check pass wrongly on a
	// very slow machine, never fail wrongly.
	select {
	case got := <-second:
		t.Fatalf("a connection past CGIRUN_MAX_CONNS=1 was served: %q", got)
	case <-time.After(200 * time.Millisecond):
	}
	first.Close() // frees the only slot
	if got := <-second; !strings.Contains(got, "accepted conns:      2") {
		t.Errorf("second connection's status page = %q, want 2 accepted connections", got)
	}
}

func TestHTTPS(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	pool := writeSelfSigned(t, cert, key)
	s := startServer(t, testConfig(t, map[string]string{"CGIRUN_HTTP": "127.0.0.1:0", "CGIRUN_TLS_CERT": cert, "CGIRUN_TLS_KEY": key}),
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "secure "+strconv.FormatBool(r.TLS != nil))
		}),
		Options{Logger: slog.New(slog.DiscardHandler)})
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer client.CloseIdleConnections()
	resp, err := client.Get("https://" + s.Addrs()[0].String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "secure true" {
		t.Errorf("HTTPS answer = %q", b)
	}
}

// writeSelfSigned writes a certificate for 127.0.0.1 and its key, and
// returns a pool that trusts it.
func writeSelfSigned(t *testing.T, certFile, keyFile string) *x509.CertPool {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "cgirun test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool
}

func send(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestOptionsBaseContextAndJSONLogs: a request's context descends from
// Options.BaseContext, and CGIRUN_LOG_FORMAT=json writes JSON lines.
func TestOptionsBaseContextAndJSONLogs(t *testing.T) {
	type key struct{}
	base := context.WithValue(context.Background(), key{}, "from main")
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, _ := r.Context().Value(key{}).(string)
		io.WriteString(w, v)
	})
	s := startServer(t, testConfig(t, map[string]string{"CGIRUN_HTTP": "127.0.0.1:0"}), h, Options{BaseContext: base, Logger: slog.New(slog.DiscardHandler)})
	req, _ := http.NewRequest("GET", "http://"+s.Addrs()[0].String()+"/", nil)
	if _, body := send(t, req); body != "from main" {
		t.Errorf("context value = %q, want %q", body, "from main")
	}
	var logs strings.Builder
	serve.NewLogger("json", &logs).Info("hello", "k", 1)
	if !strings.HasPrefix(logs.String(), `{"time":`) || !strings.Contains(logs.String(), `"k":1`) {
		t.Errorf("json log line = %q", logs.String())
	}
}

// clearSettings unsets every CGIRUN_* variable for the rest of the test.
func clearSettings(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "CGIRUN_") {
			t.Setenv(name, "") // restored after the test
			os.Unsetenv(name)
		}
	}
}

// TestDefaultConfig: the settings Run uses for a CGI request without any
// CGIRUN_* variable are what envconfig reads from such an environment.
func TestDefaultConfig(t *testing.T) {
	clearSettings(t)
	cfg, err := LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	if want := defaultConfig(); cfg != want {
		t.Errorf("LoadConfig() with no CGIRUN_* variable = %+v, want defaultConfig() = %+v", cfg, want)
	}
}

func TestHasSettings(t *testing.T) {
	tests := []struct {
		name    string
		environ []string
		want    bool
	}{
		{"none", []string{"GATEWAY_INTERFACE=CGI/1.1", "PATH=/bin", "HTTP_CGIRUN_DEBUG=1"}, false},
		{"CGIRUN_CGI=true was read already", []string{"CGIRUN_CGI=true"}, false},
		{"CGIRUN_CGI=1 was read already", []string{"CGIRUN_CGI=1"}, false},
		{"another CGIRUN_CGI is envconfig's to read", []string{"CGIRUN_CGI=yes"}, true},
		{"a setting", []string{"PATH=/bin", "CGIRUN_DEBUG=1"}, true},
		{"an empty setting", []string{"CGIRUN_STATUS_PATH="}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := hasSettings(tt.environ); got != tt.want {
				t.Errorf("hasSettings(%q) = %v, want %v", tt.environ, got, tt.want)
			}
		})
	}
}

// TestRunCGI runs Run as a CGI program in this process (the standard
// streams swapped for files), with and without CGIRUN_* settings: without
// any, the defaults apply (the URL length bound included) and LoadConfig
// is not called; with some, they apply to the CGI request too.
func TestRunCGI(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/panic" {
			panic("cgi secret")
		}
		io.WriteString(w, "Hello, World!\n")
	})
	tests := []struct {
		name     string
		env      map[string]string
		uri      string
		status   string
		wantBody string
		wantLog  string // in stderr
	}{
		{"defaults", nil, "/cgi-bin/app/", "200 OK", "Hello, World!\n", ""},
		{"default URL bound: 414", nil, "/cgi-bin/app/?" + strings.Repeat("q", 8192), "414 Request URI Too Long", "URI Too Long", ""},
		{"CGIRUN_CGI=1 is no setting", map[string]string{"CGIRUN_CGI": "1"}, "/cgi-bin/app/", "200 OK", "Hello, World!\n", ""},
		{"CGIRUN_MAX_URL_LENGTH", map[string]string{"CGIRUN_MAX_URL_LENGTH": "16"}, "/cgi-bin/app/?0123456789", "414 Request URI Too Long", "URI Too Long", ""},
		{"CGIRUN_PING_PATH", map[string]string{"CGIRUN_PING_PATH": "/ping"}, "/cgi-bin/app/ping", "200 OK", "pong\n", ""},
		{"CGIRUN_STATUS_PATH", map[string]string{"CGIRUN_STATUS_PATH": "/status"}, "/cgi-bin/app/status", "200 OK", "max active requests: 1\n", ""},
		{"a mistyped setting is warned about", map[string]string{"CGIRUN_MAX_URL_LENGHT": "16"}, "/cgi-bin/app/", "200 OK", "Hello, World!\n",
			"CGIRUN_MAX_URL_LENGHT is not a setting; did you mean CGIRUN_MAX_URL_LENGTH?"},
		{"CGIRUN_DEBUG shows a panic", map[string]string{"CGIRUN_DEBUG": "true"}, "/cgi-bin/app/panic", "500 Internal Server Error", "cgi secret", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearSettings(t)
			path, query, _ := strings.Cut(strings.TrimPrefix(tt.uri, "/cgi-bin/app"), "?")
			env := map[string]string{"GATEWAY_INTERFACE": "CGI/1.1", "SERVER_PROTOCOL": "HTTP/1.1", "REQUEST_METHOD": "GET",
				"SERVER_NAME": "localhost", "SERVER_PORT": "80", "SCRIPT_NAME": "/cgi-bin/app", "PATH_INFO": path,
				"QUERY_STRING": query, "REQUEST_URI": tt.uri}
			for k, v := range tt.env {
				env[k] = v
			}
			for k, v := range env {
				t.Setenv(k, v)
			}
			dir := t.TempDir()
			stdin, stdout, stderr := os.Stdin, os.Stdout, os.Stderr
			t.Cleanup(func() { os.Stdin, os.Stdout, os.Stderr = stdin, stdout, stderr })
			var err error
			if os.Stdin, err = os.Open(os.DevNull); err != nil {
				t.Fatal(err)
			}
			if os.Stdout, err = os.Create(filepath.Join(dir, "stdout")); err != nil {
				t.Fatal(err)
			}
			if os.Stderr, err = os.Create(filepath.Join(dir, "stderr")); err != nil {
				t.Fatal(err)
			}
			runErr := Run(h)
			os.Stdin.Close()
			os.Stdout.Close()
			os.Stderr.Close()
			if runErr != nil {
				t.Fatalf("Run = %v", runErr)
			}
			out, err := os.ReadFile(filepath.Join(dir, "stdout"))
			if err != nil {
				t.Fatal(err)
			}
			logged, err := os.ReadFile(filepath.Join(dir, "stderr"))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(logged), tt.wantLog) {
				t.Errorf("Run logged %q, want %q in it", logged, tt.wantLog)
			}
			head, body, _ := strings.Cut(string(out), "\r\n\r\n")
			if !strings.HasPrefix(head, "Status: "+tt.status+"\r\n") || !strings.Contains(body, tt.wantBody) {
				t.Errorf("Run wrote %q, want status %q and a body holding %q", out, tt.status, tt.wantBody)
			}
		})
	}
}

// TestServerShutdownBeforeServe: a Server shut down before it listens
// never serves, as net/http.Server's Serve after Shutdown.
func TestServerShutdownBeforeServe(t *testing.T) {
	cfg := testConfig(t, map[string]string{"CGIRUN_HTTP": "127.0.0.1:0"})
	s := NewServer(cfg, http.NotFoundHandler(), Options{Logger: slog.New(slog.DiscardHandler)})
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown = %v", err)
	}
	if err := s.Serve(); err != ErrServerClosed {
		t.Errorf("Serve after Shutdown = %v, want ErrServerClosed", err)
	}
	if addrs := s.Addrs(); len(addrs) != 0 {
		t.Errorf("Addrs after Shutdown = %v, want none", addrs)
	}
}
