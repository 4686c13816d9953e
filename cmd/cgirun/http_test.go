package main

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/cgirun/cgirun/cgi"
)

// cgiBin lays out a directory of scripts for the http tests, and a script
// outside it that leaves a marker file when it runs.
func cgiBin(t *testing.T) (root, marker string) {
	t.Helper()
	base := t.TempDir()
	root = filepath.Join(base, "root")
	marker = filepath.Join(base, "marker")
	writeScript(t, filepath.Join(root, "env.cgi"), envScript)
	writeScript(t, filepath.Join(root, "dir", "nested.cgi"), envScript)
	writeScript(t, filepath.Join(root, "redirect.cgi"), "#!/bin/sh\nprintf 'Location: /env.cgi/redirected?from=redirect\\r\\n\\r\\nignored'\n")
	writeScript(t, filepath.Join(root, "loop.cgi"), "#!/bin/sh\necho run >> "+filepath.Join(base, "loops")+"\nprintf 'Location: /loop.cgi\\r\\n\\r\\n'\n")
	writeScript(t, filepath.Join(root, "away.cgi"), "#!/bin/sh\nprintf 'Location: https://example.org/\\r\\n\\r\\n'\n")
	secret := writeScript(t, filepath.Join(base, "outside", "secret.cgi"), "#!/bin/sh\ntouch "+marker+"\nprintf 'Content-Type: text/plain\\r\\n\\r\\nsecret\\n'\n")
	if err := os.MkdirAll(filepath.Join(root, "dir", "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "data.txt"), []byte("data\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(root, "link.cgi")); err != nil {
		t.Fatal(err)
	}
	return root, marker
}

func TestHTTPMapsPathsToScripts(t *testing.T) {
	root, marker := cgiBin(t)
	// The root and the address come from the environment.
	t.Setenv("CGIRUN_ROOT", root)
	t.Setenv("CGIRUN_HTTP", "127.0.0.1:0")
	r := start(t, nil, "http")
	base := "http://" + r.httpAddr()

	tests := []struct {
		name       string
		method     string
		path       string
		body       string
		header     http.Header
		wantStatus int
		want       []string // in the body
	}{
		{name: "script", path: "/env.cgi", wantStatus: 200,
			want: []string{"SCRIPT_NAME=/env.cgi\n", "PATH_INFO=unset", "REQUEST_METHOD=GET", "SERVER_SOFTWARE=cgirun", "CONTENT_LENGTH=unset"}},
		{name: "path info and query", path: "/env.cgi/a/b?x=1&y=%41", wantStatus: 200,
			want: []string{"SCRIPT_NAME=/env.cgi\n", "PATH_INFO=/a/b\n", "QUERY_STRING=x=1&y=%41\n"}},
		{name: "path info decoded", path: "/env.cgi/caf%C3%A9%20x", wantStatus: 200, want: []string{"PATH_INFO=/café x\n"}},
		{name: "trailing slash kept in path info", path: "/env.cgi/a/", wantStatus: 200, want: []string{"PATH_INFO=/a/\n"}},
		{name: "nested directory", path: "/dir/nested.cgi/x", wantStatus: 200, want: []string{"SCRIPT_NAME=/dir/nested.cgi\n", "PATH_INFO=/x\n"}},
		{name: "directory without a script", path: "/dir/empty/", wantStatus: 404},
		{name: "directory itself", path: "/dir", wantStatus: 404},
		{name: "root", path: "/", wantStatus: 404},
		{name: "missing script", path: "/nope.cgi", wantStatus: 404},
		{name: "missing directory", path: "/nope/env.cgi", wantStatus: 404},
		{name: "file not executable, served as it is", path: "/data.txt", wantStatus: 200, want: []string{"data\n"}},
		{name: "symbolic link out of the root", path: "/link.cgi", wantStatus: 403},
		{name: "POST body reaches stdin", method: "POST", path: "/env.cgi", body: "hello=world", wantStatus: 200,
			want: []string{"REQUEST_METHOD=POST", "CONTENT_LENGTH=11\n", "stdin=hello=world\n"}},
		{name: "local redirect followed as a GET", method: "POST", path: "/redirect.cgi", body: "dropped", wantStatus: 200,
			want: []string{"SCRIPT_NAME=/env.cgi\n", "PATH_INFO=/redirected\n", "QUERY_STRING=from=redirect\n", "REQUEST_METHOD=GET", "CONTENT_LENGTH=unset", "stdin=\n"}},
		{name: "local redirect loop ends in 500", path: "/loop.cgi", wantStatus: 500},
		{name: "headers as HTTP_ variables", path: "/env.cgi", header: http.Header{"X-Test": {"a", "b"}}, wantStatus: 200, want: []string{"HTTP_X_TEST=a, b\n"}},
		{name: "Authorization not passed", path: "/env.cgi", header: http.Header{"Authorization": {"Basic dTpw"}}, wantStatus: 200, want: []string{"HTTP_AUTHORIZATION=unset"}},
		{name: "httpoxy: no HTTP_PROXY", path: "/env.cgi", header: http.Header{"Proxy": {"http://evil:3128"}}, wantStatus: 200, want: []string{"HTTP_PROXY=unset"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := tt.method
			if method == "" {
				method = "GET"
			}
			status, _, body := get(t, method, base+tt.path, tt.body, tt.header)
			if status != tt.wantStatus {
				t.Errorf("%s %s = %d %q, want %d", method, tt.path, status, body, tt.wantStatus)
			}
			for _, w := range tt.want {
				if !strings.Contains(body, w) {
					t.Errorf("%s %s body = %q, want it to contain %q", method, tt.path, body, w)
				}
			}
		})
	}

	t.Run("client redirect passed on", func(t *testing.T) {
		client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := client.Get(base + "/away.cgi")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if loc := resp.Header.Get("Location"); resp.StatusCode != 302 || loc != "https://example.org/" {
			t.Errorf("GET /away.cgi = %d Location %q, want 302 https://example.org/", resp.StatusCode, loc)
		}
	})
	if _, err := os.Stat(marker); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the script outside the root ran (marker: %v)", err)
	}
	if b, err := os.ReadFile(filepath.Join(filepath.Dir(root), "loops")); strings.Count(string(b), "\n") != 1+cgi.DefaultMaxLocalRedirects {
		t.Errorf("GET /loop.cgi ran the script %d times (%v), want %d: once and %d redirects", strings.Count(string(b), "\n"), err, 1+cgi.DefaultMaxLocalRedirects, cgi.DefaultMaxLocalRedirects)
	}
	if code := r.stop(); code != exitOK {
		t.Errorf("run(http) after SIGTERM = %d, want 0; stderr:\n%s", code, r.logs)
	}
}

