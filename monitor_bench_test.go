package cgirun

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkMonitorCGI is what a CGI program's one request costs in the
// monitor, with the settings of a CGI start-up (no CGIRUN_* variable):
// the monitor built, the request counted and answered. The status page's
// metrics must add nothing here.
func BenchmarkMonitorCGI(b *testing.B) {
	cfg := defaultConfig()
	cfg.CGI = true
	log := slog.New(slog.DiscardHandler)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") })
	r := httptest.NewRequest("GET", "/hello", nil)
	b.ReportAllocs()
	for b.Loop() {
		var count requestCounter
		m := newMonitor(cfg, log, h)
		m.counts = count.counts
		count.wrap(m.handler(string(ModeCGI))).ServeHTTP(httptest.NewRecorder(), r)
	}
}
