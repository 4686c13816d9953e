package fastcgi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/cgirun/cgirun/bridge"

	"github.com/cgirun/cgirun/internal/testlog"
)

func TestMain(m *testing.M) {
	if addr := os.Getenv(childServeEnv); addr != "" {
		serveChild(addr)
	}
	if how := os.Getenv(childListenEnv); how != "" {
		serveInherited(how)
	}
	goleak.VerifyTestMain(m)
}

// syncBuffer is a log destination safe for a server's goroutines.
type syncBuffer = testlog.Buffer

// startServer serves h on a unix socket in a temporary directory and stops
// the server at the end of the test. configure, when not nil, sets fields.
func startServer(t *testing.T, h http.Handler, configure func(*Server)) (s *Server, addr string, logs *syncBuffer) {
	t.Helper()
	addr = filepath.Join(t.TempDir(), "fcgi.sock")
	l, err := Listen("unix:"+addr, 0)
	if err != nil {
		t.Fatal(err)
	}
	s, logs = serveOn(t, l, h, configure)
	return s, addr, logs
}

// serveOn serves h on l and stops the server at the end of the test.
// configure, when not nil, sets fields.
func serveOn(t *testing.T, l net.Listener, h http.Handler, configure func(*Server)) (s *Server, logs *syncBuffer) {
	t.Helper()
	logs = new(syncBuffer)
	s = &Server{Handler: h, Logger: slog.New(slog.NewTextHandler(logs, nil))}
	if configure != nil {
		configure(s)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve = %v, want ErrServerClosed", err)
		}
	})
	return s, logs
}

// rawConn speaks FastCGI records by hand, for what no client library sends.
type rawConn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("unix", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	// A bound on every read, so that a broken server fails the test
	// instead of hanging it.
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return &rawConn{t: t, c: c, br: bufio.NewReader(c)}
}

func (rc *rawConn) send(b []byte) {
	rc.t.Helper()
	if _, err := rc.c.Write(b); err != nil {
		rc.t.Fatalf("write: %v", err)
	}
}

// record is one record as read back.
type record struct {
	h       header
	content []byte
}

func (rc *rawConn) read() (record, error) {
	hdr := make([]byte, headerLen)
	if _, err := io.ReadFull(rc.br, hdr); err != nil {
		return record{}, err
	}
	h, err := parseHeader(hdr)
	if err != nil {
		return record{}, err
	}
	body := make([]byte, int(h.ContentLength)+int(h.PaddingLength))
	if _, err := io.ReadFull(rc.br, body); err != nil {
		return record{}, err
	}
	return record{h, body[:h.ContentLength]}, nil
}

func (rc *rawConn) mustRead() record {
	rc.t.Helper()
	r, err := rc.read()
	if err != nil {
		rc.t.Fatalf("reading a record: %v", err)
	}
	return r
}

// response is what came back for one request id.
type response struct {
	stdout, stderr []byte
	protoStatus    protocolStatus
	// stdoutEnded and stderrEnded: an empty record closed the stream
	// before END_REQUEST.
	stdoutEnded, stderrEnded bool
}

// readResponses reads records until every id in ids has its END_REQUEST,
// and fails on a record after the END_REQUEST of its id.
func (rc *rawConn) readResponses(ids ...uint16) map[uint16]*response {
	rc.t.Helper()
	out := make(map[uint16]*response)
	for _, id := range ids {
		out[id] = new(response)
	}
	ended := map[uint16]bool{}
	for len(ended) < len(ids) {
		r := rc.mustRead()
		resp := out[r.h.ID]
		if resp == nil || ended[r.h.ID] {
			rc.t.Fatalf("unexpected %s for request %d", r.h.Type, r.h.ID)
		}
		switch r.h.Type {
		case typeStdout:
			if resp.stdoutEnded {
				rc.t.Fatalf("request %d: STDOUT after its end", r.h.ID)
			}
			resp.stdout = append(resp.stdout, r.content...)
			resp.stdoutEnded = len(r.content) == 0
		case typeStderr:
			resp.stderr = append(resp.stderr, r.content...)
			resp.stderrEnded = len(r.content) == 0
		case typeEndRequest:
			if len(r.content) != 8 {
				rc.t.Fatalf("END_REQUEST content %d bytes, want 8", len(r.content))
			}
			resp.protoStatus = protocolStatus(r.content[4])
			ended[r.h.ID] = true
		default:
			rc.t.Fatalf("unexpected record %s", r.h.Type)
		}
	}
	return out
}

// expectClosed reads until the server closes the connection, failing on
// any record.
func (rc *rawConn) expectClosed() {
	rc.t.Helper()
	r, err := rc.read()
	if err == nil {
		rc.t.Fatalf("got %s for request %d, want the connection closed", r.h.Type, r.h.ID)
	}
	if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
		rc.t.Fatalf("read = %v, want the connection closed", err)
	}
}

func beginRecord(id uint16, role uint16, keep bool) []byte {
	var flags byte
	if keep {
		flags = flagKeepConn
	}
	body := binary.BigEndian.AppendUint16(nil, role)
	body = append(body, flags, 0, 0, 0, 0, 0)
	return appendRecord(nil, typeBeginRequest, id, body)
}

func paramsRecords(id uint16, env ...string) []byte {
	var pairs []byte
	for _, kv := range env {
		name, value, _ := strings.Cut(kv, "=")
		pairs = appendPair(pairs, name, value)
	}
	b := appendStream(nil, typeParams, id, pairs)
	return appendStream(b, typeParams, id, nil)
}

