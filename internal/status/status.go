// Package status holds what a status page needs whatever it reports: a
// request-duration histogram kept without a lock, the Prometheus and
// OpenMetrics text exposition formats, and php-fpm's "key: value" text.
//
// The exposition formats are Prometheus's text format 0.0.4
// (https://prometheus.io/docs/instrumenting/exposition_formats/) and
// OpenMetrics 1.0.0 (https://prometheus.io/docs/specs/om/open_metrics_spec/),
// written by hand: counters, gauges and histograms without timestamps,
// exemplars or UNIT lines.
package status

import (
	"encoding/json"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Buckets are the upper bounds, in seconds, of the request-duration
// histogram: Prometheus's default buckets.
var Buckets = [...]float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// Histogram counts durations in Buckets. Its methods may be called from
// many goroutines at once; Observe takes no lock.
type Histogram struct {
	counts [len(Buckets) + 1]atomic.Uint64 // per bucket, not cumulative; the last is +Inf's
	sum    atomic.Int64                    // nanoseconds
}

// Observe counts one duration.
func (h *Histogram) Observe(d time.Duration) {
	s := d.Seconds()
	i := 0
	for i < len(Buckets) && s > Buckets[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sum.Add(int64(d))
}

// HistogramSnapshot is a Histogram read at one time.
type HistogramSnapshot struct {
	// Cumulative holds, for each of Buckets, the count of durations at
	// most that bound.
	Cumulative [len(Buckets)]uint64
	// Count is the count of all durations, the +Inf bucket's.
	Count uint64
	// Sum is their sum in seconds.
	Sum float64
}

// Snapshot reads h. Observations that run at the same time may be counted
// in the buckets and not yet in Sum.
func (h *Histogram) Snapshot() HistogramSnapshot {
	var s HistogramSnapshot
	var n uint64
	for i := range Buckets {
		n += h.counts[i].Load()
		s.Cumulative[i] = n
	}
	s.Count = n + h.counts[len(Buckets)].Load()
	s.Sum = time.Duration(h.sum.Load()).Seconds()
	return s
}

// Exposition content types.
const (
	ContentTypeText        = "text/plain; version=0.0.4; charset=utf-8"
	ContentTypeOpenMetrics = "application/openmetrics-text; version=1.0.0; charset=utf-8"
)

// Label is one label of a sample.
type Label struct{ Name, Value string }

// Exposition appends metric families in Prometheus's text format, or in
// OpenMetrics when OpenMetrics is set. Each family is written whole by one
// call; End finishes the page.
type Exposition struct {
	OpenMetrics bool
	B           []byte
}

// CounterBy writes the counter name with one sample for each of keys,
// labelled label=key, its value counts[key].
func (e *Exposition) CounterBy(name, help, label string, keys []string, counts map[string]uint64) {
	labels := make([][]Label, len(keys))
	values := make([]uint64, len(keys))
	for i, k := range keys {
		labels[i], values[i] = []Label{{Name: label, Value: k}}, counts[k]
	}
	e.Counter(name, help, labels, values...)
}

// Counter appends a counter family name (without _total) with one sample
// per value; labels[i] labels values[i] and may be nil when there is one
// value.
func (e *Exposition) Counter(name, help string, labels [][]Label, values ...uint64) {
	typeName := name + "_total"
	if e.OpenMetrics {
		typeName = name
	}
	e.head(typeName, "counter", help)
	for i, v := range values {
		var ls []Label
		if labels != nil {
			ls = labels[i]
		}
		e.sample(name+"_total", ls, strconv.FormatUint(v, 10))
	}
}

// Gauge appends a gauge family with one sample.
func (e *Exposition) Gauge(name, help string, v float64, labels ...Label) {
	e.head(name, "gauge", help)
	e.sample(name, labels, formatFloat(v))
}

// Histogram appends a histogram family from s, with Buckets.
func (e *Exposition) Histogram(name, help string, s HistogramSnapshot) {
	e.head(name, "histogram", help)
	for i, le := range Buckets {
		e.sample(name+"_bucket", []Label{{"le", formatFloat(le)}}, strconv.FormatUint(s.Cumulative[i], 10))
	}
	e.sample(name+"_bucket", []Label{{"le", "+Inf"}}, strconv.FormatUint(s.Count, 10))
	e.sample(name+"_sum", nil, formatFloat(s.Sum))
	e.sample(name+"_count", nil, strconv.FormatUint(s.Count, 10))
}

// End finishes the page: OpenMetrics's "# EOF" line.
func (e *Exposition) End() {
	if e.OpenMetrics {
		e.B = append(e.B, "# EOF\n"...)
	}
}

func (e *Exposition) head(name, typ, help string) {
	e.B = append(e.B, "# HELP "...)
	e.B = append(e.B, name...)
	e.B = append(e.B, ' ')
	e.B = appendEscaped(e.B, help, e.OpenMetrics)
	e.B = append(e.B, "\n# TYPE "...)
	e.B = append(e.B, name...)
	e.B = append(e.B, ' ')
	e.B = append(e.B, typ...)
	e.B = append(e.B, '\n')
}

func (e *Exposition) sample(name string, labels []Label, value string) {
	e.B = append(e.B, name...)
	if len(labels) > 0 {
		e.B = append(e.B, '{')
		for i, l := range labels {
			if i > 0 {
				e.B = append(e.B, ',')
			}
			e.B = append(e.B, l.Name...)
			e.B = append(e.B, "=\""...)
			e.B = appendEscaped(e.B, l.Value, true)
			e.B = append(e.B, '"')
		}
		e.B = append(e.B, '}')
	}
	e.B = append(e.B, ' ')
	e.B = append(e.B, value...)
	e.B = append(e.B, '\n')
}

// appendEscaped appends s with backslash and newline escaped, and the
// double quote too when quote is set: what both formats ask of a label
// value, and OpenMetrics of a HELP text.
func appendEscaped(b []byte, s string, quote bool) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			b = append(b, `\\`...)
		case c == '\n':
			b = append(b, `\n`...)
		case c == '"' && quote:
			b = append(b, `\"`...)
		default:
			b = append(b, c)
		}
	}
	return b
}

