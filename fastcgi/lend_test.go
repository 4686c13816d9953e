package fastcgi

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cgirun/cgirun/bridge"
)

// bodyReader is a handler that reads its body a chunk at a time, telling
// the test of each chunk on got, and answers with the byte count and hash
// of what it read, or with the read's error. When stopAfter is set, it
// answers once it has read that many bytes, without reading the rest.
type bodyReader struct {
	got       chan int
	stopAfter int
	errs      chan error // each request's last read error (nil at EOF) and context cause
}

func newBodyReader() *bodyReader {
	return &bodyReader{got: make(chan int, 1024), errs: make(chan error, 16)}
}

func (b *bodyReader) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := sha256.New()
	p := make([]byte, 4096)
	total := 0
	var err error
	for {
		var n int
		n, err = r.Body.Read(p)
		h.Write(p[:n])
		total += n
		if n > 0 {
			b.got <- n
		}
		if err != nil || b.stopAfter > 0 && total >= b.stopAfter {
			break
		}
	}
	if err == io.EOF {
		err = nil
	}
	b.errs <- err
	if err != nil {
		b.errs <- context.Cause(r.Context())
		return
	}
	fmt.Fprintf(w, "read %d %x", total, h.Sum(nil))
}

// waitRead waits until the handler has read n more bytes.
func (b *bodyReader) waitRead(t *testing.T, n int) {
	t.Helper()
	for got := 0; got < n; {
		select {
		case m := <-b.got:
			got += m
		case <-time.After(10 * time.Second):
			t.Fatalf("the handler read %d of %d bytes in 10 s", got, n)
		}
	}
}

// ping sends FCGI_GET_VALUES, a record that concerns no request, and
// reads its answer.
func (rc *rawConn) ping() {
	rc.t.Helper()
	var q []byte
	q = appendPair(q, "FCGI_MPXS_CONNS", "")
	rc.send(appendRecord(nil, typeGetValues, 0, q))
	if r := rc.mustRead(); r.h.Type != typeGetValuesResult {
		rc.t.Fatalf("answer to FCGI_GET_VALUES = %s for request %d, want FCGI_GET_VALUES_RESULT", r.h.Type, r.h.ID)
	}
}

// pingUntilLent waits until the server has lent a connection's reader n
// times in all, while the handler of the connection's only request waits,
// or is about to wait, for body bytes. Each ping brings the serve loop back
// to where it would wait for a record, and it lends its reader there when
// the handler waits. A lend is counted before the reader can come back to
// the serve loop, so the answer to the second ping after it shows it.
func pingUntilLent(t *testing.T, s *Server, rc *rawConn, n uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.stats.lends.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("the reader was lent %d times, want %d", s.stats.lends.Load(), n)
		}
		rc.ping()
	}
}

// startLentBody sends request id's header block and two body chunks, each
// once the handler has read the one before, then lends the reader to the
// handler (pingUntilLent); it returns the bytes sent.
func startLentBody(t *testing.T, s *Server, rc *rawConn, br *bodyReader, id uint16) []byte {
	t.Helper()
	lends := s.stats.lends.Load()
	b := beginRecord(id, roleResponder, true)
	b = append(b, paramsRecords(id, "REQUEST_METHOD=POST", "REQUEST_URI=/", "CONTENT_LENGTH=")...)
	rc.send(b)
	var sent []byte
	for i := range 2 {
		chunk := bytes.Repeat([]byte{byte('a' + i)}, 1000)
		rc.send(appendStream(nil, typeStdin, id, chunk))
		sent = append(sent, chunk...)
		br.waitRead(t, len(chunk))
	}
	pingUntilLent(t, s, rc, lends+1)
	return sent
}

// wantFailed checks that the handler's last read failed with want, and
// that its context was cancelled with want as the cause.
func (b *bodyReader) wantFailed(t *testing.T, want error) {
	t.Helper()
	if err, cause := <-b.errs, <-b.errs; !errors.Is(err, want) || !errors.Is(cause, want) {
		t.Errorf("body read error %v, context cause %v; want %v for both", err, cause, want)
	}
}

// wantServesNext checks that the connection serves a next request, with a
// body, as request 2.
func wantServesNext(t *testing.T, rc *rawConn) {
	t.Helper()
	rc.send(requestRecords(2, true, "next", "REQUEST_METHOD=POST", "REQUEST_URI=/"))
	wantBody(t, rc.readResponses(2)[2], []byte("next"))
}

func wantBody(t *testing.T, got *response, body []byte) {
	t.Helper()
	want := fmt.Sprintf("read %d %x", len(body), sha256.Sum256(body))
	if !strings.HasSuffix(string(got.stdout), "\r\n\r\n"+want) || got.protoStatus != statusRequestComplete {
		t.Fatalf("response = %q %s, want a body of %q", got.stdout, got.protoStatus, want)
	}
}