// request builds a whole Responder request: BEGIN, PARAMS, STDIN.
func requestRecords(id uint16, keep bool, body string, env ...string) []byte {
	b := beginRecord(id, roleResponder, keep)
	b = append(b, paramsRecords(id, env...)...)
	if body != "" {
		b = appendStream(b, typeStdin, id, []byte(body))
	}
	return appendStream(b, typeStdin, id, nil)
}

var getHello = []string{"REQUEST_METHOD=GET", "SERVER_PROTOCOL=HTTP/1.1", "REQUEST_URI=/", "CONTENT_LENGTH="}

func helloHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.Error(w, "Not Found", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "Hello, World!\n")
	})
}

const helloStream = "Status: 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 14\r\n\r\nHello, World!\n"

func TestServeResponder(t *testing.T) {
	_, addr, _ := startServer(t, helloHandler(), nil)
	rc := dialRaw(t, addr)
	rc.send(requestRecords(1, true, "", getHello...))
	got := rc.readResponses(1)[1]
	if string(got.stdout) != helloStream || !got.stdoutEnded || got.protoStatus != statusRequestComplete {
		t.Errorf("response = %q ended=%v %s, want %q ended REQUEST_COMPLETE", got.stdout, got.stdoutEnded, got.protoStatus, helloStream)
	}
	// The connection was kept: a second request on it.
	rc.send(requestRecords(1, false, "", append(getHello[:len(getHello):len(getHello)], "REQUEST_URI=/missing")...))
	got = rc.readResponses(1)[1]
	if !bytes.HasPrefix(got.stdout, []byte("Status: 404 Not Found\r\n")) {
		t.Errorf("second response = %q, want a 404", got.stdout)
	}
	// Without FCGI_KEEP_CONN the server closes after END_REQUEST.
	rc.expectClosed()
}

func TestMultiplexing(t *testing.T) {
	release := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/slow":
			<-release // held until the fast request has been answered
			io.WriteString(w, "slow")
		case "/no-read":
			// Does not read its body: its bounded input buffer fills.
			<-release
			io.WriteString(w, "no-read")
		default:
			b, _ := io.ReadAll(r.Body)
			io.WriteString(w, "fast:"+string(b))
		}
	})
	_, addr, _ := startServer(t, h, func(s *Server) { s.InputBuffer = 1024 })
	rc := dialRaw(t, addr)
	var b []byte
	b = append(b, beginRecord(1, roleResponder, true)...)
	b = append(b, beginRecord(2, roleResponder, true)...)
	b = append(b, beginRecord(3, roleResponder, true)...)
	b = append(b, paramsRecords(1, "REQUEST_METHOD=GET", "REQUEST_URI=/slow")...)
	b = append(b, paramsRecords(3, "REQUEST_METHOD=POST", "REQUEST_URI=/no-read", "CONTENT_LENGTH=1000")...)
	b = append(b, appendStream(nil, typeStdin, 3, bytes.Repeat([]byte("x"), 1000))...)
	b = append(b, paramsRecords(2, "REQUEST_METHOD=POST", "REQUEST_URI=/fast", "CONTENT_LENGTH=4")...)
	b = append(b, appendStream(nil, typeStdin, 2, []byte("body"))...)
	b = append(b, appendStream(nil, typeStdin, 2, nil)...)
	b = append(b, appendStream(nil, typeStdin, 1, nil)...)
	rc.send(b)
	fast := rc.readResponses(2)[2]
	if !bytes.HasSuffix(fast.stdout, []byte("\r\n\r\nfast:body")) {
		t.Fatalf("fast response = %q", fast.stdout)
	}
	close(release)
	rc.send(appendStream(nil, typeStdin, 3, nil))
	rest := rc.readResponses(1, 3)
	if !bytes.HasSuffix(rest[1].stdout, []byte("slow")) || !bytes.HasSuffix(rest[3].stdout, []byte("no-read")) {
		t.Errorf("responses = %q, %q", rest[1].stdout, rest[3].stdout)
	}
	for id, r := range rest {
		if !r.stdoutEnded {
			t.Errorf("request %d: END_REQUEST without an empty STDOUT first", id)
		}
	}
}

// TestMultiplexedBurst: requests sent together on one connection, each
// answered while the serve loop reads the others' header blocks, are all
// answered, round after round (under -race: a request's end reads the
// state of the others on its connection).
func TestMultiplexedBurst(t *testing.T) {
	const ids, rounds = 8, 50
	_, addr, _ := startServer(t, helloHandler(), nil)
	rc := dialRaw(t, addr)
	var burst []byte
	all := make([]uint16, 0, ids)
	for id := uint16(1); id <= ids; id++ {
		burst = append(burst, requestRecords(id, true, "", getHello...)...)
		all = append(all, id)
	}
	for round := range rounds {
		rc.send(burst)
		for id, got := range rc.readResponses(all...) {
			if string(got.stdout) != helloStream || got.protoStatus != statusRequestComplete {
				t.Fatalf("round %d, request %d: answer = %q %s, want %q %s", round, id, got.stdout, got.protoStatus, helloStream, statusRequestComplete)
			}
		}
	}
}

