//go:build linux

package integration

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Tests of the FastCGI server behind Apache's three FastCGI modules, each
// configured by its snippet in examples/deploy, included as it is.

// apacheAppStopBound is how long a testapp may take to exit after SIGTERM
// when no request is in flight. It is below the CGIRUN_SHUTDOWN_GRACE the
// tests give it, so a Shutdown that waits for idle kept-alive connections
// instead of closing them fails the test.
const (
	apacheAppStopBound = 3 * time.Second
	apacheAppGrace     = "5s"
)

// apacheInclude returns the Include line of examples/deploy/name.
func apacheInclude(t *testing.T, name string) string {
	t.Helper()
	return "Include " + filepath.Join(moduleRoot(t), "examples", "deploy", name) + "\n"
}

// apacheTestappBin builds integration/testapp into a directory that
// Apache's workers (www-data) can read and returns its path.
func apacheTestappBin(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(sharedTempDir(t), "testapp")
	buildExample(t, "./integration/testapp", bin)
	return bin
}

// apacheBackend is a testapp serving FastCGI on its own (cgirun.Run with
// CGIRUN_FASTCGI), as mod_proxy_fcgi and mod_authnz_fcgi need.
type apacheBackend struct {
	*process
	addr    string // as in CGIRUN_FASTCGI
	stopped bool
}

// startApacheBackend starts bin with CGIRUN_FASTCGI=unix:socket, or on a
// free port of 127.0.0.1 when socket is "", and waits until it accepts. Its
// cleanup, which runs before the harness's, sends SIGTERM and checks that
// it exits 0 within apacheAppStopBound.
func startApacheBackend(t *testing.T, name, bin, socket string) *apacheBackend {
	t.Helper()
	output := filepath.Join(t.TempDir(), name+".log")
	var lastErr error
	for range startAttempts {
		var addr string
		var ready func() error
		if socket != "" {
			checkSocketPath(t, socket)
			addr, ready = "unix:"+socket, dialUnix(socket)
		} else {
			hostPort := "127.0.0.1:" + strconv.Itoa(freePort(t))
			addr, ready = "tcp:"+hostPort, dialTCP(hostPort)
		}
		env := []string{serverPath, "LANG=C", "CGIRUN_FASTCGI=" + addr,
			// Apache's workers run as www-data.
			"CGIRUN_SOCKET_MODE=0666",
			"CGIRUN_SHUTDOWN_GRACE=" + apacheAppGrace}
		p := startProcess(t, name, []string{bin}, env, output, false)
		b := &apacheBackend{process: p, addr: addr}
		if lastErr = p.waitReady(ready); lastErr == nil {
			t.Cleanup(func() { b.stop(t) })
			return b
		}
		if socket != "" || !strings.Contains(p.Output(), "address already in use") {
			t.Fatalf("%v\n--- %s output ---\n%s", lastErr, name, p.Output())
		}
		p.stop(t, false)
		truncate(t, output)
	}
	t.Fatalf("%s: %v (port taken %d times)", name, lastErr, startAttempts)
	return nil
}

// stop sends SIGTERM and checks that the backend exits 0 in time; the
// harness's own cleanup then finds it gone.
func (b *apacheBackend) stop(t *testing.T) {
	t.Helper()
	if b.stopped {
		return
	}
	b.stopped = true
	start := time.Now()
	b.process.stop(t, false)
	elapsed := time.Since(start)
	if b.waitErr != nil {
		t.Errorf("%s (%s) after SIGTERM: %v, want exit status 0\n--- output ---\n%s", b.name, b.addr, b.waitErr, b.Output())
	}
	if elapsed > apacheAppStopBound {
		t.Errorf("%s (%s) took %v to exit after SIGTERM, want at most %v\n--- output ---\n%s", b.name, b.addr, elapsed, apacheAppStopBound, b.Output())
	}
	t.Logf("%s (%s) exited %v after SIGTERM", b.name, b.addr, elapsed.Round(time.Millisecond))
}

// apacheLogsOnFailure logs Apache's error log and the backends' output at
// the end of t if it failed.
func apacheLogsOnFailure(t *testing.T, srv *apacheServer, backends ...*apacheBackend) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		var b strings.Builder
		b.WriteString(srv.ErrorLog())
		for _, p := range backends {
			fmt.Fprintf(&b, "--- %s output ---\n%s\n", p.name, p.Output())
		}
		t.Log(b.String())
	})
}

