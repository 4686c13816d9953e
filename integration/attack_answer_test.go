//go:build linux

package integration

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// TestAttackScriptHeadersBehindNginx: a script's header block with two
// Content-Length values (nginx would take the last and wait for bytes
// that never come) or an escape sequence in its Status reason phrase
// (nginx would put it in the client's status line) gets 502 from the
// runner, behind real nginx: the client sees neither.
func TestAttackScriptHeadersBehindNginx(t *testing.T) {
	requireBinary(t, "nginx")
	requireFile(t, nginxFastCGIParams)
	root := filepath.Join(sharedTempDir(t), "root")
	mkdirs(t, root)
	writeFile(t, filepath.Join(root, "lengths.sh"), "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\nContent-Length: 5\\r\\nContent-Length: 50\\r\\n\\r\\nhello'\n", 0o755)
	writeFile(t, filepath.Join(root, "escape.sh"), "#!/bin/sh\nprintf 'Status: 200 OK\\033[2J\\013\\r\\nContent-Type: text/plain\\r\\n\\r\\nhello'\n", 0o755)
	runner := startAttackRunner(t, root)
	srv := startNginx(t, nginxConfig{Server: fmt.Sprintf(`location / {
    include %s;
    fastcgi_param SCRIPT_FILENAME %s$fastcgi_script_name;
    fastcgi_pass unix:%s;
}
`, nginxFastCGIParams, root, runner.Socket)})
	logs := func() string { return srv.ErrorLog() + "\n--- cgirun log ---\n" + runner.Log() }
	for _, tt := range []struct{ script, logged string }{
		{"lengths.sh", "Content-Length"},
		{"escape.sh", "reason"},
	} {
		req, err := http.NewRequestWithContext(t.Context(), "GET", srv.URL("/"+tt.script), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, body := nginxDo(t, req, logs)
		if resp.StatusCode != 502 || strings.Contains(resp.Status, "\x1b") || strings.Contains(string(body), "hello") {
			t.Errorf("%s through nginx = %q %q, want 502 and no part of the script's answer\n%s", tt.script, resp.Status, body, logs())
		}
		if !strings.Contains(runner.Log(), tt.logged) {
			t.Errorf("the runner's log does not name %q for %s\n%s", tt.logged, tt.script, runner.Log())
		}
	}
}
