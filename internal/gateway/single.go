package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cgirun/cgirun/bridge"
)

// Errors a protocol's Frame and Decode wrap to choose the answer: a
// header block past the limit gets 431, one that is no request of the
// protocol gets no answer; any other error gets 400.
var (
	ErrHeaderTooLarge = errors.New("header block too large")
	ErrNotRequest     = errors.New("not a request")
)

// Protocol is the wire format of a gateway protocol with one request per
// connection and a CGI response stream as its answer (SCGI, uwsgi).
type Protocol struct {
	// Name is the package name, in log lines: "scgi".
	Name string
	// Frame returns the length of the header block at the start of b, 0
	// when b is too short to tell. An error means b cannot start a
	// header block of at most limit bytes.
	Frame func(b []byte, limit int) (int, error)
	// Decode parses a whole header block, as Frame measured it, into
	// env, and checks the variables the protocol requires.
	Decode func(block string, env *bridge.Environ) error
	// StatusLine turns the response's leading "Status: " into
	// "HTTP/1.1 ", for front ends that read an HTTP status line only
	// (Apache's mod_proxy_uwsgi).
	StatusLine bool
}

// Single serves a Protocol: one request per connection, answered by a
// bridge.Responder whose CGI response stream goes to the connection as
// is. Its fields must not change once Serve is called.
type Single struct {
	Protocol  Protocol
	Responder bridge.Responder
	Logger    *slog.Logger
	Tracker   Tracker

	MaxParamsBytes    int
	QueueRequests     bool
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	HandlerTimeout    time.Duration

	// ErrConnClosed and ErrHandlerTimeout are the causes with which a
	// request's context is cancelled when the web server goes, and past
	// HandlerTimeout: the package's own exported errors.
	ErrConnClosed     error
	ErrHandlerTimeout error
}

// Serve serves the connections of l; see Tracker.Serve.
func (s *Single) Serve(l net.Listener, peers []string, baseContext func(net.Listener) context.Context) error {
	allowed, err := AllowedPeers(s.Protocol.Name, peers)
	if err != nil {
		l.Close()
		return err
	}
	return s.Tracker.Serve(l, ServeConfig{
		Logger:      s.Logger,
		BaseContext: baseContext,
		Peers:       allowed,
		NewConn:     s.newConn,
	})
}

// lingerTime bounds how long a connection refused before its whole
// request was read goes on reading what the web server sends, so that it
// reads the answer instead of a reset.
const lingerTime = 2 * time.Second

// drainGrace is how long Shutdown leaves a connection that has sent
// nothing yet: the web server sends its request as soon as it connects.
const drainGrace = 50 * time.Millisecond

// writeFlushSize is the buffered output past which a connection writes.
const writeFlushSize = 64 << 10

// The read buffer holds a header block and the first body bytes.
const readBufSize = 4 << 10

var (
	readBufPool  = sync.Pool{New: func() any { b := make([]byte, readBufSize); return &b }}
	writeBufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}
)

// errRequestEnded is what a handler's writes return once its request was
// answered for it (timeout, closed connection).
var errRequestEnded = errors.New("request already ended")

// Connection states, guarded by sconn.mu.
const (
	stateNew     = iota // nothing read yet
	stateHeader         // reading the header block
	stateRunning        // the request is being answered
)

// sconn is one connection and its one request.
type sconn struct {
	// Immutable.
	s      *Single
	rwc    net.Conn
	raw    syscall.RawConn // rwc's when it is a socket: a first read with no buffer
	remote string
	ctx    context.Context
	cancel context.CancelCauseFunc
	log    *slog.Logger

	// Owned by Serve, then by the body's reader. buf[rd:wr] are bytes
	// read and not consumed.
	buf      *[]byte
	rd, wr   int
	rawRead  func(fd uintptr) bool
	rawN     int
	rawErr   error
	one      [1]byte // the abort watcher's read
	watching chan struct{}

	shut atomic.Bool // Close was called: nothing more reaches the web server

	mu       sync.Mutex
	state    int
	draining bool
	closed   bool

	// The write side, guarded by wmu.
	wmu      sync.Mutex
	wbuf     *[]byte
	werr     error // sticky
	wrote    bool  // response bytes were written or buffered
	claimed  bool  // a timeout owns the response: the handler's writes fail
	ended    bool  // nothing more may be written
	cut      bool  // the response is incomplete
	matched  int   // bytes of "Status: " held back (Protocol.StatusLine)
	noStatus bool  // the response does not start with "Status: "
}

