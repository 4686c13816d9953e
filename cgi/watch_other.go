//go:build !linux

package cgi

import (
	"io"
	"os"
	"syscall"
	"time"
)

// watch waits for a script's stdout, stderr and exit at once: here a
// goroutine reads each of them (and one waits for the exit, holding a
// thread) and hands what it got to the goroutine that drives the script.
type watch struct {
	proc    *os.Process
	out     *os.File
	errF    *os.File
	outCh   chan outChunk // stdout's reads, one at a time
	quit    chan struct{} // closed by closeOut: stdout's reader stops
	errDone chan struct{} // closed once stderr ended and was logged
	dead    chan struct{} // closed once the script was waited for
	status  error         // how it ended; read after dead
	poked   chan struct{}

	pending               []byte // what readOut has still to return of the last read
	pendErr               error  // the error that ended stdout
	outClosed, errDropped bool
	deadline              time.Time
	errSeen, deadSeen     bool
}

// outChunk is one read of stdout.
type outChunk struct {
	b   []byte
	err error
}

// newWatch starts the goroutines that read the script's stdout and
// stderr (into c's log) and wait for its exit.
func newWatch(c *child, proc *os.Process, out, errF *os.File) *watch {
	w := &watch{proc: proc, out: out, errF: errF, outCh: make(chan outChunk), quit: make(chan struct{}),
		errDone: make(chan struct{}), dead: make(chan struct{}), poked: make(chan struct{}, 1)}
	go func() {
		for {
			b := make([]byte, smallBufSize)
			n, err := out.Read(b)
			select {
			case w.outCh <- outChunk{b[:n], err}:
			case <-w.quit:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	go func() {
		defer close(w.errDone)
		buf := make([]byte, smallBufSize)
		for {
			n, err := errF.Read(buf)
			if n > 0 {
				c.log.Write(buf[:n])
			}
			if err != nil {
				c.log.end()
				return
			}
		}
	}()
	go func() {
		defer close(w.dead)
		state, err := proc.Wait()
		if err != nil {
			w.status = err
			return
		}
		w.status = waitError(state.Sys().(syscall.WaitStatus))
	}()
	return w
}

// readOut reads stdout without waiting: errAgain when it has nothing yet,
// io.EOF at its end.
func (w *watch) readOut(p []byte) (int, error) {
	switch {
	case w.outClosed:
		return 0, io.EOF
	case len(w.pending) > 0:
		n := copy(p, w.pending)
		w.pending = w.pending[n:]
		return n, nil
	case w.pendErr != nil:
		return 0, w.pendErr
	}
	select {
	case ch := <-w.outCh:
		w.take(ch)
		return w.readOut(p)
	default:
		return 0, errAgain
	}
}

func (w *watch) take(ch outChunk) {
	w.pending = ch.b
	if ch.err != nil {
		w.pendErr = ch.err
	}
}

// errAgain is readOut's "nothing to read yet".
var errAgain = syscall.EAGAIN

// wait waits until stdout has bytes, or stderr ended, or the exit was
// seen, or the deadline passed or a poke came (os.ErrDeadlineExceeded).
func (w *watch) wait(c *child) error {
	var timeout <-chan time.Time
	if !w.deadline.IsZero() {
		t := time.NewTimer(time.Until(w.deadline))
		defer t.Stop()
		timeout = t.C
	}
	outCh, errDone, dead := w.outCh, w.errDone, w.dead
	if w.outClosed || w.pendErr != nil {
		outCh = nil
	}
	if w.errSeen {
		errDone = nil
	}
	if w.deadSeen {
		dead = nil
	}
	select {
	case ch := <-outCh:
		w.take(ch)
	case <-errDone:
		w.errSeen, c.errEOF = true, true
	case <-dead:
		w.deadSeen = true
		c.sawExit(w.status)
	case <-w.poked:
		return os.ErrDeadlineExceeded
	case <-timeout:
		return os.ErrDeadlineExceeded
	}
	return nil
}

// setDeadline sets when wait gives up; zero: never.
func (w *watch) setDeadline(t time.Time) { w.deadline = t }

// poke makes the wait under way, or the next one, return at once.
func (w *watch) poke() {
	select {
	case w.poked <- struct{}{}:
	default:
	}
}

// peek reports, without waiting, whether the script has exited, and how it
// ended.
func (w *watch) peek() (bool, error) {
	select {
	case <-w.dead:
		return true, w.status
	default:
		return false, nil
	}
}

// waitExit waits for the script to exit.
func (w *watch) waitExit() error {
	<-w.dead
	return w.status
}

// outputHeld reports whether processes are left in the script's group,
// which may hold its stdout open; without poll(2)'s POLLHUP on pipes,
// that is the best guess here.
func (w *watch) outputHeld() bool {
	return syscall.Kill(-w.proc.Pid, 0) == nil
}

// closeOut closes the runner's end of stdout: a script that writes more
// gets EPIPE.
func (w *watch) closeOut() {
	if !w.outClosed {
		w.outClosed = true
		close(w.quit)
		w.out.Close()
	}
}

// dropStderr ends c's stderr: the runner's end is closed, and what is
// left of it is logged.
func (w *watch) dropStderr(c *child) {
	if !w.errDropped {
		w.errDropped = true
		w.errF.Close()
	}
	<-w.errDone
	w.errSeen, c.errEOF = true, true
}

// release closes the descriptors; the script was waited for (reaped) as
// it exited.
func (w *watch) release() {
	w.closeOut()
	if !w.errDropped {
		w.errF.Close()
	}
}
