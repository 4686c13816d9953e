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
)

// child is a running script.
type child struct {
	pgid     int           // its process group, led by it
	exited   chan struct{} // closed once it was waited for
	err      error         // from Wait; read after exited
	answered chan struct{} // closed when run is done with its output
	strays   atomic.Bool   // processes left in the group were killed while its output was read
}

func (c *child) wait() error {
	<-c.exited
	return c.err
}

// watch drains the script's stderr into the log while wait waits for the
// script to exit, each in a goroutine of its own, and closes p.exited once
// the script was waited for and its stderr logged. Something the script
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
// in its group once it has exited (after the grace, while its output is
// still read). It returns once the script was waited for: no zombie.
func (e *Executor) supervise(ctx context.Context, c *child, log *slog.Logger) {
	grace := defaults.Or(e.KillGrace, DefaultKillGrace)
	timer := func() <-chan time.Time { return time.After(grace) }
	select {
	case <-c.exited:
		select {
		case <-c.answered:
		case <-ctx.Done():
		case <-timer():
			// The script is gone but its output is still read: if
			// something it started is left in its group, that holds
			// stdout open.
			if syscall.Kill(-c.pgid, 0) == nil {
				c.strays.Store(true)
				log.Warn("cgi: the script exited, but processes it started hold its output; ending them", "grace", grace)
			}
		}
	case <-ctx.Done():
		e.terminate(c, grace)
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
}

func (e *Executor) terminate(c *child, grace time.Duration) {
	syscall.Kill(-c.pgid, syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(grace):
		syscall.Kill(-c.pgid, syscall.SIGKILL)
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