// TestAbortRequest: FCGI_ABORT_REQUEST cancels the handler's context with
// ErrAborted, the request ends at once, and the handler's later writes go
// nowhere: no second END_REQUEST.
func TestAbortRequest(t *testing.T) {
	started, finished := make(chan struct{}), make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-r.Context().Done()
		if cause := context.Cause(r.Context()); !errors.Is(cause, ErrAborted) {
			finished <- errors.New("cause = " + cause.Error())
			return
		}
		_, err := io.WriteString(w, strings.Repeat("late ", 10000))
		finished <- err
	})
	_, addr, _ := startServer(t, h, nil)
	rc := dialRaw(t, addr)
	b := beginRecord(1, roleResponder, true)
	b = append(b, paramsRecords(1, "REQUEST_METHOD=GET", "REQUEST_URI=/")...)
	rc.send(b)
	<-started
	rc.send(appendRecord(nil, typeAbortRequest, 1, nil))
	got := rc.readResponses(1)[1]
	if len(got.stdout) != 0 || got.protoStatus != statusRequestComplete {
		t.Errorf("aborted request answered %q %s, want nothing and REQUEST_COMPLETE", got.stdout, got.protoStatus)
	}
	if err := <-finished; !errors.Is(err, errRequestEnded) {
		t.Errorf("handler's write after the abort = %v, want errRequestEnded", err)
	}
	// The next record on the connection answers this GET_VALUES: nothing
	// came in between.
	var q []byte
	q = appendPair(q, "FCGI_MPXS_CONNS", "")
	rc.send(appendRecord(nil, typeGetValues, 0, q))
	if r := rc.mustRead(); r.h.Type != typeGetValuesResult {
		t.Errorf("after the abort got %s for request %d, want FCGI_GET_VALUES_RESULT", r.h.Type, r.h.ID)
	}
}

// TestConnectionDropCancels: nginx and Apache abort by closing the socket.
func TestConnectionDropCancels(t *testing.T) {
	started, cause := make(chan struct{}), make(chan error, 1)
	bodyErr := make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		_, err := io.ReadAll(r.Body) // the body never ends
		bodyErr <- err
		<-r.Context().Done()
		cause <- context.Cause(r.Context())
	})
	_, addr, _ := startServer(t, h, nil)
	rc := dialRaw(t, addr)
	b := beginRecord(1, roleResponder, true)
	b = append(b, paramsRecords(1, "REQUEST_METHOD=POST", "REQUEST_URI=/")...)
	b = appendStream(b, typeStdin, 1, []byte("partial"))
	rc.send(b)
	<-started
	rc.c.Close()
	if err := <-bodyErr; err == nil {
		t.Errorf("body read after the connection dropped: no error")
	}
	if err := <-cause; !errors.Is(err, ErrConnClosed) {
		t.Errorf("context cause = %v, want ErrConnClosed", err)
	}
}

func TestGetValuesAndUnknownType(t *testing.T) {
	_, addr, _ := startServer(t, helloHandler(), func(s *Server) {
		s.MaxConns, s.MaxRequests, s.MaxRequestsPerConn = 7, 20, 5
	})
	rc := dialRaw(t, addr)
	var q []byte
	for _, name := range []string{"FCGI_MAX_CONNS", "FCGI_MPXS_CONNS", "FCGI_UNHEARD_OF"} {
		q = appendPair(q, name, "")
	}
	rc.send(appendRecord(nil, typeGetValues, 0, q))
	r := rc.mustRead()
	if r.h.Type != typeGetValuesResult || r.h.ID != 0 {
		t.Fatalf("answer = %s id %d, want FCGI_GET_VALUES_RESULT id 0", r.h.Type, r.h.ID)
	}
	pairs, err := parsePairs(r.content)
	if err != nil {
		t.Fatal(err)
	}
	want := [][2]string{{"FCGI_MAX_CONNS", "7"}, {"FCGI_MPXS_CONNS", "1"}}
	if len(pairs) != len(want) || pairs[0] != want[0] || pairs[1] != want[1] {
		t.Errorf("GET_VALUES_RESULT = %q, want %q", pairs, want)
	}
	rc.send(appendRecord(nil, recType(42), 0, []byte("?")))
	r = rc.mustRead()
	if r.h.Type != typeUnknownType || len(r.content) != 8 || r.content[0] != 42 {
		t.Errorf("answer to type 42 = %s %q, want FCGI_UNKNOWN_TYPE naming 42", r.h.Type, r.content)
	}
}

