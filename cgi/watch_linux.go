package cgi

import (
	"io"
	"os"
	"syscall"
	"time"
	"unsafe"
)

// watch waits for a script's stdout, stderr and exit at once, in the
// goroutine that drives the script and without holding a thread: the three
// descriptors (stdout, stderr, and the pidfd, readable once the script
// exits) are in an epoll set of their own, and that set is in the
// runtime's poller like a pipe. A script that answers and exits thus
// wakes one goroutine, where a goroutine for each descriptor would each be
// woken, and each could wake another thread.
//
// The set is edge-triggered: each descriptor is read until it has nothing
// more (EAGAIN) before its readiness is forgotten. Where pidfds are
// missing, a goroutine blocks in waitid, one thread per script, and then
// writes to an eventfd that takes the pidfd's place in the set.
type watch struct {
	ep     *os.File // the epoll set, in the runtime's poller
	rc     syscall.RawConn
	out    int // the runner's ends of stdout and stderr, non-blocking
	errFD  int
	exitFD int // readable once the script has exited: the pidfd, or an eventfd
	wt     waiter
	// waited is closed once the goroutine that waits without a pidfd
	// is done with exitFD; nil when there is no such goroutine.
	waited chan struct{}

	outReady, errReady, exitReady bool // readiness not yet read to its end
	outClosed, errClosed          bool
	buf                           *[smallBufSize]byte // stderr's reads; nil until the first

	// poll is w.pollEvents, made once: wait passes it to the set's
	// RawConn.Read, which calls it each time the set is readable.
	poll    func(fd uintptr) bool
	evs     [4]syscall.EpollEvent
	pollErr error
}

// epollET is EPOLLET, which package syscall spells as a negative number
// on some architectures.
const epollET = 1 << 31

// Tokens of the descriptors in the epoll set.
const (
	tokOut = iota
	tokErr
	tokExit
)

// errAgain is readOut's "nothing to read yet".
var errAgain = syscall.EAGAIN

// newWatch returns the watch of the child pid, whose pidfd is pidfd (-1:
// none), out and errFD being the runner's ends of its stdout and stderr.
// It takes over the three descriptors. Should it fail, the child's group
// is killed, the child reaped and the descriptors closed.
func newWatch(pid, pidfd, out, errFD int) (*watch, error) {
	w := &watch{out: out, errFD: errFD, exitFD: pidfd, wt: waiter{pid: pid, pidfd: pidfd}}
	if err := w.init(); err != nil {
		syscall.Kill(-pid, syscall.SIGKILL)
		if w.waited != nil {
			<-w.waited
		}
		w.wt.wait()
		w.release()
		return nil, err
	}
	return w, nil
}

// init makes the epoll set, and the eventfd and its goroutine where there
// is no pidfd.
func (w *watch) init() error {
	for _, fd := range []int{w.out, w.errFD} {
		if _, _, errno := syscall.RawSyscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_SETFL, syscall.O_NONBLOCK); errno != 0 {
			return os.NewSyscallError("fcntl", errno)
		}
	}
	if w.exitFD < 0 {
		fd, _, errno := syscall.RawSyscall(syscall.SYS_EVENTFD2, 0, syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0)
		if errno != 0 {
			return os.NewSyscallError("eventfd", errno)
		}
		w.exitFD = int(fd)
		w.waited = make(chan struct{})
		go w.waitWithoutPidfd()
	}
	ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return os.NewSyscallError("epoll_create1", err)
	}
	for tok, fd := range [...]int{tokOut: w.out, tokErr: w.errFD, tokExit: w.exitFD} {
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | epollET, Fd: int32(tok)}
		if err := syscall.EpollCtl(ep, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
			syscall.Close(ep)
			return os.NewSyscallError("epoll_ctl", err)
		}
	}
	// Non-blocking, so that os.NewFile hands it to the poller.
	if _, _, errno := syscall.RawSyscall(syscall.SYS_FCNTL, uintptr(ep), syscall.F_SETFL, syscall.O_NONBLOCK); errno != 0 {
		syscall.Close(ep)
		return os.NewSyscallError("fcntl", errno)
	}
	w.ep = os.NewFile(uintptr(ep), "epoll")
	w.poll = w.pollEvents
	var err2 error
	if w.rc, err2 = w.ep.SyscallConn(); err2 == nil {
		// A file the poller does not serve refuses deadlines.
		err2 = w.ep.SetReadDeadline(time.Time{})
	}
	return err2
}

// waitWithoutPidfd waits for the script to exit, leaving it a zombie, and
// then makes exitFD readable.
func (w *watch) waitWithoutPidfd() {
	defer close(w.waited)
	waitid(pPID, w.wt.pid, syscall.WEXITED|syscall.WNOWAIT)
	one := uint64(1)
	syscall.Write(w.exitFD, (*[8]byte)(unsafe.Pointer(&one))[:])
}

