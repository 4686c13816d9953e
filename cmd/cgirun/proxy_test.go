package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cgirun/cgirun/bridge"
	"github.com/cgirun/cgirun/fastcgi"
)

// startFastCGI serves h with a fastcgi.Server on a unix socket and returns
// the socket's path. t's cleanup closes it.
func startFastCGI(t *testing.T, h http.Handler) string {
	t.Helper()
	sock := filepath.Join(socketDir(t), "app.sock")
	l, err := fastcgi.Listen("unix:"+sock, 0)
	if err != nil {
		t.Fatal(err)
	}
	srv := &fastcgi.Server{Handler: h, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return sock
}

// app is the Go handler behind the FastCGI server of the proxy and probe
// tests.
func app(release <-chan struct{}) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/fail", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "broken", http.StatusInternalServerError)
	})
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ok", http.StatusFound)
	})
	mux.HandleFunc("/stderr", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(bridge.RequestOf(r).Stderr, "PHP Warning: oops")
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "one\n")
		w.(http.Flusher).Flush()
		<-release
		io.WriteString(w, "two\n")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		env := bridge.EnvironOf(r)
		fmt.Fprintf(w, "method=%s\npath=%s\nquery=%s\n", r.Method, r.URL.Path, r.URL.RawQuery)
		for _, name := range []string{"SCRIPT_NAME", "PATH_INFO", "DOCUMENT_URI", "SCRIPT_FILENAME", "DOCUMENT_ROOT", "HTTP_PROXY", "HTTP_AUTHORIZATION", "HTTP_X_TEST", "SERVER_SOFTWARE", "REDIRECT_STATUS", "HTTP_X_REAL_IP"} {
			v, ok := env.Lookup(name)
			if !ok {
				v = "unset"
			}
			fmt.Fprintf(w, "%s=%s\n", name, v)
		}
		for _, c := range r.Cookies() {
			fmt.Fprintf(w, "cookie %s=%s\n", c.Name, c.Value)
		}
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "body=%s\n", body)
	})
	return mux
}

func TestProxy(t *testing.T) {
	release := make(chan struct{})
	sock := startFastCGI(t, app(release))
	r := start(t, nil, "proxy", "--to", "unix:"+sock, "--root", "/srv/www", "--addr", "127.0.0.1:0")
	base := "http://" + r.httpAddr()

	tests := []struct {
		name       string
		method     string
		path       string
		body       string
		header     http.Header
		wantStatus int
		want       []string
	}{
		{name: "GET with a query", path: "/app/page?x=1&y=%41", wantStatus: 200, want: []string{
			"method=GET\n", "path=/app/page\n", "query=x=1&y=%41\n", "SCRIPT_NAME=/app/page\n",
			"SCRIPT_FILENAME=/srv/www/app/page\n", "DOCUMENT_ROOT=/srv/www\n", "SERVER_SOFTWARE=cgirun\n", "REDIRECT_STATUS=200\n"}},
		{name: "--index for a directory", path: "/dir/", wantStatus: 200, want: []string{"path=/dir/\n", "SCRIPT_NAME=/dir/index.php\n", "SCRIPT_FILENAME=/srv/www/dir/index.php\n"}},
		{name: "no escape from the root", path: "/a/%2e%2e/%2e%2e/etc/passwd", wantStatus: 200, want: []string{"SCRIPT_FILENAME=/srv/www/etc/passwd\n"}},
		{name: "POST body", method: "POST", path: "/form", body: "a=1&b=2", wantStatus: 200, want: []string{"method=POST\n", "body=a=1&b=2\n"}},
		{name: "headers", path: "/h", header: http.Header{"X-Test": {"v"}, "Authorization": {"Basic dTpw"}}, wantStatus: 200,
			want: []string{"HTTP_X_TEST=v\n", "HTTP_AUTHORIZATION=Basic dTpw\n"}},
		{name: "httpoxy: the Proxy header is not passed", path: "/h", header: http.Header{"Proxy": {"http://evil:3128"}}, wantStatus: 200, want: []string{"HTTP_PROXY=unset\n"}},
		{name: "an underscore header does not pass for a dash one", path: "/h", header: http.Header{"X_Real_Ip": {"10.0.0.1"}}, wantStatus: 200, want: []string{"HTTP_X_REAL_IP=unset\n"}},
		{name: "cookies joined with semicolons", path: "/c", header: http.Header{"Cookie": {"a=1", "b=2"}}, wantStatus: 200, want: []string{"cookie a=1\n", "cookie b=2\n"}},
		{name: "an error status passes through", path: "/fail", wantStatus: 500, want: []string{"broken"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := tt.method
			if method == "" {
				method = "GET"
			}
			status, _, body := get(t, method, base+tt.path, tt.body, tt.header)
			if status != tt.wantStatus {
				t.Errorf("%s %s through the proxy = %d %q, want %d", method, tt.path, status, body, tt.wantStatus)
			}
			for _, w := range tt.want {
				if !strings.Contains(body, w) {
					t.Errorf("%s %s through the proxy: body %q, want it to contain %q", method, tt.path, body, w)
				}
			}
		})
	}

	t.Run("a stream is flushed as it comes", func(t *testing.T) {
		client := &http.Client{Timeout: waitLimit}
		resp, err := client.Get(base + "/stream")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		br := bufio.NewReader(resp.Body)
		// The handler holds "two" until "one" was read: without a flush
		// this read would wait until the test's time limit.
		if line, err := br.ReadString('\n'); line != "one\n" {
			t.Fatalf("first line of /stream = %q, %v; want \"one\\n\" before the rest", line, err)
		}
		close(release)
		if rest, _ := io.ReadAll(br); string(rest) != "two\n" {
			t.Errorf("rest of /stream = %q, want \"two\\n\"", rest)
		}
	})

	if code := r.stop(); code != exitOK {
		t.Errorf("run(proxy) after SIGTERM = %d, want 0; stderr:\n%s", code, r.logs)
	}
}

