package cgirun

import (
	"bytes"
	"context"
	"net/http"
	"runtime/pprof"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/cgirun/cgirun/internal/serve"
)

// slowLabel is the pprof label that marks the goroutines of a request the
// slow log watches: the handler's, and those it starts, which inherit it.
const slowLabel = "cgirun_request"

// slowID is the last value of slowLabel given to a request.
var slowID atomic.Uint64

// maxSlowStack bounds the stacks a slow-log line holds, in bytes.
const maxSlowStack = 16 << 10

// slowWatch is the slow log's watch over one request (CGIRUN_SLOWLOG_TIMEOUT,
// php-fpm's request_slowlog_timeout): a timer that logs the request, with
// the stacks of its goroutines, when it crosses the threshold while still
// running.
type slowWatch struct {
	label  string // slowLabel's value
	method string
	uri    string
	remote string
	timer  *time.Timer
	logged chan struct{} // closed once the timer's line is written
}

// watch starts the slow log's timer for r, started at start.
func (m *monitor) watch(r *http.Request, start time.Time) *slowWatch {
	w := &slowWatch{
		label:  strconv.FormatUint(slowID.Add(1), 10),
		method: r.Method, uri: r.RequestURI, remote: r.RemoteAddr,
		logged: make(chan struct{}),
	}
	w.timer = time.AfterFunc(m.cfg.SlowlogTimeout, func() {
		defer close(w.logged)
		m.slow.Add(1)
		m.log.Warn("cgirun: slow request running", "method", w.method, "uri", w.uri, "duration", time.Since(start), "remote", w.remote,
			"stack", labelledStacks(slowLabel, w.label, maxSlowStack))
	})
	return w
}

// run calls f, which answers r, with the goroutine labelled for the slow
// log.
func (w *slowWatch) run(ctx context.Context, f func()) {
	pprof.Do(ctx, pprof.Labels(slowLabel, w.label), func(context.Context) { f() })
}

// slowEnd ends the watch over r, which took d: a request that crossed
// the threshold is logged again, with its status and whole duration,
// after the timer's line.
func (m *monitor) slowEnd(w *slowWatch, r *http.Request, rec *serve.StatusRecorder, d time.Duration) {
	stopped := w.timer.Stop()
	if stopped && d < m.cfg.SlowlogTimeout {
		return
	}
	if stopped {
		// It crossed the threshold as it ended, before its timer ran.
		m.slow.Add(1)
	} else {
		<-w.logged
	}
	args := []any{"method", r.Method, "uri", r.RequestURI, "status", rec.Status, "duration", d, "remote", r.RemoteAddr}
	if rec.Cut {
		args = append(args, "cut", true)
	}
	m.log.Warn("cgirun: slow request", args...)
}

// labelledStacks returns the stacks of the goroutines labelled key=value,
// one frame a line ("function+offset file:line"), goroutines with the same
// stack once, at most limit bytes of them. It reads the goroutine profile
// at debug level 1, the one that prints each goroutine's labels.
func labelledStacks(key, value string, limit int) string {
	var buf bytes.Buffer
	if err := pprof.Lookup("goroutine").WriteTo(&buf, 1); err != nil {
		return "unknown: " + err.Error()
	}
	want := []byte(strconv.Quote(key) + ":" + strconv.Quote(value))
	var out []byte
	for rec := range bytes.SplitSeq(buf.Bytes(), []byte("\n\n")) {
		var labelled bool
		var frames [][]byte
		for line := range bytes.SplitSeq(rec, []byte("\n")) {
			switch {
			case bytes.HasPrefix(line, []byte("# labels: ")):
				labelled = bytes.Contains(line, want)
			case bytes.HasPrefix(line, []byte("#\t")):
				frames = append(frames, line)
			}
		}
		if !labelled {
			continue
		}
		if len(out) > 0 {
			out = append(out, '\n')
		}
		for _, f := range frames {
			// "#\t0x4a5b6c\tmain.handler+0x2c\t\t/src/main.go:12":
			// the pc left out.
			fields := bytes.Fields(f)
			if len(fields) >= 3 {
				out = append(out, fields[2]...)
				for _, more := range fields[3:] {
					out = append(append(out, ' '), more...)
				}
				out = append(out, '\n')
			}
		}
	}
	if len(out) == 0 {
		return "not found"
	}
	if len(out) > limit {
		out = append(out[:limit], "..."...)
	}
	return string(bytes.TrimSuffix(out, []byte("\n")))
}