func TestRefusals(t *testing.T) {
	block, blocked := make(chan struct{}), make(chan struct{}, 2)
	t.Cleanup(func() { close(block) })
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/block" {
			blocked <- struct{}{}
			<-block
		}
		io.WriteString(w, "ok")
	})
	_, addr, logs := startServer(t, h, func(s *Server) {
		s.MaxRequests, s.MaxRequestsPerConn, s.MaxParamsBytes = 2, 2, 512
	})
	tests := []struct {
		name   string
		send   func(rc *rawConn)
		id     uint16
		status protocolStatus
		stdout string // prefix
		log    string
	}{
		{
			name: "unknown role",
			send: func(rc *rawConn) { rc.send(beginRecord(1, 9, true)) },
			id:   1, status: statusUnknownRole, log: "unknown role",
		},
		{
			name: "params over MaxParamsBytes: 431, connection kept",
			send: func(rc *rawConn) {
				rc.send(requestRecords(1, true, "", "REQUEST_METHOD=GET", "HTTP_COOKIE="+strings.Repeat("c", 600)))
			},
			id: 1, status: statusRequestComplete, stdout: "Status: 431 ", log: "too large",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := dialRaw(t, addr)
			tt.send(rc)
			got := rc.readResponses(tt.id)[tt.id]
			if got.protoStatus != tt.status || !strings.HasPrefix(string(got.stdout), tt.stdout) {
				t.Errorf("answer = %s %q, want %s %q", got.protoStatus, got.stdout, tt.status, tt.stdout)
			}
			if !strings.Contains(logs.String(), tt.log) {
				t.Errorf("log = %q, want it to mention %q", logs.String(), tt.log)
			}
			// The connection still serves.
			rc.send(requestRecords(5, true, "", getHello...))
			if got := rc.readResponses(5)[5]; !bytes.HasSuffix(got.stdout, []byte("ok")) {
				t.Errorf("next request on the connection = %q", got.stdout)
			}
		})
	}

	t.Run("too many ids on one connection, then MaxRequests", func(t *testing.T) {
		rc := dialRaw(t, addr)
		b := requestRecords(1, true, "", "REQUEST_METHOD=GET", "REQUEST_URI=/block")
		b = append(b, requestRecords(2, true, "", "REQUEST_METHOD=GET", "REQUEST_URI=/block")...)
		b = append(b, beginRecord(3, roleResponder, true)...)
		rc.send(b)
		if got := rc.readResponses(3)[3]; got.protoStatus != statusOverloaded {
			t.Errorf("third id on a connection limited to 2: %s, want FCGI_OVERLOADED", got.protoStatus)
		}
		// Two requests block, so MaxRequests (2) is reached: a request
		// on another connection is refused. The handlers take their
		// slots in their own goroutines: wait until both run.
		<-blocked
		<-blocked
		other := dialRaw(t, addr)
		other.send(requestRecords(1, true, "", getHello...))
		if got := other.readResponses(1)[1]; got.protoStatus != statusRequestComplete || !bytes.HasPrefix(got.stdout, []byte("Status: 503 ")) {
			t.Errorf("request past MaxRequests: %s %q, want FCGI_REQUEST_COMPLETE and a 503", got.protoStatus, got.stdout)
		}
	})
}

// TestRequestPastMaxRequests: a request past MaxRequests gets a real 503
// with Retry-After and FCGI_REQUEST_COMPLETE, not FCGI_OVERLOADED, which
// nginx answers with 502 ("upstream sent unexpected FastCGI record: 3");
// with QueueRequests, the same once the wait for a slot passes
// ReadHeaderTimeout. Stats counts it as Overloaded, and the connection
// goes on serving.
func TestRequestPastMaxRequests(t *testing.T) {
	const want = "Status: 503 Service Unavailable\r\nRetry-After: 1\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nContent-Length: 24\r\n\r\n" +
		"503 Service Unavailable\n"
	tests := []struct {
		name string
		opts func(s *Server)
	}{
		{"refused at once", func(s *Server) { s.MaxRequests = 1 }},
		{"queued past ReadHeaderTimeout", func(s *Server) { s.MaxRequests, s.QueueRequests, s.ReadHeaderTimeout = 1, true, 50*time.Millisecond }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			started, release := make(chan struct{}, 1), make(chan struct{})
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/block" {
					started <- struct{}{}
					<-release
				}
				io.WriteString(w, "ok")
			})
			s, addr, logs := startServer(t, h, tt.opts)
			first := dialRaw(t, addr)
			first.send(requestRecords(1, true, "", "REQUEST_METHOD=GET", "REQUEST_URI=/block"))
			<-started
			second := dialRaw(t, addr)
			second.send(requestRecords(1, true, "", getHello...))
			got := second.readResponses(1)[1]
			if string(got.stdout) != want || !got.stdoutEnded || got.protoStatus != statusRequestComplete {
				t.Errorf("request past MaxRequests = %q (stream ended %v) %s, want %q %s", got.stdout, got.stdoutEnded, got.protoStatus, want, statusRequestComplete)
			}
			if !strings.Contains(logs.String(), "MaxRequests reached") {
				t.Errorf("log = %q, want it to say MaxRequests reached", logs.String())
			}
			if st := s.Stats(); st.Overloaded != 1 {
				t.Errorf("Stats().Overloaded = %d, want 1", st.Overloaded)
			}
			close(release)
			if got := first.readResponses(1)[1]; !bytes.HasSuffix(got.stdout, []byte("ok")) {
				t.Errorf("held request = %q, want ok", got.stdout)
			}
			second.send(requestRecords(2, true, "", getHello...))
			if got := second.readResponses(2)[2]; !bytes.HasSuffix(got.stdout, []byte("ok")) {
				t.Errorf("next request on the refused one's connection = %q, want ok", got.stdout)
			}
		})
	}
}

// TestErrorAnswers: the answers the server writes itself, before or
// instead of its handler's, are bridge.AppendError's bytes.
func TestErrorAnswers(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	_, addr, _ := startServer(t, h, func(s *Server) {
		s.MaxParamsBytes, s.HandlerTimeout = 512, 100*time.Millisecond
	})
	tests := []struct {
		name   string
		env    []string
		status int
	}{
		{"params over MaxParamsBytes", []string{"REQUEST_METHOD=GET", "HTTP_COOKIE=" + strings.Repeat("c", 600)}, http.StatusRequestHeaderFieldsTooLarge},
		{"handler past HandlerTimeout", getHello, http.StatusServiceUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := dialRaw(t, addr)
			rc.send(requestRecords(1, true, "", tt.env...))
			got := rc.readResponses(1)[1]
			want := bridge.AppendError(nil, tt.status, "")
			if !bytes.Equal(got.stdout, want) || got.protoStatus != statusRequestComplete {
				t.Errorf("answer = %q %s, want %q %s", got.stdout, got.protoStatus, want, statusRequestComplete)
			}
		})
	}
}

