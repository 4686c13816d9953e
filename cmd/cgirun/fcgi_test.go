package main

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/cgirun/cgirun/internal/serve"

	"github.com/cgirun/cgirun/internal/testenv"
)

// envScript is a CGI script that prints some of its variables ("unset"
// when absent), its uid and its stdin.
const envScript = `#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\n'
for v in SCRIPT_NAME PATH_INFO QUERY_STRING REQUEST_METHOD CONTENT_LENGTH HTTP_X_TEST HTTP_AUTHORIZATION HTTP_PROXY SERVER_SOFTWARE; do
	eval "echo $v=\${$v-unset}"
done
echo "uid=$(id -u)"
echo "stdin=$(cat)"
`

func TestFCGIServesScripts(t *testing.T) {
	root := t.TempDir()
	hello := writeScript(t, filepath.Join(root, "hello.sh"), envScript)
	writeScript(t, filepath.Join(root, "sub", "other.sh"), envScript)
	outside := writeScript(t, filepath.Join(t.TempDir(), "outside.sh"), envScript)
	sock := filepath.Join(socketDir(t), "f.sock")
	// --root replaces CGIRUN_ROOT, which would fail.
	t.Setenv("CGIRUN_ROOT", "/no/such/dir")

	r := start(t, nil, "fcgi", "--root", root, "-s", "unix:"+sock, "-c", "2", "--timeout", "30s")
	r.waitLog(`serving FastCGI`)
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o660 {
		t.Errorf("socket %s: %v, %v; want mode 0660", sock, fi, err)
	}

	base := map[string]string{"REQUEST_METHOD": "GET", "SERVER_PROTOCOL": "HTTP/1.1", "GATEWAY_INTERFACE": "CGI/1.1"}
	with := func(kv ...string) map[string]string {
		p := make(map[string]string)
		for k, v := range base {
			p[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			p[kv[i]] = kv[i+1]
		}
		return p
	}
	tests := []struct {
		name       string
		params     map[string]string
		body       string
		wantStatus int
		want       []string // in the body
	}{
		{name: "SCRIPT_FILENAME runs", params: with("SCRIPT_FILENAME", hello, "SCRIPT_NAME", "/hello.sh", "QUERY_STRING", "a=1"), wantStatus: 200,
			want: []string{"SCRIPT_NAME=/hello.sh", "QUERY_STRING=a=1", "REQUEST_METHOD=GET", "stdin=\n"}},
		{name: "DOCUMENT_ROOT and SCRIPT_NAME", params: with("DOCUMENT_ROOT", root, "SCRIPT_NAME", "/sub/other.sh"), wantStatus: 200,
			want: []string{"SCRIPT_NAME=/sub/other.sh"}},
		{name: "POST body on stdin", params: with("SCRIPT_FILENAME", hello, "REQUEST_METHOD", "POST"), body: "posted data", wantStatus: 200,
			want: []string{"REQUEST_METHOD=POST", "CONTENT_LENGTH=11", "stdin=posted data"}},
		{name: "httpoxy: HTTP_PROXY never reaches the script", params: with("SCRIPT_FILENAME", hello, "HTTP_PROXY", "http://evil:3128"), wantStatus: 200,
			want: []string{"HTTP_PROXY=unset"}},
		{name: "missing script", params: with("SCRIPT_FILENAME", filepath.Join(root, "nope.sh")), wantStatus: 404},
		{name: "script outside the root", params: with("SCRIPT_FILENAME", outside), wantStatus: 403},
		{name: "traversal out of the root", params: with("DOCUMENT_ROOT", root, "SCRIPT_NAME", "/../"+filepath.Base(filepath.Dir(outside))+"/outside.sh"), wantStatus: 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := fcgiDo(t, "unix", sock, tt.params, tt.body)
			if rec.Code != tt.wantStatus {
				t.Errorf("FastCGI request %v = %d %q, want %d", tt.params, rec.Code, rec.Body, tt.wantStatus)
			}
			for _, w := range tt.want {
				if !strings.Contains(rec.Body.String(), w) {
					t.Errorf("FastCGI request %v body = %q, want it to contain %q", tt.params, rec.Body, w)
				}
			}
		})
	}

	if code := r.stop(); code != exitOK {
		t.Errorf("run(fcgi) after SIGTERM = %d, want 0; stderr:\n%s", code, r.logs)
	}
	if _, err := os.Lstat(sock); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket %s after shutdown: %v, want it removed", sock, err)
	}
}

