package uwsgi

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"testing"
)

// BenchmarkServe measures one GET as nginx's uwsgi_pass sends it, on a new
// connection each (uwsgi has no keep-alive), answered by a small handler:
// beside fastcgi's BenchmarkServe/keepconn=false.
func BenchmarkServe(b *testing.B) {
	addr := filepath.Join(b.TempDir(), "s")
	l, err := Listen("unix:"+addr, 0)
	if err != nil {
		b.Fatal(err)
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "Hello, World!\n")
	})
	s := &Server{Handler: h, Logger: slog.New(slog.DiscardHandler)}
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	defer func() { s.Close(); <-done }()
	req := appendPacket(nil, 0, 0, nginxGet...)
	buf := make([]byte, 4<<10)
	b.ReportAllocs()
	for b.Loop() {
		c, err := net.Dial("unix", addr)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		for {
			if _, err := c.Read(buf); err == io.EOF {
				break
			} else if err != nil {
				b.Fatal(err)
			}
		}
		c.Close()
	}
}