// TestRequestPastMaxRequestsPerConn: a connection that says it does not
// multiplex (FCGI_MPXS_CONNS 0, MaxRequestsPerConn 1) refuses a second
// request id with FCGI_CANT_MPX_CONN, as the spec names it; past a larger
// limit the refusal is FCGI_OVERLOADED.
func TestRequestPastMaxRequestsPerConn(t *testing.T) {
	tests := []struct {
		limit  int
		mpxs   string
		status protocolStatus
	}{
		{1, "0", statusCantMultiplex},
		{3, "1", statusOverloaded},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.limit), func(t *testing.T) {
			release := make(chan struct{})
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				<-release
				io.WriteString(w, "ok")
			})
			_, addr, logs := startServer(t, h, func(s *Server) { s.MaxRequestsPerConn = tt.limit })
			rc := dialRaw(t, addr)
			var q []byte
			q = appendPair(q, "FCGI_MPXS_CONNS", "")
			rc.send(appendRecord(nil, typeGetValues, 0, q))
			if pairs, err := parsePairs(rc.mustRead().content); err != nil || len(pairs) != 1 || pairs[0][1] != tt.mpxs {
				t.Errorf("FCGI_GET_VALUES_RESULT = %q, %v; want FCGI_MPXS_CONNS %s", pairs, err, tt.mpxs)
			}
			var b []byte
			open := make([]uint16, 0, tt.limit)
			for id := uint16(1); id <= uint16(tt.limit); id++ {
				b = append(b, requestRecords(id, true, "", getHello...)...)
				open = append(open, id)
			}
			past := uint16(tt.limit + 1)
			rc.send(append(b, requestRecords(past, true, "", getHello...)...))
			if got := rc.readResponses(past)[past]; got.protoStatus != tt.status || len(got.stdout) > 0 {
				t.Errorf("request %d on a connection limited to %d = %s %q, want %s", past, tt.limit, got.protoStatus, got.stdout, tt.status)
			}
			close(release)
			for id, got := range rc.readResponses(open...) {
				if got.protoStatus != statusRequestComplete || !bytes.HasSuffix(got.stdout, []byte("ok")) {
					t.Errorf("request %d = %s %q, want %s ok", id, got.protoStatus, got.stdout, statusRequestComplete)
				}
			}
			if !strings.Contains(logs.String(), "request refused") {
				t.Errorf("log lacks the refusal:\n%s", logs)
			}
		})
	}
}

// TestMaxConnParamsBytes: the header blocks that the requests open on one
// connection hold together, arriving or answered, stay within
// MaxConnParamsBytes: a request that would pass it is answered 431, and
// room comes back as requests end. A bound below MaxParamsBytes does not
// refuse a header block that MaxParamsBytes allows.
func TestMaxConnParamsBytes(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	_, addr, logs := startServer(t, h, func(s *Server) { s.MaxParamsBytes, s.MaxConnParamsBytes = 1000, 2500 })
	// block is a header block of about 900 bytes: two fit in 2500, three
	// do not.
	block := func(id uint16, finished bool) []byte {
		var pairs []byte
		pairs = appendPair(pairs, "REQUEST_METHOD", "GET")
		pairs = appendPair(pairs, "REQUEST_URI", "/")
		pairs = appendPair(pairs, "HTTP_X_PAD", strings.Repeat("p", 850))
		b := appendRecord(beginRecord(id, roleResponder, true), typeParams, id, pairs)
		if finished {
			b = appendRecord(b, typeParams, id, nil)
			b = appendRecord(b, typeStdin, id, nil)
		}
		return b
	}
	// answered reads the answers that come before FCGI_GET_VALUES's.
	answered := func(rc *rawConn) map[uint16]string {
		got := map[uint16]string{}
		for {
			r := rc.mustRead()
			switch r.h.Type {
			case typeGetValuesResult:
				return got
			case typeStdout:
				got[r.h.ID] += string(r.content)
			case typeEndRequest:
				got[r.h.ID] += "|" + protocolStatus(r.content[4]).String()
			}
		}
	}
	refused := string(bridge.AppendError(nil, http.StatusRequestHeaderFieldsTooLarge, "")) + "|" + statusRequestComplete.String()
	tests := []struct {
		name     string
		finished bool
	}{
		{"header blocks arriving", false},
		{"header blocks of requests being answered", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := dialRaw(t, addr)
			b := slices.Concat(block(1, tt.finished), block(2, tt.finished), block(3, tt.finished))
			rc.send(appendRecord(b, typeGetValues, 0, getValuesQuery()))
			if got := answered(rc); len(got) != 1 || got[3] != refused {
				t.Fatalf("three header blocks of 900 bytes within 2500: answers %v, want request 3 refused: %q", got, refused)
			}
			// An abort ends request 1: its bytes leave the bound.
			rc.send(appendRecord(nil, typeAbortRequest, 1, nil))
			if got := rc.readResponses(1)[1]; got.protoStatus != statusRequestComplete {
				t.Fatalf("aborted request 1 = %s, want %s", got.protoStatus, statusRequestComplete)
			}
			rc.send(appendRecord(block(3, tt.finished), typeGetValues, 0, getValuesQuery()))
			if got := answered(rc); len(got) != 0 {
				t.Errorf("request 3 once request 1 ended: answers %v, want none", got)
			}
		})
	}
	if !strings.Contains(logs.String(), "would pass 2500 bytes") {
		t.Errorf("log lacks why request 3 was refused:\n%s", logs)
	}

	t.Run("below MaxParamsBytes", func(t *testing.T) {
		_, addr, _ := startServer(t, helloHandler(), func(s *Server) { s.MaxParamsBytes, s.MaxConnParamsBytes = 4096, 1000 })
		rc := dialRaw(t, addr)
		rc.send(requestRecords(1, true, "", append(getHello[:len(getHello):len(getHello)], "HTTP_X_PAD="+strings.Repeat("p", 3000))...))
		if got := rc.readResponses(1)[1]; string(got.stdout) != helloStream {
			t.Errorf("a 3 KB header block with MaxParamsBytes 4096, MaxConnParamsBytes 1000 = %.60q, want %q", got.stdout, helloStream)
		}
	})
}

