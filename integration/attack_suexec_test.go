//go:build linux

package integration

import (
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cgirun/cgirun/internal/testenv"
)

// TestAttackSuexecAsUser plays, against the cgirun fcgi binary started as
// root with --user nobody, the scripts Apache's suEXEC refuses, and a
// script that execs a setuid-root program outside the root: each refused
// script gets 403 and runs nothing, and the setuid program runs with
// nobody's euid (no_new_privs). Without root it skips: --user needs it.
func TestAttackSuexecAsUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("--user needs the runner to run as root")
	}
	nobody, nogroup := testenv.Nobody(t)
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nogroup.Gid)
	base := t.TempDir()
	root := filepath.Join(base, "root")
	mkdirs(t, root)
	for _, d := range []string{filepath.Dir(base), base, root} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	marker := filepath.Join(base, "ran")
	owned := func(name, text string, owner int, mode os.FileMode) {
		t.Helper()
		p := filepath.Join(root, name)
		writeFile(t, p, text, 0o600)
		if err := os.Chown(p, owner, gid); err != nil { // before chmod: chown clears setuid
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	touch := "#!/bin/sh\ntouch " + marker + "\nprintf 'Content-Type: text/plain\\r\\n\\r\\nran'\n"
	owned("good.sh", "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'; id -u\n", uid, 0o755)
	owned("writable.sh", touch, uid, 0o757)
	owned("other-owner.sh", touch, 0, 0o755)
	owned("setgid.sh", touch, uid, os.ModeSetgid|0o755)
	// A setuid-root copy of id, outside the root, that good scripts run.
	id := filepath.Join(base, "id-setuid")
	src, err := os.Open("/usr/bin/id")
	if err != nil {
		t.Skipf("no /usr/bin/id: %v", err)
	}
	b, err := io.ReadAll(src)
	src.Close()
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, id, string(b), 0o755)
	if err := os.Chmod(id, os.ModeSetuid|0o755); err != nil {
		t.Fatal(err)
	}
	owned("escalate.sh", "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'; "+id+" -u\n", uid, 0o755)

	runner := startAttackRunner(t, root, "--user", nobody.Username)
	do := func(name string) (int, string) {
		status, body, _ := runner.Do(t, map[string]string{"SCRIPT_FILENAME": filepath.Join(root, name)}, nil)
		return status, body
	}
	if status, body := do("good.sh"); status != 200 || strings.TrimSpace(body) != nobody.Uid {
		t.Fatalf("good.sh = %d %q, want 200 and uid %s\n%s", status, body, nobody.Uid, runner.Log())
	}
	for _, name := range []string{"writable.sh", "other-owner.sh", "setgid.sh"} {
		if status, body := do(name); status != 403 {
			t.Errorf("%s = %d %q, want 403", name, status, body)
		}
		if _, err := os.Stat(marker); err == nil {
			t.Fatalf("%s ran: %s exists", name, marker)
		}
	}
	for _, want := range []string{"writable by group or others", "is owned by uid 0", "is setuid or setgid"} {
		if !strings.Contains(runner.Log(), want) {
			t.Errorf("the runner's log does not say %q\n%s", want, runner.Log())
		}
	}
	if status, body := do("escalate.sh"); status != 200 || strings.TrimSpace(body) != nobody.Uid {
		t.Errorf("escalate.sh (a setuid-root id run by a script) = %d %q, want 200 and euid %s: no_new_privs\n%s", status, body, nobody.Uid, runner.Log())
	}
	// The same script under --allow-privilege-gain: the setuid program
	// gets root's euid, which no_new_privs above kept it from.
	gain := startAttackRunner(t, root, "--user", nobody.Username, "--allow-privilege-gain")
	status, body, _ := gain.Do(t, map[string]string{"SCRIPT_FILENAME": filepath.Join(root, "escalate.sh")}, nil)
	if status != 200 || strings.TrimSpace(body) != "0" {
		t.Errorf("escalate.sh under --allow-privilege-gain = %d %q, want 200 and euid 0 (is %s mounted nosuid?)\n%s", status, body, base, gain.Log())
	}
}
