package cgirun

import (
	"strings"
	"testing"
)

func TestLoadConfig(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		err  string // "" means valid
	}{
		{"defaults", nil, ""},
		{"fastcgi unix", map[string]string{"CGIRUN_FASTCGI": "unix:/run/app.sock", "CGIRUN_SOCKET_MODE": "0600"}, ""},
		{"bad fastcgi address", map[string]string{"CGIRUN_FASTCGI": "nowhere"}, "CGIRUN_FASTCGI"},
		{"bad socket mode", map[string]string{"CGIRUN_SOCKET_MODE": "rw-rw----"}, "CGIRUN_SOCKET_MODE"},
		{"socket mode too large", map[string]string{"CGIRUN_SOCKET_MODE": "7777"}, "CGIRUN_SOCKET_MODE"},
		{"bad log format", map[string]string{"CGIRUN_LOG_FORMAT": "xml"}, "CGIRUN_LOG_FORMAT"},
		{"bad duration", map[string]string{"CGIRUN_SHUTDOWN_GRACE": "soon"}, "SHUTDOWN_GRACE"},
		{"negative count", map[string]string{"CGIRUN_MAX_CONNS": "-1"}, "CGIRUN_MAX_CONNS"},
		{"cert without key", map[string]string{"CGIRUN_TLS_CERT": "cert.pem"}, "CGIRUN_TLS_KEY"},
		{"an unprefixed name is not read", map[string]string{"FASTCGI": "nowhere", "HTTP": "x"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			cfg, err := LoadConfig()
			switch {
			case tt.err == "" && err != nil:
				t.Errorf("LoadConfig() error: %v", err)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Errorf("LoadConfig() = %v, want an error naming %s", err, tt.err)
			case tt.name == "defaults" && (cfg.HTTP != "127.0.0.1:8080" || cfg.SocketMode != "0660" || cfg.LogFormat != "text"):
				t.Errorf("defaults = %+v", cfg)
			}
		})
	}
}
