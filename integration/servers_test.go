//go:build linux

package integration

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Bounds on everything the harness waits for.
const (
	startTimeout  = 15 * time.Second // server start until it accepts
	stopTimeout   = 10 * time.Second // SIGTERM until the process has exited
	strayTimeout  = 3 * time.Second  // parent exit until its group is empty
	clientTimeout = 10 * time.Second // one HTTP request, body included
	pollMax       = 100 * time.Millisecond
	startAttempts = 3 // a freshly picked port can be taken before the server binds it
)

// Debian paths. Tests that need another layout are not portable anyway.
const (
	apacheModulesDir   = "/usr/lib/apache2/modules"
	nginxFastCGIParams = "/etc/nginx/fastcgi_params" // include it from nginxConfig.Server
	serverUser         = "www-data"                  // workers' user when we run as root
	serverPath         = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// requireBinary returns the absolute path of the program name, searched in
// PATH and then in /usr/sbin and /sbin (absent from many users' PATH). When it
// is missing the test is skipped, unless CI is "true": CI installs every
// server (integration/install.sh), so there a missing one fails the test.
func requireBinary(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return p
		}
	}
	missing(t, "program %q not found in PATH, /usr/sbin or /sbin", name)
	return ""
}

// requireFile applies the rule of requireBinary to a file that a package
// installs, such as an Apache module.
func requireFile(t testing.TB, path string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		missing(t, "%v", err)
	}
}

func missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s; CI=true, so this is a failure (integration/install.sh should have installed it)", msg)
	}
	t.Skipf("%s; skipping (run integration/install.sh as root to install the servers; CI=true makes this a failure)", msg)
}

// sharedTempDir returns a t.TempDir that the servers' unprivileged workers
// (www-data) can read: t.TempDir creates it and its per-test parent with mode
// 0700, so both are opened to 0755. Files and directories created inside keep
// the umask's modes (0644/0755 with the usual 022).
func sharedTempDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatalf("chmod %s: %v", d, err)
		}
	}
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatalf("stat %s: %v", d, err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			t.Fatalf("%s (mode %v) is not searchable by other users, so the servers' workers cannot reach %s; set TMPDIR to a world-searchable directory", d, fi.Mode().Perm(), dir)
		}
		if d == filepath.Dir(d) {
			return dir
		}
	}
}

