package fastcgi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/cgirun/cgirun/bridge"
)

// Errors that end a request's context and input streams; context.Cause
// tells which.
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

// lingerTime bounds how long a connection that must close keeps reading a
// request body that its handler did not consume, so that the web server
// reads the response instead of a reset.
const lingerTime = 2 * time.Second

// writeFlushSize is the buffered output past which a connection writes.
const writeFlushSize = 64 << 10

// writeBufPool holds the buffers records are written from: a connection
// holds one only while it writes. A small response fits the first 4 KiB;
// a larger one grows its buffer, which goes back to the pool with it.
var writeBufPool = sync.Pool{New: func() any {
	b := make([]byte, 0, 4<<10)
	return &b
}}

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
	mu       sync.Mutex
	started  bool // a first record arrived
	reqs     map[uint16]*request
	ending   int       // requests out of reqs whose END_REQUEST is not written yet
	draining bool      // close once the last request is done
	drainTo  time.Time // when an idle draining connection closes
	lingerOn bool      // the write side is closed: read out what arrives, then close
	lingerTo time.Time
	closed   bool

	logOnce sync.Once
	logger  *slog.Logger // the server's, with remote; built on first use

	// The write side, guarded by wmu: every record leaves through wbuf.
	wmu  sync.Mutex
	wbuf *[]byte // nil while nothing is buffered
	werr error   // sticky
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
		maxReqs:   orDefault(s.MaxRequestsPerConn, DefaultMaxRequestsPerConn),
		reqs:      make(map[uint16]*request),
	}
	c.rr.init(rwc)
	return c
}

// log returns the server's logger with the connection's remote address. It
// is built on first use: most connections log nothing.
func (c *conn) log() *slog.Logger {
	c.logOnce.Do(func() { c.logger = c.srv.logger().With("remote", c.remote) })
	return c.logger
}

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
		d = now.Add(orDefault(s.ReadHeaderTimeout, DefaultReadHeaderTimeout))
	case c.idleLocked():
		d = now.Add(orDefault(s.IdleTimeout, DefaultIdleTimeout))
	default:
		for _, r := range c.reqs {
			var rd time.Time
			switch {
			case !r.paramsDone:
				rd = r.headerDeadline
			case r.inputOpen():
				rd = now.Add(orDefault(s.ReadTimeout, DefaultReadTimeout))
			default:
				continue
			}
			if d.IsZero() || rd.Before(d) {
				d = rd
			}
		}
	}
	c.rwc.SetReadDeadline(d)
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
		errors.Is(err, ErrHandlerTimeout) || errors.Is(err, ErrConnClosed)
}

func (c *conn) handleManagement(h header, content []byte) error {
	if h.Type != typeGetValues {
		c.writeRecords(func(b []byte) []byte { return appendUnknownType(b, h.Type) })
		return nil
	}
	pairs, err := parsePairs(content)
	if err != nil {
		return fmt.Errorf("FCGI_GET_VALUES: %w", err)
	}
	var body []byte
	for _, p := range pairs {
		if v, ok := c.srv.value(p[0], c.maxReqs); ok {
			body = appendPair(body, p[0], v)
		}
	}
	c.writeRecords(func(b []byte) []byte { return appendRecord(b, typeGetValuesResult, 0, body) })
	return nil
}

// value answers one FCGI_GET_VALUES name with the server's real limits.
func (s *Server) value(name string, maxReqsPerConn int) (string, bool) {
	maxConns := s.MaxConns
	if maxConns <= 0 {
		maxConns = fileLimit()
	}
	switch name {
	case "FCGI_MAX_CONNS":
		return strconv.Itoa(maxConns), true
	case "FCGI_MAX_REQS":
		if s.MaxRequests > 0 {
			return strconv.Itoa(s.MaxRequests), true
		}
		return strconv.Itoa(maxConns * maxReqsPerConn), true
	case "FCGI_MPXS_CONNS":
		if maxReqsPerConn > 1 {
			return "1", true
		}
		return "0", true
	}
	return "", false
}

// fileLimit is the open-file limit: the most connections the process can
// hold when MaxConns sets none.
func fileLimit() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur > 1<<20 {
		return 1 << 20
	}
	return int(rl.Cur)
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
	if n >= c.maxReqs {
		c.srv.stats.overloaded.Add(1)
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
		err := r.pairs.feed(content, r.setParam)
		if errors.Is(err, errParamsTooLarge) {
			c.refuse(r, 431, "Request Header Fields Too Large", err)
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
	r.paramsDone = true
	r.bodyLen = -1
	if v := r.breq.Env.Get("CONTENT_LENGTH"); v != "" { // "": an error to allocate
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
			r.bodyLen = n
		}
	}
	if h, ok := c.rr.peekHeader(); ok && h.Type == typeStdin && h.ID == r.id && h.ContentLength == 0 {
		// A bodiless request's empty STDIN comes in the same read as
		// its header block (nginx sends both at once): taken now, the
		// handler starts with its body known to be empty (Empty).
		c.rr.consume(headerLen + int(h.PaddingLength))
		r.stdin.end()
	}
	go r.run()
	return nil
}

// refuse answers r with an error status before its handler runs.
func (c *conn) refuse(r *request, status int, text string, cause error) {
	c.log().Warn("fastcgi: request refused", "req_id", r.id, "status", status, "err", cause)
	r.cancel(cause)
	stream := fmt.Appendf(nil, "Status: %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%d %s\n", status, text, status, text)
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

// lingerClose closes the write side, lets the serve loop read what the web
// server is still sending for a little while, then the loop closes.
func (c *conn) lingerClose() {
	c.mu.Lock()
	c.lingerOn = true
	c.lingerTo = time.Now().Add(lingerTime)
	c.mu.Unlock()
	if cw, ok := c.rwc.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
		c.rwc.SetReadDeadline(c.lingerTo)
		return
	}
	c.close(nil)
}

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

// flushLocked writes the buffered records. A failed write closes the
// connection: the web server cannot be told anything any more.
func (c *conn) flushLocked() {
	if c.wbuf == nil {
		return
	}
	b := *c.wbuf
	if c.werr == nil && len(b) > 0 {
		c.rwc.SetWriteDeadline(time.Now().Add(orDefault(c.srv.WriteTimeout, DefaultWriteTimeout)))
		if _, err := c.rwc.Write(b); err != nil {
			c.werr = err
			c.log().Warn("fastcgi: closing connection: write failed", "err", err)
			go c.close(ErrConnClosed)
		}
	}
	*c.wbuf = b[:0]
	writeBufPool.Put(c.wbuf)
	c.wbuf = nil
}

// drainGrace is how long Shutdown leaves an idle connection open for a
// request the web server may have sent on it just before: a kept
// connection in nginx's pool can carry one at any moment.
const drainGrace = 50 * time.Millisecond

// drain makes the connection close after its last request (Shutdown). An
// idle one gets drainGrace to show a request already on its way; either
// closes then unless a request is waiting in the socket.
func (c *conn) drain() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.draining = true
	c.drainTo = time.Now().Add(drainGrace)
	if c.idleLocked() && !c.closed {
		c.setReadDeadlineLocked()
	}
}

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
	c.srv.untrackConn(c)
}
