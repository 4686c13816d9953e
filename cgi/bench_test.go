package cgi

import (
	"io"
	"net/http"
	stdcgi "net/http/cgi"
	"os"
	"testing"
)

// BenchmarkServeCGI serves one GET with a browser's headers from the process
// environment to /dev/null, through this package and through net/http/cgi,
// so the two compare in one run. Allocation budget: fewer per request than
// net/http/cgi.
func BenchmarkServeCGI(b *testing.B) {
	env := map[string]string{
		"GATEWAY_INTERFACE": "CGI/1.1", "REQUEST_METHOD": "GET", "SERVER_PROTOCOL": "HTTP/1.1",
		"SERVER_NAME": "localhost", "SERVER_PORT": "80", "SCRIPT_NAME": "/cgi-bin/hello",
		"PATH_INFO": "/", "REQUEST_URI": "/cgi-bin/hello/", "QUERY_STRING": "",
		"REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "40000", "HTTP_HOST": "localhost",
		"HTTP_USER_AGENT":      "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0",
		"HTTP_ACCEPT":          "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
		"HTTP_ACCEPT_LANGUAGE": "en-US,en;q=0.5", "HTTP_ACCEPT_ENCODING": "gzip, deflate, br",
		"HTTP_CONNECTION": "keep-alive", "HTTP_COOKIE": "session=abc123; theme=dark",
	}
	for k, v := range env {
		b.Setenv(k, v)
	}
	devNull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer devNull.Close()
	stdout, stdin := os.Stdout, os.Stdin
	os.Stdout, os.Stdin = devNull, devNull
	defer func() { os.Stdout, os.Stdin = stdout, stdin }()

	hello := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "Hello, World!\n")
	})
	b.Run("impl=cgirun", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := Serve(hello); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("impl=net-http-cgi", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := stdcgi.Serve(hello); err != nil {
				b.Fatal(err)
			}
		}
	})
}