func (s *Single) newConn(rwc net.Conn, base context.Context) Conn {
	ctx, cancel := context.WithCancelCause(base)
	remote := "unix"
	if a := rwc.RemoteAddr(); a != nil && a.String() != "" && a.String() != "@" {
		remote = a.String()
	}
	c := &sconn{s: s, rwc: rwc, remote: remote, ctx: ctx, cancel: cancel, log: s.Logger.With("remote", remote)}
	var sc syscall.Conn
	switch v := rwc.(type) {
	case *net.TCPConn:
		sc = v
	case *net.UnixConn:
		sc = v
	}
	if sc != nil {
		if raw, err := sc.SyscallConn(); err == nil {
			c.raw = raw
			c.rawRead = c.readFD
		}
	}
	return c
}

// Serve reads the request, answers it, and closes the connection.
func (c *sconn) Serve() {
	defer func() {
		c.dropBuf()
		c.Close(nil)
		c.mu.Lock()
		w := c.watching
		c.mu.Unlock()
		if w != nil {
			<-w // the read returns once the connection is closed
		}
	}()
	s := c.s
	p := s.Protocol
	limit := s.MaxParamsBytes
	c.setHeaderDeadline()
	var hlen int
	for {
		var err error
		if c.wr > c.rd {
			hlen, err = p.Frame((*c.buf)[c.rd:c.wr], limit)
		}
		if err == nil && hlen > 0 && c.wr-c.rd >= hlen {
			break
		}
		if err == nil {
			err = c.fill(hlen)
		}
		if err != nil {
			c.headerFailed(err)
			return
		}
	}
	block := string((*c.buf)[c.rd : c.rd+hlen])
	c.rd += hlen
	var req bridge.Request
	req.Env.Grow(32)
	if err := p.Decode(block, &req.Env); err != nil {
		c.headerFailed(err)
		return
	}
	n, err := bodyLength(req.Env.Get("CONTENT_LENGTH"))
	if err != nil {
		c.headerFailed(err)
		return
	}
	c.mu.Lock()
	c.state = stateRunning
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return
	}
	c.rwc.SetReadDeadline(time.Time{})
	if !s.Tracker.AcquireSlot(c.ctx, s.QueueRequests, s.ReadHeaderTimeout) {
		s.Tracker.Overloaded()
		c.log.Warn(p.Name+": request refused: MaxRequests reached", "status", http.StatusServiceUnavailable)
		c.refuse(bridge.AppendUnavailable(nil, 1))
		return
	}
	if n == 0 {
		c.dropBuf()
		c.watch()
	} else {
		// The body's reader owns the buffer from here: a responder may
		// read on another goroutine, even after Serve is done.
		req.Body = &body{c: c, buf: c.buf, rd: c.rd, wr: c.wr, remaining: n}
		c.buf = nil
	}
	c.respond(&req)
}

// respond runs the responder; deferred work also runs after
// runtime.Goexit in a handler.
func (c *sconn) respond(req *bridge.Request) {
	s := c.s
	var err error
	defer func() {
		s.Tracker.ReleaseSlot()
		c.done(err)
	}()
	s.Tracker.RequestStarted()
	if s.HandlerTimeout > 0 {
		t := time.AfterFunc(s.HandlerTimeout, c.timeout)
		defer t.Stop()
	}
	err = s.Responder.Respond(c.ctx, req, (*output)(c))
}

// done ends the request after its responder: the rest of the response
// is written, or, when it was cut short, the connection is reset where
// the transport allows it, the only sign of an incomplete response these
// protocols have.
func (c *sconn) done(err error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.claimed || c.ended {
		return
	}
	c.ended = true
	// The bridge marks a cut response through Abort even when the
	// handler called runtime.Goexit and err never arrives.
	if c.cut || err != nil {
		c.log.Warn(c.s.Protocol.Name+": closing connection: response cut short", "err", err)
		c.dropWriteLocked()
		if tc, ok := c.rwc.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		return
	}
	c.releaseHeldLocked()
	c.flushLocked()
}

// timeout ends a request that ran past HandlerTimeout: 503 when nothing
// was written yet, otherwise the response is cut short.
func (c *sconn) timeout() {
	c.wmu.Lock()
	if c.ended || c.claimed {
		c.wmu.Unlock()
		return
	}
	c.claimed = true
	wrote := c.wrote
	c.wmu.Unlock()
	c.log.Warn(c.s.Protocol.Name+": handler timeout", "timeout", c.s.HandlerTimeout)
	c.cancel(c.s.ErrHandlerTimeout)
	c.wmu.Lock()
	c.ended = true
	if wrote {
		c.dropWriteLocked()
		if tc, ok := c.rwc.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
	} else {
		c.answerLocked(bridge.AppendError(nil, http.StatusServiceUnavailable, ""))
		c.flushLocked()
	}
	c.wmu.Unlock()
	c.Close(c.s.ErrHandlerTimeout)
}

