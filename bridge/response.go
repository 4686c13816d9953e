package bridge

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// BufferSize is how much of the body a handler may write before its header
// block is sent. While the body fits, the status can still become a clean
// 500 if the handler panics, and Content-Length is set when the handler
// returns.
const BufferSize = 8 << 10

// ErrCutShort is wrapped by the error Respond returns when a response was
// already under way and could not be completed: the client got a truncated
// response.
var ErrCutShort = errors.New("bridge: response cut short")

// errWriteAfterReturn is what a handler gets for writing through its
// ResponseWriter after it returned.
var errWriteAfterReturn = errors.New("bridge: ResponseWriter used after the handler returned")

// buffers is the pooled scratch space of a response.
type buffers struct {
	head []byte   // the header block, built when the status is decided
	body []byte   // body bytes held before the header block is sent
	keys []string // header names, sorted
}

// bufferPool keeps the buffers of finished responses for the next ones. A
// new one is empty: its slices are allocated to the size of the first
// response that uses them, and keep their capacity in the pool. A CGI
// process answers one request, so a large buffer allocated up front would
// only cost it page faults.
var bufferPool = sync.Pool{New: func() any { return new(buffers) }}

// commitTail is room for what commit adds to the header block: a sniffed
// Content-Type, a Content-Length and the empty line.
const commitTail = len("Content-Type: text/plain; charset=utf-16be\r\nContent-Length: 9223372036854775807\r\n\r\n")

// responseWriter is the http.ResponseWriter that writes a CGI response
// stream: "Status: 200 OK", the header fields, an empty line, the body.
//
// The header block is serialised when the status is decided (WriteHeader or
// the first Write), which fixes the headers exactly as net/http does, and is
// sent to out only when the body outgrows its buffer, at a Flush, or when the
// handler returns.
type responseWriter struct {
	out    Output
	log    *slog.Logger
	isHead bool

	header http.Header
	status int // 0 until decided
	// What the header block holds, noted when it was built.
	hasType     bool
	hasLength   bool
	hasEncoding bool // Transfer-Encoding
	declared    int64
	bufs        *buffers
	committed   bool  // the header block went to out
	written     int64 // body bytes accepted from the handler
	err         error // first error from out; sticky
	done        bool  // the handler returned
}

var (
	_ http.ResponseWriter = (*responseWriter)(nil)
	_ http.Flusher        = (*responseWriter)(nil)
	_ failer              = (*responseWriter)(nil)
)

func newResponseWriter(out Output, r *http.Request, log *slog.Logger) *responseWriter {
	return &responseWriter{
		out:      out,
		log:      log,
		isHead:   r.Method == http.MethodHead,
		header:   make(http.Header),
		declared: -1,
		bufs:     bufferPool.Get().(*buffers),
	}
}

// release returns the buffers to the pool; w must not be used for output
// after it.
func (w *responseWriter) release() {
	b := w.bufs
	w.bufs = nil
	clear(b.keys[:cap(b.keys)])
	b.head, b.body, b.keys = b.head[:0], b.body[:0], b.keys[:0]
	bufferPool.Put(b)
}

func (w *responseWriter) Header() http.Header { return w.header }

// WriteHeader decides the status. Informational codes (1xx) cannot travel in
// a CGI response and are dropped; they never become the final status. A
// code outside 100-999 panics, as in net/http, and so becomes a 500.
func (w *responseWriter) WriteHeader(code int) {
	if !mayDecide(w.log, w.done, w.status, code) {
		return
	}
	if code < 200 {
		return
	}
	w.status = code
	w.buildHead()
}

// mayDecide reports whether a writer may take code as its status: not
// after the handler returned, nor once a status was decided (both logged),
// and a code outside 100-999 panics, as in net/http, and so becomes a 500.
// Both of the package's writers go through it.
func mayDecide(log *slog.Logger, done bool, status, code int) bool {
	if done {
		log.Warn("bridge: WriteHeader after the handler returned", "status", code)
		return false
	}
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("bridge: invalid WriteHeader code %d", code))
	}
	if status != 0 {
		log.Warn("bridge: superfluous WriteHeader", "status", code, "first", status)
		return false
	}
	return true
}

