package testenv

import (
	"bytes"
	"io"
	"net/http"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// Families parses a status page's exposition with Prometheus's own
// parser, as its header's Content-Type says (the text format 0.0.4 or
// OpenMetrics 1.0.0), and returns its families by name.
func Families(t testing.TB, body []byte, header http.Header) map[string]*dto.MetricFamily {
	t.Helper()
	dec := expfmt.NewDecoder(bytes.NewReader(body), expfmt.ResponseFormat(header))
	got := make(map[string]*dto.MetricFamily)
	for {
		mf := new(dto.MetricFamily)
		err := dec.Decode(mf)
		if err == io.EOF {
			return got
		}
		if err != nil {
			t.Fatalf("parsing the exposition (%s): %v\n%s", header.Get("Content-Type"), err, body)
		}
		got[mf.GetName()] = mf
	}
}

// Sample returns the value of the sample of family name with the label
// (name=value), or of its only sample when label is empty; a histogram's
// value is its count.
func Sample(t testing.TB, fams map[string]*dto.MetricFamily, name string, label ...string) float64 {
	t.Helper()
	mf, ok := fams[name]
	if !ok {
		// A counter's family: OpenMetrics names it without _total, the
		// text format with it.
		mf, ok = fams[name+"_total"]
	}
	if !ok {
		t.Fatalf("no family %s", name)
	}
	for _, m := range mf.GetMetric() {
		if len(label) == 2 {
			found := false
			for _, l := range m.GetLabel() {
				found = found || l.GetName() == label[0] && l.GetValue() == label[1]
			}
			if !found {
				continue
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	t.Fatalf("family %s has no sample %v", name, label)
	return 0
}
