package cgi

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cgirun/cgirun/bridge"
	"github.com/cgirun/cgirun/internal/defaults"
	"github.com/cgirun/cgirun/internal/proc"
)

// child is a running script. One goroutine at a time drives it: run's,
// which reads its stdout (child.Read), then, if the script is not done
// with when run returns, supervise's. As it waits, the driving goroutine
// also reads the script's stderr into the log and sees its exit, all
// three through watch (on Linux one epoll set, no goroutine of their own),
// and acts on the grace periods (step). The ending of a script early
// (timeout, client gone, an answer given up on) alone runs in a goroutine
// of its own: terminate, started by end.
type child struct {
	e     *Executor
	pid   int // its pid
	pgid  int // its process group, led by it: the same as pid
	grace time.Duration
	w     *watch        // its stdout, stderr and exit, waited on together
	stdin *stdinPipe    // the runner's end of its stdin; nil: /dev/null
	log   stderrLog     // where its stderr goes
	dead  chan struct{} // closed once its exit was seen

	// Owned by the goroutine that drives the child.
	outEOF   bool      // stdout ended
	errEOF   bool      // stderr ended, or was given up on and closed
	exited   bool      // its exit was seen; err says how it ended
	err      error     // nil: exit status 0
	exitAt   time.Time // when its exit was seen
	answered bool      // run is done with its output
	answerAt time.Time
	dl       time.Time // the deadline armed on w; zero: none
	seen     error     // the cause of an early end as step last saw it
	// out is where run relays the script's body; unflushed tells that
	// it holds bytes not flushed yet, which read flushes before it waits.
	out       bridge.Output
	unflushed bool

	strays atomic.Bool // processes it left held its output past the grace, and were ended

	// stop stops the ending of the script when its request's context
	// ends (context.AfterFunc); nil: none.
	stop func() bool

	mu       sync.Mutex
	cause    error         // why it was ended early; nil: it was not
	termDone chan struct{} // closed once terminate is done signalling; nil: never started
	closed   bool          // done with: no signal may reach its group any more
}

// newChild returns the child pid, started by start, whose stdout, stderr
// and exit w watches.
func (e *Executor) newChild(pid int, w *watch, req *bridge.Request, log *slog.Logger) *child {
	room := e.MaxStderrBytes
	switch {
	case room == 0:
		room = DefaultMaxStderrBytes
	case room < 0:
		room = 0
	}
	return &child{e: e, pid: pid, pgid: pid, grace: defaults.Or(e.KillGrace, DefaultKillGrace), w: w, dead: make(chan struct{}),
		log: stderrLog{log: log, req: req, toWebServer: e.StderrToWebServer, room: room}}
}

// Read reads the script's stdout (see Executor.read).
func (c *child) Read(p []byte) (int, error) { return c.e.read(c, p) }

// errLingered is the cause of the end of a script that ran on after its
// answer past the grace.
var errLingered = errors.New("cgi: script still running after its answer")

// errEnded is what child.Read returns once run must stop reading stdout:
// the script was ended early (see child.ended), or what it left behind
// holds its output.
var errEnded = errors.New("cgi: the script's output was given up on")

// ended returns why the script was ended early, or nil.
func (c *child) ended() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cause
}

// end ends the script early for cause: its group is sent SIGTERM, then
// SIGKILL after the grace if it has not exited. Only the first cause
// counts. It may be called from any goroutine, also once the script has
// exited; it does nothing once the script is done with.
func (e *Executor) end(c *child, cause error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.cause != nil {
		return
	}
	c.cause = cause
	c.termDone = make(chan struct{})
	go e.terminate(c)
	c.w.poke() // the driving goroutine looks again
}

