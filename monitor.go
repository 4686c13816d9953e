package cgirun

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// monitor wraps the handler with what Config asks of every request: the
// URL length bound, the status and ping pages (php-fpm's pm.status_path and
// ping.path), the access log and the slow-request log. Its counters are
// atomics: the hot path takes no lock.
type monitor struct {
	// Immutable.
	cfg     Config
	log     *slog.Logger
	next    http.Handler
	started time.Time
	conns   func() uint64 // accepted connections, from the server

	requests  atomic.Uint64
	active    atomic.Int64
	maxActive atomic.Int64
	slow      atomic.Uint64
}

func newMonitor(cfg Config, log *slog.Logger, next http.Handler) *monitor {
	return &monitor{cfg: cfg, log: log, next: next, started: time.Now()}
}

// status is what the status page reports.
type status struct {
	Mode              string  `json:"mode"`
	UptimeSeconds     float64 `json:"uptime_seconds"`
	AcceptedConns     uint64  `json:"accepted_conns"`
	Requests          uint64  `json:"requests"`
	ActiveRequests    int64   `json:"active_requests"`
	MaxActiveRequests int64   `json:"max_active_requests"`
	SlowRequests      uint64  `json:"slow_requests"`
}

func (m *monitor) status(mode string) status {
	st := status{
		Mode:              mode,
		UptimeSeconds:     time.Since(m.started).Seconds(),
		Requests:          m.requests.Load(),
		ActiveRequests:    m.active.Load(),
		MaxActiveRequests: m.maxActive.Load(),
		SlowRequests:      m.slow.Load(),
	}
	if m.conns != nil {
		st.AcceptedConns = m.conns()
	}
	return st
}

// handler returns the wrapped handler for a server in mode.
func (m *monitor) handler(mode string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if m.cfg.MaxURLLength > 0 && len(r.RequestURI) > m.cfg.MaxURLLength {
			m.log.Warn("cgirun: request URI too long", "len", len(r.RequestURI), "limit", m.cfg.MaxURLLength, "remote", r.RemoteAddr)
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
	m.requests.Add(1)
	n := m.active.Add(1)
	for max := m.maxActive.Load(); n > max && !m.maxActive.CompareAndSwap(max, n); max = m.maxActive.Load() {
	}
	logging := m.cfg.AccessLog || m.cfg.SlowlogTimeout > 0
	var rec *recorder
	start := time.Now()
	if logging {
		rec = &recorder{ResponseWriter: w, status: http.StatusOK}
		w = rec
	}
	defer func() {
		m.active.Add(-1)
		if !logging {
			return
		}
		d := time.Since(start)
		if m.cfg.SlowlogTimeout > 0 && d >= m.cfg.SlowlogTimeout {
			m.slow.Add(1)
			m.log.Warn("cgirun: slow request", "method", r.Method, "uri", r.RequestURI, "status", rec.status, "duration", d, "remote", r.RemoteAddr)
		}
		if m.cfg.AccessLog {
			m.access(r, rec, d)
		}
	}()
	m.next.ServeHTTP(w, r)
}

// access writes one access log line: as slog attributes, or as Apache's
// combined format when AccessLogFormat is "combined".
func (m *monitor) access(r *http.Request, rec *recorder, d time.Duration) {
	client := clientIP(r.RemoteAddr)
	xff := r.Header.Get("X-Forwarded-For")
	if m.cfg.LogXForwardedFor && xff != "" {
		client = xff + "," + client
	}
	if m.cfg.AccessLogFormat == "combined" {
		m.log.Info(fmt.Sprintf("%s - - [%s] %q %d %d %q %q", client, time.Now().Format("02/Jan/2006:15:04:05 -0700"),
			r.Method+" "+r.RequestURI+" "+r.Proto, rec.status, rec.bytes, r.Referer(), r.UserAgent()))
		return
	}
	m.log.Info("access", "client", client, "method", r.Method, "uri", r.RequestURI, "proto", r.Proto,
		"status", rec.status, "bytes", rec.bytes, "duration", d, "user_agent", r.UserAgent())
}

func clientIP(remote string) string {
	if host, _, err := net.SplitHostPort(remote); err == nil {
		return host
	}
	return remote
}

func (m *monitor) serveStatus(w http.ResponseWriter, r *http.Request, mode string) {
	st := m.status(mode)
	w.Header().Set("Cache-Control", "no-store")
	if _, ok := r.URL.Query()["json"]; ok || strings.Contains(r.Header.Get("Accept"), "application/json") {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(st)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "mode:                %s\nuptime seconds:      %s\naccepted conns:      %d\nrequests:            %d\nactive requests:     %d\nmax active requests: %d\nslow requests:       %d\n",
		st.Mode, strconv.FormatFloat(st.UptimeSeconds, 'f', 0, 64), st.AcceptedConns, st.Requests, st.ActiveRequests, st.MaxActiveRequests, st.SlowRequests)
}

// recorder notes the status and size of a response for the logs. It keeps
// Flush working and lets http.ResponseController reach the writer below.
type recorder struct {
	http.ResponseWriter
	status      int
	bytes       int64
	wroteHeader bool
}

func (r *recorder) WriteHeader(code int) {
	if !r.wroteHeader && code >= 200 {
		r.status, r.wroteHeader = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	r.wroteHeader = true
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	return n, err
}

func (r *recorder) Flush() {
	http.NewResponseController(r.ResponseWriter).Flush()
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
