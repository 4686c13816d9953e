package fastcgi

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
	"syscall"
	"time"

	"github.com/cgirun/cgirun/bridge"
	"github.com/cgirun/cgirun/internal/defaults"
)

// Errors that end a request's context and input streams, beside
// ErrServerClosed (Close); context.Cause tells which.
var (
	// ErrAborted: the web server sent FCGI_ABORT_REQUEST.
	ErrAborted = errors.New("fastcgi: request aborted by the web server")
	// ErrConnClosed: the connection to the web server closed.
	ErrConnClosed = errors.New("fastcgi: connection to the web server closed")
	// ErrHandlerTimeout: the request ran longer than HandlerTimeout.
	ErrHandlerTimeout = errors.New("fastcgi: handler timeout")
)

// errRequestEnded is what a handler's writes return once its request was
// answered for it (abort, timeout, closed connection).
var errRequestEnded = errors.New("fastcgi: request already ended")

// conn is one connection from the web server.
type conn struct {
	// Immutable.
	srv       *Server
	rwc       net.Conn
	remote    string
	responder bridge.Responder
	ctx       context.Context // cancelled with the connection
	cancel    context.CancelCauseFunc
	maxReqs   int
	maxParams int // MaxConnParamsBytes

	// Owned by the serve loop. rr holds a buffer only while bytes it read
	// wait in it: an idle connection costs little more than its goroutine.
	// While the reader is lent to a handler (see inStream), that handler's
	// Read owns these, and the serve loop waits on back.
	rr          recordReader
	pending     *inStream  // a body stream given bytes whose reader is not woken yet
	startedSeen bool       // started is set
	lentID      uint16     // the request whose stream has the reader
	lentLen     int64      // its CONTENT_LENGTH, or -1
	back        chan error // the reader comes back, with why reading must stop

	// Guarded by mu.
	mu         sync.Mutex
	started    bool // a first record arrived
	reqs       map[uint16]*request
	paramsHeld int       // FCGI_PARAMS bytes of the requests in reqs
	ending     int       // requests out of reqs whose END_REQUEST is not written yet
	draining   bool      // close once the last request is done
	drainTo    time.Time // when an idle draining connection closes
	lingerOn   bool      // the write side is closed: read out what arrives, then close
	lingerTo   time.Time
	closed     bool
	rd         lazyDeadline // the read deadline

	logOnce sync.Once
	logger  *slog.Logger // the server's, with remote; built on first use

	// The write side, guarded by wmu: every record leaves through wbuf.
	wmu  sync.Mutex
	wbuf *[]byte      // nil while nothing is buffered
	werr error        // sticky
	wd   lazyDeadline // the write deadline
	vec  net.Buffers  // what write writes: vecs, consumed as it goes
	vecs [2][]byte
}

func newConn(s *Server, rwc net.Conn, base context.Context, responder bridge.Responder) *conn {
	ctx, cancel := context.WithCancelCause(base)
	remote := "unix"
	if a := rwc.RemoteAddr(); a != nil && a.String() != "" && a.String() != "@" {
		remote = a.String()
	}
	c := &conn{
		srv:       s,
		rwc:       rwc,
		remote:    remote,
		responder: responder,
		ctx:       ctx,
		cancel:    cancel,
		maxReqs:   defaults.Or(s.MaxRequestsPerConn, DefaultMaxRequestsPerConn),
		maxParams: max(defaults.Or(s.MaxConnParamsBytes, DefaultMaxConnParamsBytes), defaults.Or(s.MaxParamsBytes, DefaultMaxParamsBytes)),
		reqs:      make(map[uint16]*request),
	}
	c.rd.set, c.wd.set = rwc.SetReadDeadline, rwc.SetWriteDeadline
	c.rr.init(rwc)
	c.rr.expired = c.readExpired
	return c
}

// readExpired is the record reader's look at a read deadline that fired
// (lazyDeadline.expired).
func (c *conn) readExpired() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rd.expired()
}

// log returns the server's logger with the connection's remote address. It
// is built on first use: most connections log nothing.
func (c *conn) log() *slog.Logger {
	c.logOnce.Do(func() { c.logger = c.srv.logger().With("remote", c.remote) })
	return c.logger
}

// Serve runs serve, for the server's gateway.Tracker.
func (c *conn) Serve() { c.serve() }

