package cgirun

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/yookoala/gofast"

	"github.com/cgirun/cgirun/internal/serve"
	"github.com/cgirun/cgirun/internal/testlog"
)

// waitLimit bounds a wait for something that should happen at once.
const waitLimit = 10 * time.Second

// gatewayParams are the CGI variables of the raw requests below.
func gatewayParams(uri string) [][2]string {
	return [][2]string{{"CONTENT_LENGTH", "0"}, {"REQUEST_METHOD", "GET"}, {"REQUEST_URI", uri}, {"SCRIPT_NAME", ""},
		{"PATH_INFO", strings.SplitN(uri, "?", 2)[0]}, {"QUERY_STRING", ""}, {"SERVER_PROTOCOL", "HTTP/1.1"}, {"SERVER_NAME", "example.org"},
		{"SERVER_PORT", "80"}, {"REMOTE_ADDR", "127.0.0.1"}, {"GATEWAY_INTERFACE", "CGI/1.1"}}
}

// scgiRequest is an SCGI request for uri: the netstring of its header
// pairs, CONTENT_LENGTH first and SCGI=1, and no body.
func scgiRequest(uri string) []byte {
	var h []byte
	params := gatewayParams(uri)
	params = slices.Insert(params, 1, [2]string{"SCGI", "1"})
	for _, kv := range params {
		h = append(append(append(append(h, kv[0]...), 0), kv[1]...), 0)
	}
	return append(append(fmt.Appendf(nil, "%d:", len(h)), h...), ',')
}

// uwsgiRequest is a uwsgi request for uri: the packet header (modifier1
// 0), the little-endian length-prefixed pairs, and no body.
func uwsgiRequest(uri string) []byte {
	var pairs []byte
	for _, kv := range gatewayParams(uri) {
		pairs = binary.LittleEndian.AppendUint16(pairs, uint16(len(kv[0])))
		pairs = append(pairs, kv[0]...)
		pairs = binary.LittleEndian.AppendUint16(pairs, uint16(len(kv[1])))
		pairs = append(pairs, kv[1]...)
	}
	h := binary.LittleEndian.AppendUint16([]byte{0}, uint16(len(pairs)))
	return append(append(h, 0), pairs...)
}

// rawAsk sends req on a new connection to network, address and returns
// the whole answer, read until the server closes the connection.
func rawAsk(t *testing.T, network, address string, req []byte) string {
	t.Helper()
	c, err := net.Dial(network, address)
	if err != nil {
		t.Error(err)
		return ""
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.Write(req); err != nil {
		t.Error(err)
		return ""
	}
	b, err := io.ReadAll(c)
	if err != nil {
		t.Errorf("reading the answer: %v", err)
	}
	return string(b)
}

// fcgiAsk sends a FastCGI request for uri with gofast and returns the
// body of the answer.
func fcgiAsk(t *testing.T, network, address, uri string) string {
	t.Helper()
	req := gofast.NewRequest(nil)
	req.Params = map[string]string{}
	for _, kv := range gatewayParams(uri) {
		req.Params[kv[0]] = kv[1]
	}
	client, err := gofast.SimpleClientFactory(gofast.SimpleConnFactory(network, address))()
	if err != nil {
		t.Error(err)
		return ""
	}
	defer client.Close()
	resp, err := client.Do(req)
	if err != nil {
		t.Error(err)
		return ""
	}
	w := httptest.NewRecorder()
	resp.WriteTo(w, io.Discard)
	return w.Body.String()
}

// httpAsk sends an HTTP GET for uri and returns the body of the answer.
func httpAsk(t *testing.T, address, uri string) string {
	t.Helper()
	resp, err := http.Get("http://" + address + uri)
	if err != nil {
		t.Error(err)
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// echoURI answers with the request's URI.
var echoURI = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	io.WriteString(w, "uri="+r.RequestURI)
})

// TestServerSCGIAndUWSGI: CGIRUN_SCGI and CGIRUN_UWSGI serve their
// protocol on their address, alone or beside CGIRUN_FASTCGI, each socket
// logged with its protocol.
func TestServerSCGIAndUWSGI(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name      string
		env       map[string]string
		wantMode  Mode
		wantModes []Mode
	}{
		{"scgi", map[string]string{"CGIRUN_SCGI": "unix:" + filepath.Join(dir, "scgi.sock")}, ModeSCGI, []Mode{ModeSCGI}},
		{"uwsgi", map[string]string{"CGIRUN_UWSGI": "tcp:127.0.0.1:0"}, ModeUWSGI, []Mode{ModeUWSGI}},
		{"all three", map[string]string{"CGIRUN_FASTCGI": filepath.Join(dir, "f.sock"), "CGIRUN_SCGI": "tcp:127.0.0.1:0", "CGIRUN_UWSGI": "unix:" + filepath.Join(dir, "u.sock")},
			"fastcgi+scgi+uwsgi", []Mode{ModeFastCGI, ModeSCGI, ModeUWSGI}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearSettings(t)
			cfg := testConfig(t, tt.env)
			logs := new(testlog.Buffer)
			s := NewServer(cfg, echoURI, Options{Logger: slog.New(slog.NewTextHandler(logs, nil))})
			if err := s.Listen(); err != nil {
				t.Fatal(err)
			}
			if s.Mode() != tt.wantMode || !slices.Equal(s.Modes(), tt.wantModes) {
				t.Errorf("Mode, Modes = %q, %q; want %q, %q", s.Mode(), s.Modes(), tt.wantMode, tt.wantModes)
			}
			served := make(chan error, 1)
			go func() { served <- s.Serve() }()
			defer func() {
				s.Shutdown(context.Background())
				if err := <-served; err != ErrServerClosed {
					t.Errorf("Serve = %v, want ErrServerClosed", err)
				}
			}()
			for i, a := range s.Addrs() {
				var got, want string
				switch s.protos[i] {
				case serve.FastCGI:
					got, want = fcgiAsk(t, a.Network(), a.String(), "/f?x"), "uri=/f?x"
				case serve.SCGI:
					got, want = rawAsk(t, a.Network(), a.String(), scgiRequest("/s?x")), "uri=/s?x"
				case serve.UWSGI:
					got, want = rawAsk(t, a.Network(), a.String(), uwsgiRequest("/u?x")), "uri=/u?x"
				}
				if !strings.Contains(got, want) || (s.protos[i] != serve.FastCGI && !strings.Contains(got, "200")) {
					t.Errorf("%s socket %v answered %q, want a 200 with %q", s.protos[i], a, got, want)
				}
			}
			for _, m := range tt.wantModes {
				name := map[Mode]string{ModeFastCGI: "FastCGI", ModeSCGI: "SCGI", ModeUWSGI: "uwsgi"}[m]
				if _, ok := logs.Wait(`msg="cgirun: serving `+name+`" on=`, waitLimit); !ok {
					t.Errorf("no line for serving %s; log:\n%s", name, logs)
				}
			}
		})
	}
}

