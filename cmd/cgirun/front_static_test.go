package main

import (
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// staticRoot lays out a --root of scripts and static files, and a
// directory outside it holding secrets, for the static file tests.
func staticRoot(t *testing.T) (root, outside string) {
	t.Helper()
	base := t.TempDir()
	root, outside = filepath.Join(base, "root"), filepath.Join(base, "outside")
	files := map[string]string{
		"index.html":                "<h1>home</h1>\n",
		"style.css":                 "body { color: red }\n",
		"data.txt":                  "0123456789",
		"docs/index.html":           "<h1>docs</h1>\n",
		"docs/guide.html":           "<h1>guide</h1>\n",
		".env":                      "SECRET=dotfile\n",
		".git/config":               "SECRET=dotdir\n",
		"../outside/out.txt":        "SECRET=outside\n",
		"../outside/dir/index.html": "SECRET=outside index\n",
	}
	for name, text := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeScript(t, filepath.Join(root, "run.cgi"), envScript+"# SOURCE-NOT-OUTPUT\n")
	writeScript(t, filepath.Join(root, "docs", "tool.cgi"), envScript)
	if err := os.MkdirAll(filepath.Join(root, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	links := map[string]string{
		"link-out.txt": filepath.Join(outside, "out.txt"),
		"link-out-dir": filepath.Join(outside, "dir"),
		"link-dot.txt": filepath.Join(root, ".env"),
		"link-in.html": filepath.Join(root, "docs", "guide.html"),
		"docs/up.css":  "../style.css",
		"rel-out.txt":  "../outside/out.txt",
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	return root, outside
}

// TestHTTPServesStaticFiles: "cgirun http" answers a file with no execute
// bit as it is (Content-Type by extension, Range, conditional requests),
// a directory with its index.html, and still runs every executable as a
// script, with PATH_INFO; it never serves a script's source, a dotfile, or
// anything that resolves outside the root.
func TestHTTPServesStaticFiles(t *testing.T) {
	root, _ := staticRoot(t)
	r := start(t, nil, "http", "--root", root, "--addr", "127.0.0.1:0")
	base := "http://" + r.httpAddr()
	future := time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	tests := []struct {
		name       string
		method     string
		path       string
		header     http.Header
		wantStatus int
		wantBody   string // exactly, when set
		want       []string
		wantHeader map[string]string
	}{
		{name: "the root's index.html", path: "/", wantStatus: 200, wantBody: "<h1>home</h1>\n", wantHeader: map[string]string{"Content-Type": "text/html; charset=utf-8"}},
		{name: "CSS by its extension", path: "/style.css", wantStatus: 200, wantBody: "body { color: red }\n", wantHeader: map[string]string{"Content-Type": "text/css; charset=utf-8"}},
		{name: "HEAD", method: "HEAD", path: "/style.css", wantStatus: 200, wantBody: "", wantHeader: map[string]string{"Content-Length": "20"}},
		{name: "Range", path: "/data.txt", header: http.Header{"Range": {"bytes=2-4"}}, wantStatus: 206, wantBody: "234", wantHeader: map[string]string{"Content-Range": "bytes 2-4/10"}},
		{name: "If-Modified-Since", path: "/data.txt", header: http.Header{"If-Modified-Since": {future}}, wantStatus: 304, wantBody: ""},
		{name: "a directory without its slash", path: "/docs?x=1", wantStatus: 301, wantHeader: map[string]string{"Location": "/docs/?x=1"}},
		{name: "a directory's index.html", path: "/docs/", wantStatus: 200, wantBody: "<h1>docs</h1>\n"},
		{name: "a file in a directory", path: "/docs/guide.html", wantStatus: 200, wantBody: "<h1>guide</h1>\n"},
		{name: "a symbolic link inside the root", path: "/link-in.html", wantStatus: 200, wantBody: "<h1>guide</h1>\n"},
		{name: "a relative symbolic link inside the root", path: "/docs/up.css", wantStatus: 200, wantBody: "body { color: red }\n"},
		{name: "a directory without index.html: no listing", path: "/empty/", wantStatus: 404},
		{name: "POST to a file", method: "POST", path: "/data.txt", wantStatus: 405, wantHeader: map[string]string{"Allow": "GET, HEAD"}},
		{name: "a file with PATH_INFO is no script, and not served", path: "/data.txt/more", wantStatus: 403},
		{name: "a script runs", path: "/run.cgi", wantStatus: 200, want: []string{"SCRIPT_NAME=/run.cgi\n", "PATH_INFO=unset"}},
		{name: "a script with PATH_INFO", path: "/run.cgi/a/b.css", wantStatus: 200, want: []string{"SCRIPT_NAME=/run.cgi\n", "PATH_INFO=/a/b.css\n"}},
		{name: "a script next to an index.html", path: "/docs/tool.cgi/x", wantStatus: 200, want: []string{"SCRIPT_NAME=/docs/tool.cgi\n", "PATH_INFO=/x\n"}},
		{name: "a dotfile", path: "/.env", wantStatus: 403},
		{name: "a file in a dot directory", path: "/.git/config", wantStatus: 403},
		{name: "a symbolic link to a dotfile", path: "/link-dot.txt", wantStatus: 403},
		{name: "a symbolic link out of the root", path: "/link-out.txt", wantStatus: 403},
		{name: "a relative symbolic link out of the root", path: "/rel-out.txt", wantStatus: 403},
		{name: "a symbolic link to a directory out of the root", path: "/link-out-dir/", wantStatus: 404},
		{name: "dot-dot", path: "/docs/%2e%2e/%2e%2e/outside/out.txt", wantStatus: 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := tt.method
			if method == "" {
				method = "GET"
			}
			resp, body := do(t, client, method, base+tt.path, tt.header)
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("%s %s = %d %q, want %d", method, tt.path, resp.StatusCode, body, tt.wantStatus)
			}
			if (tt.wantBody != "" || resp.StatusCode == 304 || method == "HEAD") && body != tt.wantBody {
				t.Errorf("%s %s body = %q, want %q", method, tt.path, body, tt.wantBody)
			}
			for _, w := range tt.want {
				if !strings.Contains(body, w) {
					t.Errorf("%s %s body = %q, want it to contain %q", method, tt.path, body, w)
				}
			}
			for k, v := range tt.wantHeader {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("%s %s header %s = %q, want %q", method, tt.path, k, got, v)
				}
			}
			for _, leak := range []string{"SECRET", "SOURCE-NOT-OUTPUT", "0123456789"} {
				if strings.Contains(body, leak) && tt.wantBody != "0123456789" {
					t.Errorf("%s %s body = %q: it leaks %q", method, tt.path, body, leak)
				}
			}
		})
	}
}

// TestHTTPStaticSymlinkSwap plays the attacker who swaps a directory of
// the root for a symbolic link out of it, over and over, while a client
// asks for a file in it: what the server opened is checked after the
// open, so the file outside is never served.
func TestHTTPStaticSymlinkSwap(t *testing.T) {
	root, outside := staticRoot(t)
	sub, link, parked := filepath.Join(root, "sub"), filepath.Join(root, "sub-link"), filepath.Join(root, "sub-parked")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sub, "out.txt"), []byte("inside\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, link); err != nil {
		t.Fatal(err)
	}
	r := start(t, nil, "http", "--root", root, "--addr", "127.0.0.1:0")
	base := "http://" + r.httpAddr()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var swapErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			// sub becomes the link out, then the directory again.
			for _, mv := range [][2]string{{sub, parked}, {link, sub}, {sub, link}, {parked, sub}} {
				if err := os.Rename(mv[0], mv[1]); err != nil && !errors.Is(err, os.ErrNotExist) {
					swapErr = err
					return
				}
			}
		}
	}()
	stopSwaps := sync.OnceFunc(func() {
		close(stop)
		wg.Wait()
	})
	defer stopSwaps()
	served := 0
	for range 500 {
		status, _, body := get(t, "GET", base+"/sub/out.txt", "", nil)
		if strings.Contains(body, "SECRET") {
			t.Fatalf("GET /sub/out.txt during the swaps = %d %q: served the file outside the root", status, body)
		}
		if status == 200 {
			served++
		}
	}
	stopSwaps()
	if swapErr != nil {
		t.Fatalf("swapping: %v", swapErr)
	}
	t.Logf("%d of 500 requests served the file inside", served)
}

// TestHTTPStaticAsUser: with --user, a static file is served only when
// that user may read it by its permission bits: the runner, root, reads
// everything, and must not hand out what the scripts' user could not.
func TestHTTPStaticAsUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("--user needs root")
	}
	dir := socketDir(t) // in /tmp, so that another user can reach it
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "root")
	for name, mode := range map[string]os.FileMode{"public.txt": 0o644, "private.txt": 0o600} {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(root, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(name+"\n"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	r := start(t, nil, "http", "--root", root, "--addr", "127.0.0.1:0", "--user", "nobody")
	base := "http://" + r.httpAddr()
	if status, _, body := get(t, "GET", base+"/public.txt", "", nil); status != 200 || body != "public.txt\n" {
		t.Errorf("GET /public.txt as nobody = %d %q, want 200 \"public.txt\\n\"", status, body)
	}
	if status, _, body := get(t, "GET", base+"/private.txt", "", nil); status != 403 || strings.Contains(body, "private.txt\n") {
		t.Errorf("GET /private.txt (root's, 0600) as nobody = %d %q, want 403", status, body)
	}
}

// do sends a request with header through client and returns the answer
// and its whole body; a transport error fails the test.
func do(t *testing.T, client *http.Client, method, url string, header http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}