// readOut reads stdout without waiting: errAgain when it has nothing yet,
// io.EOF at its end.
func (w *watch) readOut(p []byte) (int, error) {
	if w.outClosed {
		return 0, io.EOF
	}
	if !w.outReady {
		return 0, errAgain
	}
	n, err := readNonblock(w.out, p)
	if err == errAgain {
		w.outReady = false
	}
	return n, err
}

// readNonblock reads fd once: n > 0, or io.EOF, or errAgain, or another
// error.
func readNonblock(fd int, p []byte) (int, error) {
	for {
		n, err := syscall.Read(fd, p)
		switch {
		case err == syscall.EINTR:
			continue
		case err != nil:
			return 0, err
		case n == 0 && len(p) > 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

// wait waits until stdout may be read, or stderr or the exit was seen, or
// the deadline passed (os.ErrDeadlineExceeded), and handles what it saw:
// stderr is read into c's log, the exit recorded in c.
func (w *watch) wait(c *child) error {
	if !w.errReady && !w.exitReady {
		err := w.rc.Read(w.poll)
		if err == nil {
			err, w.pollErr = w.pollErr, nil
		}
		if err != nil {
			return err
		}
	}
	if w.exitReady {
		w.exitReady = false
		if exited, err := w.peek(); exited {
			c.sawExit(err)
		}
	}
	if w.errReady {
		w.readErr(c)
	}
	return nil
}

// pollEvents takes the events of the set without waiting and reports
// whether there were any (or an error, left in pollErr): false makes the
// RawConn wait until the set is readable.
func (w *watch) pollEvents(fd uintptr) bool {
	n, err := syscall.EpollWait(int(fd), w.evs[:], 0)
	switch {
	case err == syscall.EINTR:
		return false // look again once the set is readable
	case err != nil:
		w.pollErr = os.NewSyscallError("epoll_wait", err)
		return true
	case n == 0:
		return false
	}
	for _, ev := range w.evs[:n] {
		switch ev.Fd {
		case tokOut:
			w.outReady = !w.outClosed
		case tokErr:
			w.errReady = !w.errClosed
		case tokExit:
			w.exitReady = true
		}
	}
	return true
}

// readErr reads stderr into c's log, up to a pipe's worth at a time, so
// that stdout is not kept waiting: errReady stays set while more may be
// there.
func (w *watch) readErr(c *child) {
	if w.buf == nil {
		w.buf = smallBufPool.Get().(*[smallBufSize]byte)
	}
	for range copyBufSize / smallBufSize {
		n, err := readNonblock(w.errFD, w.buf[:])
		if n > 0 {
			c.log.Write(w.buf[:n])
			continue
		}
		w.errReady = false
		if err != errAgain {
			w.dropStderr(c)
		}
		return
	}
}

// setDeadline sets when wait gives up; zero: never.
func (w *watch) setDeadline(t time.Time) { w.ep.SetReadDeadline(t) }

// poke makes the wait under way, or the next one, return at once.
func (w *watch) poke() { w.ep.SetReadDeadline(time.Unix(1, 0)) }

// peek reports, without waiting, whether the script has exited, and how it
// ended.
func (w *watch) peek() (bool, error) { return w.wt.peek() }

// waitExit waits for the script to exit, holding the thread.
func (w *watch) waitExit() error { return w.wt.wait() }

// outputHeld reports whether some process still holds the write end of
// the script's stdout open: a pipe's read end reports POLLHUP once no
// writer is left, even with bytes still to read.
func (w *watch) outputHeld() bool {
	if w.outClosed {
		return false
	}
	pfd := struct {
		fd      int32
		events  int16
		revents int16
	}{fd: int32(w.out)}
	var ts syscall.Timespec // zero: do not wait
	_, _, errno := syscall.Syscall6(syscall.SYS_PPOLL, uintptr(unsafe.Pointer(&pfd)), 1, uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
	return errno == 0 && pfd.revents&pollHup == 0
}

// pollHup is poll(2)'s POLLHUP.
const pollHup = 0x10

// closeOut closes the runner's end of stdout: a script that writes more
// gets EPIPE. Events of the closed descriptor that the set still reports
// are ignored.
func (w *watch) closeOut() {
	if !w.outClosed {
		w.outClosed, w.outReady = true, false
		syscall.Close(w.out)
	}
}

// dropStderr ends c's stderr: the runner's end is closed, and what is
// left of it is logged.
func (w *watch) dropStderr(c *child) {
	if !w.errClosed {
		w.errClosed, w.errReady = true, false
		syscall.Close(w.errFD)
	}
	if !c.errEOF {
		c.errEOF = true
		c.log.end()
	}
}

// release reaps the script, which has exited, and closes the descriptors.
func (w *watch) release() {
	if w.waited != nil {
		<-w.waited
	}
	w.wt.reap()
	if w.ep != nil {
		w.ep.Close()
	}
	w.closeOut()
	if !w.errClosed {
		syscall.Close(w.errFD)
	}
	syscall.Close(w.exitFD)
	if w.buf != nil {
		smallBufPool.Put(w.buf)
		w.buf = nil
	}
}