// TestProxyLogs: "cgirun proxy" logs each request as "cgirun http" does,
// and what gofast would log through the log package goes to the command's
// logger: the application's error stream, a dead server. Nothing reaches
// the log package's output.
func TestProxyLogs(t *testing.T) {
	var global bytes.Buffer
	log.SetOutput(&global)
	t.Cleanup(func() { log.SetOutput(defaultLogOutput) })
	sock := startFastCGI(t, app(nil))
	r := start(t, nil, "proxy", "--to", "unix:"+sock, "--addr", "127.0.0.1:0")
	dead := start(t, nil, "proxy", "--to", "unix:"+filepath.Join(socketDir(t), "dead.sock"), "--addr", "127.0.0.1:0")
	tests := []struct {
		name    string
		r       *running
		path    string
		status  int
		wantLog []string // regexps, in r's log
	}{
		{name: "ok", r: r, path: "/ok", status: 200,
			wantLog: []string{`level=INFO msg="cgirun: request" method=GET uri=/ok status=200 bytes=3 remote=127\.0\.0\.1:\d+ duration=\S+\n`}},
		{name: "error status", r: r, path: "/fail", status: 500,
			wantLog: []string{`msg="cgirun: request" method=GET uri=/fail status=500 bytes=7 remote=\S+ duration=\S+\n`}},
		{name: "the application's error stream", r: r, path: "/stderr", status: 200,
			wantLog: []string{`level=WARN msg="cgirun: FastCGI error stream" uri=/stderr stderr="PHP Warning: oops"\n`,
				`msg="cgirun: request" method=GET uri=/stderr status=200 bytes=3 `}},
		{name: "a dead server", r: dead, path: "/x", status: 502,
			wantLog: []string{`level=ERROR msg="cgirun: cannot connect to the FastCGI server" uri=/x err="dial unix \S+: connect: [^"]+"\n`,
				`msg="cgirun: request" method=GET uri=/x status=502 bytes=\d+ `}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, _, body := get(t, "GET", "http://"+tt.r.httpAddr()+tt.path, "", nil)
			if status != tt.status {
				t.Errorf("GET %s through the proxy = %d %q, want %d", tt.path, status, body, tt.status)
			}
		})
	}
	// waitLog fails r's test: it is called outside the subtests.
	for _, tt := range tests {
		for _, re := range tt.wantLog {
			tt.r.waitLog(re)
		}
	}
	if global.Len() > 0 {
		t.Errorf("log package output = %q, want nothing: gofast's lines go to the command's logger", global.String())
	}
}