// apacheCase is one request through Apache and what must come back. For
// wantEnv the response is /env's NAME=value lines.
type apacheCase struct {
	name     string
	method   string
	path     string
	header   http.Header
	body     []byte
	chunked  bool // send the body without Content-Length
	user     string
	status   int
	wantBody string
	wantIn   string // instead of wantBody: a page of Apache's own holds it
	wantHead http.Header
	wantEnv  map[string]envWant
}

func (tc apacheCase) run(t *testing.T, srv *apacheServer) {
	t.Helper()
	method := tc.method
	if method == "" {
		method = http.MethodGet
	}
	req, err := http.NewRequestWithContext(t.Context(), method, srv.URL(tc.path), bytes.NewReader(tc.body))
	if err != nil {
		t.Fatal(err)
	}
	if tc.chunked {
		req.ContentLength = -1
	}
	for k, v := range tc.header {
		req.Header[k] = v
	}
	if tc.user != "" {
		req.SetBasicAuth(tc.user, "secret")
	}
	resp, body := do(t, req)
	if resp.StatusCode != tc.status {
		t.Errorf("%s %q = %d %q, want %d", method, tc.path, resp.StatusCode, body, tc.status)
	}
	switch {
	case tc.wantEnv != nil:
	case tc.wantIn != "":
		if !bytes.Contains(body, []byte(tc.wantIn)) {
			t.Errorf("%s %q = %q, want it to hold %q", method, tc.path, body, tc.wantIn)
		}
	case string(body) != tc.wantBody:
		t.Errorf("%s %q = %q, want %q", method, tc.path, body, tc.wantBody)
	}
	for k, v := range tc.wantHead {
		if got := resp.Header.Values(k); strings.Join(got, "\n") != strings.Join(v, "\n") {
			t.Errorf("%s %q: header %s = %q, want %q", method, tc.path, k, got, v)
		}
	}
	if tc.wantEnv != nil {
		env := parseEnv(body)
		checkEnv(t, env, tc.wantEnv)
		if t.Failed() {
			t.Logf("the application received:\n%s", formatEnv(env))
		}
	}
}

// apacheUploadBody returns 1 MiB of every byte value and the answer /upload
// must give for it.
func apacheUploadBody() ([]byte, string) {
	b := make([]byte, 1<<20)
	if _, err := rand.NewChaCha8([32]byte{'c', 'g', 'i', 'r', 'u', 'n'}).Read(b); err != nil {
		panic(err) // ChaCha8.Read never fails
	}
	return b, fmt.Sprintf("%d %x", len(b), sha256.Sum256(b))
}

// apacheSocketCount counts the sockets process pid holds open: its
// listener and its connections.
func apacheSocketCount(pid int) (int, error) {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && strings.HasPrefix(l, "socket:") {
			n++
		}
	}
	return n, nil
}

// apachePoll calls cond until it reports true or timeout passes, with a
// backoff from 1ms to pollMax, and returns cond's last answer. Nothing
// tells a test what other processes do with their descriptors or when
// they exit: it must look, within a bound.
func apachePoll(timeout time.Duration, cond func() (bool, string)) (bool, string) {
	deadline := time.Now().Add(timeout)
	backoff := time.Millisecond
	for {
		ok, state := cond()
		if ok || time.Now().After(deadline) {
			return ok, state
		}
		timer := time.NewTimer(backoff)
		<-timer.C
		backoff = min(2*backoff, pollMax)
	}
}

