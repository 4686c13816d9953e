//go:build linux

package integration

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cgirun/cgirun/fastcgi"
)

// The deploy snippets under test. nginx-fastcgi.conf is included as it is;
// nginx-upstream.conf is used with the address in nginxSnippetServer
// replaced.
const (
	nginxSnippetLocation = "examples/deploy/nginx-fastcgi.conf"
	nginxSnippetUpstream = "examples/deploy/nginx-upstream.conf"
	nginxSnippetServer   = "server unix:/run/cgirun/app.sock;"
)

// nginxAppGrace is the testapp's CGIRUN_SHUTDOWN_GRACE: shorter than the
// harness's stopTimeout, so that an app that fails to drain says so in its
// log ("grace period over") instead of being killed.
const nginxAppGrace = 5 * time.Second

// nginxMarkTimeout bounds the wait for /slow to record why its context ended.
const nginxMarkTimeout = 10 * time.Second

// nginxApp is the test application serving FastCGI; startNginxApp's
// cleanup stops it.
type nginxApp struct {
	Addr string // CGIRUN_FASTCGI (or another): "unix:/path" or "tcp:127.0.0.1:PORT"
	proc *process
}

// Log returns what the application wrote to stderr (its slog lines).
func (a *nginxApp) Log() string { return a.proc.Output() }

// Upstream returns the address for nginx's upstream server directive.
func (a *nginxApp) Upstream() string { return strings.TrimPrefix(a.Addr, "tcp:") }

// nginxTestappBin skips the test when nginx or fastcgi_params is missing
// (before anything is built for nothing), then builds integration/testapp.
func nginxTestappBin(t *testing.T) string {
	t.Helper()
	requireBinary(t, "nginx")
	requireFile(t, nginxFastCGIParams)
	bin := filepath.Join(t.TempDir(), "testapp")
	buildExample(t, "./integration/testapp", bin)
	return bin
}

// startNginxApp starts bin serving FastCGI on network ("unix": a 0666 socket
// in a world-searchable temporary directory, for nginx's www-data worker;
// "tcp": a free port of 127.0.0.1) and waits until it accepts.
func startNginxApp(t *testing.T, bin, network string) *nginxApp {
	t.Helper()
	return startAppOn(t, bin, "CGIRUN_FASTCGI", network)
}

// startAppOn starts bin serving on network as startNginxApp does, with the
// address in the variable given: CGIRUN_FASTCGI, CGIRUN_SCGI,
// CGIRUN_UWSGI or CGIRUN_LISTEN.
func startAppOn(t *testing.T, bin, variable, network string) *nginxApp {
	t.Helper()
	dir := sharedTempDir(t)
	output := filepath.Join(dir, "testapp.log")
	var lastErr error
	for range startAttempts {
		var addr string
		var ready func() error
		switch network {
		case "unix":
			sock := filepath.Join(dir, "app.sock")
			checkSocketPath(t, sock)
			addr, ready = "unix:"+sock, nginxSocketReady(sock)
		case "tcp":
			hostPort := fmt.Sprintf("127.0.0.1:%d", freePort(t))
			addr, ready = "tcp:"+hostPort, dialTCP(hostPort)
		default:
			t.Fatalf("startNginxApp: network %q, want unix or tcp", network)
		}
		env := []string{
			serverPath, "LANG=C",
			variable + "=" + addr,
			"CGIRUN_SOCKET_MODE=0666",
			"CGIRUN_SHUTDOWN_GRACE=" + nginxAppGrace.String(),
		}
		p := startProcess(t, "testapp", []string{bin}, env, output, false)
		app := &nginxApp{Addr: addr, proc: p}
		lastErr = p.waitReady(ready)
		if lastErr == nil {
			return app
		}
		if !strings.Contains(app.Log(), "address already in use") {
			t.Fatalf("%v\n--- testapp output ---\n%s", lastErr, app.Log())
		}
		p.stop(t, false)
		truncate(t, output)
	}
	t.Fatalf("testapp: %v (port taken %d times)", lastErr, startAttempts)
	return nil
}

// nginxSocketReady returns a probe that succeeds once sock accepts
// connections and has mode 0666: fastcgi.Listen sets the mode just after it
// starts listening, and nginx's worker cannot connect before.
func nginxSocketReady(sock string) func() error {
	dial := dialUnix(sock)
	return func() error {
		if err := dial(); err != nil {
			return err
		}
		fi, err := os.Stat(sock)
		if err != nil {
			return err
		}
		if fi.Mode().Perm() != 0o666 {
			return fmt.Errorf("%s has mode %v, want 0666", sock, fi.Mode().Perm())
		}
		return nil
	}
}