// buildHead serialises the status line and the handler's header fields into
// bufs.head. A field whose name is not a token, or whose value holds CR, LF
// or NUL, is refused and logged: it can never inject a line.
func (w *responseWriter) buildHead() {
	b := w.bufs
	// The header block is built once, in a buffer sized for it and for
	// what commit adds, so that it takes one allocation when the buffers
	// are new (a CGI process has only new ones).
	keys := slices.Grow(b.keys[:0], len(w.header))
	size := len("Status: 999 \r\n") + 32 + commitTail
	for k, values := range w.header {
		keys = append(keys, k)
		for _, v := range values {
			size += len(k) + len(": \r\n") + len(v)
		}
	}
	slices.Sort(keys)
	b.keys = keys

	h := slices.Grow(b.head[:0], size)
	h = appendStatus(h, w.status, "")
	for _, k := range keys {
		// An explicitly emptied field (e.g. Content-Type set to nil to
		// suppress sniffing) sends nothing, but counts as set.
		values := w.header[k]
		if why := refuseField(k); why != "" && len(values) > 0 {
			if why != errTrailer {
				w.log.Warn("bridge: "+why, "header", k)
			}
			continue
		}
		switch http.CanonicalHeaderKey(k) {
		case "Content-Type":
			w.hasType = true
		case "Transfer-Encoding":
			w.hasEncoding = true
		case "Content-Length":
			w.hasLength = true
			if len(values) == 0 {
				break
			}
			if n, err := strconv.ParseUint(values[0], 10, 63); err == nil {
				w.declared = int64(n)
			}
		}
		for _, v := range values {
			if !validValue(v) {
				w.log.Warn("bridge: refused response header with CR, LF or NUL in its value", "header", k)
				continue
			}
			h = appendField(h, k, v)
		}
	}
	b.head = h
}

// appendStatus appends a CGI Status line: the code and reason, or the
// code's text when reason is empty, or "status code N" for a code without
// one, as net/http writes it.
func appendStatus(dst []byte, status int, reason string) []byte {
	dst = append(dst, "Status: "...)
	dst = strconv.AppendInt(dst, int64(status), 10)
	dst = append(dst, ' ')
	switch {
	case reason != "":
		dst = append(dst, reason...)
	case http.StatusText(status) != "":
		dst = append(dst, http.StatusText(status)...)
	default:
		dst = append(dst, "status code "...)
		dst = strconv.AppendInt(dst, int64(status), 10)
	}
	return append(dst, "\r\n"...)
}

// refuseField says why a response header field named k may not be sent
// ("" when it may): a name that is not a token could inject a line, Status
// is the status line's, and trailers cannot travel in a CGI response.
func refuseField(k string) string {
	switch {
	case !isToken(k):
		return "refused response header with an invalid name"
	case strings.EqualFold(k, "Status"):
		return "refused a Status response header; use WriteHeader"
	case strings.HasPrefix(k, http.TrailerPrefix):
		return errTrailer
	}
	return ""
}

// errTrailer is refuseField's answer for a trailer, dropped without a log
// line.
const errTrailer = "trailer"

func appendField(dst []byte, k, v string) []byte {
	dst = append(dst, k...)
	dst = append(dst, ": "...)
	dst = append(dst, v...)
	return append(dst, "\r\n"...)
}

// AppendHeader appends resp's header block to dst: the Status line (none
// for a local redirect, which the front end follows), the fields in
// sorted order, and the empty line. Fields that could not be sent safely (a
// name that is not a token, a value with CR, LF or NUL, Status itself) are
// left out; ReadResponse never returns such fields.
func (resp *Response) AppendHeader(dst []byte) []byte {
	if !resp.LocalRedirect {
		dst = appendStatus(dst, resp.Status, resp.Reason)
	}
	keys := make([]string, 0, len(resp.Header))
	for k := range resp.Header {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if refuseField(k) != "" {
			continue
		}
		for _, v := range resp.Header[k] {
			if validValue(v) {
				dst = appendField(dst, k, v)
			}
		}
	}
	return append(dst, "\r\n"...)
}

