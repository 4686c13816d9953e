package fastcgi

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// heldConn is the server's end of a connection whose first read to hit
// its deadline waits for the test before it reports the timeout: the test
// puts a request in the socket right as the server gives up waiting,
// which is the race a web server reusing a kept connection runs against
// Shutdown. closed is closed with the connection. A write, once holdWrite
// is set, waits until it is closed.
type heldConn struct {
	net.Conn
	timedOut, resume, closed chan struct{}
	timeoutOnce, closeOnce   sync.Once

	mu        sync.Mutex
	holdWrite chan struct{}
}

func (c *heldConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	hold := c.holdWrite
	c.holdWrite = nil
	c.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-c.closed:
		}
	}
	return c.Conn.Write(p)
}

func (c *heldConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n == 0 && errors.Is(err, os.ErrDeadlineExceeded) {
		first := false
		c.timeoutOnce.Do(func() { first = true; close(c.timedOut) })
		if first {
			select {
			case <-c.resume:
			case <-c.closed: // the test failed and the server closes
			}
		}
	}
	return n, err
}

func (c *heldConn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

func (c *heldConn) SyscallConn() (syscall.RawConn, error) {
	return c.Conn.(syscall.Conn).SyscallConn()
}

// heldListener makes every connection a heldConn and hands it to the test.
type heldListener struct {
	net.Listener
	conns chan *heldConn
}

func (l *heldListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	h := &heldConn{Conn: c, timedOut: make(chan struct{}), resume: make(chan struct{}), closed: make(chan struct{})}
	l.conns <- h
	return h, nil
}

// TestShutdownAnswersARequestAlreadySent: when Shutdown ends a kept
// connection's wait for its next request (idle when Shutdown started, or
// done with its last request since), a request already in the socket is
// answered before the connection closes, not reset unread.
func TestShutdownAnswersARequestAlreadySent(t *testing.T) {
	tests := []struct {
		name     string
		inFlight bool // a request is in flight when Shutdown starts
	}{
		{name: "idle when Shutdown starts"},
		{name: "request in flight when Shutdown starts", inFlight: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			started, release := make(chan struct{}), make(chan struct{})
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/block" {
					close(started)
					<-release
				}
				io.WriteString(w, "answered "+r.URL.Path)
			})
			logs := new(syncBuffer)
			s := &Server{Handler: h, Logger: slog.New(slog.NewTextHandler(logs, nil))}
			addr := filepath.Join(t.TempDir(), "fcgi.sock")
			l, err := Listen("unix:"+addr, 0)
			if err != nil {
				t.Fatal(err)
			}
			hl := &heldListener{Listener: l, conns: make(chan *heldConn, 1)}
			served := make(chan error, 1)
			go func() { served <- s.Serve(hl) }()
			defer func() {
				s.Close()
				<-served
			}()
			get := func(path string) []byte {
				return requestRecords(1, true, "", "REQUEST_METHOD=GET", "SERVER_PROTOCOL=HTTP/1.1", "REQUEST_URI="+path, "CONTENT_LENGTH=")
			}

			rc := dialRaw(t, addr)
			hc := <-hl.conns
			shut := make(chan error, 1)
			if tt.inFlight {
				rc.send(get("/block"))
				<-started
				go func() { shut <- s.Shutdown(context.Background()) }()
				close(release)
			} else {
				rc.send(get("/first"))
				if got := rc.readResponses(1)[1]; !bytes.HasSuffix(got.stdout, []byte("answered /first")) {
					t.Fatalf("first request answered %q", got.stdout)
				}
				go func() { shut <- s.Shutdown(context.Background()) }()
			}
			// The server gives up waiting (or, without the fix, closes
			// the connection at the end of the request in flight).
			select {
			case <-hc.timedOut:
			case <-hc.closed:
			}
			if tt.inFlight {
				if got := rc.readResponses(1)[1]; !bytes.HasSuffix(got.stdout, []byte("answered /block")) {
					t.Fatalf("request in flight answered %q", got.stdout)
				}
			}
			// nginx reuses the connection: its next request is in the
			// socket before the server acts on the end of its wait.
			_, werr := rc.c.Write(get("/next"))
			close(hc.resume)
			if werr != nil {
				t.Fatalf("sending the next request: %v; want it answered", werr)
			}
			resp, err := rc.readResponse(1)
			if err != nil || !bytes.HasSuffix(resp.stdout, []byte("answered /next")) {
				t.Fatalf("the request sent as Shutdown closed the connection: %q, %v; want it answered\n%s", resp.stdout, err, logs)
			}
			rc.expectClosed()
			if err := <-shut; err != nil {
				t.Errorf("Shutdown = %v", err)
			}
		})
	}
}

