package cgirun

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cgirun/cgirun/fastcgi"
	"github.com/cgirun/cgirun/internal/serve"
	"github.com/cgirun/cgirun/internal/status"
)

// metrics are the counts of the status page that the monitor keeps
// itself, beside the server's (counts): the requests it answered by
// status class and by duration, the requests it refused, and those in
// flight. It exists only with CGIRUN_STATUS_PATH outside CGI, so that a
// CGI program, which answers one request, pays nothing for it.
type metrics struct {
	// Of the requests the handler or CGIRUN_MAX_REQUESTS answered (not
	// the status page, the ping page or a 414), once they end.
	classes   [5]atomic.Uint64 // by status class, 1xx to 5xx
	durations status.Histogram

	// Refused requests, by reason.
	overLimit  atomic.Uint64 // 503 past CGIRUN_MAX_REQUESTS
	uriTooLong atomic.Uint64 // 414 past CGIRUN_MAX_URL_LENGTH
	timeouts   atomic.Uint64 // 503 (or a cut response) past CGIRUN_REQUEST_TIMEOUT

	mu       sync.Mutex
	inFlight map[*tracked]struct{}
}

func newMetrics() *metrics {
	return &metrics{inFlight: make(map[*tracked]struct{})}
}

// tracked is a request in flight: its recorder and what the status page
// lists of it with ?full. One allocation holds both.
type tracked struct {
	rec    serve.StatusRecorder
	method string
	uri    string
	remote string
	start  time.Time
	reqID  uint16 // the FastCGI request id, when hasID
	hasID  bool
}

// begin registers r, answered through w, as in flight.
func (m *metrics) begin(w http.ResponseWriter, r *http.Request, start time.Time) *tracked {
	t := &tracked{
		rec:    serve.StatusRecorder{ResponseWriter: w, Status: http.StatusOK},
		method: r.Method, uri: r.RequestURI, remote: r.RemoteAddr, start: start,
	}
	t.reqID, t.hasID = fastcgi.RequestID(r.Context())
	m.mu.Lock()
	m.inFlight[t] = struct{}{}
	m.mu.Unlock()
	return t
}

// end counts t, which took d, and removes it from the requests in flight.
// A request whose CGIRUN_REQUEST_TIMEOUT passed counts as a 5xx: its
// client got a 503 or a cut response, whatever the handler wrote.
func (m *metrics) end(t *tracked, r *http.Request, d time.Duration, timeout time.Duration) {
	m.mu.Lock()
	delete(m.inFlight, t)
	m.mu.Unlock()
	code := t.rec.Status
	if timeout > 0 && timedOut(r.Context()) {
		m.timeouts.Add(1)
		code = http.StatusServiceUnavailable
	}
	if c := code/100 - 1; c >= 0 && c < len(m.classes) {
		m.classes[c].Add(1)
	}
	m.durations.Observe(d)
}

// timedOut reports whether ctx, a request's, ended because its time bound
// passed: fastcgi.Server's HandlerTimeout, or http.TimeoutHandler's
// deadline over HTTP.
func timedOut(ctx context.Context) bool {
	return errors.Is(context.Cause(ctx), fastcgi.ErrHandlerTimeout) || errors.Is(ctx.Err(), context.DeadlineExceeded)
}

// inFlightRequest is one request in flight as the status page lists it.
type inFlightRequest struct {
	Method          string  `json:"method"`
	URI             string  `json:"uri"`
	DurationSeconds float64 `json:"duration_seconds"`
	Remote          string  `json:"remote"`
	// FastCGIRequestID is the web server's id of the request, in FastCGI
	// mode.
	FastCGIRequestID *uint16 `json:"fastcgi_request_id,omitempty"`
}

// requests returns the requests in flight at now, the oldest first.
func (m *metrics) requests(now time.Time) []inFlightRequest {
	m.mu.Lock()
	list := make([]inFlightRequest, 0, len(m.inFlight))
	starts := make([]time.Time, 0, len(m.inFlight))
	for t := range m.inFlight {
		req := inFlightRequest{Method: t.method, URI: t.uri, DurationSeconds: now.Sub(t.start).Seconds(), Remote: t.remote}
		if t.hasID {
			id := t.reqID
			req.FastCGIRequestID = &id
		}
		list = append(list, req)
		starts = append(starts, t.start)
	}
	m.mu.Unlock()
	// Insertion sort: the list is as long as the requests in flight.
	for i := 1; i < len(list); i++ {
		for j := i; j > 0 && starts[j].Before(starts[j-1]); j-- {
			list[j], list[j-1] = list[j-1], list[j]
			starts[j], starts[j-1] = starts[j-1], starts[j]
		}
	}
	return list
}

// connStates follows the connections of an http.Server through its
// ConnState hook, to tell how many are open and how many idle: open with
// no request in flight (new, or kept alive between requests).
type connStates struct {
	mu    sync.Mutex
	state map[net.Conn]http.ConnState
	idle  int64
}

func newConnStates() *connStates {
	return &connStates{state: make(map[net.Conn]http.ConnState)}
}

func isIdle(st http.ConnState) bool { return st == http.StateNew || st == http.StateIdle }

// set is the http.Server's ConnState hook.
func (c *connStates) set(conn net.Conn, st http.ConnState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if prev, ok := c.state[conn]; ok && isIdle(prev) {
		c.idle--
	}
	if st == http.StateClosed || st == http.StateHijacked {
		delete(c.state, conn)
		return
	}
	c.state[conn] = st
	if isIdle(st) {
		c.idle++
	}
}

// counts returns the open connections and the idle ones.
func (c *connStates) counts() (open, idle int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return int64(len(c.state)), c.idle
}