// TestFCGISocketOwner: --socket-owner and --socket-group, or their
// CGIRUN_ variables, give the socket of -s (a bare path, as php-fpm writes
// it) to the web server, and the log says so before "serving FastCGI".
func TestFCGISocketOwner(t *testing.T) {
	nobody, nogroup := testenv.Nobody(t)
	tests := []struct {
		name string
		env  map[string]string
		args []string
	}{
		{"flags", nil, []string{"--socket-owner", "nobody", "--socket-group", nogroup.Gid}},
		{"environment", map[string]string{"CGIRUN_SOCKET_OWNER": nobody.Uid, "CGIRUN_SOCKET_GROUP": "nogroup"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			root := t.TempDir()
			sock := filepath.Join(socketDir(t), "o.sock")
			r := start(t, nil, append([]string{"fcgi", "--root", root, "-s", sock}, tt.args...)...)
			r.waitLog(`serving FastCGI`)
			fi, err := os.Lstat(sock)
			if err != nil {
				t.Fatal(err)
			}
			st := fi.Sys().(*syscall.Stat_t)
			if got, want := fmt.Sprintf("%d:%d %04o", st.Uid, st.Gid, fi.Mode().Perm()), nobody.Uid+":"+nogroup.Gid+" 0660"; got != want {
				t.Errorf("socket %s = %s, want %s", sock, got, want)
			}
			r.waitLog(`created unix socket" socket=` + regexp.QuoteMeta(sock) + ` owner=nobody group=nogroup mode=0660`)
			if code := r.stop(); code != exitOK {
				t.Errorf("run(fcgi) after SIGTERM = %d, want 0; stderr:\n%s", code, r.logs)
			}
		})
	}
}

// TestFCGISocketDirMissing: -s in a directory that does not exist stops
// the runner with what to do.
func TestFCGISocketDirMissing(t *testing.T) {
	dir := fmt.Sprintf("/run/cgirun-test-missing-%d", os.Getpid())
	code, _, stderr := runCmd(t, nil, "fcgi", "--root", t.TempDir(), "-s", dir+"/app.sock")
	want := "directory " + dir + " does not exist: create it, or set RuntimeDirectory=" + strings.TrimPrefix(dir, "/run/") + " under systemd"
	if code != exitFailure || !strings.Contains(stderr, want) {
		t.Errorf("run(fcgi -s %s/app.sock) = %d, %q; want %d and %q", dir, code, stderr, exitFailure, want)
	}
}

// TestFCGIWrapCommandLine runs cgirun with fcgiwrap's flags and no
// command or root: the -p scripts' directory is the root, and only they
// run.
func TestFCGIWrapCommandLine(t *testing.T) {
	root := t.TempDir()
	allowed := writeScript(t, filepath.Join(root, "allowed.cgi"), envScript)
	other := writeScript(t, filepath.Join(root, "other.cgi"), envScript)
	sock := filepath.Join(socketDir(t), "w.sock")
	r := start(t, nil, "-f", "-c", "1", "-s", "unix:"+sock, "-p", allowed)
	r.waitLog(`serving FastCGI`)
	tests := []struct {
		name   string
		script string
		want   int
	}{
		{name: "the -p script runs", script: allowed, want: 200},
		{name: "another script in its directory does not", script: other, want: 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := fcgiDo(t, "unix", sock, map[string]string{"REQUEST_METHOD": "GET", "SCRIPT_FILENAME": tt.script}, "")
			if rec.Code != tt.want {
				t.Errorf("FastCGI request for %s = %d, want %d", tt.script, rec.Code, tt.want)
			}
		})
	}
	if code := r.stop(); code != exitOK {
		t.Errorf("run(-f -c 1 -s ... -p ...) after SIGTERM = %d, want 0; stderr:\n%s", code, r.logs)
	}
}