// pipeListener gives the server one end of a net.Pipe for each dial: a
// write on the other end returns once the server has read all of it.
type pipeListener struct {
	conns     chan net.Conn
	closed    chan struct{}
	closeOnce sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// dial connects to the server; the connection is closed at the end of the
// test.
func (l *pipeListener) dial(t *testing.T) *rawConn {
	t.Helper()
	srv, c := net.Pipe()
	select {
	case l.conns <- srv:
	case <-l.closed:
		t.Fatal("dial: the listener is closed")
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return &rawConn{t: t, c: c, br: bufio.NewReader(c)}
}

// TestLentReaderReadsTheBody: a handler that has the connection's reader
// reads records split anywhere, padded or not, across many writes, and
// the serve loop then serves the next request on the connection. Over a
// pipe, every write is read apart: the handler meets every cut.
func TestLentReaderReadsTheBody(t *testing.T) {
	tests := []struct {
		name   string
		listen func(t *testing.T) (net.Listener, func(t *testing.T) *rawConn)
	}{
		{"unix socket", func(t *testing.T) (net.Listener, func(t *testing.T) *rawConn) {
			addr := filepath.Join(t.TempDir(), "fcgi.sock")
			l, err := Listen("unix:"+addr, 0)
			if err != nil {
				t.Fatal(err)
			}
			return l, func(t *testing.T) *rawConn { return dialRaw(t, addr) }
		}},
		{"pipe", func(t *testing.T) (net.Listener, func(t *testing.T) *rawConn) {
			l := newPipeListener()
			return l, l.dial
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			br := newBodyReader()
			l, dial := tt.listen(t)
			s, _ := serveOn(t, l, br, nil)
			rc := dial(t)
			body := startLentBody(t, s, rc, br, 1)
			var rest []byte
			for i := range 40 {
				chunk := bytes.Repeat([]byte{byte('c' + i%20)}, 1+i*997%9000)
				body = append(body, chunk...)
				if i%3 == 0 {
					rest = append(rest, rawRecord(typeStdin, 1, chunk, i%9)...)
				} else {
					rest = appendStream(rest, typeStdin, 1, chunk)
				}
			}
			rest = appendStream(rest, typeStdin, 1, nil)
			// Writes that cut headers, contents and padding anywhere.
			for off, i := 0, 0; off < len(rest); i++ {
				n := min(len(rest)-off, []int{3, 8, 11, 4096, 70000, 1}[i%6])
				rc.send(rest[off : off+n])
				off += n
			}
			wantBody(t, rc.readResponses(1)[1], body)
			if err := <-br.errs; err != nil {
				t.Fatalf("body read error %v", err)
			}
			// The serve loop has the reader again: a second request, with
			// its body sent whole.
			rc.send(requestRecords(2, true, "second", "REQUEST_METHOD=POST", "REQUEST_URI=/"))
			wantBody(t, rc.readResponses(2)[2], []byte("second"))
		})
	}
}

// TestLentReaderAbort: FCGI_ABORT_REQUEST, read by the handler that has
// the reader, fails its read, cancels its context and ends the request;
// the connection goes on.
func TestLentReaderAbort(t *testing.T) {
	br := newBodyReader()
	s, addr, _ := startServer(t, br, nil)
	rc := dialRaw(t, addr)
	startLentBody(t, s, rc, br, 1)
	rc.send(appendRecord(nil, typeAbortRequest, 1, nil))
	if got := rc.readResponses(1)[1]; len(got.stdout) != 0 || got.protoStatus != statusRequestComplete {
		t.Errorf("aborted request answered %q %s, want nothing and REQUEST_COMPLETE", got.stdout, got.protoStatus)
	}
	br.wantFailed(t, ErrAborted)
	wantServesNext(t, rc)
}

// TestLentReaderConnectionDrop: the web server closes the connection while
// the handler has the reader: the read fails, the context is cancelled.
func TestLentReaderConnectionDrop(t *testing.T) {
	br := newBodyReader()
	s, addr, _ := startServer(t, br, nil)
	rc := dialRaw(t, addr)
	startLentBody(t, s, rc, br, 1)
	rc.c.Close()
	br.wantFailed(t, ErrConnClosed)
	waitIdle(t, s)
}

// waitIdle waits until the server holds no connection.
func waitIdle(t *testing.T, s *Server) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.Stats().OpenConns != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections still open", s.Stats().OpenConns)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestLentReaderHandlerAnswersEarly: a handler that answers before its
// body ends gives the reader back; the rest of the body is dropped and the
// next request on the connection is served.
func TestLentReaderHandlerAnswersEarly(t *testing.T) {
	br := newBodyReader()
	br.stopAfter = 3000
	s, addr, _ := startServer(t, br, nil)
	rc := dialRaw(t, addr)
	body := startLentBody(t, s, rc, br, 1)
	more := bytes.Repeat([]byte("z"), 1000)
	rc.send(appendStream(nil, typeStdin, 1, more))
	wantBody(t, rc.readResponses(1)[1], append(body, more...))
	// What the web server still sends for it is read and dropped.
	rc.send(appendStream(appendStream(nil, typeStdin, 1, bytes.Repeat([]byte("y"), 50000)), typeStdin, 1, nil))
	rc.send(requestRecords(2, true, "after", "REQUEST_METHOD=POST", "REQUEST_URI=/"))
	wantBody(t, rc.readResponses(2)[2], []byte("after"))
	<-br.errs
	if err := <-br.errs; err != nil {
		t.Errorf("second request's body read error %v", err)
	}
}

// TestLentReaderMultiplexed: a second request on the connection while the
// first one's handler has the reader is answered before the first one's
// body ends.
func TestLentReaderMultiplexed(t *testing.T) {
	br := newBodyReader()
	s, addr, _ := startServer(t, br, nil)
	rc := dialRaw(t, addr)
	body := startLentBody(t, s, rc, br, 1)
	rc.send(requestRecords(2, true, "two", "REQUEST_METHOD=POST", "REQUEST_URI=/"))
	wantBody(t, rc.readResponses(2)[2], []byte("two"))
	more := []byte("the end of one")
	rc.send(appendStream(appendStream(nil, typeStdin, 1, more), typeStdin, 1, nil))
	wantBody(t, rc.readResponses(1)[1], append(body, more...))
}

// TestLentReaderHandlerTimeout: a handler past HandlerTimeout while it
// has the reader gets its 503; the connection serves the next request.
func TestLentReaderHandlerTimeout(t *testing.T) {
	br := newBodyReader()
	s, addr, _ := startServer(t, br, func(s *Server) { s.HandlerTimeout = 300 * time.Millisecond })
	rc := dialRaw(t, addr)
	startLentBody(t, s, rc, br, 1)
	got := rc.readResponses(1)[1]
	if !bytes.HasPrefix(got.stdout, []byte("Status: 503 ")) || got.protoStatus != statusRequestComplete {
		t.Fatalf("timed-out request answered %q %s, want 503", got.stdout, got.protoStatus)
	}
	// The handler still waits in a read of the socket: the next records
	// reach it, and the connection's reader goes back to the serve loop.
	rc.send(appendStream(nil, typeStdin, 1, []byte("late")))
	br.wantFailed(t, ErrHandlerTimeout)
	wantServesNext(t, rc)
}

// TestLentReaderProtocolError: a protocol error read by the handler that
// has the reader closes the connection, as the serve loop would.
func TestLentReaderProtocolError(t *testing.T) {
	br := newBodyReader()
	s, addr, logs := startServer(t, br, nil)
	rc := dialRaw(t, addr)
	startLentBody(t, s, rc, br, 1)
	rc.send(paramsRecords(1, "LATE=1"))
	rc.expectClosed()
	br.wantFailed(t, ErrConnClosed)
	waitIdle(t, s)
	if !strings.Contains(logs.String(), "protocol error") {
		t.Errorf("log has no protocol error:\n%s", logs)
	}
}

// TestLentReaderContentLength: a handler that reads its CONTENT_LENGTH and
// never reads again (the body's end comes from the length) gives the
// reader back with the last byte: the serve loop reads on and sees the
// connection close while the handler works.
func TestLentReaderContentLength(t *testing.T) {
	const length = 5000
	read, cause := make(chan error, 1), make(chan error, 1)
	started := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		_, err := io.ReadFull(r.Body, make([]byte, length))
		read <- err
		<-r.Context().Done()
		cause <- context.Cause(r.Context())
	})
	s, addr, _ := startServer(t, h, nil)
	rc := dialRaw(t, addr)
	b := beginRecord(1, roleResponder, true)
	b = append(b, paramsRecords(1, "REQUEST_METHOD=POST", "REQUEST_URI=/", fmt.Sprintf("CONTENT_LENGTH=%d", length))...)
	rc.send(b)
	<-started
	pingUntilLent(t, s, rc, 1)
	var body []byte
	for sent := 0; sent < length; sent += 1000 {
		body = appendStream(body, typeStdin, 1, bytes.Repeat([]byte("x"), 1000))
	}
	rc.send(body)
	if err := <-read; err != nil {
		t.Fatalf("reading the body: %v", err)
	}
	rc.send(appendStream(nil, typeStdin, 1, nil))
	rc.c.Close()
	select {
	case err := <-cause:
		if !errors.Is(err, ErrConnClosed) {
			t.Errorf("context cause = %v, want ErrConnClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the connection closed 10 s ago and the handler's context is not cancelled: nobody reads the connection")
	}
}

// TestBodyKnownEmpty: a request whose empty STDIN comes with its header
// block, as nginx sends a GET, starts its handler with a nil Body (known
// to be empty), and its http.Request's body reads nothing; a body with
// bytes, or whose end comes later, is a stream.
func TestBodyKnownEmpty(t *testing.T) {
	type seen struct {
		body string
		err  error
	}
	started, read := make(chan bool, 1), make(chan seen, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- bridge.RequestOf(r).Body == nil
		b, err := io.ReadAll(r.Body)
		read <- seen{string(b), err}
	})
	_, addr, _ := startServer(t, h, nil)
	rc := dialRaw(t, addr)
	get := []string{"REQUEST_METHOD=GET", "REQUEST_URI=/"}
	tests := []struct {
		name    string
		send    []byte // before the handler starts
		later   bool   // the empty STDIN is sent once the handler runs
		nilBody bool
		body    string
	}{
		{name: "a GET sent whole", send: requestRecords(1, true, "", get...), nilBody: true},
		{name: "a POST with a body", send: requestRecords(2, true, "x", "REQUEST_METHOD=POST", "REQUEST_URI=/"), body: "x"},
		{name: "a GET whose STDIN ends later", send: append(beginRecord(3, roleResponder, true), paramsRecords(3, get...)...), later: true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := uint16(i + 1)
			rc.send(tt.send)
			if nilBody := <-started; nilBody != tt.nilBody {
				t.Errorf("handler's Body == nil is %v, want %v", nilBody, tt.nilBody)
			}
			if tt.later {
				rc.send(appendStream(nil, typeStdin, id, nil))
			}
			if got := <-read; got.body != tt.body || got.err != nil {
				t.Errorf("io.ReadAll(r.Body) = %q, %v; want %q, nil", got.body, got.err, tt.body)
			}
			rc.readResponses(id)
		})
	}
}