// TestHTTPFlags covers --pass-auth, --pass-env, --max-body and, when the
// test runs as root, --user.
func TestHTTPFlags(t *testing.T) {
	dir := socketDir(t) // in /tmp, so that another user can reach it
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "root")
	writeScript(t, filepath.Join(root, "env.cgi"), envScript+"echo \"CGIRUN_TEST_VAR=${CGIRUN_TEST_VAR-unset}\"\n")
	t.Setenv("CGIRUN_TEST_VAR", "passed")
	args := []string{"http", "--root", root, "--addr", "127.0.0.1:0", "--pass-auth", "--pass-env", "PATH", "--pass-env", "CGIRUN_TEST_VAR", "--max-body", "10"}
	wantUID := ""
	if os.Geteuid() == 0 {
		if u, err := user.Lookup("nobody"); err == nil {
			args = append(args, "--user", "nobody")
			wantUID = u.Uid
			// Under --user a script must be owned by that user.
			uid, _ := strconv.Atoi(u.Uid)
			if err := os.Chown(filepath.Join(root, "env.cgi"), uid, -1); err != nil {
				t.Fatal(err)
			}
		}
	}
	r := start(t, nil, args...)
	base := "http://" + r.httpAddr()

	tests := []struct {
		name       string
		method     string
		body       string
		header     http.Header
		wantStatus int
		want       string
	}{
		{name: "--pass-auth", header: http.Header{"Authorization": {"Basic dTpw"}}, wantStatus: 200, want: "HTTP_AUTHORIZATION=Basic dTpw\n"},
		{name: "--pass-env", wantStatus: 200, want: "CGIRUN_TEST_VAR=passed\n"},
		{name: "--max-body", method: "POST", body: "more than ten bytes", wantStatus: 413},
	}
	if wantUID != "" {
		tests = append(tests, struct {
			name       string
			method     string
			body       string
			header     http.Header
			wantStatus int
			want       string
		}{name: "--user", wantStatus: 200, want: "uid=" + wantUID + "\n"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := tt.method
			if method == "" {
				method = "GET"
			}
			status, _, body := get(t, method, base+"/env.cgi", tt.body, tt.header)
			if status != tt.wantStatus || !strings.Contains(body, tt.want) {
				t.Errorf("%s /env.cgi with %s = %d %q, want %d and %q", method, tt.name, status, body, tt.wantStatus, tt.want)
			}
		})
	}
}

