package fastcgi

import (
	"errors"
	"os"
	"sync"
	"time"

	"github.com/cgirun/cgirun/bridge"
	"github.com/cgirun/cgirun/internal/defaults"
)

// writeFlushSize is the buffered output past which a connection writes.
const writeFlushSize = 64 << 10

// writeBufPool holds the buffers records are written from: a connection
// holds one only while it writes. A small response fits the first 4 KiB;
// a larger one grows its buffer, which goes back to the pool with it.
var writeBufPool = sync.Pool{New: func() any {
	b := make([]byte, 0, 4<<10)
	return &b
}}

// writeRecords appends records to the output and writes them at once.
func (c *conn) writeRecords(app func([]byte) []byte) {
	c.wmu.Lock()
	c.appendLocked(app)
	c.flushLocked()
	c.wmu.Unlock()
}

func (c *conn) appendLocked(app func([]byte) []byte) {
	if c.wbuf == nil {
		c.wbuf = writeBufPool.Get().(*[]byte)
	}
	*c.wbuf = app(*c.wbuf)
}

// directWriteMin is the size from which a handler's write leaves from the
// handler's own slice, after the header of its record (one writev),
// instead of being copied into the connection's buffer first.
const directWriteMin = 16 << 10

// flushLocked writes the buffered records. A failed write closes the
// connection: the web server cannot be told anything any more.
func (c *conn) flushLocked() { c.flushWithLocked(nil) }

// flushWithLocked writes the buffered records followed by content, that
// of the last record whose header is buffered, which is not copied.
func (c *conn) flushWithLocked(content []byte) {
	if c.wbuf == nil {
		return
	}
	b := *c.wbuf
	if c.werr == nil && len(b) > 0 {
		c.wd.update(time.Now().Add(defaults.Or(c.srv.WriteTimeout, DefaultWriteTimeout)))
		if err := c.write(b, content); err != nil {
			c.werr = err
			c.log().Warn("fastcgi: closing connection: write failed", "err", err)
			go c.close(ErrConnClosed)
		}
	}
	*c.wbuf = b[:0]
	writeBufPool.Put(c.wbuf)
	c.wbuf = nil
}

// write writes b then content whole, in one writev when content is not
// empty, again after a write deadline that fired early (lazyDeadline),
// with c.wmu held.
func (c *conn) write(b, content []byte) error {
	c.vecs = [2][]byte{b, content}
	c.vec = c.vecs[:]
	if len(content) == 0 {
		c.vec = c.vec[:1]
	}
	defer func() { c.vecs = [2][]byte{} }() // holds no slice of the handler's
	for {
		_, err := c.vec.WriteTo(c.rwc)
		if err == nil || !errors.Is(err, os.ErrDeadlineExceeded) || c.wd.expired() {
			return err
		}
	}
}

// outStream is a request's STDOUT or STDERR: it frames what the handler
// writes into records on the connection's single writer.
type outStream struct {
	r *request
	t recType
}

var _ bridge.Output = (*outStream)(nil)

func (o *outStream) Write(p []byte) (int, error) {
	r, c := o.r, o.r.c
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if r.ended || r.claimed {
		return 0, errRequestEnded
	}
	if c.werr != nil {
		return 0, c.werr
	}
	if len(p) == 0 {
		return 0, nil
	}
	if o.t == typeStdout {
		r.wroteOutput = true
	} else {
		r.wroteStderr = true
	}
	n := len(p)
	for len(p) > 0 {
		if len(p) >= directWriteMin {
			// A record of a multiple of 8 bytes needs no padding.
			m := min(len(p), maxStreamChunk) &^ 7
			c.appendLocked(func(b []byte) []byte { return appendHeader(b, o.t, r.id, m, 0) })
			c.flushWithLocked(p[:m])
			p = p[m:]
			if c.werr != nil {
				return n - len(p) - m, c.werr
			}
			continue
		}
		chunk := p[:min(len(p), writeFlushSize)]
		p = p[len(chunk):]
		c.appendLocked(func(b []byte) []byte { return appendStream(b, o.t, r.id, chunk) })
		if len(*c.wbuf) >= writeFlushSize {
			c.flushLocked()
			if c.werr != nil {
				return n - len(p) - len(chunk), c.werr
			}
		}
	}
	return n, nil
}

// Flush writes what is buffered to the web server.
func (o *outStream) Flush() error {
	c := o.r.c
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if o.r.ended || o.r.claimed {
		return errRequestEnded
	}
	c.flushLocked()
	return c.werr
}

// Abort marks the response as cut short (bridge.Aborter).
func (o *outStream) Abort(error) {
	c := o.r.c
	c.wmu.Lock()
	o.r.cut = true
	c.wmu.Unlock()
}
