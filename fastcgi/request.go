package fastcgi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/cgirun/cgirun/bridge"
	"github.com/cgirun/cgirun/internal/defaults"
)

// request is one FastCGI request on a connection.
type request struct {
	// Immutable after newRequest.
	c              *conn
	id             uint16
	role           bridge.Role
	keepConn       bool
	ctx            context.Context
	cancel         context.CancelCauseFunc
	idCtx          idContext // ctx, as the handler gets it: with the request id
	headerDeadline time.Time
	stdin          *inStream // &in
	data           *inStream // FILTER only

	// The stdin stream and the stderr stream live in the request, so
	// that a request and its streams are one allocation. Never copied.
	in     inStream
	errOut outStream

	// Owned by the serve loop until paramsDone, then by the handler.
	pairs pairDecoder
	breq  bridge.Request

	// Owned by the serve loop. paramsDone is written with c.mu held: the
	// end of another request on the connection reads it under c.mu.
	paramsDone bool
	bodyLen    int64 // CONTENT_LENGTH, or -1; set with paramsDone

	// Guarded by c.mu.
	params int // FCGI_PARAMS bytes counted in c.paramsHeld

	// Guarded by c.wmu.
	ended       bool // END_REQUEST sent, or nothing may be sent any more
	wroteOutput bool // STDOUT bytes sent
	wroteStderr bool // STDERR bytes sent
	cut         bool // the response is incomplete
	claimed     bool // an abort or a timeout owns the response: the handler's writes fail
}

func newRequest(c *conn, id uint16, role bridge.Role, keepConn bool) *request {
	ctx, cancel := context.WithCancelCause(c.ctx)
	s := c.srv
	limit := defaults.Or(s.InputBuffer, DefaultInputBuffer)
	r := &request{
		c:              c,
		id:             id,
		role:           role,
		keepConn:       keepConn,
		ctx:            ctx,
		cancel:         cancel,
		headerDeadline: time.Now().Add(defaults.Or(s.ReadHeaderTimeout, DefaultReadHeaderTimeout)),
		pairs:          newPairDecoder(defaults.Or(s.MaxParamsBytes, DefaultMaxParamsBytes)),
	}
	r.in.init(limit)
	r.stdin = &r.in
	r.idCtx = idContext{Context: ctx, id: id}
	// nginx's fastcgi_params alone are about 20 variables, with the
	// request's headers on top.
	r.breq.Env.Grow(32)
	r.breq.Role = role
	if role != bridge.RoleAuthorizer { // an authorizer has no body
		r.breq.Body = r.stdin
	}
	if role == bridge.RoleFilter {
		r.data = newInStream(limit)
		r.breq.Data = r.data
	}
	r.errOut = outStream{r: r, t: typeStderr}
	r.breq.Stderr = &r.errOut
	return r
}

// setParam receives one name-value pair of FCGI_PARAMS.
func (r *request) setParam(name, value string) error {
	r.breq.Env.Set(name, value)
	return nil
}

// inputOpen reports whether the web server still sends body records.
func (r *request) inputOpen() bool {
	return r.stdin.open() || (r.data != nil && r.data.open())
}

// run answers the request: it is the request's goroutine, started when its
// FCGI_PARAMS end.
func (r *request) run() {
	c, s := r.c, r.c.srv
	returned, slot := false, false
	var err error
	defer func() {
		// Deferred so that it also runs after runtime.Goexit in the
		// handler.
		if slot {
			s.track.ReleaseSlot()
		}
		r.done(returned, err)
	}()
	if !s.track.AcquireSlot(r.ctx, s.QueueRequests, defaults.Or(s.ReadHeaderTimeout, DefaultReadHeaderTimeout)) {
		s.track.Overloaded()
		c.log().Warn("fastcgi: request refused: MaxRequests reached", "req_id", r.id, "limit", s.MaxRequests)
		r.cancel(errOverloaded)
		returned = true
		return
	}
	slot = true
	s.track.RequestStarted()
	if s.HandlerTimeout > 0 {
		t := time.AfterFunc(s.HandlerTimeout, r.timeout)
		defer t.Stop()
	}
	if s.LogToStderr {
		r.breq.Log = slog.New(teeHandler{c.log().Handler(), slog.NewTextHandler(r.breq.Stderr, nil)})
	}
	err = c.responder.Respond(&r.idCtx, &r.breq, &outStream{r: r, t: typeStdout})
	returned = true
}

var errOverloaded = errors.New("fastcgi: overloaded")

// idContext is a request's context with its id, for RequestID. It is held
// in the request, so that it costs no allocation.
type idContext struct {
	context.Context
	id uint16
}