// TestApacheProxyFCGI runs the test application as a FastCGI server on a
// unix socket behind mod_proxy_fcgi (examples/deploy/apache-proxy-fcgi.conf),
// with kept connections (enablereuse=on) and with one connection per
// request.
func TestApacheProxyFCGI(t *testing.T) {
	bin := apacheTestappBin(t)
	upload, uploadAnswer := apacheUploadBody()
	rows := []struct {
		name    string
		defines map[string]string
		// kept reports whether Apache keeps connections to the application
		// open between requests (FCGI_KEEP_CONN).
		kept bool
	}{
		{name: "enablereuse=on", defines: map[string]string{}, kept: true},
		{name: "one connection per request", defines: map[string]string{"CGIRUN_NO_REUSE": "1"}, kept: false},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			socket := filepath.Join(sharedTempDir(t), "app.sock")
			app := startApacheBackend(t, "testapp", bin, socket)
			row.defines["CGIRUN_SOCKET"] = socket
			srv := startApache(t, apacheConfig{
				Modules: []string{"proxy", "proxy_fcgi", "setenvif"},
				Defines: row.defines,
				Config:  apacheInclude(t, "apache-proxy-fcgi.conf"),
			})
			apacheLogsOnFailure(t, srv, app)

			tests := []apacheCase{
				{name: "hello", path: "/app/", status: 200, wantBody: "Hello, World!\n",
					wantHead: http.Header{"Content-Type": {"text/plain; charset=utf-8"}}},
				// ProxyPass is on "/app/": /app is not proxied but looked up
				// in the DocumentRoot, which this configuration denies.
				{name: "prefix without its slash", path: "/app", status: 403, wantIn: "<title>403 Forbidden</title>"},
				{name: "404 from the handler", path: "/app/missing", status: 404, wantBody: "404 page not found\n"},
				// proxy-fcgi-pathinfo=unescape: PATH_INFO is the path below
				// /app, percent-decoded by Apache, so the bytes %E9 %FF %FE
				// arrive raw; QUERY_STRING and the header arrive as the
				// client sent them, raw byte 0xE9 included.
				{name: "non-UTF-8 path, query and header, both ways", path: "/app/echo/caf%E9/%FF%FE?q=%E9&r=\xe9",
					header: http.Header{"X-Raw": {"caf\xe9\xff"}},
					status: 200, wantBody: "GET|/echo/caf\xe9/\xff\xfe|q=%E9&r=\xe9|caf\xe9\xff|",
					wantHead: http.Header{"X-Echo-Raw": {"caf\xe9\xff"}}},
				{name: "POST a form", method: "POST", path: "/app/echo/form?a=1", body: []byte("name=value&x=y"),
					header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}},
					status: 200, wantBody: "POST|/echo/form|a=1||name=value&x=y"},
				{name: "POST 1 MiB", method: "POST", path: "/app/upload", body: upload, status: 200, wantBody: uploadAnswer},
				// Since 2.4.47 Apache streams a chunked body with no
				// CONTENT_LENGTH; the handler reads it to its end.
				{name: "POST 1 MiB chunked", method: "POST", path: "/app/upload", body: upload, chunked: true, status: 200, wantBody: uploadAnswer},
				{name: "what a GET sends", path: "/app/env?x=1&y=%E9", header: http.Header{"Authorization": {"Basic YWxpY2U6c2VjcmV0"}, "Proxy": {"http://evil.example"}},
					status: 200, wantEnv: map[string]envWant{
						"SCRIPT_NAME":         {value: "/app"},
						"PATH_INFO":           {value: "/env"},
						"REQUEST_URI":         {value: "/app/env?x=1&y=%E9"},
						"QUERY_STRING":        {value: "x=1&y=%E9"},
						"REQUEST_METHOD":      {value: "GET"},
						"SERVER_PROTOCOL":     {value: "HTTP/1.1"},
						"GATEWAY_INTERFACE":   {value: "CGI/1.1"},
						"SCRIPT_FILENAME":     {value: "/env"}, // ProxyFCGIBackendType GENERIC
						"proxy-fcgi-pathinfo": {value: "unescape"},
						"CONTENT_LENGTH":      {absent: true},
						"CONTENT_TYPE":        {absent: true},
						"HTTP_AUTHORIZATION":  {absent: true}, // no CGIPassAuth
						"HTTP_PROXY":          {absent: true}, // httpoxy
						"FCGI_ROLE":           {absent: true},
						"REMOTE_ADDR":         {value: "127.0.0.1"},
					}},
				// /env does not read the body: the server must skip it.
				{name: "what a POST sends", method: "POST", path: "/app/env", body: upload,
					header: http.Header{"Content-Type": {"application/octet-stream"}},
					status: 200, wantEnv: map[string]envWant{
						"CONTENT_LENGTH":         {value: "1048576"},
						"CONTENT_TYPE":           {value: "application/octet-stream"},
						"HTTP_TRANSFER_ENCODING": {absent: true},
					}},
				// Apache reads up to 16 KiB of a chunked body before it
				// talks to the application: a body that ends within them
				// gets a CONTENT_LENGTH, a longer one is streamed without.
				{name: "what a long chunked POST sends", method: "POST", path: "/app/env", body: upload, chunked: true,
					status: 200, wantEnv: map[string]envWant{
						"CONTENT_LENGTH":         {absent: true},
						"HTTP_TRANSFER_ENCODING": {value: "chunked"},
					}},
			}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) { tc.run(t, srv) })
			}

			t.Run("10 sequential requests", func(t *testing.T) {
				start := time.Now()
				for i := range 10 {
					apacheCase{path: fmt.Sprintf("/app/echo/seq?i=%d", i), status: 200,
						wantBody: fmt.Sprintf("GET|/echo/seq|i=%d||", i)}.run(t, srv)
				}
				t.Logf("10 requests in %v", time.Since(start).Round(time.Microsecond))
			})

			// With enablereuse=on Apache keeps its connections to the
			// application open; without, every connection is closed at the
			// end of its request, so only the listener remains.
			t.Run("kept connections", func(t *testing.T) {
				pid := app.cmd.Process.Pid
				ok, state := apachePoll(strayTimeout, func() (bool, string) {
					n, err := apacheSocketCount(pid)
					if err != nil {
						return false, err.Error()
					}
					if row.kept {
						return n >= 2, fmt.Sprintf("%d sockets", n)
					}
					return n == 1, fmt.Sprintf("%d sockets", n)
				})
				want := "the listener alone"
				if row.kept {
					want = "the listener and at least one kept connection"
				}
				if !ok {
					t.Errorf("testapp holds %s after the requests, want %s", state, want)
				}
			})

			// SIGTERM while Apache may hold idle connections: the
			// application exits 0 at once (its cleanup checks), and Apache
			// then answers 503.
			t.Run("application stopped", func(t *testing.T) {
				app.stop(t)
				apacheCase{path: "/app/", status: 503,
					wantIn: "<title>503 Service Unavailable</title>"}.run(t, srv)
			})
		})
	}
}

