package cgi

import (
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cgirun/cgirun/bridge"
)

// TestExecutorRefuses: nothing outside the roots, nothing that is not a
// regular executable file, and nothing off the allowed list ever runs.
func TestExecutorRefuses(t *testing.T) {
	root := scripts(t)
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "evil.sh"), []byte("#!/bin/sh\necho pwned > \"$0.ran\"\n"), 0o755)
	os.Symlink(filepath.Join(outside, "evil.sh"), filepath.Join(root, "link.sh"))
	os.Symlink(outside, filepath.Join(root, "linkdir"))
	e, logs := newExecutor(t, root, nil)
	allowOnly, _ := newExecutor(t, root, func(e *Executor) { e.Allow = []string{filepath.Join(root, "hello.sh")} })
	tests := []struct {
		name   string
		e      *Executor
		env    bridge.Environ
		status int
	}{
		{"missing", e, cgiEnv(root, "nope.sh"), 404},
		{"a directory", e, cgiEnv(root, "dir"), 403},
		{"not executable", e, cgiEnv(root, "noexec.sh"), 403},
		{"dot-dot out of the root", e, bridge.EnvironFromList([]string{"REQUEST_METHOD=GET", "SCRIPT_FILENAME=" + root + "/../" + filepath.Base(outside) + "/evil.sh"}), 403},
		{"symlink to a file outside", e, cgiEnv(root, "link.sh"), 403},
		{"symlinked directory outside", e, cgiEnv(root, "linkdir/evil.sh"), 403},
		{"NUL byte", e, bridge.EnvironFromList([]string{"REQUEST_METHOD=GET", "SCRIPT_FILENAME=" + root + "/hello.sh\x00.png"}), 400},
		{"Apache's proxy:fcgi:// form", e, bridge.EnvironFromList([]string{"REQUEST_METHOD=GET", "SCRIPT_FILENAME=proxy:fcgi://127.0.0.1:9000" + root + "/hello.sh"}), 403},
		{"CVE-2019-11043 style newline", e, cgiEnv(root, "hello.sh\n.php"), 404},
		{"no script named", e, bridge.EnvironFromList([]string{"REQUEST_METHOD=GET"}), 404},
		{"DOCUMENT_ROOT+SCRIPT_NAME escaping", e, bridge.EnvironFromList([]string{"REQUEST_METHOD=GET", "DOCUMENT_ROOT=" + root, "SCRIPT_NAME=/../" + filepath.Base(outside) + "/evil.sh"}), 403},
		{"not on the allowed list", allowOnly, cgiEnv(root, "env.sh"), 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, _, err := respondScript(t, tt.e, tt.env, nil)
			if err != nil || resp.Status != tt.status {
				t.Errorf("answer = %d, %v; want %d", resp.Status, err, tt.status)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(outside, "evil.sh.ran")); err == nil {
		t.Errorf("a script outside the root ran")
	}
	if !strings.Contains(logs.String(), "outside the roots") {
		t.Errorf("log lacks the refusal:\n%s", logs)
	}
	// The allowed script itself runs.
	if resp, _, _ := respondScript(t, allowOnly, cgiEnv(root, "hello.sh"), nil); resp.Status != 200 {
		t.Errorf("the allowed script answered %d", resp.Status)
	}
	// DOCUMENT_ROOT+SCRIPT_NAME when SCRIPT_FILENAME is absent.
	env := bridge.EnvironFromList([]string{"REQUEST_METHOD=GET", "DOCUMENT_ROOT=" + root, "SCRIPT_NAME=/hello.sh"})
	if resp, body, _ := respondScript(t, e, env, nil); resp.Status != 200 || body != "hello " {
		t.Errorf("DOCUMENT_ROOT+SCRIPT_NAME: %d %q", resp.Status, body)
	}
}

// TestExecutorEnvironment: a script gets the request's CGI variables byte
// for byte, never HTTP_PROXY (httpoxy), and of the runner's own variables
// only those named in Env.
func TestExecutorEnvironment(t *testing.T) {
	root := scripts(t)
	t.Setenv("CGIRUN_TEST_SECRET", "runner only")
	t.Setenv("CGIRUN_TEST_PASSED", "named in Env")
	e, _ := newExecutor(t, root, func(e *Executor) { e.Env = []string{"PATH", "CGIRUN_TEST_PASSED"} })
	resp, body, err := respondScript(t, e, cgiEnv(root, "env.sh", "HTTP_PROXY=http://evil.example:3128", "HTTP_X_RAW=caf\xe9", "PATH_INFO=/p\xff"), nil)
	if err != nil || resp.Status != 200 {
		t.Fatalf("env.sh answered %d, %v; want 200", resp.Status, err)
	}
	tests := []struct {
		name string
		line string // a line of env's output, or its start
		want bool
	}{
		{"CGI variables", "GATEWAY_INTERFACE=CGI/1.1\n", true},
		{"raw header bytes", "HTTP_X_RAW=caf\xe9\n", true},
		{"raw path bytes", "PATH_INFO=/p\xff\n", true},
		{"a runner variable named in Env", "CGIRUN_TEST_PASSED=named in Env\n", true},
		{"PATH, named in Env", "PATH=", true},
		{"httpoxy: no HTTP_PROXY", "HTTP_PROXY", false},
		{"a runner variable not named in Env", "CGIRUN_TEST_SECRET", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := strings.Contains(body, tt.line); got != tt.want {
				t.Errorf("environment holds %q = %v, want %v:\n%s", tt.line, got, tt.want, body)
			}
		})
	}
}