// serve is the connection's read loop: it reads records and dispatches
// them until the connection fails or closes.
func (c *conn) serve() {
	defer c.close(nil)
	defer c.rr.drop()
	for {
		if c.rr.buffered() < headerLen {
			// The next read may wait for the web server: whoever waits
			// for the bytes handed over so far must have them first.
			c.wakePending()
			if lent, err := c.lendReader(); lent {
				var perr protocolError
				switch {
				case errors.As(err, &perr):
					c.log().Warn("fastcgi: closing connection: protocol error", "err", perr.err)
					return
				case err != nil:
					c.readFailed(err)
					return
				}
				continue
			}
			// Deadlines bound waits: records already read need none.
			c.setReadDeadline()
		}
		waited := c.rr.buffered() == 0
		h, err := c.rr.readHeader()
		if err != nil {
			if waited && c.rr.buffered() == 0 && c.drainWaiting(err) {
				continue
			}
			c.readFailed(err)
			return
		}
		if c.rr.buffered() < int(h.ContentLength)+int(h.PaddingLength) {
			c.wakePending()
			c.setReadDeadline()
		}
		content, err := c.rr.readContent(h)
		if err != nil {
			c.readFailed(err)
			return
		}
		c.markStarted()
		if err := c.handle(h, content); err != nil {
			c.log().Warn("fastcgi: closing connection: protocol error", "err", err)
			return
		}
	}
}

// markStarted records that a first record arrived: the idle timeout, not
// the header timeout, applies from then on.
func (c *conn) markStarted() {
	if !c.startedSeen {
		c.startedSeen = true
		c.mu.Lock()
		c.started = true
		c.mu.Unlock()
	}
}

// readFailed logs why reading stopped, unless it is the web server closing
// a connection it is done with.
func (c *conn) readFailed(err error) {
	c.mu.Lock()
	quiet := c.closed || c.lingerOn || (c.draining && c.idleLocked())
	c.mu.Unlock()
	switch {
	case quiet, err == io.EOF: // io.EOF: closed between records, the normal end
	case errors.Is(err, os.ErrDeadlineExceeded):
		c.log().Warn("fastcgi: closing connection: read timeout", "err", err)
	case errors.Is(err, errBadVersion):
		c.log().Warn("fastcgi: closing connection: bad record", "err", err)
	case errors.Is(err, net.ErrClosed), errors.Is(err, syscall.ECONNRESET):
	default:
		c.log().Warn("fastcgi: closing connection: read failed", "err", err)
	}
}

// idleLocked reports, with c.mu held, whether the connection has no
// request: none open, and every END_REQUEST written. Until its
// END_REQUEST is out, the web server cannot send the next request, nor
// may a draining connection close.
func (c *conn) idleLocked() bool {
	return len(c.reqs) == 0 && c.ending == 0
}

// setReadDeadline arms the read timeout that fits what the connection
// waits for: a request's header block, a body, or the next request.
func (c *conn) setReadDeadline() {
	c.mu.Lock()
	c.setReadDeadlineLocked()
	c.mu.Unlock()
}

// setReadDeadlineLocked is setReadDeadline with c.mu held: a request that
// ends re-arms the idle timeout under the same lock, so that the serve
// loop cannot undo it.
func (c *conn) setReadDeadlineLocked() {
	s := c.srv
	now := time.Now()
	var d time.Time
	switch {
	case c.lingerOn:
		d = c.lingerTo
	case c.draining && c.idleLocked():
		d = c.drainTo
	case c.idleLocked() && !c.started:
		d = now.Add(defaults.Or(s.ReadHeaderTimeout, DefaultReadHeaderTimeout))
	case c.idleLocked():
		d = now.Add(defaults.Or(s.IdleTimeout, DefaultIdleTimeout))
	default:
		for _, r := range c.reqs {
			var rd time.Time
			switch {
			case !r.paramsDone:
				rd = r.headerDeadline
			case r.inputOpen():
				rd = now.Add(defaults.Or(s.ReadTimeout, DefaultReadTimeout))
			default:
				continue
			}
			if d.IsZero() || rd.Before(d) {
				d = rd
			}
		}
	}
	c.rd.update(d)
}

