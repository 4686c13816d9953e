package status

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func TestHistogram(t *testing.T) {
	var h Histogram
	for _, d := range []time.Duration{5 * time.Millisecond, 6 * time.Millisecond, time.Second, 11 * time.Second} {
		h.Observe(d)
	}
	s := h.Snapshot()
	want := [len(Buckets)]uint64{1, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3}
	if s.Cumulative != want || s.Count != 4 || s.Sum != 12.011 {
		t.Errorf("Snapshot() = %+v, want buckets %v, count 4, sum 12.011", s, want)
	}
}

func TestText(t *testing.T) {
	var x Text
	x.Uint("requests", 3)
	x.Line("rejected header too large", "0")
	x.Seconds("duration sum seconds", 1.5)
	want := "requests:            3\nrejected header too large: 0\nduration sum seconds: 1.500000\n"
	if string(x.B) != want {
		t.Errorf("Text = %q, want %q", x.B, want)
	}
}

// TestExpositionEscapes: label values and help texts holding quotes,
// backslashes and newlines come back whole through Prometheus's parser.
func TestExpositionEscapes(t *testing.T) {
	const odd = "a \"quoted\" \\ back\nslash"
	e := Exposition{}
	e.Gauge("x_info", "help with "+odd, 1, Label{"v", odd})
	e.Counter("x_requests", "requests", [][]Label{{{"class", "2xx"}}, {{"class", "5xx"}}}, 3, 4)
	e.End()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(e.B)))
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, e.B)
	}
	g := fams["x_info"]
	if got := g.GetMetric()[0].GetLabel()[0].GetValue(); got != odd {
		t.Errorf("label value = %q, want %q", got, odd)
	}
	if got := g.GetHelp(); got != "help with "+odd {
		t.Errorf("help = %q, want %q", got, "help with "+odd)
	}
	if c := fams["x_requests_total"].GetMetric(); len(c) != 2 || c[1].GetCounter().GetValue() != 4 {
		t.Errorf("x_requests_total = %v, want 3 and 4", c)
	}
}

func TestFormatOf(t *testing.T) {
	tests := []struct {
		name   string
		query  string
		accept string
		want   Format
	}{
		{"nothing: php-fpm's text", "", "", FormatText},
		{"?json", "json", "", FormatJSON},
		{"?openmetrics", "openmetrics", "", FormatOpenMetrics},
		{"the query before Accept", "json", "application/openmetrics-text", FormatJSON},
		{"Prometheus's Accept", "", "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1", FormatOpenMetrics},
		{"Accept JSON", "", "application/json", FormatJSON},
		{"the text format 0.0.4", "", "text/plain; version=0.0.4", FormatPrometheus},
		{"a browser", "", "text/html,application/xhtml+xml,*/*;q=0.8", FormatText},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, _ := url.ParseQuery(tt.query)
			if got := FormatOf(q, tt.accept); got != tt.want {
				t.Errorf("FormatOf(%q, %q) = %v, want %v", tt.query, tt.accept, got, tt.want)
			}
		})
	}
}
