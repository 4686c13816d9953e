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
	"math"
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