// TestFCGIOnStdinSocket starts cgirun with no command and a listening
// socket on stdin, as spawn-fcgi and mod_fcgid do.
func TestFCGIOnStdinSocket(t *testing.T) {
	root := t.TempDir()
	hello := writeScript(t, filepath.Join(root, "hello.sh"), envScript)
	sock := filepath.Join(socketDir(t), "in.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	f, err := l.(*net.UnixListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	t.Setenv("CGIRUN_ROOT", root)

	r := start(t, f)
	r.waitLog(`serving FastCGI" on="fd 0`)
	rec := fcgiDo(t, "unix", sock, map[string]string{"REQUEST_METHOD": "GET", "SCRIPT_FILENAME": hello}, "")
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "REQUEST_METHOD=GET") {
		t.Errorf("FastCGI request on the stdin socket = %d %q, want 200 and the script's output", rec.Code, rec.Body)
	}
	if code := r.stop(); code != exitOK {
		t.Errorf("run() on a stdin socket after SIGTERM = %d, want 0; stderr:\n%s", code, r.logs)
	}
	// stdin itself was left alone: it is still a listening socket.
	if !serve.StdinIsListening(f) {
		t.Errorf("StdinIsListening(stdin) after the run = false, want the socket still open")
	}
}

// inheritedSecret opens a file holding "secret" as a descriptor without
// close-on-exec, as "7< root-only-file" hands one to the runner, and
// returns a script that tries to read it and lists its own descriptors.
func inheritedSecret(t *testing.T, root string) (script string, fd int) {
	t.Helper()
	name := filepath.Join(t.TempDir(), "root-only")
	if err := os.WriteFile(name, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fd, err := syscall.Open(name, syscall.O_RDONLY, 0) // no O_CLOEXEC
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	// ls lists its own directory descriptor too: the lowest free, 3.
	script = writeScript(t, filepath.Join(root, "fds.sh"), fmt.Sprintf(`#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\n'
{ cat <&%d; } 2>/dev/null || echo unreadable
exec ls /proc/self/fd
`, fd))
	return script, fd
}

// checkNoInheritedSecret checks the answer of inheritedSecret's script:
// it read nothing and held only fds 0, 1 and 2 (and ls's 3).
func checkNoInheritedSecret(t *testing.T, fd int, body string) {
	t.Helper()
	if strings.Contains(body, "secret") {
		t.Errorf("the script read the runner's fd %d: %q", fd, body)
	}
	if got, want := strings.Fields(body), []string{"unreadable", "0", "1", "2", "3"}; !slices.Equal(got, want) {
		t.Errorf("the script's output = %q, want %q (fd %d unreadable, only 0, 1, 2 and ls's own open)", got, want, fd)
	}
}

func TestFCGIScriptGetsNoInheritedDescriptor(t *testing.T) {
	if _, err := os.ReadDir("/proc/self/fd"); err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	root := t.TempDir()
	script, fd := inheritedSecret(t, root)
	sock := filepath.Join(socketDir(t), "fd.sock")
	r := start(t, nil, "fcgi", "--root", root, "-s", "unix:"+sock)
	r.waitLog(`serving FastCGI`)
	rec := fcgiDo(t, "unix", sock, map[string]string{"REQUEST_METHOD": "GET", "SCRIPT_FILENAME": script}, "")
	if rec.Code != 200 {
		t.Fatalf("FastCGI request for %s = %d %q, want 200", script, rec.Code, rec.Body)
	}
	checkNoInheritedSecret(t, fd, rec.Body.String())
}

// TestFcgiwrapCommandLineRootFromRequest: Debian's fcgiwrap.service runs
// "fcgiwrap -f" with no root; "cgirun -f" then serves each request's
// script from inside its DOCUMENT_ROOT (nginx's root /usr/lib; and
// SCRIPT_FILENAME /usr/lib/cgi-bin/x in Debian's example), warns at start,
// and refuses a client of the socket that names a root of /, a script
// outside the root, by "..", or by a symlink, or no root at all.
func TestFcgiwrapCommandLineRootFromRequest(t *testing.T) {
	docroot := t.TempDir()
	hello := writeScript(t, filepath.Join(docroot, "cgi-bin", "hello.sh"), envScript)
	outsideDir := t.TempDir()
	outside := writeScript(t, filepath.Join(outsideDir, "outside.sh"), "#!/bin/sh\ntouch \"$0.ran\"\nprintf 'Content-Type: text/plain\\r\\n\\r\\npwned'\n")
	if err := os.Symlink(outside, filepath.Join(docroot, "cgi-bin", "link.sh")); err != nil {
		t.Fatal(err)
	}
	base := map[string]string{"REQUEST_METHOD": "GET", "SERVER_PROTOCOL": "HTTP/1.1", "GATEWAY_INTERFACE": "CGI/1.1"}
	params := func(kv ...string) map[string]string {
		p := maps.Clone(base)
		for i := 0; i < len(kv); i += 2 {
			p[kv[i]] = kv[i+1]
		}
		return p
	}
	tests := []struct {
		name   string
		params map[string]string
		status int
	}{
		{"the DOCUMENT_ROOT's script", params("DOCUMENT_ROOT", docroot, "SCRIPT_FILENAME", hello, "SCRIPT_NAME", "/cgi-bin/hello.sh"), 200},
		{"DOCUMENT_ROOT /", params("DOCUMENT_ROOT", "/", "SCRIPT_FILENAME", outside), 403},
		{"script outside DOCUMENT_ROOT", params("DOCUMENT_ROOT", docroot, "SCRIPT_FILENAME", outside), 403},
		{"dot-dot out of DOCUMENT_ROOT", params("DOCUMENT_ROOT", docroot, "SCRIPT_FILENAME", docroot+"/../"+filepath.Base(outsideDir)+"/outside.sh"), 403},
		{"symlink out of DOCUMENT_ROOT", params("DOCUMENT_ROOT", docroot, "SCRIPT_FILENAME", filepath.Join(docroot, "cgi-bin", "link.sh")), 403},
		{"no DOCUMENT_ROOT", params("SCRIPT_FILENAME", hello), 403},
	}
	for _, args := range [][]string{{"-f"}, {"--root-from-request"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			sock := filepath.Join(socketDir(t), "w.sock")
			if args[0] == "--root-from-request" {
				args = []string{"fcgi", "--root-from-request"}
			}
			r := start(t, nil, append(args, "-s", "unix:"+sock)...)
			r.waitLog(`serving FastCGI.* roots=DOCUMENT_ROOT `)
			if !strings.Contains(r.logs.String(), "level=WARN") || !strings.Contains(r.logs.String(), "DOCUMENT_ROOT") || !strings.Contains(r.logs.String(), "--root DIR") {
				t.Errorf("run(%q) logged no warning naming DOCUMENT_ROOT and --root DIR:\n%s", args, r.logs)
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					rec := fcgiDo(t, "unix", sock, tt.params, "")
					if rec.Code != tt.status {
						t.Errorf("FastCGI request %v = %d %q, want %d", tt.params, rec.Code, rec.Body, tt.status)
					}
				})
			}
			r.waitLog(`script refused.*no DOCUMENT_ROOT`)
			if code := r.stop(); code != exitOK {
				t.Errorf("run(%q) after SIGTERM = %d, want 0; stderr:\n%s", args, code, r.logs)
			}
		})
	}
	if _, err := os.Stat(outside + ".ran"); err == nil {
		t.Errorf("a script outside the DOCUMENT_ROOT ran")
	}
}