// apacheProc is a process found in /proc.
type apacheProc struct {
	pid, pgrp int
	cmdline   string
	environ   []string
}

// apacheProcsUnder lists the live processes whose command line mentions dir.
func apacheProcsUnder(dir string) []apacheProc {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []apacheProc
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		p := filepath.Join("/proc", e.Name())
		cmd, err := os.ReadFile(filepath.Join(p, "cmdline"))
		if err != nil || !bytes.Contains(cmd, []byte(dir)) {
			continue
		}
		stat, err := os.ReadFile(filepath.Join(p, "stat"))
		if err != nil {
			continue
		}
		f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(f) < 3 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		info := apacheProc{pid: pid, cmdline: strings.ReplaceAll(strings.TrimSuffix(string(cmd), "\x00"), "\x00", " ")}
		info.pgrp, _ = strconv.Atoi(f[2])
		if env, err := os.ReadFile(filepath.Join(p, "environ")); err == nil {
			info.environ = strings.Split(strings.TrimSuffix(string(env), "\x00"), "\x00")
		}
		out = append(out, info)
	}
	return out
}

// fcgidExitLine matches mod_fcgid's log line for a process that ended.
var fcgidExitLine = regexp.MustCompile(`mod_fcgid: process (\S+)\((\d+)\) exit\(([^)]*)\), ([^\n]*)`)