// headerFailed answers a request whose header block could not be read or
// was refused, and logs why.
func (c *sconn) headerFailed(err error) {
	name := c.s.Protocol.Name
	c.mu.Lock()
	quiet := c.closed || (c.draining && c.state == stateNew)
	state := c.state
	c.mu.Unlock()
	switch {
	case quiet:
	case errors.Is(err, ErrHeaderTooLarge):
		c.s.Tracker.HeadersLarge()
		c.log.Warn(name+": request refused", "status", http.StatusRequestHeaderFieldsTooLarge, "err", err)
		c.refuse(bridge.AppendError(nil, http.StatusRequestHeaderFieldsTooLarge, ""))
	case errors.Is(err, ErrNotRequest):
		c.log.Warn(name+": closing connection: not a request", "err", err)
	case errors.Is(err, os.ErrDeadlineExceeded):
		c.log.Warn(name+": closing connection: header read timeout", "err", err)
	case err == io.EOF && state == stateNew:
		// Connected and left: a health check.
	case err == io.EOF, errors.Is(err, io.ErrUnexpectedEOF):
		c.log.Warn(name+": closing connection: the header block ended early", "err", io.ErrUnexpectedEOF)
	case errors.Is(err, net.ErrClosed), errors.Is(err, syscall.ECONNRESET):
	case errors.Is(err, errReadFailed):
		c.log.Warn(name+": closing connection: read failed", "err", err)
	default:
		c.log.Warn(name+": request refused", "status", http.StatusBadRequest, "err", err)
		c.refuse(bridge.AppendError(nil, http.StatusBadRequest, ""))
	}
}

// refuse writes a whole answer to a request that gets no handler, closes
// the write side, and reads what the web server still sends for a
// little while, so that it reads the answer rather than a reset.
func (c *sconn) refuse(answer []byte) {
	c.wmu.Lock()
	c.ended = true
	c.answerLocked(answer)
	c.flushLocked()
	werr := c.werr
	c.wmu.Unlock()
	cw, ok := c.rwc.(interface{ CloseWrite() error })
	if werr != nil || !ok || cw.CloseWrite() != nil {
		return
	}
	c.dropBuf()
	c.rwc.SetReadDeadline(time.Now().Add(lingerTime))
	var b [512]byte
	for {
		if _, err := c.rwc.Read(b[:]); err != nil {
			return
		}
	}
}

// errReadFailed wraps a read error other than a timeout or the end.
var errReadFailed = errors.New("read failed")

// fill reads once or more, until at least n bytes are buffered (at least
// one more when n is 0). A socket's first read waits with no buffer.
func (c *sconn) fill(n int) error {
	if n > 0 && c.buf != nil && len(*c.buf)-c.rd < n {
		nb := make([]byte, n) // a header block past the pooled size
		c.wr = copy(nb, (*c.buf)[c.rd:c.wr])
		c.rd = 0
		readBufPool.Put(c.buf)
		c.buf = &nb
	}
	want := max(n, c.wr-c.rd+1)
	for c.wr-c.rd < want {
		if err := c.readOnce(); err != nil {
			return err
		}
	}
	return nil
}

// readOnce reads once into the buffer.
func (c *sconn) readOnce() error {
	if c.buf != nil && c.wr == len(*c.buf) {
		c.wr = copy(*c.buf, (*c.buf)[c.rd:c.wr])
		c.rd = 0
	}
	var m int
	var err error
	if c.raw != nil {
		c.rawN, c.rawErr = 0, nil
		err = c.raw.Read(c.rawRead)
		m = c.rawN
		if err == nil && c.rawErr != nil {
			err = os.NewSyscallError("read", c.rawErr)
		}
		if err == nil && m == 0 {
			err = io.EOF
		}
	} else {
		c.takeBuf()
		m, err = c.rwc.Read((*c.buf)[c.wr:])
	}
	c.wr += m
	if m > 0 {
		c.mu.Lock()
		if c.state == stateNew {
			c.state = stateHeader
		}
		c.mu.Unlock()
		return nil
	}
	if c.wr == c.rd {
		c.dropBuf()
	}
	switch {
	case err == nil:
		return io.ErrNoProgress
	case err == io.EOF, errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, net.ErrClosed):
		return err
	}
	return fmt.Errorf("%w: %w", errReadFailed, err)
}