// mkdirs creates each directory with mode 0755.
func mkdirs(t testing.TB, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func writeFile(t testing.TB, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
// Another process can take it before the server binds it; the start helpers
// retry with a new port when the server reports "Address already in use".
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// ownerIDs returns the uid and gid of serverUser when the test runs as root,
// the only case where the servers switch user; ok is false otherwise.
func ownerIDs(t testing.TB) (uid, gid int, ok bool) {
	t.Helper()
	if os.Geteuid() != 0 {
		return 0, 0, false
	}
	u, err := user.Lookup(serverUser)
	if err != nil {
		t.Fatalf("running as root, the servers' workers run as %s: %v", serverUser, err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err := errors.Join(err1, err2); err != nil {
		t.Fatalf("user %s: %v", serverUser, err)
	}
	return uid, gid, true
}

// process is a server started by the harness, in its own process group so
// that its children can be found and, if they outlive it, killed.
type process struct {
	name    string
	cmd     *exec.Cmd
	output  string        // file receiving stdout and stderr
	done    chan struct{} // closed once cmd.Wait has returned
	waitErr error         // cmd.Wait's result, set before done is closed
}

// startProcess starts argv with the environment env, stdout and stderr going
// to the file output. Its cleanup (registered here) is stop.
func startProcess(t testing.TB, name string, argv, env []string, output string, strayOK bool) *process {
	t.Helper()
	out, err := os.OpenFile(output, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid: true,
		// If the test binary dies without running its cleanups (a -timeout
		// panic), the server is told to stop rather than left holding a port.
		Pdeathsig: syscall.SIGTERM,
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &process{name: name, cmd: cmd, output: output, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() { p.stop(t, strayOK) })
	return p
}

// Output returns what the process wrote to stdout and stderr so far.
func (p *process) Output() string {
	b, err := os.ReadFile(p.output)
	if err != nil {
		return fmt.Sprintf("(reading %s: %v)", p.output, err)
	}
	return string(b)
}

// waitReady calls ready until it succeeds, the process exits, or startTimeout
// passes. Nothing notifies us when a server starts listening, so this polls,
// with a backoff from 2ms to pollMax; it returns at once if the process dies.
func (p *process) waitReady(ready func() error) error {
	deadline := time.Now().Add(startTimeout)
	backoff := 2 * time.Millisecond
	for {
		err := ready()
		if err == nil {
			select {
			case <-p.done: // something else answered; ours died
			default:
				return nil
			}
		}
		timer := time.NewTimer(backoff)
		select {
		case <-p.done:
			timer.Stop()
			return fmt.Errorf("%s (pid %d) exited before it was ready: %v", p.name, p.cmd.Process.Pid, p.waitErr)
		case <-timer.C:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s (pid %d) not ready after %v: %v", p.name, p.cmd.Process.Pid, startTimeout, err)
		}
		backoff = min(2*backoff, pollMax)
	}
}

// stop sends SIGTERM to the process, waits for it (SIGKILL to its group after
// stopTimeout), then checks that nothing is left in its process group: a
// survivor is an error unless strayOK, and is killed either way.
func (p *process) stop(t testing.TB, strayOK bool) {
	t.Helper()
	pid := p.cmd.Process.Pid
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("stop %s (pid %d): %v", p.name, pid, err)
	}
	timer := time.NewTimer(stopTimeout)
	defer timer.Stop()
	select {
	case <-p.done:
	case <-timer.C:
		t.Errorf("%s (pid %d) still running %v after SIGTERM; killing its process group", p.name, pid, stopTimeout)
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-p.done
	}
	// Processes in the group are not our children: nothing signals their
	// exit, so poll /proc with a short backoff and a bounded deadline.
	// Where strays are expected, do not wait for them to leave by themselves.
	wait := strayTimeout
	if strayOK {
		wait = 0
	}
	left := waitGroupEmpty(pid, wait)
	if len(left) == 0 {
		return
	}
	if strayOK {
		t.Logf("%s (pid %d) exited and left %v in its process group; killing them", p.name, pid, left)
	} else {
		t.Errorf("%s (pid %d) exited and left %v in its process group; killing them", p.name, pid, left)
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	if left := waitGroupEmpty(pid, strayTimeout); len(left) > 0 {
		t.Errorf("%v survived SIGKILL", left)
	}
}

func waitGroupEmpty(pgid int, timeout time.Duration) []string {
	deadline := time.Now().Add(timeout)
	backoff := time.Millisecond
	for {
		left := groupMembers(pgid)
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(backoff)
		backoff = min(2*backoff, pollMax)
	}
}

// groupMembers lists the live (not zombie: PID 1 may not reap them) processes
// of process group pgid as "comm[pid]", read from /proc.
func groupMembers(pgid int) []string {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return []string{fmt.Sprintf("(reading /proc: %v)", err)}
	}
	var out []string
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // exited meanwhile
		}
		// pid (comm) state ppid pgrp ...; comm may contain spaces and ')'.
		open, closing := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
		if open < 0 || closing < open {
			continue
		}
		f := strings.Fields(string(b[closing+1:]))
		if len(f) < 3 || f[0] == "Z" || f[0] == "X" || f[2] != strconv.Itoa(pgid) {
			continue
		}
		out = append(out, fmt.Sprintf("%s[%s]", b[open+1:closing], e.Name()))
	}
	return out
}

func dialTCP(addr string) func() error {
	return func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	}
}

// httpProbe sends `OPTIONS * HTTP/1.0` and accepts any HTTP response. Apache
// binds its port before its modules' post-config hooks run, and a module
// failing there (mod_mime without TypesConfig) makes it exit after the port
// has accepted; a response proves a child is serving. Apache answers 200
// without consulting <Directory>, <Location> or ProxyPass, and logs nothing.
func httpProbe(addr string) func() error {
	return func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		if err := c.SetDeadline(time.Now().Add(2 * time.Second)); err != nil {
			return err
		}
		if _, err := io.WriteString(c, "OPTIONS * HTTP/1.0\r\n\r\n"); err != nil {
			return err
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			return fmt.Errorf("OPTIONS *: %w", err)
		}
		if !strings.HasPrefix(line, "HTTP/1.") {
			return fmt.Errorf("OPTIONS *: answer %q", line)
		}
		return nil
	}
}