func TestProtocolErrorsCloseOnlyTheirConnection(t *testing.T) {
	_, addr, logs := startServer(t, helloHandler(), func(s *Server) { s.ReadHeaderTimeout = 200 * time.Millisecond })
	tests := []struct {
		name string
		send []byte
		log  string
	}{
		{"bad version", []byte{2, 1, 0, 1, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0}, "version"},
		{"garbage", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), "version"},
		{"truncated pair", append(beginRecord(1, roleResponder, true),
			append(appendRecord(nil, typeParams, 1, []byte{10, 10, 'a'}), appendRecord(nil, typeParams, 1, nil)...)...), "FCGI_PARAMS"},
		{"begin for an id in use", append(beginRecord(1, roleResponder, true), beginRecord(1, roleResponder, true)...), "in use"},
		{"stdin before params end", append(beginRecord(1, roleResponder, true), appendRecord(nil, typeStdin, 1, []byte("x"))...), "before the end"},
		{"a record trickled, then nothing", []byte{1, 1, 0}, "read timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := dialRaw(t, addr)
			rc.send(tt.send)
			rc.expectClosed()
			good := dialRaw(t, addr)
			if !strings.Contains(logs.String(), tt.log) {
				t.Errorf("log = %q, want it to mention %q", logs.String(), tt.log)
			}
			good.send(requestRecords(1, true, "", getHello...))
			if got := good.readResponses(1)[1]; string(got.stdout) != helloStream {
				t.Errorf("another connection meanwhile = %q", got.stdout)
			}
		})
	}
}

func TestRequestBodyLimits(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Write(b)
	})
	_, addr, _ := startServer(t, h, nil)
	tests := []struct {
		name, length, body, want string
	}{
		{"body larger than declared is cut", "3", "hello", "hel"},
		{"no length: read to the end (nginx unbuffered, Apache chunked)", "", "streamed", "streamed"},
		{"body shorter than declared: 400", "9", "hi", "Status: 400"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := dialRaw(t, addr)
			rc.send(requestRecords(1, false, tt.body, "REQUEST_METHOD=POST", "REQUEST_URI=/", "CONTENT_LENGTH="+tt.length))
			got := string(rc.readResponses(1)[1].stdout)
			if !strings.HasSuffix(got, "\r\n\r\n"+tt.want) && !strings.HasPrefix(got, tt.want) {
				t.Errorf("response = %q, want body %q", got, tt.want)
			}
		})
	}
}

func TestHandlerFaults(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/panic":
			panic("boom")
		case "/late-panic":
			io.WriteString(w, "partial")
			w.(http.Flusher).Flush()
			panic("late boom")
		case "/hang":
			<-r.Context().Done()
			io.WriteString(w, "too late")
		case "/stderr":
			io.WriteString(bridge.RequestOf(r).Stderr, "to the error log")
			io.WriteString(w, "ok")
		}
	})
	_, addr, logs := startServer(t, h, func(s *Server) { s.HandlerTimeout = 300 * time.Millisecond })

	rc := dialRaw(t, addr)
	rc.send(requestRecords(1, true, "", "REQUEST_METHOD=GET", "REQUEST_URI=/panic"))
	if got := rc.readResponses(1)[1]; !bytes.HasPrefix(got.stdout, []byte("Status: 500 ")) || bytes.Contains(got.stdout, []byte("boom")) {
		t.Errorf("panic answer = %q, want a clean 500", got.stdout)
	}
	rc.send(requestRecords(2, true, "", "REQUEST_METHOD=GET", "REQUEST_URI=/hang"))
	if got := rc.readResponses(2)[2]; !bytes.HasPrefix(got.stdout, []byte("Status: 503 ")) {
		t.Errorf("hanging handler answer = %q, want 503 after HandlerTimeout", got.stdout)
	}
	rc.send(requestRecords(3, true, "", "REQUEST_METHOD=GET", "REQUEST_URI=/stderr"))
	if got := rc.readResponses(3)[3]; string(got.stderr) != "to the error log" || !got.stderrEnded {
		t.Errorf("stderr = %q ended=%v, want %q and an empty STDERR", got.stderr, got.stderrEnded, "to the error log")
	}
	// A panic after the response started: no END_REQUEST, the connection
	// closes so that the web server knows the response is incomplete.
	rc.send(requestRecords(4, true, "", "REQUEST_METHOD=GET", "REQUEST_URI=/late-panic"))
	var out []byte
	for {
		r, err := rc.read()
		if err != nil {
			break
		}
		if r.h.Type == typeEndRequest {
			t.Fatalf("END_REQUEST after a response cut short")
		}
		out = append(out, r.content...)
	}
	if !bytes.HasSuffix(out, []byte("partial")) {
		t.Errorf("cut response = %q, want the part sent", out)
	}
	for _, want := range []string{"boom", "handler timeout", "response cut short"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q", want)
		}
	}
}

