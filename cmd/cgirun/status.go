package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/cgirun/cgirun/bridge"
	"github.com/cgirun/cgirun/cgi"
	"github.com/cgirun/cgirun/internal/buildinfo"
	"github.com/cgirun/cgirun/internal/serve"
	"github.com/cgirun/cgirun/internal/status"
)

// runnerStatus is the runner's status page (--status-path), answered by
// the runner itself, never by a script: the Executor's counts of scripts
// (cgi.Executor.Stats) and the runner's own of the requests it answered,
// by status class and by duration. A request is the status page's when
// its path is the --status-path: SCRIPT_NAME over FastCGI (as php-fpm's
// pm.status_path), the URL's path over HTTP. Its counters are atomics.
// Over FastCGI it also writes the access log (--access-log), with or
// without a status page.
type runnerStatus struct {
	// Immutable once serving.
	path      string // "": no status page
	mode      string // "fastcgi" or "http"
	exec      *cgi.Executor
	started   time.Time
	log       *slog.Logger
	page      *bridge.HandlerResponder // serveHTTP, over FastCGI
	accessLog string                   // over FastCGI: "slog", "combined", or "" for none

	// Of the requests answered (the status page's left out).
	requests  atomic.Uint64
	active    atomic.Int64
	classes   [len(status.Classes)]atomic.Uint64
	durations status.Histogram
}

func newRunnerStatus(path, mode string, exec *cgi.Executor, log *slog.Logger) *runnerStatus {
	s := &runnerStatus{path: path, mode: mode, exec: exec, started: time.Now(), log: log}
	s.page = &bridge.HandlerResponder{Handler: http.HandlerFunc(s.serveHTTP), Logger: log}
	return s
}

// Respond implements bridge.Responder over FastCGI: the status page, or
// the Executor's answer, counted, and logged with --access-log.
func (s *runnerStatus) Respond(ctx context.Context, req *bridge.Request, out bridge.Output) error {
	if s.path != "" && req.Env.Get("SCRIPT_NAME") == s.path {
		return s.page.Respond(ctx, req, out)
	}
	start := s.begin()
	so := &statusOutput{Output: out}
	defer func() { s.end(so.status, start) }()
	err := s.exec.Respond(ctx, req, so)
	if s.accessLog != "" {
		s.access(ctx, req, so, start, errors.Is(err, bridge.ErrCutShort))
	}
	return err
}

// access writes the access log line of a FastCGI request, as "cgirun
// http" writes its own (writeAccess).
func (s *runnerStatus) access(ctx context.Context, req *bridge.Request, so *statusOutput, start time.Time, cut bool) {
	rec := &serve.StatusRecorder{Status: so.status, Bytes: so.body, Cut: cut}
	if r, err := bridge.NewHTTPRequest(ctx, req); err == nil {
		writeAccess(s.log, s.accessLog, r, req.Env.Get("REQUEST_URI"), rec, start)
		return
	}
	// An environment too broken for a request: a slog line from it.
	args := []any{"method", req.Env.Get("REQUEST_METHOD"), "uri", req.Env.Get("REQUEST_URI"), "status", rec.Status, "bytes", rec.Bytes,
		"remote", req.Env.Get("REMOTE_ADDR"), "duration", time.Since(start)}
	if cut {
		args = append(args, "cut", true)
	}
	s.log.Info("cgirun: request", args...)
}

// handler returns next, the runner's HTTP handler, behind the status
// page, its answers counted.
func (s *runnerStatus) handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == s.path {
			s.serveHTTP(w, r)
			return
		}
		start := s.begin()
		rec := serve.NewStatusRecorder(w)
		// Also when a script's answer is cut, which panics with
		// http.ErrAbortHandler: it is counted with the status it began.
		defer func() { s.end(rec.Status, start) }()
		next.ServeHTTP(rec, r)
	})
}

func (s *runnerStatus) begin() time.Time {
	s.requests.Add(1)
	s.active.Add(1)
	return time.Now()
}

// end counts a request answered with code (0: nothing was sent), begun
// at start.
func (s *runnerStatus) end(code int, start time.Time) {
	s.durations.Observe(time.Since(start))
	if c := code/100 - 1; c >= 0 && c < len(s.classes) {
		s.classes[c].Add(1)
	}
	s.active.Add(-1)
}

// statusOutput notes the status of the CGI response stream written
// through it, and the size of its body. The Executor's first write holds
// the whole header block: its Status line, none for a local redirect
// (counted as 302, which the web server makes of it).
type statusOutput struct {
	bridge.Output
	status int
	body   int64 // bytes written after the header block
}

func (o *statusOutput) Write(p []byte) (int, error) {
	if o.status == 0 && len(p) > 0 {
		o.status = http.StatusFound
		if rest, ok := bytes.CutPrefix(p, []byte("Status: ")); ok && len(rest) >= 3 {
			if c := int(rest[0]-'0')*100 + int(rest[1]-'0')*10 + int(rest[2]-'0'); c >= 100 && c <= 999 {
				o.status = c
			}
		}
		if i := bytes.Index(p, []byte("\r\n\r\n")); i >= 0 {
			o.body -= int64(i + 4)
		}
	}
	n, err := o.Output.Write(p)
	o.body += int64(n)
	return n, err
}

