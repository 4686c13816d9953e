//go:build linux

package integration

import (
	"context"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestCGIAccessLog: a cgirun program started as a CGI script, as Apache's
// mod_cgi starts it, logs what its client got, as HTTP and FastCGI do: the
// status and bytes of a normal answer, and the clean 500 of a panic, never
// "status=200 bytes=0" (issue 14).
func TestCGIAccessLog(t *testing.T) {
	bin := filepath.Join(sharedTempDir(t), "testapp")
	buildExample(t, "./integration/testapp", bin)
	tests := []struct {
		path   string
		status string // the CGI Status line
		access string // the end of the access line, from status on
	}{
		{"/", "Status: 200 OK\r\n", `status=200 bytes=14 `},
		{"/panic", "Status: 500 Internal Server Error\r\n", `status=500 bytes=\d+ `},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), clientTimeout)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin)
			cmd.Env = runEnv("GATEWAY_INTERFACE=CGI/1.1", "SERVER_PROTOCOL=HTTP/1.1", "REQUEST_METHOD=GET",
				"SCRIPT_NAME=/cgi-bin/testapp", "PATH_INFO="+tt.path, "REQUEST_URI=/cgi-bin/testapp"+tt.path,
				"REMOTE_ADDR=127.0.0.1", "CGIRUN_ACCESS_LOG=true")
			var stderr strings.Builder
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil || !strings.HasPrefix(string(out), tt.status) {
				t.Fatalf("testapp as CGI for %s: %v, stdout %q, stderr %q; want %q first", tt.path, err, out, stderr.String(), tt.status)
			}
			re := regexp.MustCompile(`msg=access .*` + tt.access)
			if !re.MatchString(stderr.String()) {
				t.Errorf("testapp as CGI for %s logged %q, want an access line matching %q", tt.path, stderr.String(), re)
			}
		})
	}
}
