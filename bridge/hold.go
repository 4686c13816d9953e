package bridge

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"strconv"
)

// Committer is implemented by the ResponseWriters of HandlerResponder (in
// Respond and in ServeHTTP) and by HTTPOutput. A wrapper that must know
// what the client gets from a handler that panics, such as an access log,
// asks the writer below it.
type Committer interface {
	// Committed reports whether the response has started: its status
	// went on its way to the client (the body outgrew BufferSize, the
	// handler flushed, or it hijacked the connection). Until then a
	// failing handler gets a clean 500; after it, its response is cut
	// short.
	Committed() bool
}

var (
	_ Committer = (*responseWriter)(nil)
	_ Committer = (*httpWriter)(nil)
	_ Committer = (*HTTPOutput)(nil)
)

// ServeHTTP runs hr.Handler for r, a request received by a Go HTTP server,
// with its response held as Respond holds it, so that a handler gets the
// same answer over plain HTTP as over CGI and FastCGI: the status and
// headers are fixed at WriteHeader (or the first Write) and held, with the
// body, until the body outgrows BufferSize, the handler flushes, or it
// returns; a body held whole gets its Content-Length. Until then a panic or
// a runtime.Goexit becomes Respond's clean 500 and log line (quietly for
// http.ErrAbortHandler); after it, what was sent is flushed, the log line
// says the response was cut short, and the connection is closed by a panic
// with http.ErrAbortHandler, which net/http recovers without a log line of
// its own.
//
// What net/http offers stays reachable: interim 1xx responses (other than
// 101) are sent at once with the headers set so far, trailers declared in
// the header map are sent, Hijack works (the response counts as started),
// and http.ResponseController reaches w through Unwrap. Logs go to
// hr.Logger; hr.Debug puts a panic's value and stack in the 500's body.
func (hr *HandlerResponder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	log := hr.log()
	h := hr.Handler
	if h == nil {
		h = http.DefaultServeMux
	}
	hw := &httpWriter{w: w, log: log, header: make(http.Header), isHead: r.Method == http.MethodHead}
	returned := false
	defer func() {
		if returned {
			return
		}
		// recover is nil after runtime.Goexit: still a failure.
		p := recover()
		// A failed write is net/http's to see: it closes the connection.
		hr.fail(hw, r, log, p)
		if hw.wasCut && p != nil {
			// The only way to close the connection at once; net/http
			// does so after a Goexit by itself.
			panic(http.ErrAbortHandler)
		}
	}()
	h.ServeHTTP(hw, r)
	returned = true
	hw.finish()
}

// httpWriter is the ResponseWriter of ServeHTTP. The handler's headers are
// its own map; WriteHeader fixes a copy of them, as net/http does, which
// goes to w when the response starts.
type httpWriter struct {
	w      http.ResponseWriter
	log    *slog.Logger
	header http.Header
	isHead bool

	status  int         // 0 until decided
	fixed   http.Header // the headers when the status was decided
	body    []byte      // body held until the start
	written int64       // body bytes accepted from the handler
	started bool        // the status went to w
	done    bool        // the handler returned, or failed
	wasCut  bool        // the handler failed after the start
}

var (
	_ http.ResponseWriter = (*httpWriter)(nil)
	_ http.Flusher        = (*httpWriter)(nil)
	_ http.Hijacker       = (*httpWriter)(nil)
	_ failer              = (*httpWriter)(nil)
)

func (hw *httpWriter) Header() http.Header { return hw.header }

// WriteHeader decides the status. Interim codes other than 101 go to w at
// once, as net/http sends them; a code outside 100-999 panics, as in
// net/http, and so becomes a 500.
func (hw *httpWriter) WriteHeader(code int) {
	if !mayDecide(hw.log, hw.done, hw.status, code) {
		return
	}
	if code < 200 && code != http.StatusSwitchingProtocols {
		maps.Copy(hw.w.Header(), hw.header)
		hw.w.WriteHeader(code)
		return
	}
	hw.status, hw.fixed = code, hw.header.Clone()
}

