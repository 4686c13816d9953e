package cgirun

import (
	"bytes"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/cgirun/cgirun/bridge"
	"github.com/cgirun/cgirun/internal/serve"
)

// monitor wraps the handler with what Config asks of every request: the
// URL length bound, the status and ping pages (php-fpm's pm.status_path and
// ping.path), the bound on requests answered at once (CGIRUN_MAX_REQUESTS,
// in every mode, and after the status and ping pages, which it never
// refuses), the access log and the slow-request log. The counts on the
// status page are the servers' own (a gateway server's Stats, or a
// requestCounter; with several protocols, their connections summed and
// one requestCounter for the requests of all) and the monitor's: slow requests, and with
// CGIRUN_STATUS_PATH outside CGI, metrics. Its counters are atomics: the
// hot path takes no lock but metrics's list of requests in flight.
type monitor struct {
	// Immutable once serving.
	cfg     Config
	log     *slog.Logger
	next    http.Handler
	started time.Time
	counts  func() counts    // the server's; nil reads as none
	metrics *metrics         // nil without a status page, and in CGI mode
	slots   chan struct{}    // CGIRUN_MAX_REQUESTS; nil without a bound
	queued  func()           // test hook: a request starts waiting for a slot
	now     func() time.Time // test hook: the access log's clock; nil is time.Now

	slow atomic.Uint64
}

// counts are a server's counters, as the status page reports them.
type counts struct {
	Accepted     uint64 // connections accepted
	Open         int64  // connections open
	Idle         int64  // connections open with no request; -1: not known, Open less Active
	Requests     uint64 // requests started, the status page's own included
	Active       int64  // requests being answered, the status page's own included
	MaxActive    int64  // the most requests answered at once
	HeadersLarge uint64 // requests refused with 431 before the monitor saw them
}

// requestCounter counts the requests of a server that does not count them
// itself (HTTP, CGI), as fastcgi.Server does: at the outermost handler.
type requestCounter struct {
	accepted  atomic.Uint64
	requests  atomic.Uint64
	active    atomic.Int64
	maxActive atomic.Int64
}

func (c *requestCounter) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.requests.Add(1)
		n := c.active.Add(1)
		for max := c.maxActive.Load(); n > max && !c.maxActive.CompareAndSwap(max, n); max = c.maxActive.Load() {
		}
		defer c.active.Add(-1)
		h.ServeHTTP(w, r)
	})
}

func (c *requestCounter) counts() counts {
	return counts{Accepted: c.accepted.Load(), Idle: -1, Requests: c.requests.Load(), Active: c.active.Load(), MaxActive: c.maxActive.Load()}
}

func newMonitor(cfg Config, log *slog.Logger, next http.Handler) *monitor {
	m := &monitor{cfg: cfg, log: log, next: next, started: time.Now()}
	if cfg.MaxRequests > 0 {
		m.slots = make(chan struct{}, cfg.MaxRequests)
	}
	return m
}

// keepMetrics makes the monitor keep metrics when there is a status page
// to show them. A server that answers more than one request calls it
// before serving; a CGI program does not.
func (m *monitor) keepMetrics() {
	if m.cfg.StatusPath != "" {
		m.metrics = newMetrics()
	}
}

// handler returns the wrapped handler for a server in mode.
func (m *monitor) handler(mode string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if m.cfg.MaxURLLength > 0 && len(r.RequestURI) > m.cfg.MaxURLLength {
			m.log.Warn("cgirun: request URI too long", "len", len(r.RequestURI), "limit", m.cfg.MaxURLLength, "remote", r.RemoteAddr)
			if m.metrics != nil {
				m.metrics.uriTooLong.Add(1)
			}
			http.Error(w, "URI Too Long", http.StatusRequestURITooLong)
			return
		}
		switch {
		case m.cfg.StatusPath != "" && r.URL.Path == m.cfg.StatusPath:
			m.serveStatus(w, r, mode)
			return
		case m.cfg.PingPath != "" && r.URL.Path == m.cfg.PingPath:
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Set("Cache-Control", "no-store")
			w.Write([]byte("pong\n"))
			return
		}
		m.serve(w, r)
	})
}

func (m *monitor) serve(w http.ResponseWriter, r *http.Request) {
	if m.metrics == nil && !m.cfg.AccessLog && m.cfg.SlowlogTimeout <= 0 {
		m.limit(w, r)
		return
	}
	start := time.Now()
	var rec *serve.StatusRecorder
	var t *tracked
	if m.metrics != nil {
		t = m.metrics.begin(w, r, start)
		rec = &t.rec
	} else {
		rec = serve.NewStatusRecorder(w)
	}
	var watch *slowWatch
	if m.cfg.SlowlogTimeout > 0 {
		watch = m.watch(r, start)
	}
	returned := false
	defer func() {
		var p any
		if !returned {
			// A panic (p) or runtime.Goexit (p nil) passes through on
			// its way to the writer below, which answers for it.
			p = recover()
			failed(rec)
		}
		d := time.Since(start)
		if t != nil {
			m.metrics.end(t, r, d, m.cfg.RequestTimeout)
		}
		if watch != nil {
			m.slowEnd(watch, r, rec, d)
		}
		if m.cfg.AccessLog {
			m.access(r, rec, start, d)
		}
		if p != nil {
			panic(p)
		}
	}()
	if watch != nil {
		watch.run(r.Context(), func() { m.limit(rec, r) })
	} else {
		m.limit(rec, r)
	}
	returned = true
}

