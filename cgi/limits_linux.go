package cgi

import (
	"fmt"
	"os"
	"syscall"
	"unsafe"
)

// apply sets the limits on the child pid, stopped by its exec under
// PTRACE_TRACEME, then lets it go. It runs on the thread that forked the
// child: its tracer. If pid is not stopped as expected, it is killed and
// reaped, and apply says why.
func (l Limits) apply(pid int) error {
	var ws syscall.WaitStatus
	for {
		_, err := syscall.Wait4(pid, &ws, syscall.WALL, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return os.NewSyscallError("wait4", err)
		}
		break
	}
	if !ws.Stopped() {
		return fmt.Errorf("the script ended (%v) before its limits were set", waitError(ws))
	}
	for _, r := range []struct {
		resource int
		value    uint64
		extra    uint64 // hard above soft
	}{
		{syscall.RLIMIT_CPU, l.CPUSeconds, 1}, // SIGXCPU at soft, SIGKILL at hard
		{syscall.RLIMIT_AS, l.AddressSpace, 0},
		{rlimitNPROC, l.Processes, 0},
		{syscall.RLIMIT_NOFILE, l.OpenFiles, 0},
	} {
		if r.value == 0 {
			continue
		}
		lim := syscall.Rlimit{Cur: r.value, Max: r.value + r.extra}
		if _, _, errno := syscall.RawSyscall6(syscall.SYS_PRLIMIT64, uintptr(pid), uintptr(r.resource), uintptr(unsafe.Pointer(&lim)), 0, 0, 0); errno != 0 {
			syscall.Kill(pid, syscall.SIGKILL)
			syscall.PtraceDetach(pid)
			syscall.Wait4(pid, &ws, syscall.WALL, nil)
			return os.NewSyscallError("prlimit", errno)
		}
	}
	if err := syscall.PtraceDetach(pid); err != nil {
		syscall.Kill(pid, syscall.SIGKILL)
		syscall.Wait4(pid, &ws, syscall.WALL, nil)
		return os.NewSyscallError("ptrace(PTRACE_DETACH)", err)
	}
	return nil
}

// rlimitNPROC is RLIMIT_NPROC, which package syscall does not name.
const rlimitNPROC = 6