// nginxUpstream returns nginx-upstream.conf with its address replaced by
// addr, so that what is tested is the file a user copies.
func nginxUpstream(t *testing.T, addr string) string {
	t.Helper()
	return snippetWith(t, nginxSnippetUpstream, nginxSnippetServer, "server "+addr+";")
}

// snippetWith returns the deploy snippet at path (relative to the module
// root) with old, which it must hold exactly once, replaced by new: the
// file a user copies, with only an address changed.
func snippetWith(t testing.TB, path, old, new string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(moduleRoot(t), path))
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(b, []byte(old)); n != 1 {
		t.Fatalf("%s holds %q %d times, want once", path, old, n)
	}
	return strings.Replace(string(b), old, new, 1)
}

// nginxTerminate sends SIGTERM to p, as a service manager stops it.
func nginxTerminate(t *testing.T, p *process) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM %s (pid %d): %v", p.name, p.cmd.Process.Pid, err)
	}
}

// nginxCheckGracefulExit waits (up to stopTimeout) for app to exit after
// nginxTerminate and checks that it shut down gracefully: exit status 0, and
// no connection left to close when its grace period ended. The harness's
// cleanup then finds it gone.
func nginxCheckGracefulExit(t *testing.T, app *nginxApp, logs func() string) {
	t.Helper()
	p := app.proc
	timer := time.NewTimer(stopTimeout)
	defer timer.Stop()
	select {
	case <-p.done:
	case <-timer.C:
		t.Fatalf("testapp (pid %d) still running %v after SIGTERM\n%s", p.cmd.Process.Pid, stopTimeout, logs())
	}
	if p.waitErr != nil {
		t.Errorf("testapp after SIGTERM: %v, want exit status 0\n%s", p.waitErr, logs())
	}
	if strings.Contains(app.Log(), "grace period over") {
		t.Errorf("testapp did not finish its requests within its grace period of %v\n%s", nginxAppGrace, logs())
	}
}

// nginxWaitRefused waits until connecting to addr fails. Nothing notifies
// us when another process closes its listener: poll with a backoff from
// 1 ms to pollMax, for at most stopTimeout.
func nginxWaitRefused(addr string) error {
	network, address, err := fastcgi.ParseAddr(addr)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(stopTimeout)
	backoff := time.Millisecond
	for {
		c, err := net.DialTimeout(network, address, time.Second)
		if err != nil {
			return nil
		}
		c.Close()
		if time.Now().After(deadline) {
			return fmt.Errorf("%s still accepts connections %v later", addr, stopTimeout)
		}
		time.Sleep(backoff)
		backoff = min(2*backoff, pollMax)
	}
}

// nginxAppConns identifies the connections open at the application's end
// of addr, read from /proc/net: for TCP the peer's (nginx's) port, for a
// unix socket the inode of the accepted socket. A connection that nginx
// closed stays listed until the application closes its end (unix), or
// leaves at once (TCP: CLOSE_WAIT).
func nginxAppConns(t *testing.T, addr string) []string {
	t.Helper()
	var conns []string
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		// Num RefCount Protocol Flags Type St Inode Path; St 03 is
		// connected (the listener is 01).
		for _, line := range nginxProcLines(t, "/proc/net/unix") {
			f := strings.Fields(line)
			if len(f) == 8 && f[7] == path && f[5] == "03" {
				conns = append(conns, "inode "+f[6])
			}
		}
		return conns
	}
	_, port, _ := strings.Cut(strings.TrimPrefix(addr, "tcp:"), ":")
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatalf("nginxAppConns(%q): %v", addr, err)
	}
	// sl local_address rem_address st ...; addresses are HEXIP:HEXPORT,
	// st 01 is ESTABLISHED.
	local := fmt.Sprintf(":%04X", p)
	for _, line := range nginxProcLines(t, "/proc/net/tcp") {
		f := strings.Fields(line)
		if len(f) > 3 && strings.HasSuffix(f[1], local) && f[3] == "01" {
			_, peer, _ := strings.Cut(f[2], ":")
			n, _ := strconv.ParseUint(peer, 16, 16)
			conns = append(conns, fmt.Sprintf("port %d", n))
		}
	}
	return conns
}

func nginxProcLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[1:] // the column names
}

