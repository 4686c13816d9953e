package cgi

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cgirun/cgirun/bridge"
	"github.com/cgirun/cgirun/internal/defaults"
	"github.com/cgirun/cgirun/internal/proc"
)

// child is a running script.
type child struct {
	pgid     int           // its process group, led by it
	pid      int           // its pid, the same as pgid
	dead     chan struct{} // closed once its exit status is known
	exited   chan struct{} // closed once its exit was seen and its stderr logged
	err      error         // how it ended; read after dead
	answered chan struct{} // closed when run is done with its output
	strays   atomic.Bool   // processes it left held its output past the grace, and were ended
	stdout   *os.File      // the runner's end of its stdout, which run reads
	stdin    *stdinPipe    // the runner's end of its stdin; nil: /dev/null
	// peek tells, without waiting, whether it has exited, and how; nil
	// where that cannot be told.
	peek func() (exited bool, err error)
	// reap reaps it once it has exited and supervise is done with its
	// group; nil where its wait reaps it.
	reap func()
}

func (c *child) wait() error {
	<-c.exited
	return c.err
}

// watch drains the script's stderr into the log while wait waits for the
// script to exit, each in a goroutine of its own, and closes p.exited once
// its exit was seen and its stderr logged. Something the script
// started may hold stderr open after it exited: that gets the grace, then
// stderr is closed on it.
func (e *Executor) watch(p *child, wait func() error, stderr *os.File, req *bridge.Request, log *slog.Logger) {
	grace := defaults.Or(e.KillGrace, DefaultKillGrace)
	room := e.MaxStderrBytes
	switch {
	case room == 0:
		room = DefaultMaxStderrBytes
	case room < 0:
		room = 0
	}
	logged := make(chan struct{})
	go func() {
		defer close(logged)
		copyStderr(stderr, &stderrLog{log: log, req: req, toWebServer: e.StderrToWebServer, room: room})
	}()
	go func() {
		p.err = wait()
		close(p.dead)
		// What the script wrote to stderr is logged before it is said
		// to be over. Most often stderr ended with it: no timer then.
		select {
		case <-logged:
		default:
			t := time.NewTimer(grace)
			select {
			case <-logged:
			case <-t.C:
			}
			t.Stop()
		}
		stderr.Close()
		<-logged
		close(p.exited)
	}()
}

// supervise ends a script's process group: SIGTERM, then SIGKILL after the
// grace, when the request ends early (timeout, client gone) or when the
// script lingers after its answer; and SIGKILL to whatever the script left
// in its group once it has exited. It returns once the script was waited
// for: no zombie.
//
// It also ends the request when something outside the script's reach
// holds its output: a process the script started in a session of its own
// ("setsid daemon &"), which no signal to the group reaches, keeps the
// stdout pipe open after the script exited. Once the request ended early
// and the script is gone, or the script exited and its output is still
// held open after the grace, supervise closes the runner's end of stdout:
// run's read ends, and the answer is cut. Once the script is done with,
// the runner's end of stdin is closed too, so that a body nobody reads
// holds no goroutine; and with EndOrphans, the processes scripts left
// behind are ended.
func (e *Executor) supervise(ctx context.Context, c *child, log *slog.Logger) {
	grace := defaults.Or(e.KillGrace, DefaultKillGrace)
	timer := func() <-chan time.Time { return time.After(grace) }
	select {
	case <-c.exited:
		select {
		case <-c.answered:
		case <-ctx.Done():
			c.stdout.Close()
		case <-timer():
			// The script is gone but its output is still read: if
			// something it started holds stdout open, the answer
			// would wait for that process's end.
			if outputHeld(c) {
				c.strays.Store(true)
				log.Warn("cgi: the script exited, but processes it started hold its output; ending them", "grace", grace)
				syscall.Kill(-c.pgid, syscall.SIGKILL)
				e.stats.kills.Add(1)
				c.stdout.Close()
			}
		}
	case <-ctx.Done():
		e.terminate(c, grace)
		<-c.exited
		c.stdout.Close()
	case <-c.answered:
		select {
		case <-c.exited:
		case <-ctx.Done():
			e.terminate(c, grace)
		case <-timer():
			log.Warn("cgi: script still running after its answer; ending it", "grace", grace)
			e.terminate(c, grace)
		}
	}
	<-c.exited
	syscall.Kill(-c.pgid, syscall.SIGKILL) // strays left in the group
	if c.reap != nil {
		c.reap() // only now may its pid, the group's id, be reused
	}
	if c.stdin != nil {
		c.stdin.close()
	}
	if e.EndOrphans {
		proc.EndOrphans()
	}
}

func (e *Executor) terminate(c *child, grace time.Duration) {
	syscall.Kill(-c.pgid, syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(grace):
		syscall.Kill(-c.pgid, syscall.SIGKILL)
		e.stats.kills.Add(1)
	}
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
