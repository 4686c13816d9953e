//go:build linux

package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/yookoala/gofast"
)

// lifeDaemonScripts leave a process behind in a session of its own, which
// no signal to the script's group reaches, holding the script's stdout.
// Each writes that process's pid to the file its query names, then
// answers in part.
var lifeDaemonScripts = map[string]string{
	"daemon.sh":     "#!/bin/sh\nsetsid sleep 40 &\necho $! > \"$QUERY_STRING\"\nprintf 'Content-Type: text/plain\\r\\n\\r\\npartial\\n'\nexit 0\n",
	"doublefork.sh": "#!/bin/sh\n( setsid sleep 40 & echo $! > \"$QUERY_STRING\" ) &\nwait\nprintf 'Content-Type: text/plain\\r\\n\\r\\npartial\\n'\nexit 0\n",
	"daemonslow.sh": "#!/bin/sh\nsetsid sleep 40 &\necho $! > \"$QUERY_STRING\"\nprintf 'Content-Type: text/plain\\r\\n\\r\\npartial\\n'\nexec sleep 30\n",
}

// TestAttackLifeDaemonEscapes plays scripts that start daemons out of
// reach of the process-group kill ("setsid sleep 40 &", a double fork)
// against the real `cgirun fcgi`, over raw FastCGI and behind nginx: the
// request ends (the KillGrace after the script's exit, at --timeout, or
// when the client leaves) well before the daemon would, the daemon is
// killed and reaped by the runner (a child subreaper), and the runner is
// left with no child, zombie or extra descriptor.
func TestAttackLifeDaemonEscapes(t *testing.T) {
	rig := startFaultRig(t)
	for name, body := range lifeDaemonScripts {
		writeFile(t, filepath.Join(rig.Root, name), body, 0o755)
	}
	runners := map[string]int{"strict": rig.strict.cmd.Process.Pid, "patient": rig.patient.cmd.Process.Pid}
	baseFDs := map[string]int{}
	for name, pid := range runners {
		if a := rig.get("/" + name + "/hello.sh"); a.status != 200 {
			t.Fatalf("GET /%s/hello.sh = %d %q %v\n%s", name, a.status, a.body, a.err, rig.Logs())
		}
		_, baseFDs[name] = settle(pid, 0)
	}
	// cut accepts what a client may get from a response cut short:
	// what was sent, or an error; never a hang, nor a body of 40 s.
	cut := func(a faultAnswer) error {
		if a.err == nil && (a.status != 200 || a.body != "partial\n") {
			return fmt.Errorf("got %d %q, want what was sent (200 \"partial\\n\") or an error", a.status, a.body)
		}
		return nil
	}
	tests := []struct {
		name, runner, script string
		do                   func(t *testing.T, path, pidFile string) faultAnswer
	}{
		{"setsid daemon, behind nginx", "patient", "daemon.sh", nil},
		{"double fork, behind nginx", "patient", "doublefork.sh", nil},
		{"setsid daemon, script past --timeout, behind nginx", "strict", "daemonslow.sh", nil},
		{"setsid daemon, raw FastCGI", "patient", "daemon.sh", func(t *testing.T, _, pidFile string) faultAnswer {
			return lifeFastCGIGet(t, filepath.Join(filepath.Dir(rig.Root), "patient.sock"), filepath.Join(rig.Root, "daemon.sh"), pidFile)
		}},
		{"setsid daemon, the client leaves", "patient", "daemonslow.sh", func(t *testing.T, path, pidFile string) faultAnswer {
			ctx, cancel := context.WithCancel(t.Context())
			var wg sync.WaitGroup
			defer wg.Wait()
			wg.Go(func() {
				nginxWaitForFile(pidFile) // the script runs
				cancel()
			})
			req, _ := http.NewRequestWithContext(ctx, "GET", rig.nginx.URL(path), nil)
			resp, err := client.Do(req)
			if err != nil {
				return faultAnswer{err: err}
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			return faultAnswer{status: resp.StatusCode, body: string(b), err: err}
		}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pidFile := rig.pidFile("life-"+tt.script, i)
			path := fmt.Sprintf("/%s/%s?%s", tt.runner, tt.script, pidFile)
			var a faultAnswer
			if tt.do != nil {
				a = tt.do(t, path, pidFile)
			} else {
				a = rig.get(path)
			}
			if err := cut(a); err != nil {
				t.Error(err)
			}
			// The daemon sleeps 40 s: an answer that waited for it would
			// end at the client's own timeout.
			var timeout interface{ Timeout() bool }
			if errors.As(a.err, &timeout) && timeout.Timeout() {
				t.Errorf("the request never ended: %v", a.err)
			}
			daemon := runnerReadPID(t, pidFile, rig.Logs)
			runner := runners[tt.runner]
			if left := runnerWaitGone(daemon, runner); left != "" {
				t.Errorf("the daemon %d is still there: %s", daemon, left)
				syscallKill(daemon)
			}
			children, fds := settle(runner, baseFDs[tt.runner])
			if _, zombies := childrenOf(runner); len(zombies) > 0 {
				t.Errorf("the runner has zombies: %v", zombies)
			}
			if children > 0 || fds > baseFDs[tt.runner] {
				t.Errorf("the runner has %d children and %d descriptors open, %d before", children, fds, baseFDs[tt.runner])
			}
			if t.Failed() {
				t.Log(rig.Logs())
			}
		})
	}
}

// lifeFastCGIGet asks the runner on the unix socket sock for script over
// raw FastCGI, as any process that reaches the socket can, bounded by
// clientTimeout; a response cut short comes back as an error.
func lifeFastCGIGet(t *testing.T, sock, script, query string) faultAnswer {
	t.Helper()
	return lifeFastCGIGetWithin(t, sock, script, query, clientTimeout)
}

// lifeFastCGIGetWithin is lifeFastCGIGet bounded by limit.
func lifeFastCGIGetWithin(t *testing.T, sock, script, query string, limit time.Duration) faultAnswer {
	t.Helper()
	dial := gofast.SimpleConnFactory("unix", sock)
	c, err := gofast.SimpleClientFactory(func() (net.Conn, error) {
		c, err := dial()
		if err == nil {
			err = c.SetDeadline(time.Now().Add(limit))
		}
		return c, err
	})()
	if err != nil {
		t.Fatalf("connecting to %s: %v", sock, err)
	}
	defer c.Close()
	req := gofast.NewRequest(nil)
	for name, value := range map[string]string{
		"GATEWAY_INTERFACE": "CGI/1.1", "REQUEST_METHOD": "GET", "SERVER_PROTOCOL": "HTTP/1.1",
		"SCRIPT_FILENAME": script, "SCRIPT_NAME": "/" + filepath.Base(script), "QUERY_STRING": query,
	} {
		req.Params[name] = value
	}
	resp, err := c.Do(req)
	if err != nil {
		return faultAnswer{err: err}
	}
	rec := httptest.NewRecorder()
	var stderr bytes.Buffer
	err = resp.WriteTo(rec, &stderr)
	if err == nil && strings.Contains(stderr.String(), "gofast") {
		err = fmt.Errorf("%s", stderr.String())
	}
	return faultAnswer{status: rec.Code, body: rec.Body.String(), err: err}
}

// syscallKill kills process pid, which a failed test left running.
func syscallKill(pid int) {
	if p, err := os.FindProcess(pid); err == nil {
		p.Kill()
	}
}
