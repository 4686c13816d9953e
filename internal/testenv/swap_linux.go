package testenv

import (
	"os"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"unsafe"
)

// renameat2's number, by architecture: package syscall does not export it
// everywhere.
var sysRenameat2 = map[string]uintptr{"amd64": 316, "arm64": 276, "riscv64": 276, "386": 353}

// Swap exchanges the names a and b over and over (renameat2 with
// RENAME_EXCHANGE: each swap is atomic), in a goroutine, until the
// function it returns is called; that function returns the first error of
// a swap, and may be called more than once. A test of a check-then-use race
// swaps a directory with a symbolic link this way. Swap skips the test on
// an architecture whose system call number it does not know.
func Swap(t testing.TB, a, b string) (stop func() error) {
	t.Helper()
	nr, ok := sysRenameat2[runtime.GOARCH]
	if !ok {
		t.Skipf("renameat2's number on %s is not known here", runtime.GOARCH)
	}
	pa, err := syscall.BytePtrFromString(a)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := syscall.BytePtrFromString(b)
	if err != nil {
		t.Fatal(err)
	}
	const atFDCWD, renameExchange = -100, 2
	halt, done := make(chan struct{}), make(chan error, 1)
	go func() {
		for {
			select {
			case <-halt:
				done <- nil
				return
			default:
			}
			fd := atFDCWD
			_, _, errno := syscall.Syscall6(nr, uintptr(fd), uintptr(unsafe.Pointer(pa)), uintptr(fd), uintptr(unsafe.Pointer(pb)), renameExchange, 0)
			if errno != 0 {
				<-halt
				done <- &os.SyscallError{Syscall: "renameat2", Err: errno}
				return
			}
		}
	}()
	stop = sync.OnceValue(func() error {
		close(halt)
		return <-done
	})
	t.Cleanup(func() { stop() })
	return stop
}