// readFD is readOnce's callback on a socket: it takes a buffer only when
// the socket has bytes.
func (c *sconn) readFD(fd uintptr) bool {
	c.takeBuf()
	for {
		c.rawN, c.rawErr = syscall.Read(int(fd), (*c.buf)[c.wr:])
		if c.rawErr != syscall.EINTR {
			break
		}
	}
	if c.rawN < 0 {
		c.rawN = 0
	}
	if c.rawErr == syscall.EAGAIN {
		if c.wr == c.rd {
			c.dropBuf() // waiting for the poller: hold nothing
		}
		return false
	}
	return true
}

func (c *sconn) takeBuf() {
	if c.buf == nil {
		c.buf = readBufPool.Get().(*[]byte)
		c.rd, c.wr = 0, 0
	}
}

func (c *sconn) dropBuf() {
	if c.buf != nil {
		if len(*c.buf) == readBufSize {
			readBufPool.Put(c.buf)
		}
		c.buf = nil
		c.rd, c.wr = 0, 0
	}
}

// setHeaderDeadline bounds the wait for the header block, and the wait
// for a first byte when Shutdown has begun.
func (c *sconn) setHeaderDeadline() {
	d := time.Now().Add(c.s.ReadHeaderTimeout)
	c.mu.Lock()
	if c.draining && c.state == stateNew {
		d = time.Now().Add(drainGrace)
	}
	c.rwc.SetReadDeadline(d)
	c.mu.Unlock()
}

// watch starts the abort watcher once the body is read: a read that
// returns when the web server closes the connection, which cancels the
// request's context, as net/http's background read does.
func (c *sconn) watch() {
	w := make(chan struct{})
	c.mu.Lock()
	c.watching = w
	c.mu.Unlock()
	go func() {
		defer close(w)
		for {
			_, err := c.rwc.Read(c.one[:])
			if err != nil {
				c.mu.Lock()
				closed := c.closed // by Close, which gives the cause
				c.mu.Unlock()
				if !closed {
					c.cancel(c.s.ErrConnClosed)
				}
				return
			}
		}
	}()
}

// Drain makes a connection that has sent nothing yet close soon; one
// with a request closes once it is answered, as always.
func (c *sconn) Drain() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.draining = true
	if c.state == stateNew && !c.closed {
		c.rwc.SetReadDeadline(time.Now().Add(drainGrace))
	}
}