func dialUnix(path string) func() error {
	return func() error {
		c, err := net.DialTimeout("unix", path, time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	}
}

// apacheConfig describes an Apache instance for startApache.
type apacheConfig struct {
	// Modules to load besides authz_core, unixd and the MPM, by short name
	// ("cgid", "alias", "proxy", "proxy_fcgi", "fcgid", "authnz_fcgi",
	// "env", "headers", ...). "mime" needs a TypesConfig in Config: without
	// one Apache exits at start (AH01597).
	Modules []string
	// MPM is "event" (default), "worker" or "prefork".
	MPM string
	// LogLevel defaults to "info", plus "cgid:debug" when cgid is loaded.
	LogLevel string
	// Defines become `Define NAME "value"` lines ahead of everything else, so
	// Config and the files it includes can use ${NAME}.
	Defines map[string]string
	// Config is appended at the end of the generated apache2.conf.
	Config string
}

// apacheServer is a running Apache; startApache's cleanup stops it.
type apacheServer struct {
	Root string // ServerRoot, holding apache2.conf, logs/ and run/
	Port int    // on 127.0.0.1
	proc *process
}

// URL returns "http://127.0.0.1:PORT" + path.
func (s *apacheServer) URL(path string) string {
	return fmt.Sprintf("http://127.0.0.1:%d%s", s.Port, path)
}

// ErrorLog returns the error log so far, preceded by anything apache2 wrote
// to stdout or stderr (where it reports errors found before ErrorLog opens).
func (s *apacheServer) ErrorLog() string {
	return logs(s.proc.Output(), filepath.Join(s.Root, "logs", "error.log"))
}

func logs(output, errorLog string) string {
	var b strings.Builder
	if output != "" {
		fmt.Fprintf(&b, "--- stdout+stderr ---\n%s\n", output)
	}
	el, err := os.ReadFile(errorLog)
	if err != nil {
		fmt.Fprintf(&b, "--- %v ---\n", err)
	} else {
		fmt.Fprintf(&b, "--- %s ---\n%s", errorLog, el)
	}
	return b.String()
}

var defineName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// apacheBuiltins lists the modules compiled into apache2 ("mod_unixd.c"
// becomes "unixd"), which must not be loaded again.
func apacheBuiltins(bin string) (map[string]bool, error) {
	out, err := exec.Command(bin, "-l").Output()
	if err != nil {
		return nil, fmt.Errorf("apache2 -l: %w", err)
	}
	m := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		if name, ok := strings.CutSuffix(line, ".c"); ok {
			m[strings.TrimPrefix(name, "mod_")] = true
		}
	}
	return m, nil
}