// terminate sends the script's group SIGTERM, then SIGKILL after the grace
// unless the script has exited.
func (e *Executor) terminate(c *child) {
	defer close(c.termDone)
	select {
	case <-c.dead:
		return // its strays get their SIGKILL once it is done with
	default:
	}
	syscall.Kill(-c.pgid, syscall.SIGTERM)
	t := time.NewTimer(c.grace)
	defer t.Stop()
	select {
	case <-c.dead:
	case <-t.C:
		// The driving goroutine may be busy elsewhere (writing the
		// answer): ask the kernel.
		if exited, _ := c.w.peek(); !exited {
			syscall.Kill(-c.pgid, syscall.SIGKILL)
			e.stats.kills.Add(1)
		}
	}
}

// sawExit records the script's exit, and how it ended.
func (c *child) sawExit(err error) {
	if c.exited {
		return
	}
	c.exited, c.err, c.exitAt = true, err, time.Now()
	close(c.dead)
}

// step looks at the script's state, acts on the grace periods that
// passed, and returns the deadline of its next decision (zero: none) and
// whether run must stop reading stdout (the script was ended early and
// has exited, or what it left holds stdout past the grace).
func (e *Executor) step(c *child) (next time.Time, stop bool) {
	sooner := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	c.seen = c.ended()
	now := time.Now()
	switch {
	case c.exited:
		grace := c.exitAt.Add(c.grace)
		if !c.errEOF {
			// Something the script started holds stderr open: that gets
			// the grace, then stderr is closed on it.
			if now.Before(grace) {
				sooner(grace)
			} else {
				c.w.dropStderr(c)
			}
		}
		if c.answered || c.outEOF {
			break
		}
		switch {
		case c.seen != nil:
			// Ended early, and gone: what it left cannot hold the
			// request.
			stop = true
		case now.Before(grace):
			sooner(grace)
		case c.w.outputHeld():
			// The script is gone but its output is still read: if
			// something it started holds stdout open, the answer
			// would wait for that process's end.
			c.strays.Store(true)
			c.log.log.Warn("cgi: the script exited, but processes it started hold its output; ending them", "grace", c.grace)
			syscall.Kill(-c.pgid, syscall.SIGKILL)
			e.stats.kills.Add(1)
			stop = true
		}
	case c.answered && c.seen == nil:
		if lingered := c.answerAt.Add(c.grace); now.Before(lingered) {
			sooner(lingered)
		} else {
			c.log.log.Warn("cgi: script still running after its answer; ending it", "grace", c.grace)
			e.end(c, errLingered)
			c.seen = errLingered
		}
	}
	return next, stop
}

// await waits until something happens to the script, or until deadline.
func (e *Executor) await(c *child, deadline time.Time) error {
	if !deadline.Equal(c.dl) {
		c.w.setDeadline(deadline)
		c.dl = deadline
	}
	// end sets the cause, then pokes: a poke made since step looked may
	// have been undone by the deadline just set. Look again instead.
	if c.ended() != c.seen {
		return nil
	}
	err := c.w.wait(c)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		// The deadline, or a poke: the next await arms the deadline
		// anew.
		c.dl = time.Unix(1, 0)
		return nil
	}
	return err
}

// read reads the script's stdout for run. It returns errEnded once the
// script was ended early and has exited, or once what it left holds stdout
// past the grace after its exit; as it waits, it logs the script's stderr
// and sees its exit.
func (e *Executor) read(c *child, p []byte) (int, error) {
	for {
		if c.outEOF {
			return 0, io.EOF
		}
		n, err := c.w.readOut(p)
		switch {
		case n > 0:
			return n, nil
		case err == io.EOF:
			c.outEOF = true
			return 0, io.EOF
		case err != nil && err != errAgain:
			return 0, err
		}
		deadline, stop := e.step(c)
		if stop {
			return 0, errEnded
		}
		if err := c.flush(); err != nil {
			return 0, flushError{err}
		}
		if err := e.await(c, deadline); err != nil {
			return 0, err
		}
	}
}

// flush flushes what run relayed of the answer and did not flush yet:
// before a wait for the script, and before the answer is cut short, so
// that the client has what the script wrote before it failed.
func (c *child) flush() error {
	if !c.unflushed {
		return nil
	}
	c.unflushed = false
	return c.out.Flush()
}

