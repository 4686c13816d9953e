package cgirun

import (
	"bytes"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestListenChecksTLSFiles: bad TLS files fail Listen with one error that
// names both variables and both files, before "serving HTTPS" is logged;
// not at the first handshake with "failed to find any PEM data" (issue 14).
func TestListenChecksTLSFiles(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeSelfSigned(t, cert, key)
	notPEM := filepath.Join(dir, "not.pem")
	os.WriteFile(notPEM, []byte("hello\n"), 0o600)
	tests := []struct {
		name, cert, key string
	}{
		{"certificate not PEM", notPEM, key},
		{"key not PEM", cert, notPEM},
		{"key and certificate swapped", key, cert},
		{"no such certificate", filepath.Join(dir, "missing.pem"), key},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logged bytes.Buffer
			cfg := testConfig(t, map[string]string{"CGIRUN_HTTP": "127.0.0.1:0", "CGIRUN_TLS_CERT": tt.cert, "CGIRUN_TLS_KEY": tt.key})
			s := NewServer(cfg, http.NotFoundHandler(), Options{Logger: slog.New(slog.NewTextHandler(&logged, nil))})
			err := s.Listen()
			if err == nil {
				s.Close()
				t.Fatalf("Listen() with CGIRUN_TLS_CERT=%s, CGIRUN_TLS_KEY=%s = nil, want an error", tt.cert, tt.key)
			}
			for _, want := range []string{"CGIRUN_TLS_CERT=" + `"` + tt.cert + `"`, "CGIRUN_TLS_KEY=" + `"` + tt.key + `"`} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Listen() = %v, want it to name %s", err, want)
				}
			}
			if len(s.Addrs()) != 0 || logged.Len() != 0 {
				t.Errorf("Listen() = %v listened on %v and logged %q, want neither", err, s.Addrs(), logged.String())
			}
		})
	}
}
