package fastcgi

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	stdfcgi "net/http/fcgi"
	"path/filepath"
	"testing"
)

// nginxHello is the request nginx sends for GET / with Debian's
// fastcgi_params, on a kept connection.
var nginxHello = []string{
	"QUERY_STRING=", "REQUEST_METHOD=GET", "CONTENT_TYPE=", "CONTENT_LENGTH=",
	"SCRIPT_NAME=/", "REQUEST_URI=/", "DOCUMENT_URI=/", "DOCUMENT_ROOT=/var/www/html",
	"SERVER_PROTOCOL=HTTP/1.1", "REQUEST_SCHEME=http", "GATEWAY_INTERFACE=CGI/1.1",
	"SERVER_SOFTWARE=nginx/1.22.1", "REMOTE_ADDR=127.0.0.1", "REMOTE_PORT=51234",
	"REMOTE_USER=", "SERVER_ADDR=127.0.0.1", "SERVER_PORT=8080", "SERVER_NAME=localhost",
	"REDIRECT_STATUS=200", "HTTP_HOST=localhost:8080", "HTTP_USER_AGENT=wrk",
	"HTTP_ACCEPT=*/*",
}

// benchServe measures one request to a server serving on addr: on one kept
// connection, or on a new connection each (nginx's default, no
// fastcgi_keep_conn). The client allocates nothing on a kept connection.
func benchServe(b *testing.B, addr string, keep bool) {
	c, err := net.Dial("unix", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { c.Close() }()
	req := requestRecords(1, keep, "", nginxHello...)
	br := bufio.NewReaderSize(c, 64<<10)
	hdr := make([]byte, headerLen)
	b.ReportAllocs()
	for b.Loop() {
		if !keep {
			c.Close()
			if c, err = net.Dial("unix", addr); err != nil {
				b.Fatal(err)
			}
			br.Reset(c)
		}
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		for {
			if _, err := io.ReadFull(br, hdr); err != nil {
				b.Fatal(err)
			}
			h, err := parseHeader(hdr)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := br.Discard(int(h.ContentLength) + int(h.PaddingLength)); err != nil {
				b.Fatal(err)
			}
			if h.Type == typeEndRequest {
				break
			}
		}
	}
}

// BenchmarkServe compares this server with net/http/fcgi on the same
// request, handler and client, in one run. Target: at least 1.5x the
// requests per second and at most half the allocations.
func BenchmarkServe(b *testing.B) {
	for _, keep := range []bool{true, false} {
		b.Run(fmt.Sprintf("keepconn=%v", keep), func(b *testing.B) { benchServeBoth(b, keep) })
	}
}

func benchServeBoth(b *testing.B, keep bool) {
	h := helloHandler()
	b.Run("impl=cgirun", func(b *testing.B) {
		addr := filepath.Join(b.TempDir(), "s")
		l, err := Listen("unix:"+addr, 0)
		if err != nil {
			b.Fatal(err)
		}
		s := &Server{Handler: h, Logger: slog.New(slog.DiscardHandler)}
		done := make(chan error, 1)
		go func() { done <- s.Serve(l) }()
		benchServe(b, addr, keep)
		s.Close()
		<-done
	})
	b.Run("impl=net-http-fcgi", func(b *testing.B) {
		addr := filepath.Join(b.TempDir(), "s")
		l, err := net.Listen("unix", addr)
		if err != nil {
			b.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- stdfcgi.Serve(l, h) }()
		benchServe(b, addr, keep)
		l.Close()
		<-done
	})
}

var _ http.Handler = helloHandler()
