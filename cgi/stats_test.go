package cgi

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cgirun/cgirun/bridge"
)

// waitStats polls e's Stats until ok holds, up to waitLimit: a count that
// changes once a script is done with may change after its answer.
func waitStats(t *testing.T, e *Executor, what string, ok func(Stats) bool) Stats {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		st := e.Stats()
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("Stats never showed %s: %+v", what, st)
		}
		time.Sleep(time.Millisecond) // polling, with the deadline above
	}
}

// TestExecutorStats runs scripts that end in each way the Executor counts
// (status 0, another status, a signal, past Timeout, SIGKILL after the
// grace) and requests that wait for a slot and are refused one, and checks
// every count of Stats once the scripts are done with.
func TestExecutorStats(t *testing.T) {
	root := scripts(t)
	os.WriteFile(filepath.Join(root, "exit3.sh"), []byte("#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\npartial'\nexit 3\n"), 0o755)
	tests := []struct {
		name    string
		script  string
		timeout time.Duration
		status  int
		want    Stats
	}{
		{"exit 0", "hello.sh", 0, 200, Stats{Started: 1, ExitsOK: 1}},
		{"exit 3 after the header block", "exit3.sh", 0, 200, Stats{Started: 1, ExitsFailed: 1}},
		{"exit 3 before the header block", "die.sh", 0, 502, Stats{Started: 1, ExitsFailed: 1}},
		{"timeout: SIGTERM ends it", "sleep.sh", 100 * time.Millisecond, 504, Stats{Started: 1, ExitsSignaled: 1, Timeouts: 1}},
		{"timeout: SIGTERM ignored, SIGKILL after the grace", "stubborn.sh", 100 * time.Millisecond, 504, Stats{Started: 1, ExitsSignaled: 1, Timeouts: 1, Kills: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := newExecutor(t, root, func(e *Executor) { e.Timeout = tt.timeout })
			pidFile := filepath.Join(t.TempDir(), "pid")
			resp, _, _ := respondScript(t, e, cgiEnv(root, tt.script, "QUERY_STRING="+pidFile), nil)
			if resp.Status != tt.status {
				t.Errorf("status = %d, want %d", resp.Status, tt.status)
			}
			waitScripts(t, e)
			if got := e.Stats(); got != tt.want {
				t.Errorf("Stats() = %+v, want %+v", got, tt.want)
			}
		})
	}

	t.Run("MaxChildren: running, waiting, refused", func(t *testing.T) {
		e, _ := newExecutor(t, root, func(e *Executor) { e.MaxChildren, e.QueueTimeout = 1, waitLimit })
		flag := filepath.Join(t.TempDir(), "go-on")
		out := &flushRecorder{flushed: make(chan string, 16)}
		first := make(chan error, 1)
		go func() {
			first <- e.Respond(context.Background(), &bridge.Request{Env: cgiEnv(root, "stream.sh", "QUERY_STRING="+flag)}, out)
		}()
		<-out.flushed // the first request holds the only slot
		if st := e.Stats(); st.Running != 1 || st.Started != 1 {
			t.Errorf("with stream.sh answering: Stats() = %+v, want Running 1, Started 1", st)
		}
		// A second request waits for the slot until its client goes.
		ctx, cancel := context.WithCancel(context.Background())
		second := make(chan *flushRecorder, 1)
		go func() {
			out := new(flushRecorder)
			e.Respond(ctx, &bridge.Request{Env: cgiEnv(root, "hello.sh")}, out)
			second <- out
		}()
		waitStats(t, e, "a request waiting", func(st Stats) bool { return st.Waiting == 1 })
		cancel()
		resp, err := bridge.ReadResponse(bufioReader((<-second).String()), 0)
		if err != nil || resp.Status != 503 {
			t.Errorf("the request that gave up waiting got %v, %v; want 503", resp, err)
		}
		if st := e.Stats(); st.Waiting != 0 || st.Refused != 1 || st.Started != 1 {
			t.Errorf("after the refusal: Stats() = %+v, want Waiting 0, Refused 1, Started 1", st)
		}
		os.WriteFile(flag, nil, 0o644)
		<-first
		waitScripts(t, e)
		want := Stats{Started: 1, ExitsOK: 1, Refused: 1}
		if got := e.Stats(); got != want {
			t.Errorf("once stream.sh is done with: Stats() = %+v, want %+v", got, want)
		}
	})
}

// BenchmarkExecutorStats reads the counters as a status page does.
func BenchmarkExecutorStats(b *testing.B) {
	e := &Executor{}
	b.ReportAllocs()
	for b.Loop() {
		_ = e.Stats()
	}
}