// TestProxyRefusesNULInPath: /index.php%00.txt must not run index.php, as
// a C server would after reading the name up to the NUL. nginx, "cgirun
// http" and the runner answer 400; so does the proxy, without passing the
// request on.
func TestProxyRefusesNULInPath(t *testing.T) {
	var mu sync.Mutex
	var seen []string // the paths the FastCGI application received
	sock := startFastCGI(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.URL.Path)
		mu.Unlock()
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "ran\n")
	}))
	r := start(t, nil, "proxy", "--to", "unix:"+sock, "--addr", "127.0.0.1:0")
	base := "http://" + r.httpAddr()
	for _, p := range []string{"/index.php%00.txt", "/dir%00/index.php", "/dir/%00", "/%00"} {
		t.Run(p, func(t *testing.T) {
			if status, _, body := get(t, "GET", base+p, "", nil); status != http.StatusBadRequest {
				t.Errorf("GET %s through the proxy = %d %q, want 400", p, status, body)
			}
		})
	}
	// The proxy serves one request at a time here: once /ok has been
	// answered, a refused request that had been passed on was seen too.
	if status, _, body := get(t, "GET", base+"/ok", "", nil); status != http.StatusOK {
		t.Fatalf("GET /ok through the proxy = %d %q, want 200", status, body)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"/ok"}; !slices.Equal(seen, want) {
		t.Errorf("paths the FastCGI application received = %q, want %q", seen, want)
	}
}

func TestProxyDeadServer(t *testing.T) {
	dead := filepath.Join(socketDir(t), "dead.sock")
	r := start(t, nil, "proxy", "--to", "unix:"+dead, "--addr", "127.0.0.1:0")
	status, _, body := get(t, "GET", "http://"+r.httpAddr()+"/", "", nil)
	if status != http.StatusBadGateway {
		t.Errorf("GET / through a proxy to a dead socket = %d %q, want 502", status, body)
	}
}

var defaultLogOutput = log.Writer()