func (hw *httpWriter) Write(p []byte) (int, error) {
	if hw.done {
		return 0, errWriteAfterReturn
	}
	if hw.started {
		return hw.w.Write(p)
	}
	if hw.status == 0 {
		hw.WriteHeader(http.StatusOK)
	}
	if !bodyAllowed(hw.status) {
		return 0, http.ErrBodyNotAllowed
	}
	hw.written += int64(len(p))
	if hw.isHead {
		return len(p), nil
	}
	if len(hw.body)+len(p) <= BufferSize {
		hw.body = append(hw.body, p...)
		return len(p), nil
	}
	if err := hw.start(); err != nil {
		return 0, err
	}
	return hw.w.Write(p)
}

// start sends the status, the fixed headers and the held body to w.
func (hw *httpWriter) start() error {
	hw.started = true
	h := hw.w.Header()
	clear(h)
	maps.Copy(h, hw.fixed)
	hw.w.WriteHeader(hw.status)
	if len(hw.body) == 0 {
		return nil
	}
	_, err := hw.w.Write(hw.body)
	hw.body = nil
	return err
}

// Flush sends the response so far to the client.
func (hw *httpWriter) Flush() { _ = hw.FlushError() }

// FlushError is Flush with its error, for http.ResponseController.
func (hw *httpWriter) FlushError() error {
	if hw.done {
		return errWriteAfterReturn
	}
	if !hw.started {
		if hw.status == 0 {
			hw.WriteHeader(http.StatusOK)
		}
		if err := hw.start(); err != nil {
			return err
		}
	}
	return http.NewResponseController(hw.w).Flush()
}

// Hijack hands the connection over: the response counts as started.
func (hw *httpWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(hw.w).Hijack()
	if err == nil {
		hw.started = true
	}
	return c, rw, err
}

// Unwrap returns the writer below, for http.ResponseController.
func (hw *httpWriter) Unwrap() http.ResponseWriter { return hw.w }

// Committed implements Committer.
func (hw *httpWriter) Committed() bool { return hw.started }

// finish completes the response after the handler returned: a body held
// whole gets its Content-Length, as in Respond; the handler's map,
// trailers included, is net/http's from then on.
func (hw *httpWriter) finish() {
	if !hw.started {
		if hw.status == 0 {
			hw.WriteHeader(http.StatusOK)
		}
		_, declared := hw.fixed["Trailer"]
		if hw.fixed.Get("Content-Length") == "" && hw.fixed.Get("Transfer-Encoding") == "" && !declared &&
			bodyAllowed(hw.status) && (!hw.isHead || hw.written > 0) {
			hw.fixed.Set("Content-Length", strconv.FormatInt(hw.written, 10))
		}
		// A failed write is net/http's to see: it closes the connection.
		_ = hw.start()
	}
	hw.done = true
	maps.Copy(hw.w.Header(), hw.header)
}

// writeError implements failer: the 500 replaces whatever the handler
// set, and leaves at once (after a Goexit net/http closes the connection
// without flushing).
func (hw *httpWriter) writeError(detail string) error {
	hw.done = true
	clear(hw.w.Header())
	err := WriteError(NewHTTPOutput(hw.w, 0), http.StatusInternalServerError, detail)
	hw.started = true
	if ferr := http.NewResponseController(hw.w).Flush(); err == nil && ferr != nil && !errors.Is(ferr, http.ErrNotSupported) {
		err = errors.Join(ErrCutShort, ferr)
	}
	return err
}

// cut implements failer: what was sent reaches the client, and ServeHTTP
// closes the connection.
func (hw *httpWriter) cut(reason string) error {
	hw.done, hw.wasCut = true, true
	// The flush may fail: the client is gone, and the response is cut
	// either way.
	_ = http.NewResponseController(hw.w).Flush()
	return fmt.Errorf("%w: %s", ErrCutShort, reason)
}