func TestShutdownLetsRequestsFinish(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		io.WriteString(w, "finished")
	})
	s, addr, _ := startServer(t, h, nil)
	idle := dialRaw(t, addr)
	busy := dialRaw(t, addr)
	busy.send(requestRecords(1, true, "", getHello...))
	<-started
	// The idle connection is known to the server once it answered.
	var q []byte
	q = appendPair(q, "FCGI_MPXS_CONNS", "")
	idle.send(appendRecord(nil, typeGetValues, 0, q))
	idle.mustRead()

	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	idle.expectClosed()
	if _, err := net.Dial("unix", addr); err == nil {
		t.Errorf("dial after Shutdown succeeded")
	}
	close(release)
	if got := busy.readResponses(1)[1]; !bytes.HasSuffix(got.stdout, []byte("finished")) {
		t.Errorf("in-flight request answered %q", got.stdout)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown = %v", err)
	}
	busy.expectClosed()
}

func TestListenUnixSocket(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.sock")
	l, err := Listen("unix:"+path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	if _, err := Listen("unix:"+path, 0); err == nil || !strings.Contains(err.Error(), "listens") {
		t.Errorf("Listen on a socket in use = %v, want an error", err)
	}
	// A stale socket file (nothing listens) is replaced.
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	l2, err := Listen("unix:"+path, 0)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	l2.Close()
	// A regular file is never removed.
	file := filepath.Join(dir, "file")
	os.WriteFile(file, []byte("keep"), 0o644)
	if _, err := Listen("unix:"+file, 0); err == nil {
		t.Errorf("Listen over a regular file succeeded")
	}
	if b, _ := os.ReadFile(file); string(b) != "keep" {
		t.Errorf("the regular file was changed")
	}
	for _, bad := range []string{"unix:", "nonsense", "tcp:nohost"} {
		if _, err := Listen(bad, 0); err == nil {
			t.Errorf("Listen(%q) succeeded", bad)
		}
	}
}

func TestWebServerAddrs(t *testing.T) {
	s := &Server{Handler: helloHandler(), WebServerAddrs: []string{"127.0.0.2"}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	l, err := Listen("tcp:127.0.0.1:0", 0)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	defer func() { s.Close(); <-done }()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write(requestRecords(1, false, "", getHello...))
	if n, err := c.Read(make([]byte, 1)); err == nil {
		t.Errorf("a peer outside FCGI_WEB_SERVER_ADDRS read %d bytes", n)
	}
}

func TestIdleTimeoutClosesKeptConnection(t *testing.T) {
	_, addr, _ := startServer(t, helloHandler(), func(s *Server) { s.IdleTimeout = 100 * time.Millisecond })
	rc := dialRaw(t, addr)
	rc.send(requestRecords(1, true, "", getHello...))
	rc.readResponses(1)
	rc.expectClosed() // within IdleTimeout, quietly
}

func TestQueueRequests(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 2)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		if r.URL.Path == "/block" {
			<-release
		}
		io.WriteString(w, "ok")
	})
	s, addr, _ := startServer(t, h, func(s *Server) { s.MaxRequests, s.QueueRequests = 1, true })
	first := dialRaw(t, addr)
	first.send(requestRecords(1, true, "", "REQUEST_METHOD=GET", "REQUEST_URI=/block"))
	<-started
	second := dialRaw(t, addr)
	second.send(requestRecords(1, true, "", getHello...))
	// The second request waits for the slot instead of FCGI_OVERLOADED.
	close(release)
	for _, rc := range []*rawConn{first, second} {
		if got := rc.readResponses(1)[1]; got.protoStatus != statusRequestComplete || !bytes.HasSuffix(got.stdout, []byte("ok")) {
			t.Errorf("answer = %s %q, want REQUEST_COMPLETE ok", got.protoStatus, got.stdout)
		}
	}
	if st := s.Stats(); st.Overloaded != 0 || st.Requests != 2 || st.MaxActive != 1 {
		t.Errorf("Stats = %+v, want 2 requests, MaxActive 1, none overloaded", st)
	}
}

func TestLogToStderr(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { panic("visible in nginx's error log") })
	_, addr, logs := startServer(t, h, func(s *Server) { s.LogToStderr = true })
	rc := dialRaw(t, addr)
	rc.send(requestRecords(1, true, "", getHello...))
	got := rc.readResponses(1)[1]
	if !strings.Contains(string(got.stderr), "visible in nginx's error log") || !got.stderrEnded {
		t.Errorf("STDERR = %q ended=%v, want the panic's log line", got.stderr, got.stderrEnded)
	}
	if !strings.Contains(logs.String(), "visible in nginx's error log") {
		t.Errorf("the server's own log lacks the line")
	}
}

func TestShutdownDeadlineThenClose(t *testing.T) {
	started := make(chan struct{})
	bodyErr, cause := make(chan error, 1), make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		_, err := io.ReadAll(r.Body) // the body never ends
		bodyErr <- err
		<-r.Context().Done()
		cause <- context.Cause(r.Context())
	})
	s, addr, _ := startServer(t, h, nil)
	rc := dialRaw(t, addr)
	b := beginRecord(1, roleResponder, true)
	rc.send(append(b, paramsRecords(1, "REQUEST_METHOD=POST", "REQUEST_URI=/")...))
	<-started
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // a grace period already over
	if err := s.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Shutdown with an ended context = %v, want context.Canceled", err)
	}
	s.Close()
	if err := <-bodyErr; !errors.Is(err, ErrServerClosed) {
		t.Errorf("io.ReadAll(r.Body) after Close = %v, want ErrServerClosed", err)
	}
	if err := <-cause; err != ErrServerClosed {
		t.Errorf("context.Cause(r.Context()) after Close = %v, want ErrServerClosed", err)
	}
	rc.expectClosed()
}