// startApache writes a minimal apache2.conf in a fresh ServerRoot, starts
// `apache2 -DFOREGROUND` listening on a free port of 127.0.0.1, and waits
// until it answers `OPTIONS *`. Running as root, the children run as www-data. A
// cleanup stops Apache by PID and checks that its children are gone.
func startApache(t testing.TB, cfg apacheConfig) *apacheServer {
	t.Helper()
	bin := requireBinary(t, "apache2")
	if cfg.MPM == "" {
		cfg.MPM = "event"
	}
	mods := append([]string{"mpm_" + cfg.MPM, "authz_core", "unixd"}, cfg.Modules...)
	builtin, err := apacheBuiltins(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mods {
		if !builtin[m] {
			requireFile(t, filepath.Join(apacheModulesDir, "mod_"+m+".so"))
		}
	}
	for name, value := range cfg.Defines {
		if !defineName.MatchString(name) || strings.ContainsAny(value, "\"\r\n") {
			t.Fatalf("apacheConfig.Defines[%q] = %q: names are [A-Za-z_][A-Za-z0-9_]*, values cannot hold '\"' or newlines", name, value)
		}
	}

	root := sharedTempDir(t)
	run, logDir, docs := filepath.Join(root, "run"), filepath.Join(root, "logs"), filepath.Join(root, "htdocs")
	mkdirs(t, run, logDir, docs)
	uid, gid, asRoot := ownerIDs(t)
	fcgidDir := filepath.Join(root, "fcgid")
	if slices.Contains(mods, "fcgid") {
		mkdirs(t, fcgidDir)
		if asRoot {
			if err := os.Chown(fcgidDir, uid, gid); err != nil {
				t.Fatal(err)
			}
		}
	}
	if slices.Contains(mods, "cgid") {
		checkSocketPath(t, filepath.Join(run, "cgid.sock"))
	}

	env := []string{
		serverPath, "LANG=C",
		"APACHE_RUN_DIR=" + run, "APACHE_LOCK_DIR=" + run, "APACHE_LOG_DIR=" + logDir,
		"APACHE_PID_FILE=" + filepath.Join(run, "apache2.pid"),
		"APACHE_RUN_USER=" + serverUser, "APACHE_RUN_GROUP=" + serverUser,
	}
	conf := filepath.Join(root, "apache2.conf")
	var lastErr error
	for range startAttempts {
		port := freePort(t)
		writeFile(t, conf, apacheConf(root, port, mods, cfg, asRoot), 0o644)
		p := startProcess(t, "apache2", []string{bin, "-d", root, "-f", conf, "-DFOREGROUND"}, env,
			filepath.Join(logDir, "stdout-stderr.log"), false)
		s := &apacheServer{Root: root, Port: port, proc: p}
		lastErr = p.waitReady(httpProbe(fmt.Sprintf("127.0.0.1:%d", port)))
		if lastErr == nil {
			return s
		}
		log := s.ErrorLog()
		if !strings.Contains(log, "Address already in use") {
			t.Fatalf("%v\nconfig %s:\n%s\n%s", lastErr, conf, readFile(conf), log)
		}
		p.stop(t, false)
		truncate(t, p.output, filepath.Join(logDir, "error.log"))
	}
	t.Fatalf("apache2: %v (port taken %d times)", lastErr, startAttempts)
	return nil
}

func apacheConf(root string, port int, mods []string, cfg apacheConfig, asRoot bool) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("# Written by integration/servers_test.go startApache.")
	for _, name := range slices.Sorted(maps.Keys(cfg.Defines)) {
		w("Define %s \"%s\"", name, cfg.Defines[name])
	}
	w("ServerRoot %q", root)
	w("ServerName 127.0.0.1")
	w("Listen 127.0.0.1:%d", port)
	w("PidFile %q", filepath.Join(root, "run", "apache2.pid"))
	w("DefaultRuntimeDir %q", filepath.Join(root, "run"))
	w("ErrorLog %q", filepath.Join(root, "logs", "error.log"))
	level := cfg.LogLevel
	if level == "" {
		level = "info"
		if slices.Contains(mods, "cgid") {
			level += " cgid:debug"
		}
	}
	w("LogLevel %s", level)
	// No Mutex line: Debian's "Mutex file:" made mod_fcgid fail under load.
	for _, m := range mods {
		// <IfModule> skips modules compiled in (unixd on Debian).
		w("<IfModule !%s_module>\n  LoadModule %s_module %s\n</IfModule>", m, m, filepath.Join(apacheModulesDir, "mod_"+m+".so"))
	}
	if asRoot {
		w("User %s\nGroup %s", serverUser, serverUser)
	}
	w("Timeout 30\nKeepAliveTimeout 2")
	w("DocumentRoot %q", filepath.Join(root, "htdocs"))
	w("<Directory />\n  AllowOverride None\n  Require all denied\n</Directory>")
	if slices.Contains(mods, "cgid") {
		w("ScriptSock %q", filepath.Join(root, "run", "cgid.sock"))
	}
	if slices.Contains(mods, "fcgid") {
		w("FcgidIPCDir %q", filepath.Join(root, "fcgid"))
		w("FcgidProcessTableFile %q", filepath.Join(root, "fcgid", "shm"))
	}
	w("# --- apacheConfig.Config ---")
	w("%s", cfg.Config)
	return b.String()
}