// TestHTTPShutdownWaitsForScripts checks that SIGTERM lets a running
// script finish within the grace.
func TestHTTPShutdownWaitsForScripts(t *testing.T) {
	root := t.TempDir()
	fifo := filepath.Join(t.TempDir(), "go")
	// The script waits until the test writes to the fifo: no sleeping.
	writeScript(t, filepath.Join(root, "slow.cgi"), "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\nread line < "+fifo+"\necho done $line\n")
	if err := mkfifo(fifo); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	r := start(t, nil, "http", "--root", root, "--addr", "127.0.0.1:0", "--shutdown-grace", "20s")
	base := "http://" + r.httpAddr()
	type result struct {
		status int
		body   string
	}
	got := make(chan result, 1)
	go func() {
		req, _ := http.NewRequestWithContext(context.Background(), "GET", base+"/slow.cgi", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			got <- result{body: err.Error()}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		got <- result{resp.StatusCode, string(b)}
	}()
	// Opening the fifo for writing blocks until the script opens it: the
	// request is in flight from then on.
	w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	r.cancel() // SIGTERM, while the script runs
	r.waitLog(`shutting down`)
	io.WriteString(w, "now\n")
	w.Close()
	res := <-got
	if res.status != 200 || res.body != "done now\n" {
		t.Errorf("GET /slow.cgi across a shutdown = %d %q, want 200 \"done now\\n\"", res.status, res.body)
	}
	if code := r.stop(); code != exitOK {
		t.Errorf("run(http) after SIGTERM = %d, want 0; stderr:\n%s", code, r.logs)
	}
}

func mkfifo(path string) error { return syscall.Mkfifo(path, 0o600) }

// TestHTTPLogsCutResponse: a script that times out after its header block
// has its response cut; the client gets the status and what the script
// wrote, then the connection closes, and the log says cut=true.
func TestHTTPLogsCutResponse(t *testing.T) {
	root := t.TempDir()
	writeScript(t, filepath.Join(root, "stall.cgi"), "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\npartial'\nexec sleep 60\n")
	writeScript(t, filepath.Join(root, "ok.cgi"), "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nok'\n")
	r := start(t, nil, "http", "--root", root, "--addr", "127.0.0.1:0", "--timeout", "200ms")
	base := "http://" + r.httpAddr()
	tests := []struct {
		path    string
		status  int
		body    string
		cut     bool
		wantLog string
	}{
		{path: "/ok.cgi", status: 200, body: "ok", wantLog: `uri=/ok.cgi status=200 bytes=2 remote=\S+ duration=\S+\n`},
		{path: "/stall.cgi", status: 200, body: "partial", cut: true, wantLog: `uri=/stall.cgi status=200 bytes=7 remote=\S+ duration=\S+ cut=true\n`},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			resp, err := http.Get(base + tt.path)
			if err != nil {
				t.Fatalf("GET %s: %v", tt.path, err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status || string(b) != tt.body || (err != nil) != tt.cut {
				t.Errorf("GET %s = %d %q, %v; want %d %q, cut %v", tt.path, resp.StatusCode, b, err, tt.status, tt.body, tt.cut)
			}
		})
	}
	// waitLog fails r's test: it is called outside the subtests.
	for _, tt := range tests {
		r.waitLog(`msg="cgirun: request" method=GET ` + tt.wantLog)
	}
}

func TestHTTPScriptGetsNoInheritedDescriptor(t *testing.T) {
	if _, err := os.ReadDir("/proc/self/fd"); err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	root := t.TempDir()
	script, fd := inheritedSecret(t, root)
	r := start(t, nil, "http", "--root", root, "--addr", "127.0.0.1:0")
	resp, err := http.Get("http://" + r.httpAddr() + "/" + filepath.Base(script))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /%s = %d %q, %v; want 200", filepath.Base(script), resp.StatusCode, body, err)
	}
	checkNoInheritedSecret(t, fd, string(body))
}
