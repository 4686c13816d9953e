package uwsgi

import (
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/cgirun/cgirun/bridge"
)

// writes is a Responder that writes its strings one write each.
type writes []string

func (ws writes) Respond(ctx context.Context, req *bridge.Request, out bridge.Output) error {
	for _, w := range ws {
		if _, err := io.WriteString(out, w); err != nil {
			return err
		}
	}
	return nil
}

// TestStatusLine: Apache's mod_proxy_uwsgi reads an HTTP status line and
// answers 502 to anything else, so the CGI stream's leading Status line
// becomes one, however the responder's writes split it; a stream that
// does not start with Status is sent as it is.
func TestStatusLine(t *testing.T) {
	tests := []struct {
		name   string
		writes writes
		want   string
	}{
		{"one write", writes{"Status: 201 Created\r\n\r\nmade"}, "HTTP/1.1 201 Created\r\n\r\nmade"},
		{"split inside Status", writes{"Sta", "tus", ": 404 Not Found\r\n", "\r\n"}, "HTTP/1.1 404 Not Found\r\n\r\n"},
		{"a byte a write", writes{"S", "t", "a", "t", "u", "s", ":", " ", "200 OK\r\n\r\n"}, "HTTP/1.1 200 OK\r\n\r\n"},
		{"no Status line", writes{"Location: /elsewhere\r\n\r\n"}, "Location: /elsewhere\r\n\r\n"},
		{"almost Status", writes{"Stat", "e: x\r\n\r\n"}, "State: x\r\n\r\n"},
		{"shorter than Status", writes{"Sta"}, "Sta"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := filepath.Join(t.TempDir(), "s")
			l, err := Listen(addr, 0)
			if err != nil {
				t.Fatal(err)
			}
			s := &Server{Responder: tt.writes, Logger: slog.New(slog.DiscardHandler)}
			done := make(chan error, 1)
			go func() { done <- s.Serve(l) }()
			defer func() { s.Close(); <-done }()
			c, err := net.Dial("unix", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			c.Write(request("", "REQUEST_METHOD=GET"))
			got, err := io.ReadAll(c)
			if string(got) != tt.want || err != nil {
				t.Errorf("answer = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