// flushError is what read returns when the flush of the answer before a
// wait failed: the client is gone.
type flushError struct{ err error }

func (f flushError) Error() string { return f.err.Error() }

// exitStatus returns how the script ended, once its output ended: nil
// when it exited with status 0, or when it still runs, having closed its
// output on purpose (its answer is whole then, and run does not wait for
// it). A script that is exiting, which is how most outputs end, is waited
// for, up to the grace.
func (e *Executor) exitStatus(c *child) error {
	if c.exited {
		return c.err
	}
	if exited, err := c.w.peek(); exited {
		c.sawExit(err)
		return err
	}
	if !proc.Exiting(c.pid) {
		return nil
	}
	deadline := time.Now().Add(c.grace)
	for !c.exited && time.Now().Before(deadline) {
		c.seen = c.ended()
		if err := e.await(c, deadline); err != nil {
			break
		}
	}
	if c.exited {
		return c.err
	}
	return nil
}

// wait waits for the script to exit and returns how it ended; its stderr
// is logged meanwhile, up to the grace after its exit.
func (e *Executor) wait(c *child) error {
	for {
		deadline, _ := e.step(c)
		if c.exited && c.errEOF {
			return c.err
		}
		if err := e.await(c, deadline); err != nil {
			// The wait itself failed: wait holding the thread.
			c.w.dropStderr(c)
			c.sawExit(c.w.waitExit())
			return c.err
		}
	}
}

// answer is called once run is done with the script's output. A script
// that is gone, and whose stderr ended, is done with at once; any other
// is supervised by a goroutine until it is: given the grace to exit, then
// ended; its stderr given the grace to end after its exit.
func (e *Executor) answer(c *child) {
	c.answered, c.answerAt = true, time.Now()
	c.w.closeOut()
	if c.exited && c.errEOF {
		e.done(c)
		return
	}
	go e.supervise(c)
}

// supervise drives a script that run answered for, until it is done with.
func (e *Executor) supervise(c *child) {
	e.wait(c)
	e.done(c)
}

// done is the end of a script: once terminate is done with it, whatever
// it left in its group gets SIGKILL, it is reaped, its descriptors are
// closed, and it is counted; with EndOrphans, the processes scripts left
// behind are ended.
func (e *Executor) done(c *child) {
	if c.stop != nil {
		c.stop()
	}
	c.mu.Lock()
	c.closed = true
	term := c.termDone
	c.mu.Unlock()
	if term != nil {
		<-term
	}
	syscall.Kill(-c.pgid, syscall.SIGKILL) // strays left in the group
	c.w.release()                          // only now may its pid, the group's id, be reused
	if c.stdin != nil {
		c.stdin.close()
	}
	if e.EndOrphans {
		proc.EndOrphans()
	}
	e.stats.countExit(c.err)
	if errors.Is(c.cause, errTimeout) {
		e.stats.timeouts.Add(1)
	}
	e.stats.running.Add(-1)
	e.release()
	e.running.Done()
}

// exitError is a script's exit other than status 0.
type exitError struct{ status syscall.WaitStatus }

// Error says it as os.ProcessState does: "exit status 3", "signal: killed".
func (e *exitError) Error() string {
	var s string
	switch ws := e.status; {
	case ws.Exited():
		s = "exit status " + strconv.Itoa(ws.ExitStatus())
	case ws.Signaled():
		s = "signal: " + ws.Signal().String()
	default:
		s = fmt.Sprintf("wait status %#x", uint32(ws))
	}
	if e.status.CoreDump() {
		s += " (core dumped)"
	}
	return s
}

// waitError is the error of a script's end: nil when it exited with
// status 0.
func waitError(ws syscall.WaitStatus) error {
	if ws.Exited() && ws.ExitStatus() == 0 {
		return nil
	}
	return &exitError{ws}
}