// TestProxySplitsPathInfo: PATH_INFO is split off after a segment ending
// in a --script-ext extension, as nginx's fastcgi_split_path_info
// ^(.+?\.php)(/.*)$ does; any other path is SCRIPT_NAME whole, with no
// PATH_INFO, as before.
func TestProxySplitsPathInfo(t *testing.T) {
	sock := startFastCGI(t, app(nil))
	php := start(t, nil, "proxy", "--to", "unix:"+sock, "--root", "/srv/www", "--addr", "127.0.0.1:0")
	two := start(t, nil, "proxy", "--to", "unix:"+sock, "--root", "/srv/www", "--addr", "127.0.0.1:0", "--script-ext", ".php", "--script-ext", ".cgi")
	tests := []struct {
		name string
		r    *running
		path string
		want []string
	}{
		{name: "split", r: php, path: "/index.php/foo/bar?x=1", want: []string{"SCRIPT_NAME=/index.php\n", "PATH_INFO=/foo/bar\n",
			"SCRIPT_FILENAME=/srv/www/index.php\n", "DOCUMENT_URI=/index.php/foo/bar\n", "query=x=1\n"}},
		{name: "no path info", r: php, path: "/index.php", want: []string{"SCRIPT_NAME=/index.php\n", "PATH_INFO=unset\n", "SCRIPT_FILENAME=/srv/www/index.php\n"}},
		{name: "a slash alone", r: php, path: "/index.php/", want: []string{"SCRIPT_NAME=/index.php\n", "PATH_INFO=/\n"}},
		{name: "a trailing slash kept", r: php, path: "/a/index.php/x/", want: []string{"SCRIPT_NAME=/a/index.php\n", "PATH_INFO=/x/\n", "SCRIPT_FILENAME=/srv/www/a/index.php\n"}},
		{name: "at the first script", r: php, path: "/a.php/b.php/c", want: []string{"SCRIPT_NAME=/a.php\n", "PATH_INFO=/b.php/c\n"}},
		{name: "a longer extension is none", r: php, path: "/a.phpx/b", want: []string{"SCRIPT_NAME=/a.phpx/b\n", "PATH_INFO=unset\n"}},
		{name: "case matters, as in nginx's regexp", r: php, path: "/a.PHP/b", want: []string{"SCRIPT_NAME=/a.PHP/b\n", "PATH_INFO=unset\n"}},
		{name: "no extension: the whole path, as before", r: php, path: "/app/page", want: []string{"SCRIPT_NAME=/app/page\n", "PATH_INFO=unset\n", "DOCUMENT_URI=/app/page\n"}},
		{name: "--index after no split", r: php, path: "/dir/", want: []string{"SCRIPT_NAME=/dir/index.php\n", "PATH_INFO=unset\n"}},
		{name: "dot-dot cleaned first", r: php, path: "/x/%2e%2e/index.php/y", want: []string{"SCRIPT_NAME=/index.php\n", "PATH_INFO=/y\n"}},
		{name: "a newline: split all the same, never an empty PATH_INFO (CVE-2019-11043)", r: php, path: "/index.php/PHP_VALUE%0Ax", want: []string{"SCRIPT_NAME=/index.php\n", "PATH_INFO=/PHP_VALUE\nx\n"}},
		{name: "a second --script-ext", r: two, path: "/cgi/app.cgi/users/7", want: []string{"SCRIPT_NAME=/cgi/app.cgi\n", "PATH_INFO=/users/7\n"}},
		{name: "the first --script-ext still", r: two, path: "/index.php/z", want: []string{"SCRIPT_NAME=/index.php\n", "PATH_INFO=/z\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, _, body := get(t, "GET", "http://"+tt.r.httpAddr()+tt.path, "", nil)
			if status != 200 {
				t.Errorf("GET %s through the proxy = %d %q, want 200", tt.path, status, body)
			}
			for _, w := range tt.want {
				if !strings.Contains(body, w) {
					t.Errorf("GET %s through the proxy: body %q, want it to contain %q", tt.path, body, w)
				}
			}
		})
	}
}

func TestProxyScriptExtErrors(t *testing.T) {
	for _, tt := range []struct{ value, want string }{
		{"php", `--script-ext (CGIRUN_SCRIPT_EXT) "php": want an extension with its dot, such as .php`},
		{".", `--script-ext (CGIRUN_SCRIPT_EXT) ".": want an extension with its dot`},
		{"", "--script-ext (CGIRUN_SCRIPT_EXT) is empty: want the extension of the server's scripts, such as .php"},
	} {
		args := []string{"proxy", "--to", "unix:/nowhere.sock", "--script-ext", tt.value}
		code, _, stderr := runCmd(t, nil, args...)
		if code != exitUsage || !strings.Contains(stderr, tt.want) {
			t.Errorf("run(%q) = %d, stderr %q; want %d and %q", args, code, stderr, exitUsage, tt.want)
		}
	}
}

