package fastcgi

import (
	"github.com/cgirun/cgirun/bridge"
)

// protocolError is a protocol error met by a handler's read while it had
// the reader: the serve loop closes the connection.
type protocolError struct{ err error }

func (e protocolError) Error() string { return e.err.Error() }

// lendReader lends the record reader to the body stream of the
// connection's only request when its handler waits for bytes (see
// inStream), and waits for it to come back; it reports whether it lent it,
// and what ended reading if something did.
func (c *conn) lendReader() (bool, error) {
	var r *request
	c.mu.Lock()
	if len(c.reqs) == 1 && !c.lingerOn && !c.closed {
		for _, q := range c.reqs {
			if q.paramsDone && q.data == nil && q.role != bridge.RoleAuthorizer {
				r = q
			}
		}
	}
	c.mu.Unlock()
	if r == nil {
		return false, nil
	}
	if c.back == nil {
		c.back = make(chan error, 1)
	}
	c.lentID, c.lentLen = r.id, r.bodyLen
	if !r.stdin.lend(c) {
		return false, nil
	}
	c.srv.stats.lends.Add(1)
	return true, <-c.back
}

// pull reads records for s, the body of request c.lentID, on its handler's
// goroutine (lender). It stops at the first record that gives s bytes
// (the handler keeps the reader), or that ends s, completes its
// CONTENT_LENGTH or concerns anything else (the reader goes back to the
// serve loop, which reads on while the handler works: it sees an abort or
// a closed connection even when the handler never reads past the length
// it was told).
func (c *conn) pull(s *inStream) (bool, error) {
	for {
		if c.rr.buffered() < headerLen {
			c.wakePending()
			c.setReadDeadline()
		}
		h, err := c.rr.readHeader()
		if err != nil {
			return true, err
		}
		if c.rr.buffered() < int(h.ContentLength)+int(h.PaddingLength) {
			c.setReadDeadline()
		}
		content, err := c.rr.readContent(h)
		if err != nil {
			return true, err
		}
		c.markStarted()
		if err := c.handle(h, content); err != nil {
			return true, protocolError{err}
		}
		if h.ID != c.lentID || h.Type != typeStdin || len(content) == 0 {
			return true, nil
		}
		if has, total := s.hasBytes(); has {
			return c.lentLen >= 0 && total >= c.lentLen, nil
		}
	}
}

func (c *conn) giveBack(err error) { c.back <- err }

// wakePending wakes the reader of the body stream that was last given bytes
// without a wake-up: a run of records for one stream read at once wakes
// its reader once, not once a record.
func (c *conn) wakePending() {
	if c.pending != nil {
		c.pending.wake()
		c.pending = nil
	}
}