func validValue(v string) bool {
	return strings.IndexByte(v, '\r') < 0 && strings.IndexByte(v, '\n') < 0 && strings.IndexByte(v, 0) < 0
}

// bodyAllowed reports whether a response with status may carry a body
// (RFC 9110 section 6.4.1).
func bodyAllowed(status int) bool {
	return status != http.StatusNoContent && status != http.StatusNotModified && status >= 200
}

func (w *responseWriter) Write(p []byte) (int, error) { return write(w, p) }

// WriteString saves io.WriteString a conversion to []byte.
func (w *responseWriter) WriteString(s string) (int, error) { return write(w, s) }

func write[S []byte | string](w *responseWriter, p S) (int, error) {
	if w.done {
		return 0, errWriteAfterReturn
	}
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !bodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	if w.err != nil {
		return 0, w.err
	}
	if w.declared >= 0 && w.written+int64(len(p)) > w.declared {
		return 0, http.ErrContentLength
	}
	w.written += int64(len(p))
	if w.isHead || len(p) == 0 {
		return len(p), nil
	}
	if !w.committed {
		if len(w.bufs.body)+len(p) <= BufferSize {
			w.bufs.body = append(w.bufs.body, p...)
			return len(p), nil
		}
		if err := w.commit([]byte(p), false); err != nil {
			return 0, err
		}
	}
	n, err := w.out.Write([]byte(p))
	if err != nil {
		w.err = err
	}
	return n, err
}

// commit sends the header block and the held body to out. next is the data
// about to be written, used to sniff a Content-Type when nothing is held;
// final means the handler returned and the whole body is held.
func (w *responseWriter) commit(next []byte, final bool) error {
	w.committed = true
	b := w.bufs
	head := b.head
	sample := b.body
	if len(sample) == 0 {
		sample = next
	}
	if !w.hasType && !w.hasEncoding && bodyAllowed(w.status) && len(sample) > 0 {
		head = append(head, "Content-Type: "...)
		head = append(head, http.DetectContentType(sample)...)
		head = append(head, "\r\n"...)
	}
	if final && !w.hasLength && !w.hasEncoding && bodyAllowed(w.status) && (!w.isHead || w.written > 0) {
		head = append(head, "Content-Length: "...)
		head = strconv.AppendInt(head, w.written, 10)
		head = append(head, "\r\n"...)
	}
	head = append(head, "\r\n"...)
	// One write for the header block and the held body: a small response
	// leaves in one piece.
	head = append(slices.Grow(head, len(b.body)), b.body...)
	b.head, b.body = head, b.body[:0]
	if _, err := w.out.Write(head); err != nil {
		w.err = err
		return err
	}
	return nil
}

// Flush sends the header block and the body written so far to the client.
func (w *responseWriter) Flush() { _ = w.FlushError() }

// FlushError is Flush with its error, for http.ResponseController.
func (w *responseWriter) FlushError() error {
	if w.done {
		return errWriteAfterReturn
	}
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return w.err
	}
	if !w.committed {
		if err := w.commit(nil, false); err != nil {
			return err
		}
	}
	if err := w.out.Flush(); err != nil {
		w.err = err
		return err
	}
	return nil
}

// finish completes the response after the handler returned normally.
func (w *responseWriter) finish() error {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	w.done = true
	if w.err != nil {
		return w.err
	}
	if !w.committed {
		if err := w.commit(nil, true); err != nil {
			return err
		}
	}
	if w.declared >= 0 && w.written < w.declared && !w.isHead && bodyAllowed(w.status) {
		return cutShort(w.out, fmt.Sprintf("handler wrote %d of the %d bytes its Content-Length declared", w.written, w.declared))
	}
	return nil
}

// Committed implements Committer: the header block went to out.
func (w *responseWriter) Committed() bool { return w.committed }

// writeError implements failer.
func (w *responseWriter) writeError(detail string) error {
	w.done = true
	return WriteError(w.out, http.StatusInternalServerError, detail)
}

// cut implements failer: out hears of it when it is an Aborter.
func (w *responseWriter) cut(reason string) error {
	w.done = true
	return cutShort(w.out, reason)
}