type requestIDKey struct{}

func (c *idContext) Value(key any) any {
	if key == (requestIDKey{}) {
		return c.id
	}
	return c.Context.Value(key)
}

// RequestID returns the FastCGI request id of the request whose handler
// got ctx, or a context made from it; ok is false for any other context.
// Ids are the web server's, unique only among the requests open at once
// on one connection (nginx always sends 1).
func RequestID(ctx context.Context) (id uint16, ok bool) {
	id, ok = ctx.Value(requestIDKey{}).(uint16)
	return id, ok
}

// done ends the request after its handler: END_REQUEST after an empty
// STDOUT, or, when the response was cut short, no END_REQUEST and a closed
// connection, the only way FastCGI has to say a response is incomplete.
func (r *request) done(returned bool, err error) {
	c := r.c
	r.cancel(errRequestDone)
	r.stdin.close()
	if r.data != nil {
		r.data.close()
	}
	overloaded := errors.Is(context.Cause(r.ctx), errOverloaded)
	c.wmu.Lock()
	if r.claimed {
		// An abort or a timeout answers, or has answered, the request.
		c.wmu.Unlock()
		return
	}
	// The bridge marks a cut response through Abort even when the handler
	// called runtime.Goexit and err never arrives.
	cut := (r.cut || err != nil) && !r.ended
	c.wmu.Unlock()
	if cut {
		c.log().Warn("fastcgi: closing connection: response cut short", "req_id", r.id, "err", err)
		c.wmu.Lock()
		r.ended = true
		c.wmu.Unlock()
		c.close(ErrConnClosed)
		return
	}
	c.finish(r, func(b []byte) []byte {
		if overloaded {
			// A real answer, not FCGI_OVERLOADED: nginx takes that for a
			// broken upstream (502, "upstream sent unexpected FastCGI
			// record: 3").
			b = appendStream(b, typeStdout, r.id, bridge.AppendUnavailable(nil, 1))
		}
		b = appendStream(b, typeStdout, r.id, nil)
		if r.wroteStderr {
			b = appendStream(b, typeStderr, r.id, nil)
		}
		return appendEndRequest(b, r.id, 0, statusRequestComplete)
	})
}

// timeout ends a request that ran past HandlerTimeout: 503 when nothing was
// sent yet, otherwise the response is cut short.
func (r *request) timeout() {
	c := r.c
	// The response is timeout's from here: a handler woken by its
	// cancelled context can no longer write, nor end the request.
	if !r.claim() {
		return
	}
	c.log().Warn("fastcgi: handler timeout", "req_id", r.id, "timeout", c.srv.HandlerTimeout)
	r.cancel(ErrHandlerTimeout)
	r.stdin.fail(ErrHandlerTimeout)
	if r.data != nil {
		r.data.fail(ErrHandlerTimeout)
	}
	c.wmu.Lock()
	sent := r.wroteOutput
	if sent && !r.ended {
		r.ended = true
		c.wmu.Unlock()
		c.close(ErrHandlerTimeout)
		return
	}
	c.wmu.Unlock()
	c.finish(r, func(b []byte) []byte {
		b = appendStream(b, typeStdout, r.id, bridge.AppendError(nil, http.StatusServiceUnavailable, ""))
		b = appendStream(b, typeStdout, r.id, nil)
		return appendEndRequest(b, r.id, 0, statusRequestComplete)
	})
}

// claim makes the response the caller's (abort, timeout) before the
// handler's context is cancelled, so that a handler woken by it cannot
// write or end the request first. It reports false when the request had
// ended or was claimed already.
func (r *request) claim() bool {
	c := r.c
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if r.ended || r.claimed {
		return false
	}
	r.claimed = true
	return true
}

// teeHandler sends log records to two handlers: the server's log and the
// web server's error log.
type teeHandler [2]slog.Handler

func (t teeHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return t[0].Enabled(ctx, l) || t[1].Enabled(ctx, l)
}

func (t teeHandler) Handle(ctx context.Context, rec slog.Record) error {
	var errs []error
	for _, h := range t {
		if h.Enabled(ctx, rec.Level) {
			errs = append(errs, h.Handle(ctx, rec.Clone()))
		}
	}
	return errors.Join(errs...)
}

func (t teeHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return teeHandler{t[0].WithAttrs(as), t[1].WithAttrs(as)}
}

func (t teeHandler) WithGroup(name string) slog.Handler {
	return teeHandler{t[0].WithGroup(name), t[1].WithGroup(name)}
}
