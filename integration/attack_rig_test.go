//go:build linux

package integration

import (
	"bytes"
	"io"
	"net"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/yookoala/gofast"
)

// attackRunner is `cgirun fcgi` on a unix socket, started for an attack
// test; its cleanup stops it by PID.
type attackRunner struct {
	Socket string
	proc   *process
}

// startAttackRunner builds cmd/cgirun and starts `cgirun fcgi --root root`
// with the extra flags, its socket mode 0666 so that nginx's worker
// (www-data when the test runs as root) may connect.
func startAttackRunner(t *testing.T, root string, extra ...string) *attackRunner {
	t.Helper()
	dir := sharedTempDir(t)
	bin := filepath.Join(t.TempDir(), "cgirun")
	buildExample(t, "./cmd/cgirun", bin)
	sock := filepath.Join(dir, "cgirun.sock")
	checkSocketPath(t, sock)
	argv := append([]string{bin, "fcgi", "--root", root, "-s", "unix:" + sock, "--socket-mode", "0666"}, extra...)
	p := startProcess(t, "cgirun", argv, []string{serverPath, "LANG=C"}, filepath.Join(dir, "cgirun.log"), false)
	if err := p.waitReady(nginxSocketReady(sock)); err != nil {
		t.Fatalf("%v\n--- cgirun log ---\n%s", err, p.Output())
	}
	return &attackRunner{Socket: sock, proc: p}
}

// Log returns what the runner logged so far.
func (r *attackRunner) Log() string { return r.proc.Output() }

// Do sends one request with exactly these params (raw: names no web server
// would send) and body to the runner, and returns the status, the body
// and the script's stderr.
func (r *attackRunner) Do(t *testing.T, params map[string]string, body []byte) (int, string, string) {
	t.Helper()
	client, err := gofast.SimpleClientFactory(func() (net.Conn, error) {
		c, err := net.Dial("unix", r.Socket)
		if err != nil {
			return nil, err
		}
		return c, c.SetDeadline(time.Now().Add(clientTimeout))
	})()
	if err != nil {
		t.Fatalf("connecting to %s: %v\n%s", r.Socket, err, r.Log())
	}
	defer client.Close()
	req := gofast.NewRequest(nil)
	req.Params["GATEWAY_INTERFACE"] = "CGI/1.1"
	req.Params["SERVER_PROTOCOL"] = "HTTP/1.1"
	req.Params["REQUEST_METHOD"] = "GET"
	for k, v := range params {
		req.Params[k] = v
	}
	if body != nil {
		req.Params["REQUEST_METHOD"] = "POST"
		req.Params["CONTENT_LENGTH"] = strconv.Itoa(len(body))
		req.Stdin = io.NopCloser(bytes.NewReader(body))
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("FastCGI request %v: %v\n%s", params, err, r.Log())
	}
	rec := httptest.NewRecorder()
	var stderr bytes.Buffer
	if err := resp.WriteTo(rec, &stderr); err != nil {
		t.Fatalf("FastCGI request %v: %v\n%s", params, err, r.Log())
	}
	return rec.Code, rec.Body.String(), stderr.String()
}
