//go:build linux

package integration

import (
	"fmt"
	"io"
	"path/filepath"
	"testing"

	"github.com/cgirun/cgirun/internal/testlog"
)

// lifeCrashScripts fail after their header block went out: the client
// must be able to tell that the answer is not whole.
var lifeCrashScripts = map[string]string{
	"segv.sh":  "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\npartial\\n'\nkill -SEGV $$\n",
	"exit3.sh": "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\npartial\\n'\nexit 3\n",
	"fine.sh":  "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\npartial\\n'\nexit 0\n",
}

// TestAttackLifeCrashAfterHeader: a script killed by SIGSEGV after part
// of its body, or exiting 3 after all of it, behind nginx (`cgirun fcgi`)
// and under `cgirun http`: the client gets an error (a chunked response
// without its last chunk), never an answer that looks whole, and the
// runner logs the script and its status. The same script exiting 0 is a
// whole answer.
func TestAttackLifeCrashAfterHeader(t *testing.T) {
	rig := startFaultRig(t)
	for name, body := range lifeCrashScripts {
		writeFile(t, filepath.Join(rig.Root, name), body, 0o755)
	}
	bin := filepath.Join(t.TempDir(), "cgirun")
	buildExample(t, "./cmd/cgirun", bin)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	httpd := startProcess(t, "cgirun http", []string{bin, "http", "--root", rig.Root, "--addr", addr}, []string{serverPath, "LANG=C"}, filepath.Join(t.TempDir(), "http.log"), false)
	if err := httpd.waitReady(dialTCP(addr)); err != nil {
		t.Fatalf("%v\n%s", err, httpd.Output())
	}
	// nginx tells a response cut short from a whole one only with
	// fastcgi_keep_conn on, as examples/deploy/nginx-cgi-bin.conf sets it:
	// without it, the end of the connection is the end of the answer.
	keep := startNginx(t, nginxConfig{Server: fmt.Sprintf(`location / {
    include %s;
    fastcgi_param SCRIPT_FILENAME %s$fastcgi_script_name;
    fastcgi_keep_conn on;
    fastcgi_pass unix:%s;
}
`, nginxFastCGIParams, rig.Root, filepath.Join(filepath.Dir(rig.Root), "patient.sock"))})
	fronts := []struct {
		name   string
		url    func(script string) string
		log    func() string // the runner's
		webLog func() string // nginx's error log; nil: none
	}{
		{"nginx, cgirun fcgi", func(s string) string { return keep.URL("/" + s) }, rig.patient.Output, keep.ErrorLog},
		{"cgirun http", func(s string) string { return "http://" + addr + "/" + s }, httpd.Output, nil},
	}
	for _, f := range fronts {
		for _, tt := range []struct{ script, status string }{{"segv.sh", "signal: segmentation fault"}, {"exit3.sh", "exit status 3"}, {"fine.sh", ""}} {
			t.Run(f.name+", "+tt.script, func(t *testing.T) {
				resp, err := client.Get(f.url(tt.script))
				if err != nil {
					t.Fatalf("GET %s: %v", tt.script, err)
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if tt.status == "" {
					if err != nil || resp.StatusCode != 200 || string(b) != "partial\n" {
						t.Errorf("GET %s = %d %q %v, want 200 \"partial\\n\" whole", tt.script, resp.StatusCode, b, err)
					}
					return
				}
				if err == nil {
					t.Errorf("GET %s = %d %q, read to its end; want an error: the script failed after its header block", tt.script, resp.StatusCode, b)
				}
				if testlog.Line(f.log(), "failed after its header block", tt.script, tt.status) == "" {
					t.Errorf("no log line naming %s and %q:\n%s", tt.script, tt.status, f.log())
				}
				if f.webLog != nil && testlog.Line(f.webLog(), "upstream prematurely closed", tt.script) == "" {
					t.Errorf("nginx logged no cut for %s:\n%s", tt.script, f.webLog())
				}
			})
		}
	}
	if t.Failed() {
		t.Log(keep.ErrorLog() + "\n" + rig.Logs())
	}
}