// runnerReport is what the runner's status page reports, the JSON form's
// fields named as the cgirun.Run status page's are where it has them.
type runnerReport struct {
	Mode           string  `json:"mode"`
	StartTime      int64   `json:"start_time"` // Unix seconds
	UptimeSeconds  float64 `json:"uptime_seconds"`
	PID            int     `json:"pid"`
	Version        string  `json:"version"`
	Requests       uint64  `json:"requests"`
	ActiveRequests int64   `json:"active_requests"`
	// Responses counts the requests answered, by status class, "1xx" to
	// "5xx".
	Responses       map[string]uint64      `json:"responses"`
	RequestDuration status.HistogramReport `json:"request_duration_seconds"`
	Scripts         scriptsReport          `json:"scripts"`

	started   time.Time
	durations status.HistogramSnapshot
}

// scriptsReport is the Executor's counts.
type scriptsReport struct {
	Started uint64 `json:"started"`
	// Exits counts the scripts done with by how they ended: "status_0",
	// "status_other" (or an exit that could not be read), "signal".
	Exits    map[string]uint64 `json:"exits"`
	Timeouts uint64            `json:"timeouts"`
	Kills    uint64            `json:"kills"`
	Running  int64             `json:"running"`
	Waiting  int64             `json:"waiting"`
	// Refused counts the requests answered 503 for want of a slot (-c).
	Refused uint64 `json:"refused"`
}

// exitKinds name the keys of scriptsReport.Exits in the order they are
// written.
var exitKinds = [...]string{"status_0", "status_other", "signal"}

func (s *runnerStatus) report() runnerReport {
	now := time.Now()
	es := s.exec.Stats()
	st := runnerReport{
		Mode:           s.mode,
		StartTime:      s.started.Unix(),
		UptimeSeconds:  now.Sub(s.started).Seconds(),
		PID:            os.Getpid(),
		Version:        buildinfo.Version(),
		Requests:       s.requests.Load(),
		ActiveRequests: s.active.Load(),
		Responses:      make(map[string]uint64, len(status.Classes)),
		Scripts: scriptsReport{
			Started:  es.Started,
			Exits:    map[string]uint64{"status_0": es.ExitsOK, "status_other": es.ExitsFailed, "signal": es.ExitsSignaled},
			Timeouts: es.Timeouts,
			Kills:    es.Kills,
			Running:  es.Running,
			Waiting:  es.Waiting,
			Refused:  es.Refused,
		},
		started:   s.started,
		durations: s.durations.Snapshot(),
	}
	for i, class := range status.Classes {
		st.Responses[class] = s.classes[i].Load()
	}
	st.RequestDuration = st.durations.Report()
	return st
}

// serveHTTP answers the status page in the format r asks for: a query
// parameter first (?json, ?openmetrics, as php-fpm's), then its Accept
// header.
func (s *runnerStatus) serveHTTP(w http.ResponseWriter, r *http.Request) {
	format := status.FormatOf(r.URL.Query(), r.Header.Get("Accept"))
	st := s.report()
	if err := status.Write(w, format, &st); err != nil {
		s.log.Warn("cgirun: writing the status page", "remote", r.RemoteAddr, "err", err)
	}
}

// Text writes st as php-fpm's status page does: "key: value" lines.
func (st *runnerReport) Text() []byte {
	t := status.Text{B: make([]byte, 0, 2048)}
	t.Process(st.Version, st.Mode, st.started, st.UptimeSeconds, st.PID)
	t.Uint("requests", st.Requests)
	t.Int("active requests", st.ActiveRequests)
	for _, class := range status.Classes {
		t.Uint("responses "+class, st.Responses[class])
	}
	t.Histogram(st.durations)
	sc := &st.Scripts
	t.Uint("scripts started", sc.Started)
	t.Uint("exits status 0", sc.Exits["status_0"])
	t.Uint("exits status other", sc.Exits["status_other"])
	t.Uint("exits signal", sc.Exits["signal"])
	t.Uint("script timeouts", sc.Timeouts)
	t.Uint("script kills", sc.Kills)
	t.Int("scripts running", sc.Running)
	t.Int("waiting for a slot", sc.Waiting)
	t.Uint("refused no slot", sc.Refused)
	return t.B
}

// Exposition writes st in Prometheus's or OpenMetrics's text format, the
// metric names prefixed cgirun_ as the cgirun.Run status page's.
func (st *runnerReport) Exposition(e *status.Exposition) {
	e.Process(st.Version, st.Mode, st.started, st.UptimeSeconds)
	e.Counter("cgirun_requests", "Requests answered, the status page's left out.", nil, st.Requests)
	e.Gauge("cgirun_requests_active", "Requests in flight, the status page's read left out.", float64(st.ActiveRequests))
	e.CounterBy("cgirun_responses", "Requests answered, by status class.", "class", status.Classes[:], st.Responses)
	e.Histogram("cgirun_request_duration_seconds", "How long the requests answered took.", st.durations)
	sc := &st.Scripts
	e.Counter("cgirun_scripts_started", "Scripts started.", nil, sc.Started)
	e.CounterBy("cgirun_script_exits", "Scripts done with, by how they ended: status_0, status_other or signal.", "exit", exitKinds[:], sc.Exits)
	e.Counter("cgirun_script_timeouts", "Scripts whose request ran past --timeout.", nil, sc.Timeouts)
	e.Counter("cgirun_script_kills", "Scripts whose process group was sent SIGKILL: alive --kill-grace after SIGTERM, or leaving processes that held their output.", nil, sc.Kills)
	e.Gauge("cgirun_scripts_running", "Scripts running, each holding a slot of -c.", float64(sc.Running))
	e.Gauge("cgirun_requests_waiting", "Requests waiting for a slot of -c.", float64(sc.Waiting))
	e.Counter("cgirun_requests_rejected", "Requests refused, by reason: no_slot is a 503 for want of a slot of -c.", [][]status.Label{{{Name: "reason", Value: "no_slot"}}}, sc.Refused)
	e.End()
}
