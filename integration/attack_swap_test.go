//go:build linux

package integration

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cgirun/cgirun/internal/testenv"
)

// Bounds of the swap attack behind nginx: this many requests, or this
// long, whichever comes first.
const (
	attackSwapRequests = 2000
	attackSwapFor      = 8 * time.Second
)

// TestAttackSwapBehindNginx plays the check-then-exec race against the
// runner behind real nginx: while the root's directory d is swapped, over
// and over (renameat2 RENAME_EXCHANGE), with a symlink to a directory
// outside the root, requests name d/x. The x outside is
// "#!/usr/bin/touch MARKER": it creates the marker if it ever runs, with
// no shell involved. No request may run it.
func TestAttackSwapBehindNginx(t *testing.T) {
	requireBinary(t, "nginx")
	requireFile(t, nginxFastCGIParams)
	requireFile(t, "/usr/bin/touch")
	dir := sharedTempDir(t)
	dir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	root, outside := filepath.Join(dir, "root"), filepath.Join(dir, "outside")
	marker := filepath.Join(dir, "outside-ran")
	mkdirs(t, filepath.Join(root, "d"), outside)
	writeFile(t, filepath.Join(root, "d", "x"), "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\ninside'\n", 0o755)
	writeFile(t, filepath.Join(outside, "x"), "#!/usr/bin/touch "+marker+"\n", 0o755)
	if err := os.Symlink(outside, filepath.Join(root, "swap")); err != nil {
		t.Fatal(err)
	}
	runner := startAttackRunner(t, root)
	srv := startNginx(t, nginxConfig{Server: fmt.Sprintf(`location / {
    include %s;
    fastcgi_param SCRIPT_FILENAME %s$fastcgi_script_name;
    fastcgi_pass unix:%s;
}
`, nginxFastCGIParams, root, runner.Socket)})
	logs := func() string { return srv.ErrorLog() + "\n--- cgirun log ---\n" + runner.Log() }

	stop := testenv.Swap(t, filepath.Join(root, "d"), filepath.Join(root, "swap"))
	statuses := map[int]int{}
	deadline := time.Now().Add(attackSwapFor)
	for i := 0; i < attackSwapRequests && time.Now().Before(deadline); i++ {
		req, err := http.NewRequestWithContext(t.Context(), "GET", srv.URL("/d/x"), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, _ := nginxDo(t, req, logs)
		statuses[resp.StatusCode]++
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("answers while the directory was swapped: %v", statuses)
	if _, err := os.Stat(marker); err == nil {
		t.Fatalf("the program outside the root ran (answers %v)", statuses)
	}
	if statuses[200] == 0 || statuses[403] == 0 {
		t.Errorf("answers %v: want both 200 (inside) and 403 (outside), or the swap never raced\n%s", statuses, logs())
	}
}