func TestWriteTimeout(t *testing.T) {
	done := make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		for {
			if _, err := w.Write(chunk); err != nil {
				done <- err
				return
			}
		}
	})
	_, addr, logs := startServer(t, h, func(s *Server) { s.WriteTimeout = 100 * time.Millisecond })
	rc := dialRaw(t, addr)
	rc.send(requestRecords(1, true, "", getHello...))
	// The web server never reads: the write times out, the handler's
	// writes fail and the connection closes.
	if err := <-done; err == nil {
		t.Errorf("handler writes kept succeeding")
	}
	if !strings.Contains(logs.String(), "write failed") {
		t.Errorf("log = %q, want the failed write", logs.String())
	}
}

// TestMaxConns: a connection past MaxConns waits in the listener's backlog
// until one closes; a server stopped while full still returns from Serve
// (startServer's cleanup waits for it).
func TestMaxConns(t *testing.T) {
	s, addr, _ := startServer(t, helloHandler(), func(s *Server) { s.MaxConns = 1 })
	a := dialRaw(t, addr)
	a.send(requestRecords(1, true, "", getHello...))
	a.readResponses(1)
	b := dialRaw(t, addr) // connects: the kernel's backlog holds it
	b.send(requestRecords(1, true, "", getHello...))
	a.c.Close()
	if got := b.readResponses(1)[1]; string(got.stdout) != helloStream {
		t.Errorf("the waiting connection got %q", got.stdout)
	}
	if st := s.Stats(); st.AcceptedConns != 2 {
		t.Errorf("AcceptedConns = %d, want 2", st.AcceptedConns)
	}
	// b holds the only slot while Serve waits for another: Close must
	// still stop Serve.
}

func TestWebServerAddrsFromEnvironment(t *testing.T) {
	tests := []struct {
		env     string
		wantErr bool
		want    int
	}{
		{"127.0.0.1, ::1", false, 2},
		{"not-an-ip", true, 0},
		{"", false, 0},
	}
	for _, tt := range tests {
		t.Setenv("FCGI_WEB_SERVER_ADDRS", tt.env)
		got, err := (&Server{}).allowedPeers()
		if (err != nil) != tt.wantErr || len(got) != tt.want {
			t.Errorf("FCGI_WEB_SERVER_ADDRS=%q: %v, %v; want %d addresses, error %v", tt.env, got, err, tt.want, tt.wantErr)
		}
	}
}

// TestCloseWaitsForTheEndOfStdin: without FCGI_KEEP_CONN the server closes
// after END_REQUEST, but not before the web server has sent the rest of
// the body, or its write fails and it answers 503 instead (Apache's
// mod_proxy_fcgi sends the empty STDIN in a write of its own).
func TestCloseWaitsForTheEndOfStdin(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "answered unread") })
	_, addr, _ := startServer(t, h, nil)
	tests := []struct {
		name string
		body []byte
	}{
		{"only the empty STDIN after the answer", nil},
		{"a 1 MiB body the handler never reads", bytes.Repeat([]byte("b"), 1<<20)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := dialRaw(t, addr)
			b := beginRecord(1, roleResponder, false)
			rc.send(append(b, paramsRecords(1, "REQUEST_METHOD=POST", "REQUEST_URI=/", "CONTENT_LENGTH="+strconv.Itoa(len(tt.body)))...))
			if got := rc.readResponses(1)[1]; !bytes.HasSuffix(got.stdout, []byte("answered unread")) {
				t.Fatalf("answer = %q", got.stdout)
			}
			rest := appendStream(nil, typeStdin, 1, tt.body)
			rest = appendStream(rest, typeStdin, 1, nil)
			if _, err := rc.c.Write(rest); err != nil {
				t.Fatalf("the rest of the request after the answer: %v", err)
			}
			rc.c.(*net.UnixConn).CloseWrite()
			rc.expectClosed()
		})
	}
}

// TestReadTimeoutCutsAStalledBody: a body whose next record never comes
// (a slowloris upload) loses its connection after ReadTimeout, and the
// handler's body read fails.
func TestReadTimeoutCutsAStalledBody(t *testing.T) {
	bodyErr := make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		bodyErr <- err
	})
	_, addr, logs := startServer(t, h, func(s *Server) { s.ReadTimeout = 100 * time.Millisecond })
	rc := dialRaw(t, addr)
	b := beginRecord(1, roleResponder, true)
	b = append(b, paramsRecords(1, "REQUEST_METHOD=POST", "REQUEST_URI=/", "CONTENT_LENGTH=100")...)
	rc.send(appendStream(b, typeStdin, 1, []byte("the first 24 bytes of 100")))
	rc.expectClosed()
	if err := <-bodyErr; !errors.Is(err, ErrConnClosed) {
		t.Errorf("body read = %v, want ErrConnClosed", err)
	}
	if !strings.Contains(logs.String(), "read timeout") {
		t.Errorf("log = %q, want the read timeout", logs.String())
	}
}