// Close closes the connection once, cancelling the request's context
// with cause (ErrConnClosed when nil).
func (c *sconn) Close(cause error) {
	if cause == nil {
		cause = c.s.ErrConnClosed
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.shut.Store(true)
	c.mu.Unlock()
	c.cancel(cause) // first, for the body reads and writes the close fails
	c.rwc.Close()   // before wmu: a write in progress returns
	c.wmu.Lock()
	if !c.ended {
		c.ended = true
		c.dropWriteLocked()
	}
	if c.werr == nil {
		c.werr = c.s.ErrConnClosed
	}
	c.wmu.Unlock()
	c.s.Tracker.Remove(c)
}

// bodyLength reads CONTENT_LENGTH: empty is 0, negative is unknown (-1:
// the body runs to the end of what the web server sends).
func bodyLength(v string) (int64, error) {
	if v == "" {
		return 0, nil
	}
	if !ValidLength(v) {
		return 0, fmt.Errorf("CONTENT_LENGTH %q is not a length, such as 0 or 1024", v)
	}
	if v[0] == '-' {
		return -1, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	return n, err
}

// body is the request body: the bytes read after the header block, then
// the connection, up to CONTENT_LENGTH; each read from the connection
// waits at most ReadTimeout.
type body struct {
	c         *sconn
	buf       *[]byte // the read buffer, while buf[rd:wr] holds body bytes
	rd, wr    int
	remaining int64 // -1: to the end of the web server's sending
	err       error
}

func (b *body) Read(p []byte) (int, error) {
	c := b.c
	if b.err != nil {
		return 0, b.err
	}
	if c.ctx.Err() != nil {
		return 0, context.Cause(c.ctx)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if b.remaining > 0 && int64(len(p)) > b.remaining {
		p = p[:b.remaining]
	}
	var n int
	var err error
	if b.buf != nil {
		n = copy(p, (*b.buf)[b.rd:b.wr])
		b.rd += n
		if b.rd == b.wr {
			readBufPool.Put(b.buf)
			b.buf = nil
		}
	} else {
		c.rwc.SetReadDeadline(time.Now().Add(c.s.ReadTimeout))
		n, err = c.rwc.Read(p)
	}
	if b.remaining > 0 {
		b.remaining -= int64(n)
	}
	switch {
	case b.remaining == 0:
		b.err = io.EOF
		c.rwc.SetReadDeadline(time.Time{})
		c.watch()
		return n, nil
	case err == io.EOF && b.remaining < 0:
		b.err = io.EOF
	case err == io.EOF:
		b.err = fmt.Errorf("%s: request body ended %d bytes short of CONTENT_LENGTH: %w", c.s.Protocol.Name, b.remaining, io.ErrUnexpectedEOF)
		c.cancel(c.s.ErrConnClosed)
	case err != nil && c.ctx.Err() != nil:
		b.err = context.Cause(c.ctx) // closed under the read: say why
	case err != nil:
		c.log.Warn(c.s.Protocol.Name+": request body read failed", "err", err)
		b.err = err
		c.cancel(c.s.ErrConnClosed)
	}
	if n > 0 {
		return n, nil
	}
	return 0, b.err
}

// output is the connection as the responder's bridge.Output.
type output sconn

var (
	_ bridge.Output  = (*output)(nil)
	_ bridge.Aborter = (*output)(nil)
)

const statusPrefix = "Status: "

func (o *output) Write(p []byte) (int, error) {
	c := (*sconn)(o)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.ended || c.claimed {
		return 0, errRequestEnded
	}
	if c.werr != nil {
		return 0, c.werr
	}
	if len(p) == 0 {
		return 0, nil
	}
	c.wrote = true
	n := len(p)
	p = c.statusLineLocked(p)
	for len(p) > 0 {
		chunk := p[:min(len(p), writeFlushSize)]
		p = p[len(chunk):]
		c.appendLocked(chunk)
		if len(*c.wbuf) >= writeFlushSize {
			c.flushLocked()
			if c.werr != nil {
				return n - len(p) - len(chunk), c.werr
			}
		}
	}
	return n, nil
}

// statusLineLocked turns a leading "Status: " into "HTTP/1.1 ", holding
// the bytes of it that may still be the start of "Status: ", and returns
// what remains of p to write.
func (c *sconn) statusLineLocked(p []byte) []byte {
	if !c.s.Protocol.StatusLine || c.noStatus {
		return p
	}
	for len(p) > 0 && c.matched < len(statusPrefix) {
		if p[0] != statusPrefix[c.matched] {
			c.releaseHeldLocked()
			return p
		}
		c.matched++
		p = p[1:]
	}
	if c.matched == len(statusPrefix) {
		c.appendLocked([]byte("HTTP/1.1 "))
		c.noStatus = true
	}
	return p
}

// answerLocked buffers a whole answer of the server's own.
func (c *sconn) answerLocked(answer []byte) {
	c.appendLocked(c.statusLineLocked(answer))
}

// releaseHeldLocked writes the bytes of "Status: " held back by a
// response that turned out not to start with it.
func (c *sconn) releaseHeldLocked() {
	if !c.noStatus && c.matched > 0 {
		c.appendLocked([]byte(statusPrefix[:c.matched]))
	}
	c.noStatus = true
}

// Flush writes what is buffered to the web server.
func (o *output) Flush() error {
	c := (*sconn)(o)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.ended || c.claimed {
		return errRequestEnded
	}
	c.flushLocked()
	return c.werr
}

// Abort marks the response as cut short (bridge.Aborter).
func (o *output) Abort(error) {
	c := (*sconn)(o)
	c.wmu.Lock()
	c.cut = true
	c.wmu.Unlock()
}

func (c *sconn) appendLocked(p []byte) {
	if c.wbuf == nil {
		c.wbuf = writeBufPool.Get().(*[]byte)
	}
	*c.wbuf = append(*c.wbuf, p...)
}

// flushLocked writes the buffered bytes. A failed write ends the request:
// the web server cannot be told anything any more.
func (c *sconn) flushLocked() {
	if c.wbuf == nil {
		return
	}
	b := *c.wbuf
	if c.werr == nil && len(b) > 0 && !c.shut.Load() {
		c.rwc.SetWriteDeadline(time.Now().Add(c.s.WriteTimeout))
		if _, err := c.rwc.Write(b); err != nil {
			c.werr = err
			if !errors.Is(err, net.ErrClosed) { // Close's doing
				c.log.Warn(c.s.Protocol.Name+": closing connection: write failed", "err", err)
			}
			c.cancel(c.s.ErrConnClosed)
		}
	}
	c.dropWriteLocked()
}

func (c *sconn) dropWriteLocked() {
	if c.wbuf != nil {
		*c.wbuf = (*c.wbuf)[:0]
		writeBufPool.Put(c.wbuf)
		c.wbuf = nil
	}
}