// TestApacheFcgid lets mod_fcgid start the test application itself, with
// its listening socket on fd 0 (examples/deploy/apache-fcgid.conf).
func TestApacheFcgid(t *testing.T) {
	dir := filepath.Join(sharedTempDir(t), "fcgi")
	mkdirs(t, dir)
	buildExample(t, "./integration/testapp", filepath.Join(dir, "testapp"))

	var srv *apacheServer
	// Registered before startApache, so it runs once Apache has stopped.
	t.Cleanup(func() {
		ok, state := apachePoll(strayTimeout, func() (bool, string) {
			left := apacheProcsUnder(dir)
			return len(left) == 0, fmt.Sprint(left)
		})
		if !ok {
			t.Errorf("after Apache stopped, processes started from %s remain: %s; killing them", dir, state)
			for _, p := range apacheProcsUnder(dir) {
				_ = syscall.Kill(p.pid, syscall.SIGKILL)
			}
		}
		if srv == nil {
			return
		}
		log := srv.ErrorLog()
		exits := fcgidExitLine.FindAllStringSubmatch(log, -1)
		if len(exits) == 0 {
			t.Errorf("mod_fcgid logged no process exit\n%s", log)
		}
		for _, m := range exits {
			if m[3] != "shutting down" || m[4] != "terminated by calling exit(), return code: 0" {
				t.Errorf("mod_fcgid: %s(%s) exit(%s), %s; want exit(shutting down), return code 0\n%s", m[1], m[2], m[3], m[4], log)
			}
		}
	})
	srv = startApache(t, apacheConfig{
		Modules: []string{"alias", "fcgid"},
		Defines: map[string]string{"CGIRUN_APP_DIR": dir},
		Config:  apacheInclude(t, "apache-fcgid.conf"),
	})
	apacheLogsOnFailure(t, srv)
	upload, _ := apacheUploadBody()

	tests := []apacheCase{
		{name: "hello", path: "/fcgi/testapp/", status: 200, wantBody: "Hello, World!\n",
			wantHead: http.Header{"Content-Type": {"text/plain; charset=utf-8"}}},
		// Without a trailing slash Apache sends no PATH_INFO, and bridge
		// then takes the path of REQUEST_URI, /fcgi/testapp: the handler
		// answers 404 where the same program in a cgi-bin (a CGI script,
		// for which no PATH_INFO means "/") says hello.
		{name: "no trailing slash", path: "/fcgi/testapp", status: 404, wantBody: "404 page not found\n"},
		// Apache decodes PATH_INFO; the query and the header arrive raw.
		{name: "non-UTF-8 path, query and header, both ways", path: "/fcgi/testapp/echo/caf%E9/%FF%FE?q=%E9&r=\xe9",
			header: http.Header{"X-Raw": {"caf\xe9\xff"}},
			status: 200, wantBody: "GET|/echo/caf\xe9/\xff\xfe|q=%E9&r=\xe9|caf\xe9\xff|",
			wantHead: http.Header{"X-Echo-Raw": {"caf\xe9\xff"}}},
		{name: "POST a form", method: "POST", path: "/fcgi/testapp/echo/form?a=1", body: []byte("name=value&x=y"),
			header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}},
			status: 200, wantBody: "POST|/echo/form|a=1||name=value&x=y"},
		// mod_fcgid reads the whole body (up to FcgidMaxRequestLen, 128
		// KiB) before it sends the request.
		{name: "POST 100 KiB", method: "POST", path: "/fcgi/testapp/upload", body: upload[:100<<10],
			status: 200, wantBody: fmt.Sprintf("%d %x", 100<<10, sha256.Sum256(upload[:100<<10]))},
		{name: "what a POST sends", method: "POST", path: "/fcgi/testapp/env", body: []byte("abc"),
			header: http.Header{"Content-Type": {"text/plain"}},
			status: 200, wantEnv: map[string]envWant{
				"CONTENT_LENGTH": {value: "3"},
				"CONTENT_TYPE":   {value: "text/plain"},
			}},
		{name: "what a GET sends", path: "/fcgi/testapp/env?x=1",
			status: 200, wantEnv: map[string]envWant{
				"SCRIPT_NAME":       {value: "/fcgi/testapp"},
				"PATH_INFO":         {value: "/env"},
				"REQUEST_URI":       {value: "/fcgi/testapp/env?x=1"},
				"QUERY_STRING":      {value: "x=1"},
				"SCRIPT_FILENAME":   {value: filepath.Join(dir, "testapp")},
				"GATEWAY_INTERFACE": {value: "CGI/1.1"},
				"CONTENT_LENGTH":    {value: "0"}, // mod_fcgid always sends one
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, srv) })
	}

	// The process mod_fcgid started: PATH as its whole environment (so
	// cgirun.Run does not take it for a CGI request), Apache's process
	// group, which the harness checks when Apache stops, and, by its own
	// account, FastCGI on the listening socket on fd 0 (cgirun moves it to
	// a close-on-exec descriptor and closes fd 0).
	t.Run("the process", func(t *testing.T) {
		procs := apacheProcsUnder(dir)
		if len(procs) == 0 {
			t.Fatalf("no process started from %s", dir)
		}
		for _, p := range procs {
			if p.pgrp != srv.proc.cmd.Process.Pid {
				t.Errorf("%s[%d]: process group %d, want Apache's, %d", p.cmdline, p.pid, p.pgrp, srv.proc.cmd.Process.Pid)
			}
			if strings.Join(p.environ, " ") != serverPath {
				t.Errorf("%s[%d]: environment %q, want only %q", p.cmdline, p.pid, p.environ, serverPath)
			}
		}
		if log := srv.ErrorLog(); !strings.Contains(log, `msg="cgirun: serving FastCGI" on="fd 0"`) {
			t.Errorf("testapp did not log that it serves fd 0 (its stderr goes to Apache's error log)")
		}
	})
}