// truncate empties the logs of a failed start before the next attempt
// looks for "Address already in use" in them.
func truncate(t testing.TB, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if err := os.Truncate(p, 0); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	}
}

func readFile(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	return string(b)
}

// checkSocketPath fails the test when path is too long for a unix socket
// address (sun_path is 108 bytes on Linux, NUL included).
func checkSocketPath(t testing.TB, path string) {
	t.Helper()
	if len(path) >= 108 {
		t.Fatalf("unix socket path %s is %d bytes, more than sun_path holds; use a shorter TMPDIR or test name", path, len(path))
	}
}

// nginxConfig describes an nginx instance for startNginx.
type nginxConfig struct {
	// Server is the text inside `http { server { ... } }`, after the listen
	// directive: locations and server-level directives. Include
	// nginxFastCGIParams from here for Debian's fastcgi_params.
	Server string
	// HTTP is extra http-level text (upstream blocks, maps), placed before
	// the server block.
	HTTP string
}

// nginxServer is a running nginx; startNginx's cleanup stops it.
type nginxServer struct {
	Prefix string // holding conf/, logs/ and temp/
	Port   int    // on 127.0.0.1
	proc   *process
}

// URL returns "http://127.0.0.1:PORT" + path.
func (s *nginxServer) URL(path string) string {
	return fmt.Sprintf("http://127.0.0.1:%d%s", s.Port, path)
}

// ErrorLog returns the error log so far, preceded by anything nginx wrote to
// stdout or stderr.
func (s *nginxServer) ErrorLog() string {
	return logs(s.proc.Output(), filepath.Join(s.Prefix, "logs", "error.log"))
}

// startNginx writes nginx.conf in a fresh prefix, starts nginx in the
// foreground (one worker) on a free port of 127.0.0.1, and waits until the
// port accepts. Running as root, the worker runs as www-data: the prefix is
// world-readable, and unix sockets it connects to must be writable by
// www-data (startFcgiwrap makes its socket 0666). A cleanup stops nginx by
// PID and checks that the worker is gone.
func startNginx(t testing.TB, cfg nginxConfig) *nginxServer {
	t.Helper()
	bin := requireBinary(t, "nginx")
	if strings.Contains(cfg.Server+cfg.HTTP, nginxFastCGIParams) {
		requireFile(t, nginxFastCGIParams)
	}
	prefix := sharedTempDir(t)
	confDir, logDir := filepath.Join(prefix, "conf"), filepath.Join(prefix, "logs")
	mkdirs(t, confDir, logDir, filepath.Join(prefix, "temp"))
	_, _, asRoot := ownerIDs(t)
	conf, errorLog := filepath.Join(confDir, "nginx.conf"), filepath.Join(logDir, "error.log")
	var lastErr error
	for range startAttempts {
		port := freePort(t)
		writeFile(t, conf, nginxConf(prefix, port, cfg, asRoot), 0o644)
		// nginx parses its whole configuration before it binds the port, so
		// (unlike Apache) an accepting port is enough.
		// -e: without it nginx opens /var/log/nginx/error.log before it
		// reads the configuration.
		argv := []string{bin, "-p", prefix + "/", "-c", conf, "-e", errorLog, "-g", "daemon off;"}
		p := startProcess(t, "nginx", argv, []string{serverPath, "LANG=C"}, filepath.Join(logDir, "stdout-stderr.log"), false)
		s := &nginxServer{Prefix: prefix, Port: port, proc: p}
		lastErr = p.waitReady(dialTCP(fmt.Sprintf("127.0.0.1:%d", port)))
		if lastErr == nil {
			return s
		}
		log := s.ErrorLog()
		if !strings.Contains(log, "Address already in use") {
			t.Fatalf("%v\nconfig %s:\n%s\n%s", lastErr, conf, readFile(conf), log)
		}
		p.stop(t, false)
		truncate(t, p.output, errorLog)
	}
	t.Fatalf("nginx: %v (port taken %d times)", lastErr, startAttempts)
	return nil
}

