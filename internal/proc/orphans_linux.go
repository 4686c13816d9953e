package proc

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// prSetChildSubreaper is prctl(2)'s PR_SET_CHILD_SUBREAPER.
const prSetChildSubreaper = 36

// BecomeSubreaper makes this process a child subreaper (prctl
// PR_SET_CHILD_SUBREAPER, Linux 3.4): a process that a descendant of this
// one leaves behind, such as a CGI script's "setsid daemon &" or a double
// fork, becomes this process's child when its parent exits, not init's,
// and EndOrphans can end it. It holds for the process's life.
func BecomeSubreaper() error {
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); errno != 0 {
		return os.NewSyscallError("prctl(PR_SET_CHILD_SUBREAPER)", errno)
	}
	return nil
}

// sweep makes EndOrphans run one at a time, and a call made while one
// runs makes it look once more instead of waiting.
var sweep struct {
	mu    sync.Mutex
	again atomic.Bool
	kids  [64]int // endOrphans' list of children, under mu
}

// EndOrphans ends the orphans of this process: its children that no
// starter registered through Start, which in a subreaper are processes
// that outlived the parent that started them. It sends each live one
// SIGKILL and reaps each (no zombie is left), then looks again, since an
// orphan's death hands its own children on to this process, until it
// finds none. A call made while another runs returns at once, and the
// running one looks once more.
//
// It must only be used by a program whose every child is started through
// Start (or is such an orphan): a child that os/exec or os.StartProcess
// started and waits for by itself would otherwise be killed.
//
// No pid is signalled once it may be another process's: an orphan is
// signalled only while it is this process's child, not registered, as
// checked under Start's lock (so no child is being started), and nothing
// but EndOrphans, one at a time, reaps such a child: its pid stays its own
// until EndOrphans has reaped it.
func EndOrphans() {
	sweep.again.Store(true)
	for sweep.again.Load() {
		if !sweep.mu.TryLock() {
			return // the running call looks again
		}
		for sweep.again.Swap(false) {
			for endOrphans() {
			}
		}
		sweep.mu.Unlock()
	}
}

// endOrphans ends the orphans found in one look, and reports whether there
// were any. It runs under sweep.mu.
func endOrphans() bool {
	kids := listChildren(sweep.kids[:0])
	if !slices.ContainsFunc(kids, func(pid int) bool { return !isWaited(pid) }) {
		return false // the usual case, and a cheap one
	}
	me := os.Getpid()
	var ended []int
	waited.starting.Lock()
	for _, pid := range kids {
		state, ppid, ok := stat(pid)
		if !ok || ppid != me || isWaited(pid) {
			continue
		}
		if state != 'Z' {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		ended = append(ended, pid)
	}
	waited.starting.Unlock()
	for _, pid := range ended {
		var ws syscall.WaitStatus
		for {
			_, err := syscall.Wait4(pid, &ws, 0, nil)
			if err != syscall.EINTR {
				break
			}
		}
	}
	return len(ended) > 0
}

// listChildren appends to pids the children of this process that may be
// orphans; a variable for the tests.
var listChildren = orphanCandidates

// orphanCandidates appends to pids the children of this process's main
// thread, read from /proc/self/task/PID/children (Linux 3.5) without
// allocating: an orphan is given to the first live thread of its new
// parent, which in a Go program is the main thread, the one that never
// exits. Other threads' children are the ones this process started. Where
// that file cannot be read, it appends every child (allChildren).
func orphanCandidates(pids []int) []int {
	var path [48]byte
	me := os.Getpid()
	name := strconv.AppendInt(append(path[:0], "/proc/self/task/"...), int64(me), 10)
	name = append(name, "/children\x00"...)
	dirfd := atFDCWD
	fd, _, errno := syscall.Syscall6(syscall.SYS_OPENAT, uintptr(dirfd), uintptr(unsafe.Pointer(&name[0])), syscall.O_RDONLY|syscall.O_CLOEXEC, 0, 0, 0)
	if errno != 0 {
		return allChildren(pids)
	}
	defer syscall.Close(int(fd))
	var buf [4096]byte
	n := 0
	for n < len(buf) {
		m, err := syscall.Read(int(fd), buf[n:])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return allChildren(pids)
		}
		if m == 0 {
			break
		}
		n += m
	}
	if n == len(buf) {
		return allChildren(pids) // more children than the buffer holds
	}
	pid := -1
	for _, c := range buf[:n] {
		switch {
		case c >= '0' && c <= '9':
			pid = max(pid, 0)*10 + int(c-'0')
		case pid >= 0:
			pids = append(pids, pid)
			pid = -1
		}
	}
	if pid >= 0 {
		pids = append(pids, pid)
	}
	return pids
}