// nginxUploadBody returns 1 MiB of pseudo-random bytes and what /upload
// answers for them.
func nginxUploadBody() ([]byte, string) {
	b := make([]byte, 1<<20)
	rand.NewChaCha8([32]byte{'c', 'g', 'i', 'r', 'u', 'n'}).Read(b)
	return b, fmt.Sprintf("%d %x", len(b), sha256.Sum256(b))
}

// nginxUnsized hides the length of a reader from net/http, which then
// sends the body chunked.
type nginxUnsized struct{ io.Reader }

// nginxHeldEnd is a body whose end is held back: once its bytes are read it
// blocks until release is closed, so the last chunk of a chunked body
// stays unsent.
type nginxHeldEnd struct {
	r       io.Reader
	release <-chan struct{}
}

func (h *nginxHeldEnd) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	if err == io.EOF {
		<-h.release
	}
	return n, err
}

// nginxDo is the harness's do with the servers' logs in its failure
// messages.
func nginxDo(t *testing.T, req *http.Request, logs func() string) (*http.Response, []byte) {
	t.Helper()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", req.Method, req.URL, err, logs())
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v\n%s", req.Method, req.URL, err, logs())
	}
	return resp, body
}

// nginxGet sends GET url with the extra header (may be nil).
func nginxGet(t *testing.T, url string, header http.Header, logs func() string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = append(req.Header[k], vs...)
	}
	return nginxDo(t, req, logs)
}

// nginxPost sends body to url as a POST: with a Content-Length when length
// is not -1, chunked otherwise.
func nginxPost(t *testing.T, url string, body io.Reader, length int64, logs func() string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	req.ContentLength = length
	return nginxDo(t, req, logs)
}

// nginxPostBytes posts b, sized or chunked.
func nginxPostBytes(t *testing.T, url string, b []byte, sized bool, logs func() string) (*http.Response, []byte) {
	t.Helper()
	if sized {
		return nginxPost(t, url, bytes.NewReader(b), int64(len(b)), logs)
	}
	return nginxPost(t, url, nginxUnsized{bytes.NewReader(b)}, -1, logs)
}

// nginxFirstLine sends GET url and returns the response, whose body the
// caller closes, and a reader past the body's first line.
func nginxFirstLine(t *testing.T, url string, logs func() string) (*http.Response, *bufio.Reader, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v\n%s", url, err, logs())
	}
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	if err != nil {
		resp.Body.Close()
		t.Fatalf("GET %s: first line = %q, %v\n%s", url, line, err, logs())
	}
	return resp, br, line
}

