package cgirun

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestSlowlogWhileRunning: with CGIRUN_SLOWLOG_TIMEOUT, a request held in
// its handler is logged while it still runs, with the stacks of the
// handler's goroutine and of the one it started (found through their
// pprof label), and once more when it ends, with its status; it counts
// as one slow request.
func TestSlowlogWhileRunning(t *testing.T) {
	for _, mode := range []Mode{ModeHTTP, ModeFastCGI} {
		t.Run(string(mode), func(t *testing.T) {
			ss := startStatusServer(t, mode, map[string]string{"CGIRUN_SLOWLOG_TIMEOUT": "50ms"})
			got := make(chan *httptest.ResponseRecorder, 1)
			go func() { got <- ss.get("/hold?stuck=1", nil) }()
			<-ss.held
			running, ok := ss.logs.Wait("cgirun: slow request running", 10*time.Second)
			if !ok {
				t.Fatalf("no slow-log line while the request runs; log:\n%s", ss.logs)
			}
			for _, want := range []string{"method=GET", `uri="/hold?stuck=1"`, "remote=", "duration=",
				"cgirun.(*statusServer).hold", "cgirun.awaitRelease", "status_test.go:"} {
				if !strings.Contains(running, want) {
					t.Errorf("slow-log line lacks %q:\n%s", want, running)
				}
			}
			if strings.Contains(running, "TestSlowlogWhileRunning") {
				t.Errorf("slow-log line holds the test's own goroutine, not only the request's:\n%s", running)
			}
			const endMsg = `msg="cgirun: slow request" `
			if strings.Contains(ss.logs.String(), endMsg) {
				t.Errorf("end line logged before the request ended:\n%s", ss.logs)
			}
			close(ss.release)
			if w := <-got; w.Code != http.StatusOK {
				t.Errorf("held request = %d, want 200", w.Code)
			}
			end, ok := ss.logs.Wait(endMsg, 10*time.Second)
			if !ok || !strings.Contains(end, "status=200") || !strings.Contains(end, `uri="/hold?stuck=1"`) {
				t.Fatalf("end line = %q, want one with status=200 and the URI; log:\n%s", end, ss.logs)
			}
			if st := ss.report(""); st.SlowRequests != 1 {
				t.Errorf("slow requests = %d, want 1", st.SlowRequests)
			}
		})
	}
}

// TestLabelledStacks: only the goroutines with the label are returned,
// within the bound.
func TestLabelledStacks(t *testing.T) {
	if got := labelledStacks(slowLabel, "no such request", maxSlowStack); got != "not found" {
		t.Errorf("labelledStacks of no goroutine = %q, want not found", got)
	}
	w := &slowWatch{label: "stacks-test"}
	w.run(t.Context(), func() {
		got := labelledStacks(slowLabel, "stacks-test", maxSlowStack)
		if !strings.Contains(got, "cgirun.TestLabelledStacks") || !strings.Contains(got, "slowlog_test.go:") {
			t.Errorf("labelledStacks = %q, want this test's frames", got)
		}
		if got := labelledStacks(slowLabel, "stacks-test", 64); len(got) != 64+len("...") {
			t.Errorf("labelledStacks bounded to 64 bytes = %d bytes: %q", len(got), got)
		}
	})
}