// handle dispatches one record. An error is a protocol error: the
// connection closes.
func (c *conn) handle(h header, content []byte) error {
	if h.Type != typeStdin && h.Type != typeData || len(content) == 0 {
		c.wakePending()
	}
	c.mu.Lock()
	linger := c.lingerOn
	c.mu.Unlock()
	if linger {
		return nil // the rest of a body no handler will read
	}
	if h.ID == 0 {
		return c.handleManagement(h, content)
	}
	if h.Type == typeBeginRequest {
		return c.begin(h.ID, content)
	}
	c.mu.Lock()
	r := c.reqs[h.ID]
	c.mu.Unlock()
	if r == nil {
		// The spec: ignore records for a request id not in use. This is
		// also what follows an abort or an early answer.
		return nil
	}
	switch h.Type {
	case typeParams:
		return c.params(r, content)
	case typeStdin, typeData:
		if !r.paramsDone {
			return fmt.Errorf("request %d: %s before the end of FCGI_PARAMS", h.ID, h.Type)
		}
		s := r.stdin
		if h.Type == typeData {
			s = r.data
		}
		if s == nil {
			return nil // DATA for a role that has none: ignored
		}
		if len(content) == 0 {
			s.end()
			return nil
		}
		if h.Type == typeStdin && r.role == bridge.RoleAuthorizer {
			return nil // an authorizer has no body: its bytes are dropped
		}
		if c.pending != s {
			c.wakePending()
		}
		// Woken later, by wakePending: before the serve loop may wait.
		c.pending = s
		if err := s.push(content); err != nil && !isRequestOver(err) {
			return fmt.Errorf("request %d: %w", h.ID, err)
		}
		return nil
	case typeAbortRequest:
		c.abort(r)
		return nil
	}
	return fmt.Errorf("request %d: unexpected record type %s from the web server", h.ID, h.Type)
}

func isRequestOver(err error) bool {
	return errors.Is(err, errRequestDone) || errors.Is(err, ErrAborted) ||
		errors.Is(err, ErrHandlerTimeout) || errors.Is(err, ErrConnClosed) ||
		errors.Is(err, ErrServerClosed)
}

func (c *conn) begin(id uint16, content []byte) error {
	role, flags, err := parseBeginRequest(content)
	if err != nil {
		return fmt.Errorf("request %d: %w", id, err)
	}
	c.mu.Lock()
	_, inUse := c.reqs[id]
	n := len(c.reqs)
	c.mu.Unlock()
	if inUse {
		return fmt.Errorf("request %d: FCGI_BEGIN_REQUEST for an id in use", id)
	}
	var br bridge.Role
	switch role {
	case roleResponder:
		br = bridge.RoleResponder
	case roleAuthorizer:
		br = bridge.RoleAuthorizer
	case roleFilter:
		br = bridge.RoleFilter
	default:
		c.log().Warn("fastcgi: request refused: unknown role", "req_id", id, "role", role)
		c.writeRecords(func(b []byte) []byte { return appendEndRequest(b, id, 0, statusUnknownRole) })
		return nil
	}
	if n >= c.maxReqs && c.maxReqs == 1 {
		// FCGI_MPXS_CONNS said 0: the spec's answer to a second request.
		c.log().Warn("fastcgi: request refused: the connection does not multiplex requests", "req_id", id)
		c.writeRecords(func(b []byte) []byte { return appendEndRequest(b, id, 0, statusCantMultiplex) })
		return nil
	}
	if n >= c.maxReqs {
		c.srv.track.Overloaded()
		c.log().Warn("fastcgi: request refused: too many requests on one connection", "req_id", id, "limit", c.maxReqs)
		c.writeRecords(func(b []byte) []byte { return appendEndRequest(b, id, 0, statusOverloaded) })
		return nil
	}
	r := newRequest(c, id, br, flags&flagKeepConn != 0)
	c.mu.Lock()
	c.reqs[id] = r
	c.mu.Unlock()
	return nil
}

func (c *conn) params(r *request, content []byte) error {
	if r.paramsDone {
		return fmt.Errorf("request %d: FCGI_PARAMS after its end", r.id)
	}
	if len(content) > 0 {
		c.mu.Lock()
		over := c.paramsHeld+len(content) > c.maxParams
		if !over {
			c.paramsHeld += len(content)
			r.params += len(content)
		}
		c.mu.Unlock()
		if over {
			err := fmt.Errorf("%w: the header blocks of the connection's requests would pass %d bytes", errParamsTooLarge, c.maxParams)
			c.refuse(r, http.StatusRequestHeaderFieldsTooLarge, err)
			return nil
		}
		err := r.pairs.feed(content, r.setParam)
		if errors.Is(err, errParamsTooLarge) {
			c.refuse(r, http.StatusRequestHeaderFieldsTooLarge, err)
			return nil
		}
		if err != nil {
			return fmt.Errorf("request %d: FCGI_PARAMS: %w", r.id, err)
		}
		return nil
	}
	if err := r.pairs.finish(); err != nil {
		return fmt.Errorf("request %d: FCGI_PARAMS: %w", r.id, err)
	}
	r.bodyLen = -1
	if v := r.breq.Env.Get("CONTENT_LENGTH"); v != "" { // "": an error to allocate
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
			r.bodyLen = n
		}
	}
	c.mu.Lock()
	r.paramsDone = true
	c.mu.Unlock()
	if h, ok := c.rr.peekHeader(); ok && h.Type == typeStdin && h.ID == r.id && h.ContentLength == 0 {
		// A bodiless request's empty STDIN comes in the same read as
		// its header block (nginx sends both at once): taken now, the
		// handler starts with a nil Body, known to be empty.
		c.rr.consume(headerLen + int(h.PaddingLength))
		r.stdin.end()
		r.breq.Body = nil
	}
	go r.run()
	return nil
}