// TestServerListen: one CGIRUN_LISTEN socket answers FastCGI, SCGI, uwsgi
// and HTTP, in turn and at once; the status page counts the requests of
// every protocol and gives the mode "listen".
func TestServerListen(t *testing.T) {
	for _, network := range []string{"unix", "tcp"} {
		t.Run(network, func(t *testing.T) {
			clearSettings(t)
			addr := "tcp:127.0.0.1:0"
			if network == "unix" {
				addr = "unix:" + filepath.Join(t.TempDir(), "all.sock")
			}
			cfg := testConfig(t, map[string]string{"CGIRUN_LISTEN": addr, "CGIRUN_STATUS_PATH": "/status"})
			logs := new(testlog.Buffer)
			s := startServer(t, cfg, echoURI, Options{Logger: slog.New(slog.NewTextHandler(logs, nil))})
			if s.Mode() != ModeListen {
				t.Fatalf("Mode = %q, want listen", s.Mode())
			}
			a := s.Addrs()[0]
			ask := []func(uri string) string{
				func(uri string) string { return fcgiAsk(t, a.Network(), a.String(), uri) },
				func(uri string) string { return rawAsk(t, a.Network(), a.String(), scgiRequest(uri)) },
				func(uri string) string { return rawAsk(t, a.Network(), a.String(), uwsgiRequest(uri)) },
			}
			if network == "tcp" {
				ask = append(ask, func(uri string) string { return httpAsk(t, a.String(), uri) })
			}
			for i, f := range ask {
				uri := fmt.Sprintf("/turn/%d", i)
				if got := f(uri); !strings.Contains(got, "uri="+uri) {
					t.Errorf("protocol %d answered %q, want uri=%s", i, got, uri)
				}
			}
			var wg sync.WaitGroup
			for round := range 5 {
				for i, f := range ask {
					wg.Go(func() {
						uri := fmt.Sprintf("/together/%d/%d", i, round)
						if got := f(uri); !strings.Contains(got, "uri="+uri) {
							t.Errorf("protocol %d answered %q at once with the others, want uri=%s", i, got, uri)
						}
					})
				}
			}
			wg.Wait()
			page := fcgiAsk(t, a.Network(), a.String(), "/status")
			want := fmt.Sprintf("requests:            %d\n", 6*len(ask))
			if !strings.Contains(page, "mode:                listen\n") || !strings.Contains(page, want) {
				t.Errorf("status page:\n%s\nwant mode listen and %q", page, want)
			}
			// Every gateway request had a connection of its own, the
			// page's too; HTTP's may have shared one.
			var accepted int
			for line := range strings.Lines(page) {
				fmt.Sscanf(line, "accepted conns: %d", &accepted)
			}
			if min := 6*3 + 1 + (len(ask) - 3); accepted < min {
				t.Errorf("accepted conns = %d, want at least %d: every protocol's connections\n%s", accepted, min, page)
			}
			if _, ok := logs.Wait(`msg="cgirun: serving FastCGI, SCGI, uwsgi and HTTP" on=`, waitLimit); !ok {
				t.Errorf("no serving line; log:\n%s", logs)
			}
		})
	}
}