// limit answers r with the handler within CGIRUN_MAX_REQUESTS, or with 503
// past it.
func (m *monitor) limit(w http.ResponseWriter, r *http.Request) {
	if m.slots == nil {
		m.next.ServeHTTP(w, r)
		return
	}
	if !m.admit(r) {
		m.refuse(w, r)
		return
	}
	defer func() { <-m.slots }()
	m.next.ServeHTTP(w, r)
}

// admit takes one of CGIRUN_MAX_REQUESTS slots for r. Past the bound, with
// CGIRUN_QUEUE_REQUESTS, it waits for one until CGIRUN_HEADER_TIMEOUT
// passes (without an end when it is 0) or r's context ends. It reports
// whether r has a slot.
func (m *monitor) admit(r *http.Request) bool {
	select {
	case m.slots <- struct{}{}:
		return true
	default:
	}
	if !m.cfg.QueueRequests {
		return false
	}
	if m.queued != nil {
		m.queued()
	}
	var expired <-chan time.Time
	if m.cfg.HeaderTimeout > 0 {
		t := time.NewTimer(m.cfg.HeaderTimeout)
		defer t.Stop()
		expired = t.C
	}
	select {
	case m.slots <- struct{}{}:
		return true
	case <-expired:
		return false
	case <-r.Context().Done():
		return false
	}
}

// refuse answers a request past CGIRUN_MAX_REQUESTS: bridge's plain 503,
// with Retry-After, as package fastcgi answers one past its MaxRequests.
func (m *monitor) refuse(w http.ResponseWriter, r *http.Request) {
	if m.metrics != nil {
		m.metrics.overLimit.Add(1)
	}
	m.log.Warn("cgirun: request refused: CGIRUN_MAX_REQUESTS reached", "limit", m.cfg.MaxRequests, "uri", r.RequestURI, "remote", r.RemoteAddr)
	if _, err := bridge.NewHTTPOutput(w, 0).Write(bridge.AppendUnavailable(nil, 1)); err != nil {
		m.log.Warn("cgirun: writing the 503", "uri", r.RequestURI, "err", err)
	}
}

// failed notes in rec what the client gets from a handler that did not
// return, as the writer below rec answers for it: bridge's, in every mode,
// which holds the response start (bridge.Committer). Before the start, the
// client gets bridge's plain 500, http.ErrAbortHandler included; after it,
// the response is cut. With CGIRUN_DEBUG the 500's body is longer than
// Bytes says: the panic and its stack follow.
func failed(rec *serve.StatusRecorder) {
	if c, ok := rec.ResponseWriter.(bridge.Committer); !ok || c.Committed() {
		rec.Cut = true
		return
	}
	// The size of the plain 500's body, worked out here, on the failure
	// path, not at start-up: a CGI program pays its start-up on every
	// request.
	b := bridge.AppendError(nil, http.StatusInternalServerError, "")
	rec.Status, rec.Bytes = http.StatusInternalServerError, int64(len(b)-bytes.Index(b, []byte("\r\n\r\n"))-len("\r\n\r\n"))
}

// access writes the access log line of r, started at start: as slog
// attributes, or as Apache's combined format when AccessLogFormat is
// "combined" (see combined).
func (m *monitor) access(r *http.Request, rec *serve.StatusRecorder, start time.Time, d time.Duration) {
	client := serve.ClientIP(r.RemoteAddr)
	xff := r.Header.Get("X-Forwarded-For")
	if m.cfg.LogXForwardedFor && xff != "" {
		client = xff + "," + client
	}
	if m.cfg.AccessLogFormat == "combined" {
		if m.now != nil {
			start = m.now()
		}
		m.combined(r, rec, client, start)
		return
	}
	args := []any{"client", client, "method", r.Method, "uri", r.RequestURI, "proto", r.Proto,
		"status", rec.Status, "bytes", rec.Bytes, "duration", d, "user_agent", r.UserAgent()}
	if rec.Cut {
		args = append(args, "cut", true)
	}
	m.log.Info("access", args...)
}

// combined writes the access log line of r in Apache's combined format
// (serve.AppendCombined), so that goaccess and other readers of Apache's
// logs read it. The line goes on the writer below the logger, when
// NewServer made it (serve.Writer): stderr, one raw line between slog's.
// A logger of Options.Logger gets the line as the message of an Info
// record without attributes, and its handler decides how to write it.
func (m *monitor) combined(r *http.Request, rec *serve.StatusRecorder, client string, at time.Time) {
	serve.WriteLine(m.log, serve.AppendCombined(make([]byte, 0, 256), r, rec, client, at))
}