func nginxConf(prefix string, port int, cfg nginxConfig, asRoot bool) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	p := func(elem ...string) string { return filepath.Join(append([]string{prefix}, elem...)...) }
	w("# Written by integration/servers_test.go startNginx.")
	if asRoot {
		w("user %s;", serverUser)
	}
	w("worker_processes 1;")
	w("pid %s;", p("logs", "nginx.pid"))
	w("error_log %s info;", p("logs", "error.log"))
	w("events {\n    worker_connections 256;\n}")
	w("http {")
	w("    access_log %s;", p("logs", "access.log"))
	w("    default_type application/octet-stream;")
	for _, temp := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		w("    %s_temp_path %s;", temp, p("temp", temp))
	}
	w("    # --- nginxConfig.HTTP ---\n%s", cfg.HTTP)
	w("    server {")
	w("        listen 127.0.0.1:%d;", port)
	w("        server_name localhost;")
	w("        # --- nginxConfig.Server ---\n%s", cfg.Server)
	w("    }")
	w("}")
	return b.String()
}

// fcgiwrapServer is a running fcgiwrap; startFcgiwrap's cleanup stops it.
type fcgiwrapServer struct {
	Socket string // unix socket, mode 0666
	proc   *process
}

// Log returns what fcgiwrap and its scripts wrote to stderr.
func (s *fcgiwrapServer) Log() string { return s.proc.Output() }

// startFcgiwrap starts `fcgiwrap -c children -s unix:socket` and waits until
// the socket accepts, then makes it 0666 so that nginx's worker (www-data)
// can connect. Scripts run as the test's user. fcgiwrap's prefork children
// outlive their parent (gnosek/fcgiwrap#19): the cleanup kills them.
func startFcgiwrap(t testing.TB, socket string, children int) *fcgiwrapServer {
	t.Helper()
	bin := requireBinary(t, "fcgiwrap")
	checkSocketPath(t, socket)
	argv := []string{bin, "-c", strconv.Itoa(children), "-s", "unix:" + socket}
	p := startProcess(t, "fcgiwrap", argv, []string{serverPath, "LANG=C"}, filepath.Join(t.TempDir(), "fcgiwrap.log"), true)
	s := &fcgiwrapServer{Socket: socket, proc: p}
	if err := p.waitReady(dialUnix(socket)); err != nil {
		t.Fatalf("%v\n--- fcgiwrap output ---\n%s", err, s.Log())
	}
	if err := os.Chmod(socket, 0o666); err != nil {
		t.Fatal(err)
	}
	return s
}

// moduleRoot returns the directory holding go.mod, walking up from the
// working directory (the package directory under go test).
func moduleRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("no go.mod above the working directory")
		}
		dir = parent
	}
}

// goBinary returns the go command of the toolchain that built the test,
// falling back to the one in PATH.
func goBinary(t testing.TB) string {
	t.Helper()
	if root := runtime.GOROOT(); root != "" {
		p := filepath.Join(root, "bin", "go")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	p, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("no go command: %v", err)
	}
	return p
}

// buildExample runs `go build -o dst ./pkg` in the module root; pkg is a
// directory relative to it ("examples/hello"). This is how a test puts an
// example into a cgi-bin directory.
func buildExample(t testing.TB, pkg, dst string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBinary(t), "build", "-o", dst, "./"+strings.TrimPrefix(filepath.ToSlash(pkg), "./"))
	cmd.Dir = moduleRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s (in %s): %v\n%s", strings.Join(cmd.Args, " "), cmd.Dir, err, out)
	}
}

// client does not follow redirects (tests look at Location themselves), does
// not use a proxy, and does not keep connections to servers that a cleanup
// is about to stop.
var client = &http.Client{
	Timeout:       clientTimeout,
	Transport:     &http.Transport{Proxy: nil, DisableKeepAlives: true},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// get sends GET url with the extra header (may be nil) and returns the
// response, whose body is already read into the returned bytes and closed.
func get(t testing.TB, url string, header http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = append(req.Header[k], vs...)
	}
	return do(t, req)
}

// do sends req with the harness's client and returns the response, whose
// body is already read into the returned bytes and closed.
func do(t testing.TB, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", req.Method, req.URL, err)
	}
	return resp, body
}