// refuse answers r with an error status before its handler runs.
func (c *conn) refuse(r *request, status int, cause error) {
	c.log().Warn("fastcgi: request refused", "req_id", r.id, "status", status, "err", cause)
	if status == http.StatusRequestHeaderFieldsTooLarge {
		c.srv.track.HeadersLarge()
	}
	r.cancel(cause)
	stream := bridge.AppendError(nil, status, "")
	c.finish(r, func(b []byte) []byte {
		b = appendStream(b, typeStdout, r.id, stream)
		b = appendStream(b, typeStdout, r.id, nil)
		return appendEndRequest(b, r.id, 0, statusRequestComplete)
	})
}

// abort handles FCGI_ABORT_REQUEST: the handler's context is cancelled, its
// body reads fail, the request ends now and the handler's later output is
// dropped.
func (c *conn) abort(r *request) {
	if !r.claim() {
		return
	}
	r.cancel(ErrAborted)
	r.stdin.fail(ErrAborted)
	if r.data != nil {
		r.data.fail(ErrAborted)
	}
	c.finish(r, func(b []byte) []byte {
		b = appendStream(b, typeStdout, r.id, nil)
		return appendEndRequest(b, r.id, 0, statusRequestComplete)
	})
}

// finish ends r on the wire with the records end appends, unless it already
// ended, and closes the connection when nothing more is to be done on it.
// The id is released before END_REQUEST leaves: the web server may reuse it
// as soon as it reads that record. A kept connection that Shutdown drains
// is closed by the serve loop once END_REQUEST is out, at once unless the
// next request is already there (see drainWaiting).
func (c *conn) finish(r *request, end func([]byte) []byte) {
	c.mu.Lock()
	removed := c.reqs[r.id] == r
	if removed {
		delete(c.reqs, r.id)
		c.paramsHeld -= r.params
		c.ending++
	}
	c.mu.Unlock()

	c.wmu.Lock()
	already := r.ended
	if !already {
		r.ended = true
		if end != nil {
			c.appendLocked(end)
			c.flushLocked()
		}
	}
	c.wmu.Unlock()

	c.mu.Lock()
	if removed {
		c.ending--
	}
	closeNow := !already && !r.keepConn
	drained := !already && r.keepConn && c.draining && c.idleLocked()
	linger := (closeNow || drained) && r.inputOpen()
	if drained && !linger && !c.closed {
		if now := time.Now(); c.drainTo.After(now) {
			c.drainTo = now
		}
	}
	if r.keepConn && !linger && !c.closed {
		// The idle timeout, when r was the last; draining, the end of
		// the serve loop's wait.
		c.setReadDeadlineLocked()
	}
	c.mu.Unlock()
	// When r had already ended, another path (abort, timeout, a closed
	// connection) decided what became of the connection.
	switch {
	case linger:
		c.lingerClose()
	case closeNow:
		c.close(nil)
	}
}

// Close is close, for the server's gateway.Tracker.
func (c *conn) Close(cause error) { c.close(cause) }

// close closes the connection once: every request still open has its
// context cancelled with cause (ErrConnClosed when nil) and its streams
// failed.
func (c *conn) close(cause error) {
	if cause == nil {
		cause = ErrConnClosed
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	reqs := make([]*request, 0, len(c.reqs))
	for _, r := range c.reqs {
		reqs = append(reqs, r)
	}
	clear(c.reqs)
	c.paramsHeld = 0
	c.mu.Unlock()

	c.wmu.Lock()
	for _, r := range reqs {
		r.ended = true
	}
	c.flushLocked()
	if c.werr == nil {
		c.werr = ErrConnClosed
	}
	c.wmu.Unlock()
	c.rwc.Close()
	c.cancel(cause)
	for _, r := range reqs {
		r.stdin.fail(cause)
		if r.data != nil {
			r.data.fail(cause)
		}
	}
	c.srv.track.Remove(c)
}