// TestProxyServesStaticFiles: the files under --root that the FastCGI
// server would not run (no --script-ext extension, no execute bit, no
// dotfile) are served by the proxy itself; scripts, a directory holding
// --index, and paths naming no file go to the FastCGI server as before,
// and a script's source is never served.
func TestProxyServesStaticFiles(t *testing.T) {
	base := t.TempDir()
	root, outside := filepath.Join(base, "root"), filepath.Join(base, "outside")
	for name, text := range map[string]string{
		"index.html":       "<h1>home</h1>\n",
		"style.css":        "body { color: red }\n",
		"page.php":         "<?php echo 'SOURCE'; ?>\n",
		"blog/index.php":   "<?php echo 'SOURCE'; ?>\n",
		"blog/index.html":  "<h1>stale blog</h1>\n",
		"docs/index.html":  "<h1>docs</h1>\n",
		".env":             "SECRET=dotfile\n",
		"../outside/x.txt": "SECRET=outside\n",
	} {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeScript(t, filepath.Join(root, "app.cgi"), "#!/bin/sh\necho SOURCE\n")
	for name, target := range map[string]string{"link.txt": "page.php", "link-out.txt": filepath.Join(outside, "x.txt")} {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	sock := startFastCGI(t, app(nil))
	r := start(t, nil, "proxy", "--to", "unix:"+sock, "--root", root, "--addr", "127.0.0.1:0")
	addr := "http://" + r.httpAddr()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	const fastCGI = "method=GET\n" // how the FastCGI application's answers begin

	tests := []struct {
		name       string
		path       string
		header     http.Header
		wantStatus int
		wantBody   string   // exactly, when set
		want       []string // in the body, when wantBody is not set
		wantHeader map[string]string
	}{
		{name: "the root's index.html", path: "/", wantStatus: 200, wantBody: "<h1>home</h1>\n"},
		{name: "CSS served, not passed on", path: "/style.css", wantStatus: 200, wantBody: "body { color: red }\n", wantHeader: map[string]string{"Content-Type": "text/css; charset=utf-8"}},
		{name: "Range", path: "/style.css", header: http.Header{"Range": {"bytes=0-3"}}, wantStatus: 206, wantBody: "body"},
		{name: "a script goes to the server", path: "/page.php", wantStatus: 200, want: []string{fastCGI, "SCRIPT_NAME=/page.php\n", "SCRIPT_FILENAME=" + root + "/page.php\n"}},
		{name: "a script with PATH_INFO", path: "/page.php/a/b.css", wantStatus: 200, want: []string{fastCGI, "SCRIPT_NAME=/page.php\n", "PATH_INFO=/a/b.css\n"}},
		{name: "--index before index.html", path: "/blog/", wantStatus: 200, want: []string{fastCGI, "SCRIPT_NAME=/blog/index.php\n"}},
		{name: "index.html without --index", path: "/docs/", wantStatus: 200, wantBody: "<h1>docs</h1>\n"},
		{name: "a directory without its slash", path: "/docs", wantStatus: 301, wantHeader: map[string]string{"Location": "/docs/"}},
		{name: "an executable goes to the server", path: "/app.cgi", wantStatus: 200, want: []string{fastCGI, "SCRIPT_NAME=/app.cgi\n"}},
		{name: "a dotfile goes to the server", path: "/.env", wantStatus: 200, want: []string{fastCGI, "SCRIPT_NAME=/.env\n"}},
		{name: "a link to a script goes to the server", path: "/link.txt", wantStatus: 200, want: []string{fastCGI, "SCRIPT_NAME=/link.txt\n"}},
		{name: "a link out of the root goes to the server", path: "/link-out.txt", wantStatus: 200, want: []string{fastCGI, "SCRIPT_NAME=/link-out.txt\n"}},
		{name: "no file: the server's route, as before", path: "/app/route", wantStatus: 200, want: []string{fastCGI, "SCRIPT_NAME=/app/route\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, client, "GET", addr+tt.path, tt.header)
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("GET %s through the proxy = %d %q, want %d", tt.path, resp.StatusCode, body, tt.wantStatus)
			}
			if tt.wantBody != "" && body != tt.wantBody {
				t.Errorf("GET %s through the proxy: body %q, want %q", tt.path, body, tt.wantBody)
			}
			for _, w := range tt.want {
				if !strings.Contains(body, w) {
					t.Errorf("GET %s through the proxy: body %q, want it to contain %q", tt.path, body, w)
				}
			}
			for k, v := range tt.wantHeader {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("GET %s through the proxy: header %s = %q, want %q", tt.path, k, got, v)
				}
			}
			for _, leak := range []string{"SECRET", "SOURCE"} {
				if strings.Contains(body, leak) {
					t.Errorf("GET %s through the proxy: body %q leaks %q", tt.path, body, leak)
				}
			}
		})
	}
}