func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, +1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// Text appends php-fpm's status lines, "key: value", the values starting
// in one column as php-fpm aligns them; a key too long for the column is
// followed by one space.
type Text struct {
	B []byte
}

// textColumn is where values start: after "max active requests: ".
const textColumn = 21

// Line appends one line.
func (t *Text) Line(key, value string) {
	t.B = append(t.B, key...)
	t.B = append(t.B, ':')
	t.B = append(t.B, strings.Repeat(" ", max(1, textColumn-len(key)-1))...)
	t.B = append(t.B, value...)
	t.B = append(t.B, '\n')
}

// Uint appends a line with a count.
func (t *Text) Uint(key string, v uint64) { t.Line(key, strconv.FormatUint(v, 10)) }

// Int appends a line with a signed count.
func (t *Text) Int(key string, v int64) { t.Line(key, strconv.FormatInt(v, 10)) }

// Seconds appends a line with a duration in seconds, to the microsecond.
func (t *Text) Seconds(key string, v float64) { t.Line(key, strconv.FormatFloat(v, 'f', 6, 64)) }

// FormatBound is how a bucket's bound is written in every format: "0.005",
// "1", "2.5".
func FormatBound(le float64) string { return formatFloat(le) }

// Format is one of a status page's formats.
type Format int

const (
	FormatText        Format = iota // php-fpm's "key: value" lines
	FormatJSON                      // ?json, Accept: application/json
	FormatOpenMetrics               // ?openmetrics, Accept: application/openmetrics-text
	FormatPrometheus                // Accept: text/plain; version=0.0.4
)

// FormatOf tells the format a request asks for, from its query and its
// Accept header: a query parameter first (?json, ?openmetrics, as
// php-fpm's), then Accept, where OpenMetrics comes before JSON, and
// Prometheus's text format before php-fpm's text.
func FormatOf(query url.Values, accept string) Format {
	switch {
	case query.Has("json"):
		return FormatJSON
	case query.Has("openmetrics"):
		return FormatOpenMetrics
	case strings.Contains(accept, "application/openmetrics-text"):
		return FormatOpenMetrics
	case strings.Contains(accept, "application/json"):
		return FormatJSON
	case strings.Contains(accept, "text/plain") && strings.Contains(strings.ReplaceAll(accept, " ", ""), "version=0.0.4"):
		return FormatPrometheus
	}
	return FormatText
}