// TestParamsTakesTheEmptyStdin: the serve loop, at the end of a request's
// FCGI_PARAMS, takes the empty STDIN that follows in its buffer before it
// starts the handler, whatever the handler's goroutine does meanwhile.
func TestParamsTakesTheEmptyStdin(t *testing.T) {
	s := &Server{Handler: helloHandler()}
	srv, web := net.Pipe()
	defer srv.Close()
	go io.Copy(io.Discard, web)
	c := newConn(s, srv, context.Background(), s.responder())
	c.rr.init(bytes.NewReader(requestRecords(1, true, "", getHello...)))
	var r *request
	for r == nil || !r.paramsDone {
		h, content, err := c.rr.next()
		if err != nil {
			t.Fatalf("reading the request: %v", err)
		}
		if err := c.handle(h, content); err != nil {
			t.Fatal(err)
		}
		c.mu.Lock()
		if q := c.reqs[1]; q != nil {
			r = q
		}
		c.mu.Unlock()
	}
	if r.breq.Body != nil || r.stdin.open() {
		t.Errorf("the handler started before its body was known empty")
	}
	if _, _, err := c.rr.next(); err != io.EOF {
		t.Errorf("after FCGI_PARAMS: %v, want the empty STDIN taken", err)
	}
}

// TestLentReaderSmallInputBuffer: with an InputBuffer smaller than a
// record, the reader is never lent (a handler pulling a record it has no
// room for would wait for itself); the body still arrives whole.
func TestLentReaderSmallInputBuffer(t *testing.T) {
	br := newBodyReader()
	s, addr, _ := startServer(t, br, func(s *Server) { s.InputBuffer = 1024 })
	rc := dialRaw(t, addr)
	b := beginRecord(1, roleResponder, true)
	rc.send(append(b, paramsRecords(1, "REQUEST_METHOD=POST", "REQUEST_URI=/", "CONTENT_LENGTH=")...))
	var body []byte
	for i := range 4 {
		chunk := bytes.Repeat([]byte{byte('a' + i)}, 8000)
		body = append(body, chunk...)
		rc.send(appendStream(nil, typeStdin, 1, chunk))
		// The handler waits for the next chunk each time, as it
		// would when the reader can be lent.
		br.waitRead(t, len(chunk))
	}
	rc.send(appendStream(nil, typeStdin, 1, nil))
	wantBody(t, rc.readResponses(1)[1], body)
	if n := s.stats.lends.Load(); n != 0 {
		t.Errorf("the reader was lent %d times with a 1 KiB InputBuffer", n)
	}
}