// TestExecutorDropsUnsafeVariables: request variables that would change
// what runs before a script's first line never reach it, and are logged
// once at debug level; AllowEnv lets a name through; the runner's own
// variables named in Env are the operator's and pass whatever their name.
func TestExecutorDropsUnsafeVariables(t *testing.T) {
	root := scripts(t)
	t.Setenv("PYTHONPATH", "/operator/lib")
	logs := new(syncLog)
	e, _ := newExecutor(t, root, func(e *Executor) {
		e.Env = []string{"PATH", "PYTHONPATH"}
		e.AllowEnv = []string{"TMPDIR", "LD_BIND_NOW"}
		e.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	unsafe := []string{
		"LD_PRELOAD=/tmp/evil.so", "LD_LIBRARY_PATH=/tmp", "LD_AUDIT=/tmp/a.so", "MALLOC_CHECK_=3", "GCONV_PATH=/tmp",
		"BASH_ENV=/proc/self/fd/0", "ENV=/proc/self/fd/0", "BASH_FUNC_printf%%=() { id; }", "BASH_FUNC_x()=() { id; }",
		"IFS=/", "SHELLOPTS=xtrace", "BASHOPTS=extglob", "PS4=$(id)", "PERL5LIB=/tmp", "PERL5OPT=-Mevil", "PERLLIB=/tmp",
		"PYTHONSTARTUP=/tmp/x.py", "PYTHONHOME=/tmp", "PYTHONINSPECT=1", "RUBYOPT=-revil", "RUBYLIB=/tmp",
		"NODE_OPTIONS=--require /tmp/x.js", "HTTP_PROXY=http://evil:3128", "http_proxy=http://evil:3128",
		"Http_Proxy=http://evil:3128", "1ABC=digit first", "A-B=dash", "A B=space", "ÄB=not ascii",
	}
	allowed := []string{"TMPDIR=/allowed", "LD_BIND_NOW=1"}
	resp, body, err := respondScript(t, e, cgiEnv(root, "env.sh", append(append([]string{"HTTP_X_OK=kept", "my_var=kept too"}, unsafe...), allowed...)...), nil)
	if err != nil || resp.Status != 200 {
		t.Fatalf("env.sh answered %d, %v; want 200", resp.Status, err)
	}
	lines := strings.Split(body, "\n")
	has := func(prefix string) bool {
		return slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, prefix) })
	}
	for _, kv := range unsafe {
		name, _, _ := strings.Cut(kv, "=")
		t.Run("dropped "+name, func(t *testing.T) {
			if has(name + "=") {
				t.Errorf("the script got %s:\n%s", name, body)
			}
			if !strings.Contains(logs.String(), name) {
				t.Errorf("the debug log does not name %s:\n%s", name, logs)
			}
		})
	}
	for _, line := range []string{"HTTP_X_OK=kept", "my_var=kept too", "TMPDIR=/allowed", "LD_BIND_NOW=1", "PYTHONPATH=/operator/lib"} {
		t.Run("passed "+line, func(t *testing.T) {
			if !has(line) {
				t.Errorf("the script lacks %q:\n%s", line, body)
			}
		})
	}
	if n := strings.Count(logs.String(), "request variables kept from the script"); n != 1 {
		t.Errorf("%d debug lines name the dropped variables, want 1:\n%s", n, logs)
	}
	// A request's own PYTHONPATH is dropped; the runner's, named in Env,
	// still passes.
	_, body, _ = respondScript(t, e, cgiEnv(root, "env.sh", "PYTHONPATH=/request/lib"), nil)
	if !strings.Contains(body, "PYTHONPATH=/operator/lib\n") || strings.Contains(body, "/request/lib") {
		t.Errorf("with the request's PYTHONPATH, the script's environment is:\n%s", body)
	}
	bad := &Executor{Roots: []string{root}, AllowEnv: []string{"A=B"}}
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "AllowEnv") {
		t.Errorf("Validate with AllowEnv [A=B] = %v, want an error naming AllowEnv", err)
	}
}

