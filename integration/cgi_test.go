//go:build linux

package integration

import (
	"bufio"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// startCGIBin builds examples/hello and the test application into a cgi-bin
// directory and starts Apache (mod_cgid) on it with
// examples/deploy/apache-cgi-bin.conf, included as it is.
func startCGIBin(t *testing.T) *apacheServer {
	t.Helper()
	dir := filepath.Join(sharedTempDir(t), "cgi-bin")
	mkdirs(t, dir)
	buildExample(t, "./examples/hello", filepath.Join(dir, "hello"))
	buildExample(t, "./integration/testapp", filepath.Join(dir, "testapp"))
	return startApache(t, apacheConfig{
		Modules: []string{"cgid", "alias"},
		Defines: map[string]string{"CGI_DIR": dir},
		Config:  "Include " + filepath.Join(moduleRoot(t), "examples/deploy/apache-cgi-bin.conf") + "\n",
	})
}

func TestApacheCGIBin(t *testing.T) {
	srv := startCGIBin(t)
	tests := []struct {
		name     string
		method   string
		path     string
		header   http.Header
		body     string
		status   int
		wantBody string
		wantHead http.Header
	}{
		{name: "hello", method: "GET", path: "/cgi-bin/hello", status: 200, wantBody: "Hello, World!\n",
			wantHead: http.Header{"Content-Type": {"text/plain; charset=utf-8"}}},
		{name: "hello with a trailing slash", method: "GET", path: "/cgi-bin/hello/", status: 200, wantBody: "Hello, World!\n"},
		{name: "404", method: "GET", path: "/cgi-bin/hello/missing", status: 404, wantBody: "Not Found\n"},
		// Apache 2.4 answers HTTP/1.1 clients of a CGI program in chunked
		// encoding, whatever Content-Length the program sent.
		{name: "HEAD", method: "HEAD", path: "/cgi-bin/hello", status: 200, wantBody: "",
			wantHead: http.Header{"Content-Type": {"text/plain; charset=utf-8"}}},
		{name: "POST with a body", method: "POST", path: "/cgi-bin/testapp/echo/form?a=1", body: "name=value&x=y",
			header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}},
			status: 200, wantBody: "POST|/echo/form|a=1||name=value&x=y"},
		{name: "non-UTF-8 path, query and header, both ways", method: "GET", path: "/cgi-bin/testapp/echo/caf%E9/%FF%FE?q=%E9&r=\xe9",
			header: http.Header{"X-Raw": {"caf\xe9\xff"}},
			status: 200, wantBody: "GET|/echo/caf\xe9/\xff\xfe|q=%E9&r=\xe9|caf\xe9\xff|",
			wantHead: http.Header{"X-Echo-Raw": {"caf\xe9\xff"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, srv.URL(tt.path), strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.header {
				req.Header[k] = v
			}
			resp, body := do(t, req)
			if resp.StatusCode != tt.status || string(body) != tt.wantBody {
				t.Errorf("%s %s = %d %q, want %d %q\n%s", tt.method, tt.path, resp.StatusCode, body, tt.status, tt.wantBody, srv.ErrorLog())
			}
			for k, v := range tt.wantHead {
				if got := resp.Header.Values(k); strings.Join(got, ",") != strings.Join(v, ",") {
					t.Errorf("%s %s: header %s = %q, want %q", tt.method, tt.path, k, got, v)
				}
			}
		})
	}
}

// TestApacheCGIStreams shows that a Flush in a CGI program reaches the
// client through Apache while the program still runs: it sends its second
// line only after the test, having read the first, creates a file.
func TestApacheCGIStreams(t *testing.T) {
	srv := startCGIBin(t)
	flag := filepath.Join(sharedTempDir(t), "go-on")
	resp, err := client.Get(srv.URL("/cgi-bin/testapp/stream?wait=" + flag))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	first, err := br.ReadString('\n')
	if err != nil || first != "first\n" {
		t.Fatalf("first line = %q, %v\n%s", first, err, srv.ErrorLog())
	}
	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(br)
	if err != nil || string(rest) != "second\n" {
		t.Errorf("rest = %q, %v; want %q", rest, err, "second\n")
	}
}

// TestREADMEShowsTheSnippets keeps the README's deployment snippets the
// files the tests use.
func TestREADMEShowsTheSnippets(t *testing.T) {
	root := moduleRoot(t)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ file, lang string }{
		{"apache-cgi-bin.conf", "apache"},
		{"nginx-upstream.conf", "nginx"},
		{"nginx-fastcgi.conf", "nginx"},
		{"nginx-cgi-bin.conf", "nginx"},
		{"nginx-status.conf", "nginx"},
	} {
		snippet, err := os.ReadFile(filepath.Join(root, "examples/deploy", tt.file))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(readme), "```"+tt.lang+"\n"+string(snippet)+"```") {
			t.Errorf("README.md does not show examples/deploy/%s as it is", tt.file)
		}
	}
}
