//go:build linux

package integration

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cgirun/cgirun/internal/testlog"
)

// TestAttackLifeChildrenDefault: `cgirun fcgi` started without -c runs at
// most 16 scripts per CPU at once (GOMAXPROCS=1 here: 16). A burst of 17
// slow requests starts 16 scripts; the 17th waits for a slot, gets 503
// once the queue's 10 s are over, and no 17th script ran. Once the 16
// answer, a request runs again.
func TestAttackLifeChildrenDefault(t *testing.T) {
	const bound = 16
	dir := sharedTempDir(t)
	root := filepath.Join(dir, "root")
	mkdirs(t, root)
	started := filepath.Join(t.TempDir(), "started")
	release := started + ".go"
	// slow.sh says it runs, then waits for the test before it answers.
	writeFile(t, filepath.Join(root, "slow.sh"), "#!/bin/sh\necho x >> \"$QUERY_STRING\"\nwhile [ ! -e \"$QUERY_STRING.go\" ]; do sleep 0.01; done\nprintf 'Content-Type: text/plain\\r\\n\\r\\nslow\\n'\n", 0o755)
	bin := filepath.Join(t.TempDir(), "cgirun")
	buildExample(t, "./cmd/cgirun", bin)
	sock, output := filepath.Join(dir, "cgirun.sock"), filepath.Join(dir, "cgirun.log")
	checkSocketPath(t, sock)
	runner := startProcess(t, "cgirun", []string{bin, "fcgi", "--root", root, "-s", "unix:" + sock, "--socket-mode", "0666"}, []string{serverPath, "LANG=C", "GOMAXPROCS=1"}, output, false)
	if err := runner.waitReady(nginxSocketReady(sock)); err != nil {
		t.Fatalf("%v\n%s", err, runner.Output())
	}
	if !strings.Contains(runner.Output(), fmt.Sprintf("children=%d", bound)) {
		t.Errorf("the runner does not say it runs %d scripts at most:\n%s", bound, runner.Output())
	}
	defer os.WriteFile(release, nil, 0o644) // whatever happens, the scripts end

	slow := filepath.Join(root, "slow.sh")
	answers := make(chan faultAnswer, bound+1)
	for range bound + 1 {
		// Past the runner's queue timeout of 10 s.
		go func() { answers <- lifeFastCGIGetWithin(t, sock, slow, started, 3*clientTimeout) }()
	}
	// The scripts write to a file, not to us: poll it, bounded.
	count := func() int { b, _ := os.ReadFile(started); return bytes.Count(b, []byte("x\n")) }
	deadline := time.Now().Add(clientTimeout)
	for count() < bound {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d scripts started\n%s", count(), bound, runner.Output())
		}
		time.Sleep(pollMax / 10)
	}
	// The one request past the bound: 503 after the queue timeout, and
	// its script never ran.
	if a := <-answers; a.err != nil || a.status != 503 {
		t.Errorf("the request past -c got %d %q %v, want 503", a.status, a.body, a.err)
	}
	if n := count(); n != bound {
		t.Errorf("%d scripts ran at once, want %d", n, bound)
	}
	if testlog.Line(runner.Output(), "no free slot for a script", fmt.Sprintf("max_children=%d", bound)) == "" {
		t.Errorf("no log line for the request past the bound:\n%s", runner.Output())
	}
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for range bound {
		if a := <-answers; a.err != nil || a.status != 200 || a.body != "slow\n" {
			t.Errorf("a script within the bound answered %d %q %v, want 200", a.status, a.body, a.err)
		}
	}
	if a := lifeFastCGIGet(t, sock, slow, started); a.err != nil || a.status != 200 {
		t.Errorf("after the burst: %d %q %v, want 200", a.status, a.body, a.err)
	}
}
