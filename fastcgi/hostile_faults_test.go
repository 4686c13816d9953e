package fastcgi

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// lateBody is what a handler writes after its request ended: more than
// the bridge holds back, so that it reaches the connection.
var lateBody = strings.Repeat("late ", 20000)

// fault ends a handler the way the named fault does: "return", "panic",
// "goexit" or "abort-handler" (http.ErrAbortHandler).
func fault(name string) {
	switch name {
	case "panic":
		panic("boom")
	case "goexit":
		runtime.Goexit()
	case "abort-handler":
		panic(http.ErrAbortHandler)
	}
}

// handlerEnd is what a handler saw at its end.
type handlerEnd struct {
	cause    error // its context's cause
	writeErr error // from its write after that
}

// faultMux serves /hello/, /wait (held until release, then it writes
// lateBody and reports on ended), and /fault/{before,after}/NAME, which
// fails with fault NAME before or after its headers were sent.
func faultMux(release <-chan struct{}, started chan<- struct{}, ended chan<- handlerEnd) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/hello/", hostileMux())
	mux.HandleFunc("/wait", func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
		_, err := io.WriteString(w, lateBody)
		if err == nil {
			err = http.NewResponseController(w).Flush()
		}
		ended <- handlerEnd{context.Cause(r.Context()), err}
	})
	mux.HandleFunc("/fault/before/{name}", func(w http.ResponseWriter, r *http.Request) {
		fault(r.PathValue("name"))
	})
	mux.HandleFunc("/fault/after/{name}", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "partial")
		w.(http.Flusher).Flush()
		fault(r.PathValue("name"))
	})
	return mux
}

// checkHello checks that the server answers another client meanwhile.
func checkHello(t *testing.T, addr string) {
	t.Helper()
	status, body, err := gofastGet("unix", addr, "/hello/other")
	if err != nil || status != http.StatusOK || body != helloBody("other") {
		t.Errorf("another client: %d %.40q %v, want 200 and its page", status, body, err)
	}
}

// TestHandlerFaultsOnAMultiplexedConnection: a handler that fails before
// its headers were sent gets a 500 and its connection goes on, with the
// request beside it on the same connection answered in full; one that
// fails after is cut short, which closes the connection (FastCGI's only
// signal for it, see the package doc), so the request beside it is
// cancelled with ErrConnClosed and its later writes fail. Other
// connections are served throughout and every goroutine ends.
func TestHandlerFaultsOnAMultiplexedConnection(t *testing.T) {
	tests := []struct {
		path   string
		closed bool // the connection closes
	}{
		{"/fault/before/panic", false},
		{"/fault/before/goexit", false},
		{"/fault/before/abort-handler", false},
		{"/fault/after/panic", true},
		{"/fault/after/goexit", true},
		{"/fault/after/abort-handler", true},
	}
	for _, tt := range tests {
		t.Run(strings.TrimPrefix(tt.path, "/fault/"), func(t *testing.T) {
			release, started, ended := make(chan struct{}), make(chan struct{}, 1), make(chan handlerEnd, 1)
			s, addr, logs := startServer(t, faultMux(release, started, ended), nil)
			base := goleak.IgnoreCurrent()
			rc := dialRaw(t, addr)
			rc.send(requestRecords(1, true, "", "REQUEST_METHOD=GET", "REQUEST_URI=/wait"))
			<-started
			rc.send(requestRecords(2, true, "", "REQUEST_METHOD=GET", "REQUEST_URI="+tt.path))
			if !tt.closed {
				got := rc.readResponses(2)[2]
				if !bytes.HasPrefix(got.stdout, []byte("Status: 500 ")) || got.protoStatus != statusRequestComplete {
					t.Errorf("faulty request answered %.40q %s, want a 500", got.stdout, got.protoStatus)
				}
				close(release)
				got = rc.readResponses(1)[1]
				if !bytes.HasSuffix(got.stdout, []byte(lateBody)) {
					t.Errorf("the request beside it answered %.40q, want its body", got.stdout)
				}
				if e := <-ended; e.writeErr != nil {
					t.Errorf("the request beside it: write error %v", e.writeErr)
				}
				rc.send(requestRecords(3, true, "", "REQUEST_METHOD=GET", "REQUEST_URI=/hello/again"))
				if got := rc.readResponses(3)[3]; !bytes.HasSuffix(got.stdout, []byte(helloBody("again"))) {
					t.Errorf("the next request on the connection answered %.40q", got.stdout)
				}
			} else {
				var out []byte
				for {
					r, err := rc.read()
					if err != nil {
						break
					}
					if r.h.Type == typeEndRequest {
						t.Fatalf("END_REQUEST for request %d on a connection cut short", r.h.ID)
					}
					if r.h.ID == 2 {
						out = append(out, r.content...)
					}
				}
				if !bytes.HasSuffix(out, []byte("partial")) {
					t.Errorf("cut response = %q, want what was sent", out)
				}
				e := <-ended
				if !errors.Is(e.cause, ErrConnClosed) || e.writeErr == nil {
					t.Errorf("the request beside it: cause %v, write error %v; want ErrConnClosed and a failed write", e.cause, e.writeErr)
				}
				if !strings.Contains(logs.String(), "response cut short") {
					t.Errorf("log lacks the cut response:\n%s", logs)
				}
			}
			checkHello(t, addr)
			if tt.closed {
				waitForBaseline(t, s, base)
			} else {
				waitForConns(t, s, 1, base) // the kept connection
			}
		})
	}
}