// TestServerListenShutdown: Shutdown waits for a request in flight on
// each protocol of a CGIRUN_LISTEN socket, and each gets its whole answer.
func TestServerListenShutdown(t *testing.T) {
	clearSettings(t)
	cfg := testConfig(t, map[string]string{"CGIRUN_LISTEN": "tcp:127.0.0.1:0"})
	started, release := make(chan string, 4), make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- r.RequestURI
		<-release
		io.WriteString(w, "done "+r.RequestURI)
	})
	s := NewServer(cfg, h, Options{Logger: slog.New(slog.DiscardHandler)})
	served := serveInBackground(t, s)
	a := s.Addrs()[0]
	answers := make(chan string, 4)
	go func() { answers <- fcgiAsk(t, "tcp", a.String(), "/fastcgi") }()
	go func() { answers <- rawAsk(t, "tcp", a.String(), scgiRequest("/scgi")) }()
	go func() { answers <- rawAsk(t, "tcp", a.String(), uwsgiRequest("/uwsgi")) }()
	go func() { answers <- httpAsk(t, a.String(), "/http") }()
	for range 4 {
		<-started
	}
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	// The socket stops accepting at once.
	deadline := time.Now().Add(waitLimit)
	for {
		c, err := net.Dial("tcp", a.String())
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("the socket still accepts after Shutdown")
		}
		runtime.Gosched()
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown = %v with four requests in flight", err)
	default:
	}
	close(release)
	var got []string
	for range 4 {
		got = append(got, <-answers)
	}
	for _, uri := range []string{"/fastcgi", "/scgi", "/uwsgi", "/http"} {
		if !slices.ContainsFunc(got, func(s string) bool { return strings.Contains(s, "done "+uri+"") }) {
			t.Errorf("no whole answer for %s among %q", uri, got)
		}
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown = %v", err)
	}
	if err := <-served; err != ErrServerClosed {
		t.Errorf("Serve = %v, want ErrServerClosed", err)
	}
}

// TestUsageListsGateways: --help lists the new settings.
func TestUsageListsGateways(t *testing.T) {
	var b strings.Builder
	if err := Usage(&b); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"CGIRUN_SCGI", "CGIRUN_UWSGI", "CGIRUN_LISTEN"} {
		if !strings.Contains(b.String(), name) {
			t.Errorf("Usage lacks %s:\n%s", name, b.String())
		}
	}
}

// TestUpgradeKnowsEachSocketsProtocol: the sockets an upgrade passes on,
// in any order, serve in the new process the protocol whose setting names
// their address, which the new process reads from the same environment.
func TestUpgradeKnowsEachSocketsProtocol(t *testing.T) {
	dir := upgradeSetenv(t, "serve")
	sock := filepath.Join(dir, "scgi.sock")
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
	t.Setenv("CGIRUN_SCGI", "unix:"+sock)
	t.Setenv("CGIRUN_LISTEN", "tcp:"+lt.Addr().String())
	pid := upgradeTo(t, lt, lu)
	lu.Close()
	lt.Close()
	want := fmt.Sprintf("child %d", pid)
	answers := map[string]string{
		"SCGI on the unix socket":    rawAsk(t, "unix", sock, scgiRequest("/")),
		"uwsgi on the listen socket": rawAsk(t, "tcp", lt.Addr().String(), uwsgiRequest("/")),
		"HTTP on the listen socket":  httpAsk(t, lt.Addr().String(), "/"),
	}
	for what, got := range answers {
		if !strings.Contains(got, want) {
			logs, _ := os.ReadFile(filepath.Join(dir, "child.log"))
			t.Errorf("%s after the upgrade = %q, want %q; the new process's log:\n%s", what, got, want, logs)
		}
	}
}

