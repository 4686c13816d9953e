//go:build linux

package integration

import (
	"bytes"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/yookoala/gofast"
)

// TestFcgiScriptCannotReadRunnersFd7 starts the cgirun binary as
// "cgirun fcgi 7< root-only-file" would (a file on fd 7, inheritable),
// behind no web server: its socket on fd 0, as spawn-fcgi hands it. A
// script then tries to read fd 7 and lists its own descriptors: it must
// read nothing and hold fds 0, 1 and 2 only (and ls's own, 3).
func TestFcgiScriptCannotReadRunnersFd7(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "cgirun")
	buildExample(t, "cmd/cgirun", bin)
	secret := filepath.Join(dir, "root-only")
	if err := os.WriteFile(secret, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(secret)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	root := filepath.Join(dir, "cgi-bin")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(root, "fds.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\n{ cat <&7; } 2>/dev/null || echo unreadable\nexec ls /proc/self/fd\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "fds.sock")
	l := runListenUnix(t, sock)
	cmd := exec.Command(bin, "fcgi", "--root", root)
	cmd.Env = runEnv()
	cmd.Stdin = l
	cmd.ExtraFiles = []*os.File{nil, nil, nil, nil, f} // fd 7
	p := runStart(t, "cgirun fcgi 7<root-only", cmd, filepath.Join(dir, "cgirun.log"))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	// The socket listens already: the request waits in its backlog.
	client, err := gofast.SimpleClientFactory(func() (net.Conn, error) {
		c, err := net.Dial("unix", sock)
		if err != nil {
			return nil, err
		}
		return c, c.SetDeadline(time.Now().Add(clientTimeout))
	})()
	if err != nil {
		t.Fatalf("connecting to %s: %v\n%s", sock, err, p.Output())
	}
	defer client.Close()
	req := gofast.NewRequest(nil)
	req.Params["GATEWAY_INTERFACE"] = "CGI/1.1"
	req.Params["REQUEST_METHOD"] = "GET"
	req.Params["SERVER_PROTOCOL"] = "HTTP/1.1"
	req.Params["SCRIPT_FILENAME"] = script
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("FastCGI GET %s: %v\n%s", script, err, p.Output())
	}
	rec := httptest.NewRecorder()
	var stderr bytes.Buffer
	if err := resp.WriteTo(rec, &stderr); err != nil || rec.Code != 200 {
		t.Fatalf("FastCGI GET %s = %d %q, %v, stderr %q\n%s", script, rec.Code, rec.Body, err, stderr.String(), p.Output())
	}
	body := rec.Body.String()
	if strings.Contains(body, "secret") {
		t.Errorf("the script read the runner's fd 7: %q", body)
	}
	if got, want := strings.Fields(body), []string{"unreadable", "0", "1", "2", "3"}; !slices.Equal(got, want) {
		t.Errorf("the script's output = %q, want %q (fd 7 unreadable, only 0, 1, 2 and ls's own open)", got, want)
	}
	runStop(t, p, syscall.SIGTERM)
}