// TestHandlerIgnoringHandlerTimeout: a handler that ignores its context
// past HandlerTimeout: the web server gets a 503 and one END_REQUEST at
// the timeout, the connection goes on serving, and the handler's goroutine
// (still counted in Stats.Active, and holding a MaxRequests slot) ends
// when the handler returns, its late writes dropped.
func TestHandlerIgnoringHandlerTimeout(t *testing.T) {
	release, started, ended := make(chan struct{}), make(chan struct{}, 1), make(chan handlerEnd, 1)
	stuck := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/stuck" {
			hostileMux().ServeHTTP(w, r)
			return
		}
		started <- struct{}{}
		<-release // ignores its context
		_, err := io.WriteString(w, lateBody)
		if err == nil {
			err = http.NewResponseController(w).Flush()
		}
		ended <- handlerEnd{context.Cause(r.Context()), err}
	})
	s, addr, logs := startServer(t, stuck, func(s *Server) { s.HandlerTimeout = 200 * time.Millisecond })
	base := goleak.IgnoreCurrent()
	rc := dialRaw(t, addr)
	rc.send(requestRecords(1, true, "", "REQUEST_METHOD=GET", "REQUEST_URI=/stuck"))
	<-started
	got := rc.readResponses(1)[1]
	if !bytes.HasPrefix(got.stdout, []byte("Status: 503 ")) || got.protoStatus != statusRequestComplete {
		t.Errorf("stuck handler answered %.40q %s, want a 503", got.stdout, got.protoStatus)
	}
	rc.send(requestRecords(2, true, "", "REQUEST_METHOD=GET", "REQUEST_URI=/hello/next"))
	if got := rc.readResponses(2)[2]; !bytes.HasSuffix(got.stdout, []byte(helloBody("next"))) {
		t.Errorf("the next request on the connection answered %.40q", got.stdout)
	}
	checkHello(t, addr)
	if st := s.Stats(); st.Active != 1 {
		t.Errorf("Stats.Active = %d while the handler is stuck, want 1", st.Active)
	}
	close(release)
	if e := <-ended; !errors.Is(e.cause, ErrHandlerTimeout) || !errors.Is(e.writeErr, errRequestEnded) {
		t.Errorf("stuck handler: cause %v, late write %v; want ErrHandlerTimeout and errRequestEnded", e.cause, e.writeErr)
	}
	waitForConns(t, s, 1, base) // the kept connection
	if st := s.Stats(); st.Active != 0 {
		t.Errorf("Stats.Active = %d once the handler returned, want 0", st.Active)
	}
	// Nothing came for request 1 after its END_REQUEST: the next record
	// answers this GET_VALUES.
	var q []byte
	q = appendPair(q, "FCGI_MPXS_CONNS", "")
	rc.send(appendRecord(nil, typeGetValues, 0, q))
	if r := rc.mustRead(); r.h.Type != typeGetValuesResult {
		t.Errorf("after the late writes got %s for request %d, want FCGI_GET_VALUES_RESULT", r.h.Type, r.h.ID)
	}
	if !strings.Contains(logs.String(), "handler timeout") {
		t.Errorf("log lacks the timeout:\n%s", logs)
	}
}

// TestHandlerAfterCancellation: once a request was aborted by the web
// server (FCGI_ABORT_REQUEST) or its connection dropped, its handler's
// writes fail and go nowhere whatever it does next (return, panic,
// runtime.Goexit): an aborted request gets exactly one END_REQUEST, the
// connection or the server goes on, and the handler's goroutine ends.
func TestHandlerAfterCancellation(t *testing.T) {
	for _, how := range []string{"abort", "drop"} {
		for _, then := range []string{"return", "panic", "goexit"} {
			t.Run(how+" then "+then, func(t *testing.T) {
				started, ended := make(chan struct{}), make(chan handlerEnd, 1)
				h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if r.URL.Path != "/cancelled" {
						hostileMux().ServeHTTP(w, r)
						return
					}
					close(started)
					<-r.Context().Done()
					_, err := io.WriteString(w, lateBody)
					if err == nil {
						err = http.NewResponseController(w).Flush()
					}
					ended <- handlerEnd{context.Cause(r.Context()), err}
					fault(then)
				})
				s, addr, _ := startServer(t, h, nil)
				base := goleak.IgnoreCurrent()
				rc := dialRaw(t, addr)
				b := beginRecord(1, roleResponder, true)
				rc.send(append(b, paramsRecords(1, "REQUEST_METHOD=GET", "REQUEST_URI=/cancelled")...))
				<-started
				want := ErrAborted
				if how == "abort" {
					rc.send(appendRecord(nil, typeAbortRequest, 1, nil))
				} else {
					rc.c.Close()
					want = ErrConnClosed
				}
				e := <-ended
				if !errors.Is(e.cause, want) || e.writeErr == nil {
					t.Errorf("handler: cause %v, late write %v; want %v and a failed write", e.cause, e.writeErr, want)
				}
				if how == "abort" {
					waitForConns(t, s, 1, base) // the kept connection
				} else {
					waitForBaseline(t, s, base)
				}
				if how == "abort" {
					got := rc.readResponses(1)[1]
					if len(got.stdout) > 0 || got.protoStatus != statusRequestComplete {
						t.Errorf("aborted request answered %.40q %s, want nothing and REQUEST_COMPLETE", got.stdout, got.protoStatus)
					}
					// One END_REQUEST only: the next record answers the
					// next request.
					rc.send(requestRecords(2, true, "", "REQUEST_METHOD=GET", "REQUEST_URI=/hello/next"))
					if got := rc.readResponses(2)[2]; !bytes.HasSuffix(got.stdout, []byte(helloBody("next"))) {
						t.Errorf("the next request on the connection answered %.40q", got.stdout)
					}
				}
				checkHello(t, addr)
			})
		}
	}
}
