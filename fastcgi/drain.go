package fastcgi

import (
	"errors"
	"os"
	"syscall"
	"time"
)

// lingerTime bounds how long a connection that must close keeps reading a
// request body that its handler did not consume, so that the web server
// reads the response instead of a reset.
const lingerTime = 2 * time.Second

// drainGrace is how long Shutdown leaves an idle connection open for a
// request the web server may have sent on it just before: a kept
// connection in nginx's pool can carry one at any moment.
const drainGrace = 50 * time.Millisecond

// Drain makes the connection close after its last request (Shutdown). An
// idle one gets drainGrace to show a request already on its way; either
// closes then unless a request is waiting in the socket.
func (c *conn) Drain() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.draining = true
	c.drainTo = time.Now().Add(drainGrace)
	if c.idleLocked() && !c.closed {
		c.setReadDeadlineLocked()
	}
}

// drainWaiting is called when the wait for a record failed with err on a
// connection that had read nothing of it. If Shutdown ended the wait while
// a request was already in the socket (a web server reuses a kept
// connection as soon as it reads an END_REQUEST: nginx can send the next
// request before it sees the connection close), it gives the serve loop
// time to read the request and reports true: the request is answered,
// then the connection closes. Closing instead would reset the connection
// under a request that was sent, which nginx retries only when its method
// is idempotent.
func (c *conn) drainWaiting(err error) bool {
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.draining || !c.idleLocked() || c.lingerOn || c.closed {
		return false
	}
	if !c.bytesWaiting() {
		// Closed at once: the shorter the time from the look to the
		// close, the fewer requests sent meanwhile find it reset.
		c.rwc.Close()
		return false
	}
	c.drainTo = time.Now().Add(drainGrace)
	return true
}

// bytesWaiting reports whether the web server sent bytes that the socket
// holds unread. It does not wait, and consumes nothing.
func (c *conn) bytesWaiting() bool {
	sc, ok := c.rwc.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	waiting := false
	rc.Control(func(fd uintptr) {
		var b [1]byte
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		waiting = err == nil && n > 0
	})
	return waiting
}

// lingerClose closes the write side, lets the serve loop read what the web
// server is still sending for a little while, then the loop closes.
func (c *conn) lingerClose() {
	c.mu.Lock()
	c.lingerOn = true
	c.lingerTo = time.Now().Add(lingerTime)
	c.mu.Unlock()
	if cw, ok := c.rwc.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
		c.setReadDeadline()
		return
	}
	c.close(nil)
}
