package cgirun

import (
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/cgirun/cgirun/internal/buildinfo"
	"github.com/cgirun/cgirun/internal/status"
)

// statusReport is what the status page reports (CGIRUN_STATUS_PATH), the
// JSON form's fields named as php-fpm's are where it has them. It leaves
// out the request that asks for it: a page read on an idle server says
// that nothing is active.
type statusReport struct {
	Mode              string  `json:"mode"`
	StartTime         int64   `json:"start_time"` // Unix seconds
	UptimeSeconds     float64 `json:"uptime_seconds"`
	PID               int     `json:"pid"`
	Version           string  `json:"version"`
	AcceptedConns     uint64  `json:"accepted_conns"`
	OpenConns         int64   `json:"open_conns"`
	IdleConns         int64   `json:"idle_conns"`
	Requests          uint64  `json:"requests"`
	ActiveRequests    int64   `json:"active_requests"`
	MaxActiveRequests int64   `json:"max_active_requests"`
	SlowRequests      uint64  `json:"slow_requests"`
	// Responses counts the requests the handler answered (and the 503s
	// past CGIRUN_MAX_REQUESTS) by status class, "1xx" to "5xx".
	Responses map[string]uint64 `json:"responses"`
	// Rejected counts the requests refused, by reason: max_requests
	// (503), uri_too_long (414), header_too_large (431, FastCGI) and
	// timeout (503 past CGIRUN_REQUEST_TIMEOUT).
	Rejected        map[string]uint64      `json:"rejected"`
	RequestDuration status.HistogramReport `json:"request_duration_seconds"`
	// InFlight lists the requests in flight, with ?full.
	InFlight []inFlightRequest `json:"requests_in_flight,omitempty"`

	started   time.Time
	durations status.HistogramSnapshot
}

// rejectReasons name the reasons of Rejected, in the order they are
// written.
var rejectReasons = [...]string{"max_requests", "uri_too_long", "header_too_large", "timeout"}

// status is the status page's report; full adds the requests in flight.
func (m *monitor) status(mode string, full bool) statusReport {
	var c counts
	if m.counts != nil {
		c = m.counts()
	}
	now := time.Now()
	st := statusReport{
		Mode:              mode,
		StartTime:         m.started.Unix(),
		UptimeSeconds:     now.Sub(m.started).Seconds(),
		PID:               os.Getpid(),
		Version:           buildinfo.Version(),
		AcceptedConns:     c.Accepted,
		OpenConns:         c.Open,
		Requests:          c.Requests - min(c.Requests, 1),
		ActiveRequests:    c.Active - min(c.Active, 1),
		MaxActiveRequests: c.MaxActive,
		SlowRequests:      m.slow.Load(),
		Responses:         make(map[string]uint64, len(status.Classes)),
		Rejected:          map[string]uint64{"header_too_large": c.HeadersLarge},
		started:           m.started,
	}
	// The request asking is on one of the open connections.
	st.IdleConns = max(0, c.Open-c.Active)
	if c.Idle >= 0 {
		st.IdleConns = c.Idle
	}
	for _, class := range status.Classes {
		st.Responses[class] = 0
	}
	st.Rejected["max_requests"], st.Rejected["uri_too_long"], st.Rejected["timeout"] = 0, 0, 0
	if mt := m.metrics; mt != nil {
		for i, class := range status.Classes {
			st.Responses[class] = mt.classes[i].Load()
		}
		st.Rejected["max_requests"] = mt.overLimit.Load()
		st.Rejected["uri_too_long"] = mt.uriTooLong.Load()
		st.Rejected["timeout"] = mt.timeouts.Load()
		st.durations = mt.durations.Snapshot()
		if full {
			st.InFlight = mt.requests(now)
		}
	}
	st.RequestDuration = st.durations.Report()
	return st
}

func (m *monitor) serveStatus(w http.ResponseWriter, r *http.Request, mode string) {
	// The format r asks for: a query parameter first (?json,
	// ?openmetrics, as php-fpm's), then its Accept header.
	format := status.FormatOf(r.URL.Query(), r.Header.Get("Accept"))
	st := m.status(mode, r.URL.Query().Has("full") && (format == status.FormatText || format == status.FormatJSON))
	if err := status.Write(w, format, &st); err != nil {
		m.log.Warn("cgirun: writing the status page", "remote", r.RemoteAddr, "err", err)
	}
}

// Text writes st as php-fpm's status page does: "key: value" lines and,
// with ?full, a block for each request in flight after a line of stars.
func (st *statusReport) Text() []byte {
	t := status.Text{B: make([]byte, 0, 2048)}
	t.Process(st.Version, st.Mode, st.started, st.UptimeSeconds, st.PID)
	t.Uint("accepted conns", st.AcceptedConns)
	t.Int("open conns", st.OpenConns)
	t.Int("idle conns", st.IdleConns)
	t.Uint("requests", st.Requests)
	t.Int("active requests", st.ActiveRequests)
	t.Int("max active requests", st.MaxActiveRequests)
	t.Uint("slow requests", st.SlowRequests)
	for _, class := range status.Classes {
		t.Uint("responses "+class, st.Responses[class])
	}
	for _, reason := range rejectReasons {
		t.Uint("rejected "+strings.ReplaceAll(reason, "_", " "), st.Rejected[reason])
	}
	t.Histogram(st.durations)
	for _, req := range st.InFlight {
		t.B = append(t.B, "\n************************\n"...)
		if req.FastCGIRequestID != nil {
			t.Uint("fastcgi request id", uint64(*req.FastCGIRequestID))
		}
		t.Line("request method", req.Method)
		t.Line("request URI", req.URI)
		t.Seconds("duration seconds", req.DurationSeconds)
		t.Line("remote address", req.Remote)
	}
	return t.B
}

// Exposition writes st in Prometheus's or OpenMetrics's text format, the
// metric names prefixed cgirun_.
func (st *statusReport) Exposition(e *status.Exposition) {
	e.Process(st.Version, st.Mode, st.started, st.UptimeSeconds)
	e.Counter("cgirun_connections_accepted", "Connections accepted.", nil, st.AcceptedConns)
	e.Gauge("cgirun_connections_open", "Connections open.", float64(st.OpenConns))
	e.Gauge("cgirun_connections_idle", "Connections open with no request in flight.", float64(st.IdleConns))
	e.Counter("cgirun_requests", "Requests started, the status page's earlier reads included.", nil, st.Requests)
	e.Gauge("cgirun_requests_active", "Requests in flight, the status page's read left out.", float64(st.ActiveRequests))
	e.Gauge("cgirun_requests_active_max", "The most requests in flight at once since start.", float64(st.MaxActiveRequests))
	e.Counter("cgirun_requests_slow", "Requests that took longer than CGIRUN_SLOWLOG_TIMEOUT.", nil, st.SlowRequests)
	e.CounterBy("cgirun_responses", "Requests the handler answered (and 503s past CGIRUN_MAX_REQUESTS), by status class.", "class", status.Classes[:], st.Responses)
	e.CounterBy("cgirun_requests_rejected", "Requests refused, by reason.", "reason", rejectReasons[:], st.Rejected)
	e.Histogram("cgirun_request_duration_seconds", "How long the requests the handler answered took.", st.durations)
	e.End()
}
