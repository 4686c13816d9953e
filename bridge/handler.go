package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
)

// HandlerResponder is the Responder that runs a Go http.Handler: it turns the
// Request into an *http.Request (NewHTTPRequest) and the handler's answer
// into a CGI response stream.
//
// The handler's headers are held until its body outgrows BufferSize, it
// calls Flush, or it returns (PEP 3333's rule, with a buffer). Until then,
// a panic or a runtime.Goexit in the handler becomes a clean 500 and a log
// line; after that the response is cut short, logged, and Respond returns
// an error wrapping ErrCutShort. A malformed environment gets 400.
//
// After runtime.Goexit the error response is written but Respond does not
// return: the goroutine ends, so a front end finishes its request in a
// deferred call.
//
// A HandlerResponder is also an http.Handler (ServeHTTP) that holds the
// response of a handler behind a Go HTTP server by the same rules, so that
// the handler gets the same answer in every mode.
type HandlerResponder struct {
	// Handler answers the requests; nil means http.DefaultServeMux.
	Handler http.Handler
	// Logger receives errors; nil means slog.Default().
	Logger *slog.Logger
	// Debug puts a panic's value and stack, or the reason for a 400, in the
	// error response's body. Off by default: it shows internals to
	// clients.
	Debug bool
}

func (hr *HandlerResponder) logger(req *Request) *slog.Logger {
	if req.Log != nil {
		return req.Log
	}
	return hr.log()
}

func (hr *HandlerResponder) log() *slog.Logger {
	if hr.Logger != nil {
		return hr.Logger
	}
	return slog.Default()
}

// Respond implements Responder.
func (hr *HandlerResponder) Respond(ctx context.Context, req *Request, out Output) (err error) {
	log := hr.logger(req)
	r, err := NewHTTPRequest(ctx, req)
	if err != nil {
		log.Warn("bridge: bad request", "err", err)
		detail := ""
		if hr.Debug {
			detail = err.Error()
		}
		return WriteError(out, http.StatusBadRequest, detail)
	}
	h := hr.Handler
	if h == nil {
		h = http.DefaultServeMux
	}
	w := newResponseWriter(out, r, log)
	returned := false
	defer func() {
		if !returned {
			// recover is nil after runtime.Goexit: still a failure.
			err = hr.fail(w, r, log, recover())
		}
		w.release()
	}()
	h.ServeHTTP(w, r)
	returned = true
	return w.finish()
}

// failer is a writer whose handler failed, as fail ends it: Respond's
// responseWriter and ServeHTTP's httpWriter. Both mark the handler as done.
type failer interface {
	Committer
	// writeError answers with the plain-text 500 of WriteError, with
	// detail, in place of whatever the handler set.
	writeError(detail string) error
	// cut marks the response as cut short and returns the error, wrapping
	// ErrCutShort, that says so with reason.
	cut(reason string) error
}

// fail ends the response of a handler that panicked (p != nil) or called
// runtime.Goexit (p == nil): a 500 and a log line while the response has
// not started, a cut and a log line after it; http.ErrAbortHandler, the
// handler's documented way to abort quietly, gets no log line.
func (hr *HandlerResponder) fail(w failer, r *http.Request, log *slog.Logger, p any) error {
	if p == http.ErrAbortHandler {
		if w.Committed() {
			return w.cut("handler aborted")
		}
		return w.writeError("")
	}
	stack := debug.Stack()
	reason := "handler called runtime.Goexit"
	if p != nil {
		reason = fmt.Sprintf("handler panicked: %v", p)
	}
	if w.Committed() {
		log.Error("bridge: response cut short: "+reason, "uri", r.RequestURI, "stack", string(stack))
		return w.cut(reason)
	}
	log.Error("bridge: "+reason, "uri", r.RequestURI, "status", http.StatusInternalServerError, "stack", string(stack))
	detail := ""
	if hr.Debug {
		detail = reason + "\n\n" + string(stack)
	}
	return w.writeError(detail)
}

// WriteError writes a complete plain-text error response with status to out:
// the status text, then detail when it is not empty (see AppendError). It is
// the answer to a request that failed before its header block was sent.
func WriteError(out Output, status int, detail string) error {
	if _, err := out.Write(AppendError(nil, status, detail)); err != nil {
		return errors.Join(ErrCutShort, err)
	}
	return nil
}

// AppendError appends to dst the CGI response stream of a plain-text error:
// a Status line, Content-Type text/plain, X-Content-Type-Options nosniff and
// Content-Length, then a body of the status code and text, and detail after
// an empty line when it is not empty. Every error response of the module
// (a refused request, a timeout, a failed handler or script) is built by it.
func AppendError(dst []byte, status int, detail string) []byte {
	return appendError(dst, status, "", detail)
}

// AppendUnavailable appends AppendError's 503 Service Unavailable with a
// Retry-After of retryAfter seconds: the answer to a request past a bound
// on the requests answered at once.
func AppendUnavailable(dst []byte, retryAfter int) []byte {
	return appendError(dst, http.StatusServiceUnavailable, "Retry-After: "+strconv.Itoa(retryAfter)+"\r\n", "")
}

// appendError is AppendError with extra, header lines that follow the
// Status line.
func appendError(dst []byte, status int, extra, detail string) []byte {
	text := http.StatusText(status)
	n := len(strconv.Itoa(status)) + 1 + len(text) + 1
	if detail != "" {
		n += 1 + len(detail) + 1
	}
	dst = appendStatus(dst, status, "")
	dst = append(dst, extra...)
	dst = append(dst, "Content-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nContent-Length: "...)
	dst = strconv.AppendInt(dst, int64(n), 10)
	dst = append(dst, "\r\n\r\n"...)
	dst = strconv.AppendInt(dst, int64(status), 10)
	dst = append(dst, ' ')
	dst = append(dst, text...)
	dst = append(dst, '\n')
	if detail != "" {
		dst = append(dst, '\n')
		dst = append(dst, detail...)
		dst = append(dst, '\n')
	}
	return dst
}

// cutShort tells out, when it can hear it, that its response is incomplete,
// and returns the error that says so.
func cutShort(out Output, reason string) error {
	err := fmt.Errorf("%w: %s", ErrCutShort, reason)
	if a, ok := out.(Aborter); ok {
		a.Abort(err)
	}
	return err
}

// SetVariable sets the response header by which an Authorizer passes a
// variable to the request that follows it: "Variable-NAME: value" (FastCGI
// specification, section 6.3). It keeps name's case, which Header.Set would
// change: mod_authnz_fcgi takes the name as written.
func SetVariable(h http.Header, name, value string) {
	h["Variable-"+name] = []string{value}
}
