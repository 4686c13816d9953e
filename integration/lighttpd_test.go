//go:build linux

package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// lighttpdServer is a running lighttpd; startLighttpd's cleanup stops it.
type lighttpdServer struct {
	Root string // holding lighttpd.conf, logs/ and htdocs/
	Port int    // on 127.0.0.1
	proc *process
}

// URL returns "http://127.0.0.1:PORT" + path.
func (s *lighttpdServer) URL(path string) string {
	return fmt.Sprintf("http://127.0.0.1:%d%s", s.Port, path)
}

// ErrorLog returns the error log so far, preceded by anything lighttpd
// wrote to stdout or stderr.
func (s *lighttpdServer) ErrorLog() string {
	return logs(s.proc.Output(), filepath.Join(s.Root, "logs", "error.log"))
}

// startLighttpd writes lighttpd.conf in a fresh directory with config
// (lighttpd.conf's own syntax: includes, modules, scgi.server) at its end,
// checks it with `lighttpd -tt`, starts `lighttpd -D` on a free port of
// 127.0.0.1 and waits until the port accepts. Running as root, lighttpd
// drops to www-data after it binds: unix sockets it connects to must be
// writable by www-data. A cleanup stops lighttpd by PID.
func startLighttpd(t testing.TB, config string) *lighttpdServer {
	t.Helper()
	bin := requireBinary(t, "lighttpd")
	root := sharedTempDir(t)
	logDir, docs := filepath.Join(root, "logs"), filepath.Join(root, "htdocs")
	mkdirs(t, logDir, docs)
	uid, gid, asRoot := ownerIDs(t)
	if asRoot {
		// lighttpd opens its error log once it runs as www-data.
		if err := os.Chown(logDir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	conf := filepath.Join(root, "lighttpd.conf")
	var lastErr error
	for range startAttempts {
		port := freePort(t)
		var b strings.Builder
		w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
		w("# Written by integration/lighttpd_test.go startLighttpd.")
		w("server.bind = %q", "127.0.0.1")
		w("server.port = %d", port)
		w("server.document-root = %q", docs)
		w("server.errorlog = %q", filepath.Join(logDir, "error.log"))
		w("server.pid-file = %q", filepath.Join(root, "lighttpd.pid"))
		if asRoot {
			w("server.username = %q\nserver.groupname = %q", serverUser, serverUser)
		}
		w("# --- config ---\n%s", config)
		writeFile(t, conf, b.String(), 0o644)
		env := []string{serverPath, "LANG=C"}
		check := startProcess(t, "lighttpd -tt", []string{bin, "-tt", "-f", conf}, env, filepath.Join(logDir, "check.log"), false)
		<-check.done
		if check.waitErr != nil {
			t.Fatalf("lighttpd -tt -f %s: %v\n%s\nconfig:\n%s", conf, check.waitErr, check.Output(), readFile(conf))
		}
		p := startProcess(t, "lighttpd", []string{bin, "-D", "-f", conf}, env, filepath.Join(logDir, "stdout-stderr.log"), false)
		s := &lighttpdServer{Root: root, Port: port, proc: p}
		lastErr = p.waitReady(dialTCP(fmt.Sprintf("127.0.0.1:%d", port)))
		if lastErr == nil {
			return s
		}
		if !strings.Contains(s.ErrorLog(), "Address already in use") {
			t.Fatalf("%v\nconfig %s:\n%s\n%s", lastErr, conf, readFile(conf), s.ErrorLog())
		}
		p.stop(t, false)
		truncate(t, p.output, filepath.Join(logDir, "error.log"))
	}
	t.Fatalf("lighttpd: %v (port taken %d times)", lastErr, startAttempts)
	return nil
}
