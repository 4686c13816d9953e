//go:build linux

package integration

import (
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cgirun/cgirun"
	"github.com/cgirun/cgirun/fastcgi"
)

// TestNginxMaxRequests: behind nginx, a request past the bound on requests
// answered at once gets the application's 503 with Retry-After, not the
// 502 and "upstream sent unexpected FastCGI record: 3" that nginx makes of
// FCGI_OVERLOADED (issue 14, fault 4); cgirun's status page still answers.
// Both back ends: fastcgi.Server's MaxRequests, and Run's
// CGIRUN_MAX_REQUESTS.
func TestNginxMaxRequests(t *testing.T) {
	requireBinary(t, "nginx")
	requireFile(t, nginxFastCGIParams)
	tests := []struct {
		name  string
		serve func(t *testing.T, sock string, h http.Handler) (statusPath string)
	}{
		{"fastcgi.Server MaxRequests", func(t *testing.T, sock string, h http.Handler) string {
			l, err := fastcgi.Listen("unix:"+sock, 0o666)
			if err != nil {
				t.Fatal(err)
			}
			s := &fastcgi.Server{Handler: h, MaxRequests: 1, Logger: slog.New(slog.DiscardHandler)}
			served := make(chan error, 1)
			go func() { served <- s.Serve(l) }()
			t.Cleanup(func() {
				s.Close()
				<-served
			})
			return ""
		}},
		{"CGIRUN_MAX_REQUESTS", func(t *testing.T, sock string, h http.Handler) string {
			for k, v := range map[string]string{"CGIRUN_FASTCGI": "unix:" + sock, "CGIRUN_SOCKET_MODE": "0666", "CGIRUN_MAX_REQUESTS": "1", "CGIRUN_STATUS_PATH": "/status"} {
				t.Setenv(k, v)
			}
			cfg, err := cgirun.LoadConfig()
			if err != nil {
				t.Fatal(err)
			}
			s := cgirun.NewServer(cfg, h, cgirun.Options{Logger: slog.New(slog.DiscardHandler)})
			if err := s.Listen(); err != nil {
				t.Fatal(err)
			}
			served := make(chan error, 1)
			go func() { served <- s.Serve() }()
			t.Cleanup(func() {
				s.Close()
				<-served
			})
			return "/status"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			started, release := make(chan struct{}), make(chan struct{})
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/block" {
					close(started)
					<-release
				}
				io.WriteString(w, "ok")
			})
			sock := filepath.Join(sharedTempDir(t), "app.sock")
			checkSocketPath(t, sock)
			statusPath := tt.serve(t, sock, h)
			srv := startNginx(t, nginxConfig{
				Server: "location / {\n    include " + nginxFastCGIParams + ";\n    fastcgi_pass unix:" + sock + ";\n}\n",
			})
			logs := func() string { return srv.ErrorLog() }

			first := make(chan string, 1)
			go func() {
				resp, err := http.Get(srv.URL("/block"))
				if err != nil {
					first <- err.Error()
					return
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				first <- resp.Status + " " + string(b)
			}()
			<-started
			if statusPath != "" {
				if resp, body := nginxGet(t, srv.URL(statusPath), nil, logs); resp.StatusCode != http.StatusOK {
					t.Errorf("GET %s with the one slot taken = %d %q, want 200", statusPath, resp.StatusCode, body)
				}
			}
			resp, body := nginxGet(t, srv.URL("/"), nil, logs)
			if resp.StatusCode != http.StatusServiceUnavailable || string(body) != "503 Service Unavailable\n" || resp.Header.Get("Retry-After") != "1" {
				t.Errorf("GET / past the bound = %d %q (Retry-After %q), want 503 %q with Retry-After 1\n%s",
					resp.StatusCode, body, resp.Header.Get("Retry-After"), "503 Service Unavailable\n", logs())
			}
			close(release)
			if got := <-first; got != "200 OK ok" {
				t.Errorf("held request = %q, want 200 OK ok", got)
			}
			if l := logs(); strings.Contains(l, "unexpected FastCGI record") {
				t.Errorf("nginx's error log = %q, want no unexpected FastCGI record", l)
			}
		})
	}
}