// allChildren appends to pids every child of this process, from each
// thread's /proc/self/task/TID/children, or from every process's
// /proc/PID/stat where those are missing.
func allChildren(pids []int) []int {
	lists, _ := filepath.Glob("/proc/self/task/*/children")
	for _, name := range lists {
		b, err := os.ReadFile(name)
		if err != nil {
			continue // the thread ended
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
	}
	if len(lists) > 0 {
		return pids
	}
	entries, _ := os.ReadDir("/proc")
	me := os.Getpid()
	for _, ent := range entries {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		if _, ppid, ok := stat(pid); ok && ppid == me {
			pids = append(pids, pid)
		}
	}
	return pids
}

// pfExiting is the kernel's PF_EXITING task flag: the process has begun
// to exit.
const pfExiting = 0x4

// atFDCWD is openat(2)'s AT_FDCWD.
const atFDCWD = -100

// procMounted reports whether /proc can be read.
var procMounted = sync.OnceValue(func() bool {
	_, err := os.Stat("/proc/self/stat")
	return err == nil
})

// Exiting reports whether process pid is exiting or has exited: the
// kernel set its PF_EXITING flag, which comes before it closes its files
// (its pipes' readers see their end) and before its parent can wait for
// it. A process that closed its output and goes on running is not
// exiting. A process that is gone counts as exiting; where /proc cannot
// be read, none does.
func Exiting(pid int) bool {
	if !procMounted() {
		return false
	}
	// Read into buffers on the stack, without os.File: this runs once
	// per script, as its output ends.
	var path [40]byte
	name := strconv.AppendInt(append(path[:0], "/proc/"...), int64(pid), 10)
	name = append(name, "/stat\x00"...)
	dirfd := atFDCWD
	fd, _, errno := syscall.Syscall6(syscall.SYS_OPENAT, uintptr(dirfd), uintptr(unsafe.Pointer(&name[0])), syscall.O_RDONLY|syscall.O_CLOEXEC, 0, 0, 0)
	if errno != 0 {
		return true // gone
	}
	var buf [512]byte
	n, err := syscall.Read(int(fd), buf[:])
	syscall.Close(int(fd))
	if err != nil || n <= 0 {
		return true
	}
	flags, ok := statField(buf[:n], 6)
	return ok && flags&pfExiting != 0
}

// statField returns the number in field i of a /proc/PID/stat line,
// counting from 0 after the command name (state is 0, ppid 1, flags 6).
func statField(b []byte, i int) (uint64, bool) {
	// The command name, in parentheses, may hold anything: the fields
	// follow its last ')'.
	end := bytes.LastIndexByte(b, ')')
	if end < 0 {
		return 0, false
	}
	b = b[end+1:]
	var field []byte
	for range i + 1 {
		b = bytes.TrimLeft(b, " ")
		j := bytes.IndexByte(b, ' ')
		if j < 0 {
			j = len(b)
		}
		field, b = b[:j], b[j:]
	}
	if len(field) == 0 {
		return 0, false
	}
	var v uint64
	for _, c := range field {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	return v, true
}

// stat reads the state and the parent's pid of process pid from
// /proc/PID/stat.
func stat(pid int) (state byte, ppid int, ok bool) {
	f, ok := statFields(pid)
	if !ok || len(f) < 2 || len(f[0]) != 1 {
		return 0, 0, false
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return 0, 0, false
	}
	return f[0][0], ppid, true
}

// statFields returns the fields of /proc/PID/stat after the command name:
// state, ppid, pgrp, session, tty_nr, tpgid, flags, ...
func statFields(pid int) ([]string, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil, false
	}
	// The command name, in parentheses, may hold anything: the fields
	// follow its last ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return nil, false
	}
	return strings.Fields(string(b[i+1:])), true
}