// TestApacheAuthnzFCGI puts the test application behind mod_authnz_fcgi
// (examples/deploy/apache-authnz-fcgi.conf): one testapp on TCP is the
// Authorizer, asked twice per request (FCGI_APACHE_ROLE AUTHENTICATOR,
// then AUTHORIZER), and another, behind mod_proxy_fcgi
// (apache-proxy-fcgi.conf), serves the protected /app/.
func TestApacheAuthnzFCGI(t *testing.T) {
	bin := apacheTestappBin(t)
	authz := startApacheBackend(t, "authorizer", bin, "")
	socket := filepath.Join(sharedTempDir(t), "app.sock")
	app := startApacheBackend(t, "testapp", bin, socket)
	srv := startApache(t, apacheConfig{
		Modules: []string{"proxy", "proxy_fcgi", "setenvif", "authnz_fcgi", "auth_basic", "authn_core"},
		// trace2 logs what mod_authnz_fcgi sends (REMOTE_PASSWD blanked).
		LogLevel: "info authnz_fcgi:trace2",
		Defines: map[string]string{
			"CGIRUN_SOCKET":     socket,
			"CGIRUN_AUTHZ_PORT": strings.TrimPrefix(authz.addr, "tcp:127.0.0.1:"),
			"CGIRUN_PROTECTED":  "/app/",
		},
		Config: apacheInclude(t, "apache-proxy-fcgi.conf") + apacheInclude(t, "apache-authnz-fcgi.conf"),
	})
	apacheLogsOnFailure(t, srv, authz, app)

	challenge := http.Header{"Www-Authenticate": {`Basic realm="cgirun"`}}
	tests := []apacheCase{
		// The Variable- header does not reach the client.
		{name: "alice is allowed", path: "/app/private/x", user: "alice", status: 200, wantBody: "private",
			wantHead: http.Header{"Variable-User_level": nil}},
		// The Variable-USER_LEVEL of the authorizer's 200 becomes
		// USER_LEVEL in the request's environment, which mod_proxy_fcgi
		// passes on; the password does not reach the application.
		{name: "alice's request as the application sees it", path: "/app/env", user: "alice", status: 200,
			wantEnv: map[string]envWant{
				"USER_LEVEL":         {value: "admin"},
				"REMOTE_USER":        {value: "alice"},
				"AUTH_TYPE":          {value: "Basic"},
				"HTTP_AUTHORIZATION": {absent: true},
				"REMOTE_PASSWD":      {absent: true},
				"FCGI_APACHE_ROLE":   {absent: true},
				"SCRIPT_NAME":        {value: "/app"},
				"PATH_INFO":          {value: "/env"},
			}},
		// The authorizer's 403 and body go to the client (Authoritative
		// On), with Apache's Content-Type.
		{name: "bob is denied", path: "/app/private/x", user: "bob", status: 403, wantBody: "Forbidden\n",
			wantHead: http.Header{"Www-Authenticate": nil}},
		// RequireBasicAuth On: without Basic credentials Apache asks for
		// them and does not call the authorizer, whatever else is sent.
		{name: "no credentials", path: "/app/private/x", status: 401, wantHead: challenge,
			wantIn: "<title>401 Unauthorized</title>"},
		{name: "a bearer token", path: "/app/private/x", header: http.Header{"Authorization": {"Bearer good"}},
			status: 401, wantHead: challenge, wantIn: "<title>401 Unauthorized</title>"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, srv) })
	}

	// What Apache sent the authorizer, from its trace2 lines: for each of
	// alice's two requests a call as AUTHENTICATOR (with her password) and
	// one as AUTHORIZER; for bob's one call, as AUTHENTICATOR; for the
	// requests without Basic credentials none.
	t.Run("calls to the authorizer", func(t *testing.T) {
		log := srv.ErrorLog()
		for _, c := range []struct {
			line string
			n    int
		}{
			{"send_environment: 'FCGI_ROLE': 'AUTHORIZER'", 5},
			{"send_environment: 'FCGI_APACHE_ROLE': 'AUTHENTICATOR'", 3},
			{"send_environment: 'FCGI_APACHE_ROLE': 'AUTHORIZER'", 2},
			{"send_environment: 'REMOTE_USER': 'alice'", 4},
			{"send_environment: 'REMOTE_USER': 'bob'", 1},
			{"send_environment: 'REMOTE_PASSWD': 'XXXXXXXX'", 3},
			{"send_environment: 'HTTP_AUTHORIZATION'", 0},
			{"send_environment: 'CONTENT_LENGTH'", 0},
			{"moving Variable-USER_LEVEL->admin", 4},
		} {
			if got := strings.Count(log, c.line); got != c.n {
				t.Errorf("Apache's error log has %q %d times, want %d", c.line, got, c.n)
			}
		}
	})
}
