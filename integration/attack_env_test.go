//go:build linux

package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAttackEnvParams sends, as raw FastCGI params to the cgirun fcgi
// binary (no web server would send these names, any process that reaches
// the socket can), the variables that make a script run the attacker's
// code before its first line. Each attack's marker file must not appear.
// The runner is started with --allow-env TMPDIR: that name, dropped by
// default, passes.
func TestAttackEnvParams(t *testing.T) {
	bash := requireBinary(t, "bash")
	dir := sharedTempDir(t)
	root := filepath.Join(dir, "root")
	mkdirs(t, root)
	marker := func(name string) string { return filepath.Join(dir, name+".ran") }
	writeFile(t, filepath.Join(root, "hello.sh"), "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nhello'\n", 0o755)
	writeFile(t, filepath.Join(root, "hello.bash"), "#!"+bash+"\nprintf 'Content-Type: text/plain\\r\\n\\r\\nhello'\n", 0o755)
	writeFile(t, filepath.Join(root, "env.sh"), envScript, 0o755)
	runner := startAttackRunner(t, root, "--allow-env", "TMPDIR")
	script := func(name string) map[string]string {
		return map[string]string{"SCRIPT_FILENAME": filepath.Join(root, name)}
	}
	attack := func(t *testing.T, name string, params map[string]string, body []byte) {
		t.Helper()
		status, got, stderr := runner.Do(t, params, body)
		if status != 200 || got != "hello" {
			t.Errorf("answer %d %q, stderr %q; want 200 \"hello\"\n%s", status, got, stderr, runner.Log())
		}
		if _, err := os.Stat(marker(name)); err == nil {
			t.Errorf("the attack ran: %s exists", marker(name))
		}
	}

	t.Run("LD_PRELOAD", func(t *testing.T) {
		cc, err := exec.LookPath("cc")
		if err != nil {
			t.Skip("no C compiler (cc) to build the preloaded library")
		}
		src := filepath.Join(dir, "evil.c")
		so := filepath.Join(dir, "evil.so")
		writeFile(t, src, "#include <fcntl.h>\n#include <unistd.h>\n__attribute__((constructor)) static void evil(void) { close(open(\""+marker("ld_preload")+"\", O_CREAT|O_WRONLY, 0644)); }\n", 0o644)
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		if out, err := exec.CommandContext(ctx, cc, "-shared", "-fPIC", "-o", so, src).CombinedOutput(); err != nil {
			t.Fatalf("cc: %v\n%s", err, out)
		}
		p := script("hello.sh")
		p["LD_PRELOAD"] = so
		attack(t, "ld_preload", p, nil)
	})
	t.Run("BASH_ENV", func(t *testing.T) {
		p := script("hello.bash")
		p["BASH_ENV"] = "/proc/self/fd/0"
		attack(t, "bash_env", p, []byte("touch "+marker("bash_env")+"\n"))
	})
	t.Run("BASH_FUNC_printf%%", func(t *testing.T) {
		p := script("hello.bash")
		p["BASH_FUNC_printf%%"] = "() { touch " + marker("bash_func") + "; }"
		attack(t, "bash_func", p, nil)
	})
	t.Run("http_proxy and the allowed name", func(t *testing.T) {
		p := script("env.sh")
		p["http_proxy"] = "http://evil.example:3128"
		p["HTTP_PROXY"] = "http://evil.example:3128"
		p["TMPDIR"] = "/allowed"
		p["LD_LIBRARY_PATH"] = "/evil"
		status, body, _ := runner.Do(t, p, nil)
		env := parseEnv([]byte(body))
		if status != 200 {
			t.Fatalf("env.sh answered %d %q\n%s", status, body, runner.Log())
		}
		checkEnv(t, env, map[string]envWant{
			"http_proxy":      {absent: true},
			"HTTP_PROXY":      {absent: true},
			"LD_LIBRARY_PATH": {absent: true},
			"TMPDIR":          {value: "/allowed"},
		})
		if strings.Contains(body, "evil") {
			t.Errorf("the script's environment holds the attacker's values:\n%s", body)
		}
	})
}