// Classes name the status classes, "1xx" to "5xx"; a count by class is
// indexed by status/100 - 1.
var Classes = [...]string{"1xx", "2xx", "3xx", "4xx", "5xx"}

// HistogramReport is a HistogramSnapshot in a status page's JSON:
// cumulative counts by upper bound in seconds, as Prometheus's buckets.
type HistogramReport struct {
	Buckets []BucketReport `json:"buckets"`
	Sum     float64        `json:"sum"`
	Count   uint64         `json:"count"`
}

// BucketReport is one bucket of a HistogramReport.
type BucketReport struct {
	LE    float64 `json:"le"`
	Count uint64  `json:"count"`
}

// Report returns s for a status page's JSON.
func (s HistogramSnapshot) Report() HistogramReport {
	r := HistogramReport{Buckets: make([]BucketReport, len(Buckets)), Sum: s.Sum, Count: s.Count}
	for i, le := range Buckets {
		r.Buckets[i] = BucketReport{LE: le, Count: s.Cumulative[i]}
	}
	return r
}

// Histogram appends the lines of a request-duration histogram: the
// cumulative count of each bucket, the count and the sum in seconds.
func (t *Text) Histogram(s HistogramSnapshot) {
	for i, le := range Buckets {
		t.Uint("duration <= "+FormatBound(le)+"s", s.Cumulative[i])
	}
	t.Uint("duration count", s.Count)
	t.Seconds("duration sum seconds", s.Sum)
}

// Process appends what every status page begins with, named cgirun_: the
// build's version and the server's mode (cgirun_build_info), when it
// started and how long it has run.
func (e *Exposition) Process(version, mode string, started time.Time, uptime float64) {
	e.Gauge("cgirun_build_info", "The server's version and mode; always 1.", 1,
		Label{Name: "version", Value: version}, Label{Name: "mode", Value: mode})
	e.Gauge("cgirun_start_time_seconds", "When the server started, in seconds since the Unix epoch.", float64(started.UnixMilli())/1e3)
	e.Gauge("cgirun_uptime_seconds", "How long the server has run.", uptime)
}

// Process appends what every status page begins with: the mode, when the
// server started, how long it has run, its pid and version.
func (t *Text) Process(version, mode string, started time.Time, uptime float64, pid int) {
	t.Line("mode", mode)
	t.Line("start time", started.Format("02/Jan/2006:15:04:05 -0700"))
	t.Line("uptime seconds", strconv.FormatFloat(uptime, 'f', 0, 64))
	t.Int("pid", int64(pid))
	t.Line("version", version)
}

// ContentType returns the Content-Type of a page in f.
func ContentType(f Format) string {
	switch f {
	case FormatJSON:
		return "application/json"
	case FormatOpenMetrics:
		return ContentTypeOpenMetrics
	case FormatPrometheus:
		return ContentTypeText
	}
	return "text/plain; charset=utf-8"
}

// Report is a status page's content: JSON is its encoding/json form.
type Report interface {
	// Text returns the page as php-fpm's "key: value" lines.
	Text() []byte
	// Exposition writes the page's metrics to e.
	Exposition(e *Exposition)
}

// Write answers a request for a status page with rep in format f,
// uncached: text, JSON, or the OpenMetrics or Prometheus text format.
func Write(w http.ResponseWriter, f Format, rep Report) error {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", ContentType(f))
	var b []byte
	switch f {
	case FormatJSON:
		b, _ = json.Marshal(rep) // of maps with string keys, numbers and strings: it cannot fail
		b = append(b, '\n')
	case FormatOpenMetrics, FormatPrometheus:
		e := Exposition{OpenMetrics: f == FormatOpenMetrics}
		rep.Exposition(&e)
		b = e.B
	default:
		b = rep.Text()
	}
	_, err := w.Write(b)
	return err
}
