package cgirun

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRunStopsWhenAListenerFails: RunWith serves two FastCGI sockets, and
// one of them fails (its accept returns an error). The process must not
// go on waiting for a loop that nothing stops: it shuts the other socket
// down, says why, and exits non-zero by itself; SIGTERM would end it
// otherwise, never only SIGKILL.
func TestRunStopsWhenAListenerFails(t *testing.T) {
	dir := t.TempDir()
	good, err := net.Listen("unix", filepath.Join(dir, "good.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	bad, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	files := make([]*os.File, 2)
	for i, l := range []net.Listener{good, bad} {
		f, err := l.(interface{ File() (*os.File, error) }).File()
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		files[i] = f
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), upgradeChildEnv+"=serve", upgradeDirEnv+"="+dir, "CGIRUN_INHERIT_FDS=3,4")
	cmd.ExtraFiles = files
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})

	// Serving: the good socket answers.
	if got := upgradeGet(t, "unix", good.Addr().String()); !strings.HasPrefix(got, "child ") {
		t.Fatalf("GET / before the failure = %q, want the child's answer", got)
	}
	// The bad socket fails: after shutdown(2), accept on it returns an
	// error that is not temporary.
	if err := syscall.Shutdown(int(files[1].Fd()), syscall.SHUT_RDWR); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
			t.Fatalf("the process went on serving after a listener failed, until SIGTERM")
		case <-time.After(10 * time.Second):
			t.Fatalf("the process went on serving after a listener failed, and ignored SIGTERM")
		}
	}
	logs, _ := os.ReadFile(filepath.Join(dir, "child.log"))
	if code := cmd.ProcessState.ExitCode(); waitErr == nil || code != 1 {
		t.Errorf("exit = %v (code %d), want exit status 1 for the failed listener\n%s", waitErr, code, logs)
	}
	if !strings.Contains(string(logs), "serving failed") {
		t.Errorf("log = %s\nwant it to say serving failed", logs)
	}
}