// TestShutdownWritesEndRequestBeforeClosing: a kept connection whose last
// request ends while Shutdown drains counts as idle only once that
// request's END_REQUEST is written; closing it any earlier would cut an
// answered request. The test holds the write of END_REQUEST for a while:
// the connection must stay open meanwhile.
func TestShutdownWritesEndRequestBeforeClosing(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
	})
	logs := new(syncBuffer)
	s := &Server{Handler: h, Logger: slog.New(slog.NewTextHandler(logs, nil))}
	addr := filepath.Join(t.TempDir(), "fcgi.sock")
	l, err := Listen("unix:"+addr, 0)
	if err != nil {
		t.Fatal(err)
	}
	hl := &heldListener{Listener: l, conns: make(chan *heldConn, 2)}
	served := make(chan error, 1)
	go func() { served <- s.Serve(hl) }()
	defer func() {
		s.Close()
		<-served
	}()

	rc := dialRaw(t, addr)
	hc := <-hl.conns
	close(hc.resume) // reads are not held here
	rc.send(requestRecords(1, true, "", getHello...))
	<-started
	// An idle connection closes drainGrace after Shutdown starts: by then
	// the busy one is draining too, and its drain deadline has passed.
	idle := dialRaw(t, addr)
	close((<-hl.conns).resume)
	var q []byte
	q = appendPair(q, "FCGI_MPXS_CONNS", "")
	idle.send(appendRecord(nil, typeGetValues, 0, q))
	idle.mustRead()
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	idle.expectClosed()

	hold := make(chan struct{})
	hc.mu.Lock()
	hc.holdWrite = hold
	hc.mu.Unlock()
	close(release)
	// Nothing tells the test that the server will not close the
	// connection: watch it for a while.
	select {
	case <-hc.closed:
		t.Errorf("the connection closed while its END_REQUEST was being written")
	case <-time.After(200 * time.Millisecond):
	}
	close(hold)
	resp, err := rc.readResponse(1)
	if err != nil || resp.protoStatus != statusRequestComplete {
		t.Fatalf("the request that ended during Shutdown: %+v, %v; want its END_REQUEST\n%s", resp, err, logs)
	}
	rc.expectClosed()
	if err := <-shut; err != nil {
		t.Errorf("Shutdown = %v", err)
	}
}

// readResponse reads the records of request id up to its END_REQUEST, and
// returns an error instead of failing the test when the connection ends
// first.
func (rc *rawConn) readResponse(id uint16) (*response, error) {
	resp := new(response)
	for {
		r, err := rc.read()
		if err != nil {
			return resp, err
		}
		if r.h.ID != id {
			return resp, errors.New("a record for another request")
		}
		switch r.h.Type {
		case typeStdout:
			resp.stdout = append(resp.stdout, r.content...)
		case typeStderr:
			resp.stderr = append(resp.stderr, r.content...)
		case typeEndRequest:
			if len(r.content) == 8 {
				resp.protoStatus = protocolStatus(r.content[4])
			}
			return resp, nil
		}
	}
}

// gateListener holds its first accepted connection until the test lets
// it go, and tells the test when it is closed.
type gateListener struct {
	net.Listener
	accepted, proceed, closed chan struct{}
	acceptOnce, closeOnce     sync.Once
}

func (l *gateListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.acceptOnce.Do(func() {
		close(l.accepted)
		<-l.proceed
	})
	return c, nil
}

func (l *gateListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// TestShutdownServesAConnectionAcceptedAsItBegins: a connection that
// Accept returned as Shutdown closed the listener holds a request the web
// server sent: it is answered, and Shutdown waits for it, instead of the
// connection being closed under the request.
func TestShutdownServesAConnectionAcceptedAsItBegins(t *testing.T) {
	logs := new(syncBuffer)
	s := &Server{Handler: helloHandler(), Logger: slog.New(slog.NewTextHandler(logs, nil))}
	addr := filepath.Join(t.TempDir(), "fcgi.sock")
	l, err := Listen("unix:"+addr, 0)
	if err != nil {
		t.Fatal(err)
	}
	gl := &gateListener{Listener: l, accepted: make(chan struct{}), proceed: make(chan struct{}), closed: make(chan struct{})}
	var serveErr error
	served := make(chan struct{})
	go func() {
		serveErr = s.Serve(gl)
		close(served)
	}()
	defer func() {
		s.Close()
		<-served
	}()

	rc := dialRaw(t, addr)
	rc.send(requestRecords(1, true, "", getHello...))
	<-gl.accepted
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	<-gl.closed
	close(gl.proceed)
	resp, err := rc.readResponse(1)
	if err != nil || string(resp.stdout) != helloStream || resp.protoStatus != statusRequestComplete {
		t.Fatalf("the request on the connection accepted as Shutdown began: %q, %v; want it answered\n%s", resp.stdout, err, logs)
	}
	rc.expectClosed()
	if err := <-shut; err != nil {
		t.Errorf("Shutdown = %v", err)
	}
	<-served
	if !errors.Is(serveErr, ErrServerClosed) {
		t.Errorf("Serve = %v, want ErrServerClosed", serveErr)
	}
}