// nginxWaitForFile waits until path holds something and returns it. The
// application writes the file from another process, which nothing notifies
// us of: poll every 10 ms (short, because the wait is normally a few
// milliseconds and the test should not take longer than it), for at most
// nginxMarkTimeout.
func nginxWaitForFile(path string) (string, error) {
	deadline := time.Now().Add(nginxMarkTimeout)
	for {
		b, err := os.ReadFile(path)
		if err == nil && len(b) > 0 {
			return string(b), nil
		}
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("%s still empty or missing after %v", path, nginxMarkTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestNginxFastCGI puts the test application behind nginx, over a unix
// socket and over TCP, each with connections kept (the snippet
// nginx-fastcgi.conf as it is, and the upstream of nginx-upstream.conf) and
// with a connection per request, then checks requests, uploads, a client
// leaving, raw bytes, streaming, and a graceful stop with a request in
// flight.
func TestNginxFastCGI(t *testing.T) {
	bin := nginxTestappBin(t)
	root := moduleRoot(t)
	upload, uploadWant := nginxUploadBody()

	tests := []struct {
		name     string
		network  string
		keepConn bool
	}{
		{name: "unix/keep-conn", network: "unix", keepConn: true},
		{name: "unix/conn-per-request", network: "unix"},
		{name: "tcp/keep-conn", network: "tcp", keepConn: true},
		{name: "tcp/conn-per-request", network: "tcp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app := startNginxApp(t, bin, tt.network)
			cfg := nginxConfig{
				HTTP:   nginxUpstream(t, app.Upstream()),
				Server: "include " + filepath.Join(root, nginxSnippetLocation) + ";\n",
			}
			if !tt.keepConn {
				// The snippet turns fastcgi_keep_conn on inside its
				// location, where nothing can turn it off again: this
				// variant has its own location, and no keepalive.
				cfg = nginxConfig{
					HTTP: "upstream cgirun {\n    server " + app.Upstream() + ";\n}\n",
					Server: "location / {\n    include " + nginxFastCGIParams + ";\n" +
						"    fastcgi_pass cgirun;\n}\n",
				}
			}
			srv := startNginx(t, cfg)
			logs := func() string {
				return srv.ErrorLog() + "\n--- testapp stderr ---\n" + app.Log()
			}

			t.Run("hello", func(t *testing.T) {
				resp, body := nginxGet(t, srv.URL("/"), nil, logs)
				if resp.StatusCode != http.StatusOK || string(body) != "Hello, World!\n" {
					t.Fatalf("GET / = %d %q, want 200 %q\n%s", resp.StatusCode, body, "Hello, World!\n", logs())
				}
				// What nginx sends with the snippet: CONTENT_LENGTH even
				// for a GET, and no PATH_INFO, so that the application
				// takes its path from REQUEST_URI.
				resp, body = nginxGet(t, srv.URL("/env?x=%E9"), nil, logs)
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("GET /env = %d %q, want 200\n%s", resp.StatusCode, body, logs())
				}
				env := parseEnv(body)
				t.Logf("nginx+fastcgi_params environment for GET /env?x=%%E9:\n%s", formatEnv(env))
				checkEnv(t, env, map[string]envWant{
					"CONTENT_LENGTH": {value: ""},
					"PATH_INFO":      {absent: true},
					"REQUEST_URI":    {value: "/env?x=%E9"},
					"QUERY_STRING":   {value: "x=%E9"},
					"SCRIPT_NAME":    {value: "/env"},
				})
				if t.Failed() {
					t.Logf("%s", logs())
				}
			})

			t.Run("sequential", func(t *testing.T) {
				// With kept connections, nginx's one worker sends them all
				// on one connection: the same one must be open at the
				// application after each.
				var seen [][]string
				for i := range 10 {
					path := fmt.Sprintf("/echo/%d?i=%d", i, i)
					resp, body := nginxGet(t, srv.URL(path), nil, logs)
					want := fmt.Sprintf("GET|/echo/%d|i=%d||", i, i)
					if resp.StatusCode != http.StatusOK || string(body) != want {
						t.Fatalf("request %d: GET %s = %d %q, want 200 %q\n%s", i, path, resp.StatusCode, body, want, logs())
					}
					seen = append(seen, nginxAppConns(t, app.Addr))
				}
				t.Logf("connections open at the application after each request: %v", seen)
				if tt.keepConn {
					for i, conns := range seen {
						if len(conns) != 1 || !slices.Equal(conns, seen[0]) {
							t.Fatalf("connections open at the application after request %d = %v, want one, the same after each request (all: %v)\n%s", i, conns, seen, logs())
						}
					}
				}
			})

			t.Run("upload", func(t *testing.T) {
				resp, body := nginxPostBytes(t, srv.URL("/upload"), upload, true, logs)
				if resp.StatusCode != http.StatusOK || string(body) != uploadWant {
					t.Fatalf("POST /upload (1 MiB) = %d %q, want 200 %q\n%s", resp.StatusCode, body, uploadWant, logs())
				}
			})

			t.Run("client gone", func(t *testing.T) {
				checkClientGone(t, srv.URL, fastcgi.ErrConnClosed.Error(), logs)
			})

			t.Run("raw bytes", func(t *testing.T) {
				// nginx decodes the path for $fastcgi_script_name but sends
				// REQUEST_URI as it came; the application decodes that to
				// bytes, not to UTF-8.
				checkRawBytes(t, srv.URL, "/echo/caf%E9/%FF?q=%E9", "GET|/echo/caf\xe9/\xff|q=%E9|caf\xe9|", logs)
			})

			t.Run("stream", func(t *testing.T) {
				checkStream(t, srv.URL, logs)
			})

			t.Run("SIGTERM with a request in flight", func(t *testing.T) {
				// Graceful shutdown: the response in flight is completed,
				// then the application exits with status 0.
				flag := filepath.Join(t.TempDir(), "go-on")
				path := "/stream?wait=" + url.QueryEscape(flag)
				resp, br, first := nginxFirstLine(t, srv.URL(path), logs)
				defer resp.Body.Close()
				if first != "first\n" {
					t.Fatalf("GET %s: first line = %q, want %q\n%s", path, first, "first\n", logs())
				}
				nginxTerminate(t, app.proc)
				// Let the handler go on only once the application has
				// stopped accepting, so that its shutdown has begun.
				if err := nginxWaitRefused(app.Addr); err != nil {
					t.Fatalf("after SIGTERM: %v\n%s", err, logs())
				}
				writeFile(t, flag, "", 0o644)
				rest, err := io.ReadAll(br)
				if err != nil || string(rest) != "second\n" {
					t.Errorf("GET %s across SIGTERM: rest = %q, %v; want %q\n%s", path, rest, err, "second\n", logs())
				}
				nginxCheckGracefulExit(t, app, logs)
			})
		})
	}
}

// TestNginxFastCGIRequestBuffering sends bodies with and without a length
// through nginx with the snippet as it is, reading whole bodies first (its
// default) and with fastcgi_request_buffering off at the server level
// (which the snippet's location inherits), and checks what CONTENT_LENGTH
// the application gets. Then it stops the application while both nginx
// instances hold idle kept connections to it.
func TestNginxFastCGIRequestBuffering(t *testing.T) {
	bin := nginxTestappBin(t)
	root := moduleRoot(t)
	app := startNginxApp(t, bin, "unix")
	upload, uploadWant := nginxUploadBody()
	const small = "hello"

	start := func(server string) *nginxServer {
		return startNginx(t, nginxConfig{
			HTTP:   nginxUpstream(t, app.Upstream()),
			Server: server + "\ninclude " + filepath.Join(root, nginxSnippetLocation) + ";\n",
		})
	}
	buffered, streamed := start(""), start("fastcgi_request_buffering off;")
	logs := func() string {
		return "--- nginx (buffered) ---\n" + buffered.ErrorLog() +
			"\n--- nginx (fastcgi_request_buffering off) ---\n" + streamed.ErrorLog() +
			"\n--- testapp stderr ---\n" + app.Log()
	}

	tests := []struct {
		name    string
		srv     *nginxServer
		sized   bool   // Content-Length, else chunked
		holdEnd bool   // chunked, and its end sent only after the response
		wantCL  string // CONTENT_LENGTH for the small body
	}{
		// nginx reads a chunked body to its end, then sends its length.
		{name: "buffered/chunked", srv: buffered, wantCL: strconv.Itoa(len(small))},
		{name: "buffered/sized", srv: buffered, sized: true, wantCL: strconv.Itoa(len(small))},
		// Streamed, nginx does not know the length of a chunked body that
		// has not ended: it sends CONTENT_LENGTH empty (fastcgi_params
		// sets it to $content_length), and the application reads to the
		// end. A chunked body that nginx happens to read whole with the
		// headers gets its length, as when buffered: hence holdEnd.
		{name: "streamed/chunked", srv: streamed, holdEnd: true, wantCL: ""},
		{name: "streamed/sized", srv: streamed, sized: true, wantCL: strconv.Itoa(len(small))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := nginxPostBytes(t, tt.srv.URL("/upload"), upload, tt.sized, logs)
			if resp.StatusCode != http.StatusOK || string(body) != uploadWant {
				t.Errorf("POST /upload (1 MiB) = %d %q, want 200 %q\n%s", resp.StatusCode, body, uploadWant, logs())
			}

			if tt.holdEnd {
				// /env answers without reading the body: its answer
				// arriving while the body's end is held back shows that
				// nginx passed the request on before the body ended.
				release := make(chan struct{})
				defer close(release)
				resp, body = nginxPost(t, tt.srv.URL("/env"), &nginxHeldEnd{strings.NewReader(small), release}, -1, logs)
			} else {
				resp, body = nginxPostBytes(t, tt.srv.URL("/env"), []byte(small), tt.sized, logs)
			}
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("POST /env = %d %q, want 200\n%s", resp.StatusCode, body, logs())
			}
			env := parseEnv(body)
			t.Logf("CONTENT_LENGTH for a body of %d bytes: %q", len(small), env["CONTENT_LENGTH"])
			checkEnv(t, env, map[string]envWant{"CONTENT_LENGTH": {value: tt.wantCL}})
			if t.Failed() {
				t.Logf("%s", logs())
			}

			// The body /env left unread does not upset the next request.
			resp, body = nginxGet(t, tt.srv.URL("/"), nil, logs)
			if resp.StatusCode != http.StatusOK || string(body) != "Hello, World!\n" {
				t.Errorf("GET / after POST /env = %d %q, want 200 %q\n%s", resp.StatusCode, body, "Hello, World!\n", logs())
			}
		})
	}

	// Each nginx keeps the connection of its last request open, idle:
	// SIGTERM closes them and the application exits with status 0.
	conns := nginxAppConns(t, app.Addr)
	t.Logf("connections open at the application before SIGTERM: %v", conns)
	if len(conns) == 0 {
		t.Errorf("no connection open at the application before SIGTERM, want nginx's kept ones\n%s", logs())
	}
	nginxTerminate(t, app.proc)
	nginxCheckGracefulExit(t, app, logs)
}
