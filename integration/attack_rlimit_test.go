//go:build linux

package integration

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestAttackRlimits: the cgirun fcgi binary with --rlimit-cpu and
// --rlimit-nofile ends a script that spins past its CPU second (502, its
// signal logged) and gives a script, and the first process it forks, its
// limits from the start.
func TestAttackRlimits(t *testing.T) {
	root := filepath.Join(sharedTempDir(t), "root")
	mkdirs(t, root)
	writeFile(t, filepath.Join(root, "spin.sh"), "#!/bin/sh\nwhile :; do :; done\n", 0o755)
	writeFile(t, filepath.Join(root, "limits.sh"), "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\ngrep -E '^Max (cpu time|open files) ' /proc/self/limits\n", 0o755)
	runner := startAttackRunner(t, root, "--rlimit-cpu", "1", "--rlimit-nofile", "48", "--timeout", "60s")
	status, body, _ := runner.Do(t, map[string]string{"SCRIPT_FILENAME": filepath.Join(root, "limits.sh")}, nil)
	for _, want := range []string{`Max cpu time +1 +2 +seconds`, `Max open files +48 +48 +files`} {
		if status != 200 || !regexp.MustCompile(want).MatchString(body) {
			t.Errorf("limits.sh = %d %q, want 200 and a line matching %q\n%s", status, body, want, runner.Log())
		}
	}
	status, body, _ = runner.Do(t, map[string]string{"SCRIPT_FILENAME": filepath.Join(root, "spin.sh")}, nil)
	if status != 502 || !strings.Contains(runner.Log(), "CPU time limit exceeded") && !strings.Contains(runner.Log(), "signal: killed") {
		t.Errorf("spin.sh past its CPU second = %d %q, want 502 and its signal logged\n%s", status, body, runner.Log())
	}
}
