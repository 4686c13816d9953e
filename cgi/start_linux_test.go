package cgi

import (
	"os"
	"syscall"
	"testing"
)

// TestScriptFDClearOfFork: the fork of syscall.StartProcess moves its own
// error pipe to the number right above the child's highest File, over
// whatever the child held there. A script descriptor there, which the
// child execs through /proc/self/fd, became that pipe, and the exec failed
// with EACCES: under load, with descriptors freed and reused by other
// requests, about one request in 3000 got 502. start moves the descriptor
// out of the way first (clearOfForkFDs). The test lays the descriptors
// out as that race did: the script's right above the Files, holes below
// them where the error pipe lands.
func TestScriptFDClearOfFork(t *testing.T) {
	if _, err := os.Stat("/proc/self/fd"); err != nil {
		t.Skip("no /proc/self/fd")
	}
	prog, err := syscall.Open("/bin/true", oPath|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Skipf("/bin/true: %v", err)
	}
	defer syscall.Close(prog)
	var holes [2]*os.File // both ends of the fork's error pipe take these
	for i := range holes {
		if holes[i], err = os.Open(os.DevNull); err != nil {
			t.Fatal(err)
		}
	}
	var files [3]*os.File
	for i := range files {
		if files[i], err = os.Open(os.DevNull); err != nil {
			t.Fatal(err)
		}
		defer files[i].Close()
	}
	maxFile := int(files[2].Fd())
	for _, f := range files {
		maxFile = max(maxFile, int(f.Fd()))
	}
	if _, err := fcntl(maxFile+1, syscall.F_GETFD, 0); err != syscall.EBADF {
		t.Skipf("descriptor %d is in use: the layout cannot be made", maxFile+1)
	}
	if err := syscall.Dup3(prog, maxFile+1, syscall.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	s := &scriptFile{path: "/bin/true", fd: maxFile + 1}
	defer s.close()
	if err := s.clearOfForkFDs(maxFile); err != nil {
		t.Fatal(err)
	}
	for _, h := range holes {
		h.Close()
	}
	pid, _, err := syscall.StartProcess(fdPath(s.fd), []string{"/bin/true"}, &syscall.ProcAttr{
		Files: []uintptr{files[0].Fd(), files[1].Fd(), files[2].Fd()},
	})
	if err != nil {
		t.Fatalf("exec of the script's descriptor %d, right above the Files (%d): %v", s.fd, maxFile, err)
	}
	var ws syscall.WaitStatus
	if _, err := syscall.Wait4(pid, &ws, 0, nil); err != nil || ws.ExitStatus() != 0 {
		t.Errorf("/bin/true through its descriptor: %v, status %v", err, ws)
	}
}

func fcntl(fd, cmd, arg int) (int, error) {
	r, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), uintptr(cmd), uintptr(arg))
	if errno != 0 {
		return int(r), errno
	}
	return int(r), nil
}