// TestFCGIRootFromRequestInsideRoot: with --root too, a DOCUMENT_ROOT
// outside it is refused, and one inside it serves its scripts.
func TestFCGIRootFromRequestInsideRoot(t *testing.T) {
	root := t.TempDir()
	hello := writeScript(t, filepath.Join(root, "site", "hello.sh"), envScript)
	other := t.TempDir()
	outside := writeScript(t, filepath.Join(other, "hello.sh"), envScript)
	sock := filepath.Join(socketDir(t), "r.sock")
	r := start(t, nil, "fcgi", "--root", root, "--root-from-request", "-s", "unix:"+sock)
	r.waitLog(`serving FastCGI.* roots="DOCUMENT_ROOT inside ` + regexp.QuoteMeta(root) + `"`)
	base := map[string]string{"REQUEST_METHOD": "GET", "SERVER_PROTOCOL": "HTTP/1.1"}
	for _, tt := range []struct {
		docroot, script string
		status          int
	}{{filepath.Dir(hello), hello, 200}, {other, outside, 403}} {
		p := maps.Clone(base)
		p["DOCUMENT_ROOT"], p["SCRIPT_FILENAME"] = tt.docroot, tt.script
		if rec := fcgiDo(t, "unix", sock, p, ""); rec.Code != tt.status {
			t.Errorf("DOCUMENT_ROOT %s, SCRIPT_FILENAME %s = %d %q, want %d", tt.docroot, tt.script, rec.Code, rec.Body, tt.status)
		}
	}
	if code := r.stop(); code != exitOK {
		t.Errorf("run after SIGTERM = %d, want 0; stderr:\n%s", code, r.logs)
	}
}
