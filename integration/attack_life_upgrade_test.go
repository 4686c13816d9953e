//go:build linux

package integration

import (
	"path/filepath"
	"syscall"
	"testing"
)

// TestAttackLifeUpgradeWhileScriptRuns: `cgirun fcgi`, a child subreaper
// that ends the processes its scripts leave behind, is sent SIGHUP while
// two scripts run. The new runner is the old one's child, started by the
// upgrade. The first script then leaves a daemon behind, which the old
// runner ends as the script ends: in that same look for orphans, it must
// leave the new runner alone. Both answers arrive whole, the old runner
// exits 0, and the new one serves.
func TestAttackLifeUpgradeWhileScriptRuns(t *testing.T) {
	dir := sharedTempDir(t)
	root := filepath.Join(dir, "root")
	mkdirs(t, root)
	// wait.sh writes its pid to the file its query names, waits for that
	// name with ".go" appended, then answers; with "daemon" in the query
	// it first leaves a daemon behind, whose pid it writes to ".daemon".
	writeFile(t, filepath.Join(root, "wait.sh"), `#!/bin/sh
echo $$ > "$QUERY_STRING"
while [ ! -e "$QUERY_STRING.go" ]; do sleep 0.01; done
case $QUERY_STRING in *daemon*)
	setsid sleep 40 </dev/null >/dev/null 2>&1 &
	echo $! > "$QUERY_STRING.daemon"
esac
printf 'Content-Type: text/plain\r\n\r\nwaited\n'
`, 0o755)
	writeFile(t, filepath.Join(root, "hello.sh"), "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nhello\\n'\n", 0o755)
	sock, output := filepath.Join(dir, "cgirun.sock"), filepath.Join(dir, "cgirun.log")
	_, first := relStartRunner(t, root, sock, output)
	old := first.cmd.Process.Pid
	current := old
	stopUpgradedAtCleanup(t, "the new runner", old, &current)
	logs := func() string { return readFile(output) }

	marks := t.TempDir()
	daemonMark, waitMark := filepath.Join(marks, "daemon"), filepath.Join(marks, "wait")
	answers := make(chan faultAnswer, 2)
	for _, mark := range []string{daemonMark, waitMark} {
		go func() { answers <- lifeFastCGIGet(t, sock, filepath.Join(root, "wait.sh"), mark) }()
		runnerReadPID(t, mark, logs) // the script runs
	}
	if err := syscall.Kill(old, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	current = relWaitUpgraded(t, output, 1, logs)

	// The first script leaves its daemon and ends: the old runner, still
	// serving the second, ends the daemon.
	writeFile(t, daemonMark+".go", "", 0o644)
	daemon := runnerReadPID(t, daemonMark+".daemon", logs)
	if left := runnerWaitGone(daemon, old); left != "" {
		syscall.Kill(daemon, syscall.SIGKILL)
		t.Errorf("the daemon %d is still there: %s\n%s", daemon, left, logs())
	}
	if p, err := runnerStat(current); err != nil || p.state == "Z" {
		t.Fatalf("the new runner %d after the old one ended orphans: %+v, %v; want it running\n%s", current, p, err, logs())
	}
	writeFile(t, waitMark+".go", "", 0o644)
	for range 2 {
		if a := <-answers; a.err != nil || a.status != 200 || a.body != "waited\n" {
			t.Errorf("a script running across the upgrade answered %d %q %v, want 200 \"waited\\n\"\n%s", a.status, a.body, a.err, logs())
		}
	}
	runWaitExit(t, first, logs)
	if a := lifeFastCGIGet(t, sock, filepath.Join(root, "hello.sh"), ""); a.err != nil || a.status != 200 || a.body != "hello\n" {
		t.Errorf("the new runner %d answered %d %q %v, want 200 \"hello\\n\"\n%s", current, a.status, a.body, a.err, logs())
	}
}