// TestProxyChecksServerAtStart: "cgirun proxy" asks the FastCGI server
// for FCGI_GET_VALUES at start, which runs nothing, and logs whether it
// answers; one that does not gets a warning naming it and why, and the
// proxy serves all the same (php-fpm may start after it).
func TestProxyChecksServerAtStart(t *testing.T) {
	saved := proxyCheckTimeout
	t.Cleanup(func() { proxyCheckTimeout = saved })
	proxyCheckTimeout = 200 * time.Millisecond // for the silent server

	var mu sync.Mutex
	requests := 0
	live := startFastCGI(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		requests++
		mu.Unlock()
	}))
	hangUp := filepath.Join(socketDir(t), "hangup.sock")
	l, err := net.Listen("unix", hangUp)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			// The record first, so that the close is a plain EOF.
			var h [8]byte
			if _, err := io.ReadFull(c, h[:]); err == nil {
				io.CopyN(io.Discard, c, int64(h[4])<<8|int64(h[5])+int64(h[6]))
			}
			c.Close()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
	})
	dead := filepath.Join(socketDir(t), "dead.sock")
	silent := silentServer(t)

	tests := []struct {
		name, sock, wantLog string
	}{
		{name: "a FastCGI server", sock: live, wantLog: `level=INFO msg="cgirun: the FastCGI server answers" to=unix:\S+/app\.sock\n`},
		{name: "nothing listening", sock: dead,
			wantLog: `level=WARN msg="cgirun: the FastCGI server does not answer; requests get 502 until it does" to=unix:\S+/dead\.sock err="dial unix \S+/dead\.sock: connect: no such file or directory"\n`},
		{name: "a server that hangs up", sock: hangUp,
			wantLog: `level=WARN msg="cgirun: the FastCGI server does not answer; requests get 502 until it does" to=unix:\S+/hangup\.sock err="it closed the connection without answering FCGI_GET_VALUES"\n`},
		{name: "a server that never answers", sock: silent,
			wantLog: `level=WARN msg="cgirun: the FastCGI server does not answer; requests get 502 until it does" to=unix:\S+/silent\.sock err="no answer to FCGI_GET_VALUES within 200ms"\n`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := start(t, nil, "proxy", "--to", "unix:"+tt.sock, "--addr", "127.0.0.1:0")
			r.httpAddr() // serving all the same
			logs := r.logs.String()
			before, _, _ := strings.Cut(logs, `msg="cgirun: serving HTTP"`)
			if !regexp.MustCompile(tt.wantLog).MatchString(before) {
				t.Errorf("run(proxy --to %s) logged %q before serving, want a line matching %q", tt.sock, before, tt.wantLog)
			}
			if strings.Count(logs, "the FastCGI server") != 1 {
				t.Errorf("run(proxy --to %s) logged %q, want one line about the FastCGI server", tt.sock, logs)
			}
		})
	}
	mu.Lock()
	defer mu.Unlock()
	if requests != 0 {
		t.Errorf("the check ran %d requests on the FastCGI server, want none", requests)
	}
}

// TestProxyServesNoFilesWithoutRoot: without --root, DOCUMENT_ROOT is the
// current directory, but its files are not served: it may hold anything
// (here, this package's sources). Requests go to the FastCGI server, as
// before static files were served.
func TestProxyServesNoFilesWithoutRoot(t *testing.T) {
	if _, err := os.Stat("proxy.go"); err != nil {
		t.Fatalf("the test runs in the package's directory: %v", err)
	}
	sock := startFastCGI(t, app(nil))
	r := start(t, nil, "proxy", "--to", "unix:"+sock, "--addr", "127.0.0.1:0")
	resp, err := http.Get("http://" + r.httpAddr() + "/proxy.go")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || !strings.HasPrefix(string(b), "method=GET\n") || strings.Contains(string(b), "package main") {
		t.Errorf("GET /proxy.go without --root = %d %q, %v; want the FastCGI application's answer, not the file", resp.StatusCode, b, err)
	}
}