// TestServerListenWebServerAddrs: FCGI_WEB_SERVER_ADDRS holds for HTTP on
// a CGIRUN_LISTEN socket as for the gateway protocols: a peer not listed
// gets no answer, and a bad list is an error naming the variable.
func TestServerListenWebServerAddrs(t *testing.T) {
	for _, tt := range []struct {
		addrs  string
		served bool
	}{{"10.9.9.9", false}, {"10.9.9.9, 127.0.0.1", true}} {
		t.Run(tt.addrs, func(t *testing.T) {
			clearSettings(t)
			t.Setenv("FCGI_WEB_SERVER_ADDRS", tt.addrs)
			cfg := testConfig(t, map[string]string{"CGIRUN_LISTEN": "tcp:127.0.0.1:0"})
			logs := new(testlog.Buffer)
			s := startServer(t, cfg, echoURI, Options{Logger: slog.New(slog.NewTextHandler(logs, nil))})
			a := s.Addrs()[0].String()
			resp, err := http.Get("http://" + a + "/x")
			if err == nil {
				resp.Body.Close()
			}
			if served := err == nil && resp.StatusCode == 200; served != tt.served {
				t.Errorf("GET with FCGI_WEB_SERVER_ADDRS=%s: %v, %v; want served %v", tt.addrs, resp, err, tt.served)
			}
			if !tt.served {
				if _, ok := logs.Wait("peer not in FCGI_WEB_SERVER_ADDRS", waitLimit); !ok {
					t.Errorf("no refusal in the log:\n%s", logs)
				}
			}
		})
	}
	t.Run("bad list", func(t *testing.T) {
		clearSettings(t)
		t.Setenv("FCGI_WEB_SERVER_ADDRS", "nginx")
		cfg := testConfig(t, map[string]string{"CGIRUN_LISTEN": "tcp:127.0.0.1:0"})
		err := NewServer(cfg, echoURI, Options{Logger: slog.New(slog.DiscardHandler)}).Listen()
		if err == nil || !strings.Contains(err.Error(), `cgirun: FCGI_WEB_SERVER_ADDRS: "nginx" is not an IP address: want addresses such as 127.0.0.1,10.0.0.2`) {
			t.Errorf("Listen = %v, want an error naming FCGI_WEB_SERVER_ADDRS", err)
		}
	})
}

// TestHandedSocketOfNoSetting: a socket the process is handed that is
// bound to none of several gateway settings' addresses serves FastCGI,
// and the log says so, with what to do.
func TestHandedSocketOfNoSetting(t *testing.T) {
	dir := upgradeSetenv(t, "serve")
	lt, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lt.Close()
	t.Setenv("CGIRUN_SCGI", "unix:"+filepath.Join(dir, "scgi.sock"))
	t.Setenv("CGIRUN_UWSGI", "unix:"+filepath.Join(dir, "uwsgi.sock"))
	upgradeTo(t, lt)
	logs, _ := os.ReadFile(filepath.Join(dir, "child.log"))
	want := "a socket the process was handed is bound to none of the gateway settings' addresses: it serves FastCGI"
	if !strings.Contains(string(logs), want) || !strings.Contains(string(logs), lt.Addr().String()) {
		t.Errorf("the new process's log does not say %q about %s:\n%s", want, lt.Addr(), logs)
	}
	if !strings.Contains(string(logs), "serving FastCGI") {
		t.Errorf("the new process's log does not say it serves FastCGI:\n%s", logs)
	}
}

// TestServerListenTLS: with CGIRUN_TLS_CERT, a CGIRUN_LISTEN socket
// answers HTTPS, and FastCGI beside it; plain HTTP there gets net/http's
// 400 for an HTTP request to an HTTPS server, never the handler's answer.
func TestServerListenTLS(t *testing.T) {
	clearSettings(t)
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	pool := writeSelfSigned(t, cert, key)
	cfg := testConfig(t, map[string]string{"CGIRUN_LISTEN": "tcp:127.0.0.1:0", "CGIRUN_TLS_CERT": cert, "CGIRUN_TLS_KEY": key})
	s := startServer(t, cfg, echoURI, Options{Logger: slog.New(slog.DiscardHandler)})
	a := s.Addrs()[0]
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := client.Get("https://" + a.String() + "/secure")
	if err != nil {
		t.Fatalf("HTTPS GET on the CGIRUN_LISTEN socket: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(b) != "uri=/secure" {
		t.Errorf("HTTPS GET /secure = %d %q, want 200 %q", resp.StatusCode, b, "uri=/secure")
	}
	if got := fcgiAsk(t, a.Network(), a.String(), "/fcgi"); !strings.Contains(got, "uri=/fcgi") {
		t.Errorf("FastCGI beside HTTPS answered %q, want uri=/fcgi", got)
	}
	got := rawAsk(t, a.Network(), a.String(), []byte("GET /plain HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
	if !strings.HasPrefix(got, "HTTP/1.0 400 Bad Request") || !strings.Contains(got, "HTTPS server") || strings.Contains(got, "uri=/plain") {
		t.Errorf("plain HTTP on a socket serving HTTPS answered %q, want net/http's 400 for an HTTP request to an HTTPS server", got)
	}
}