// TestExecutorRootFromRequestRefuses plays the client of a runner that
// takes each request's root from its DOCUMENT_ROOT: a root of /, a script
// outside the root by its name, by "..", by a symlink, a root that is a
// file or a symlink to /, and none at all; nothing runs outside the
// DOCUMENT_ROOT, and with Roots set, no DOCUMENT_ROOT outside them.
func TestExecutorRootFromRequestRefuses(t *testing.T) {
	root := scripts(t)
	outside := t.TempDir()
	evil := filepath.Join(outside, "evil.sh")
	os.WriteFile(evil, []byte("#!/bin/sh\necho pwned > \"$0.ran\"\n"), 0o755)
	os.Symlink(evil, filepath.Join(root, "link.sh"))
	links := t.TempDir()
	os.Symlink("/", filepath.Join(links, "slash"))
	os.Symlink(root, filepath.Join(links, "root"))
	e, logs := newExecutor(t, "", func(e *Executor) { e.Roots, e.RootFromRequest = nil, true })
	within, _ := newExecutor(t, root, func(e *Executor) { e.RootFromRequest = true })
	req := func(docroot, script string) bridge.Environ {
		env := []string{"REQUEST_METHOD=GET", "SCRIPT_FILENAME=" + script}
		if docroot != "" {
			env = append(env, "DOCUMENT_ROOT="+docroot)
		}
		return bridge.EnvironFromList(env)
	}
	tests := []struct {
		name   string
		e      *Executor
		env    bridge.Environ
		status int
		log    string
	}{
		{"DOCUMENT_ROOT /", e, req("/", evil), 403, "confines nothing"},
		{"DOCUMENT_ROOT a symlink to /", e, req(filepath.Join(links, "slash"), evil), 403, "confines nothing"},
		{"script outside DOCUMENT_ROOT", e, req(root, evil), 403, "outside the roots"},
		{"dot-dot out of DOCUMENT_ROOT", e, req(root, root+"/../"+filepath.Base(outside)+"/evil.sh"), 403, "outside the roots"},
		{"symlink out of DOCUMENT_ROOT", e, req(root, filepath.Join(root, "link.sh")), 403, "outside the roots"},
		{"DOCUMENT_ROOT+SCRIPT_NAME escaping", e, bridge.EnvironFromList([]string{"REQUEST_METHOD=GET", "DOCUMENT_ROOT=" + root, "SCRIPT_NAME=/../" + filepath.Base(outside) + "/evil.sh"}), 403, "outside the roots"},
		{"DOCUMENT_ROOT the script itself", e, req(evil, evil), 403, "not a directory"},
		{"no DOCUMENT_ROOT", e, req("", evil), 403, "no DOCUMENT_ROOT"},
		{"relative DOCUMENT_ROOT", e, req("tmp", evil), 403, "not an absolute path"},
		{"DOCUMENT_ROOT missing", e, req(filepath.Join(root, "nope"), evil), 404, "does not exist"},
		{"DOCUMENT_ROOT with a NUL byte", e, req(outside+"\x00", evil), 400, "NUL"},
		{"DOCUMENT_ROOT outside Roots", within, req(outside, evil), 403, "outside the roots"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(logs.String())
			resp, _, err := respondScript(t, tt.e, tt.env, nil)
			if err != nil || resp.Status != tt.status {
				t.Errorf("answer = %d, %v; want %d", resp.Status, err, tt.status)
			}
			if tt.e == e && !strings.Contains(logs.String()[before:], tt.log) {
				t.Errorf("log lacks %q:\n%s", tt.log, logs.String()[before:])
			}
		})
	}
	if _, err := os.Stat(evil + ".ran"); err == nil {
		t.Errorf("a script outside the DOCUMENT_ROOT ran")
	}
	// The request's own root serves its scripts, also through a symlink,
	// and so does a root inside Roots.
	for _, docroot := range []string{root, filepath.Join(links, "root")} {
		if resp, body, _ := respondScript(t, e, req(docroot, filepath.Join(docroot, "hello.sh")), nil); resp.Status != 200 || body != "hello " {
			t.Errorf("DOCUMENT_ROOT %s, its hello.sh: %d %q; want 200 \"hello \"", docroot, resp.Status, body)
		}
	}
	if resp, _, _ := respondScript(t, within, req(root, filepath.Join(root, "hello.sh")), nil); resp.Status != 200 {
		t.Errorf("DOCUMENT_ROOT one of Roots: %d, want 200", resp.Status)
	}
	if err := (&Executor{}).Validate(); err == nil || !strings.Contains(err.Error(), "RootFromRequest") {
		t.Errorf("Validate with no Roots = %v, want an error naming RootFromRequest", err)
	}
}

// TestWithin: a path is within a root when it is the root or below it,
// never when it merely starts with the root's name.
func TestWithin(t *testing.T) {
	tests := []struct {
		path, root string
		want       bool
	}{
		{"/srv/cgi", "/srv/cgi", true},
		{"/srv/cgi/a.sh", "/srv/cgi", true},
		{"/srv/cgi/a.sh", "/srv/cgi/", true},
		{"/srv/cgi-bin/a.sh", "/srv/cgi", false},
		{"/srv", "/srv/cgi", false},
		{"/srv/cgi/a.sh", "/", true},
		{"/", "/", true},
	}
	for _, tt := range tests {
		if got := within(tt.path, tt.root); got != tt.want {
			t.Errorf("within(%q, %q) = %v, want %v", tt.path, tt.root, got, tt.want)
		}
	}
}
