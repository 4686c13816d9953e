package main

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// TestHTTPLogsJSONDurationsInSeconds: with --log-format json the request
// log gives its duration in seconds, a float, not in nanoseconds.
func TestHTTPLogsJSONDurationsInSeconds(t *testing.T) {
	root := t.TempDir()
	writeScript(t, filepath.Join(root, "ok.cgi"), "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nok'\n")
	r := start(t, nil, "http", "--root", root, "--addr", "127.0.0.1:0", "--log-format", "json")
	addr := r.waitLog(`"msg":"cgirun: serving HTTP","addr":"(127\.0\.0\.1:\d+)"`)[1]
	if status, _, body := get(t, "GET", "http://"+addr+"/ok.cgi", "", nil); status != http.StatusOK {
		t.Fatalf("GET /ok.cgi = %d %q, want 200", status, body)
	}
	// A script's run takes more than a microsecond and less than a
	// minute: in nanoseconds the number would have no point and 4 or more
	// digits.
	r.waitLog(`"msg":"cgirun: request","method":"GET","uri":"/ok.cgi","status":200,"bytes":2,"remote":"[^"]+","duration":\d{1,2}\.\d+(e-0\d)?}`)
}

// TestAccessLogCombined: with --access-log-format combined (or
// CGIRUN_ACCESS_LOG_FORMAT), "cgirun http" and "cgirun proxy" log each
// request as a raw line of Apache's combined format between the slog
// lines, as a cgirun.Run program does: what is empty is "-", quotes are
// escaped, and a cut response shows the status it began with.
func TestAccessLogCombined(t *testing.T) {
	root := t.TempDir()
	writeScript(t, filepath.Join(root, "ok.cgi"), "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nok'\n")
	line := func(addr string) string {
		if status, _, body := get(t, "GET", "http://"+addr+"/ok.cgi?a=1", "", http.Header{"Referer": {"http://ref.example/"}, "User-Agent": {`agent "q"`}}); status != http.StatusOK {
			t.Fatalf("GET /ok.cgi = %d %q, want 200", status, body)
		}
		if status, _, _ := get(t, "GET", "http://"+addr+"/missing.cgi", "", http.Header{"User-Agent": {""}}); status != http.StatusNotFound {
			t.Fatalf("GET /missing.cgi = %d, want 404", status)
		}
		return `(?m)^127\.0\.0\.1 - - \[\d{2}/\w{3}/\d{4}:\d{2}:\d{2}:\d{2} [-+]\d{4}\] "GET /ok\.cgi\?a=1 HTTP/1\.1" 200 2 "http://ref\.example/" "agent \\"q\\""\n` +
			`127\.0\.0\.1 - - \[[^]]+\] "GET /missing\.cgi HTTP/1\.1" 404 \d+ "-" "-"$`
	}
	t.Run("http", func(t *testing.T) {
		r := start(t, nil, "http", "--root", root, "--addr", "127.0.0.1:0", "--access-log-format", "combined")
		r.waitLog(line(r.httpAddr()))
	})
	t.Run("proxy", func(t *testing.T) {
		sock := filepath.Join(socketDir(t), "f.sock")
		f := start(t, nil, "fcgi", "--root", root, "-s", "unix:"+sock)
		f.waitLog(`serving FastCGI`)
		t.Setenv("CGIRUN_ACCESS_LOG_FORMAT", "combined")
		r := start(t, nil, "proxy", "--to", "unix:"+sock, "--root", root, "--addr", "127.0.0.1:0")
		r.waitLog(line(r.httpAddr()))
	})
}

// TestFCGIAccessLog: "cgirun fcgi --access-log" logs each request, as the
// line of "cgirun http" or, with --access-log-format combined, as a raw
// line of Apache's combined format; without --access-log, none.
func TestFCGIAccessLog(t *testing.T) {
	root := t.TempDir()
	ok := writeScript(t, filepath.Join(root, "ok.cgi"), "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nok'\n")
	params := map[string]string{
		"GATEWAY_INTERFACE": "CGI/1.1", "REQUEST_METHOD": "GET", "SERVER_PROTOCOL": "HTTP/1.1",
		"SERVER_NAME": "localhost", "SERVER_PORT": "80", "REMOTE_ADDR": "127.0.0.9", "REMOTE_PORT": "4000",
		"SCRIPT_NAME": "/ok.cgi", "SCRIPT_FILENAME": ok, "REQUEST_URI": "/ok.cgi?a=1", "QUERY_STRING": "a=1",
		"HTTP_REFERER": "http://ref.example/", "HTTP_USER_AGENT": `agent "q"`,
	}
	tests := []struct {
		name string
		args []string
		want string // a regexp the log matches
	}{
		{"slog", []string{"--access-log"}, `msg="cgirun: request" method=GET uri="/ok.cgi\?a=1" status=200 bytes=2 remote=127\.0\.0\.9:4000 duration=`},
		{"combined", []string{"--access-log", "--access-log-format", "combined"},
			`(?m)^127\.0\.0\.9 - - \[[^]]+\] "GET /ok\.cgi\?a=1 HTTP/1\.1" 200 2 "http://ref\.example/" "agent \\"q\\""$`},
		{"none", nil, ``},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sock := filepath.Join(socketDir(t), "f.sock")
			r := start(t, nil, append([]string{"fcgi", "--root", root, "-s", "unix:" + sock}, tt.args...)...)
			r.waitLog(`serving FastCGI`)
			if rec := fcgiDo(t, "unix", sock, params, ""); rec.Code != http.StatusOK {
				t.Fatalf("FastCGI request = %d %q, want 200", rec.Code, rec.Body)
			}
			if tt.want == "" {
				if code := r.stop(); code != exitOK || strings.Contains(r.logs.String(), "ok.cgi") {
					t.Errorf("without --access-log: exit %d, log:\n%s\nwant no line about the request", code, r.logs)
				}
				return
			}
			r.waitLog(tt.want)
		})
	}
}
