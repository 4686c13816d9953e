package fastcgi

import (
	"testing"
	"testing/synctest"
	"time"
)

// TestLazyDeadlineKeepsABusyConnection: on a kept connection whose
// requests come closer together than IdleTimeout, for longer than
// IdleTimeout and deadlineSlack, the read deadline armed for an earlier
// idle time fires before the one that applies, and the connection stays
// open; once no request comes for IdleTimeout, it closes.
func TestLazyDeadlineKeepsABusyConnection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const idle = 100 * time.Millisecond
		l := newPipeListener()
		serveOn(t, l, helloHandler(), func(s *Server) { s.IdleTimeout, s.WriteTimeout = idle, idle })
		rc := l.dial(t)
		req := requestRecords(1, true, "", nginxHello...)
		start := time.Now()
		for i := 0; time.Since(start) < deadlineSlack+3*idle; i++ {
			rc.send(req)
			if got := rc.readResponses(1)[1]; string(got.stdout) != helloStream || got.protoStatus != statusRequestComplete {
				t.Fatalf("request %d: response %q %s, want %q", i, got.stdout, got.protoStatus, helloStream)
			}
			time.Sleep(idle * 6 / 10)
		}
		rc.expectClosed()
	})
}

// TestLazyDeadlineUpdate: a deadline moves on the socket only when the
// armed one would be later than the one that applies, or earlier by
// deadlineSlack or more; one that fired early is re-armed.
func TestLazyDeadlineUpdate(t *testing.T) {
	var armed []time.Time
	l := lazyDeadline{set: func(d time.Time) error { armed = append(armed, d); return nil }}
	t0 := time.Now()
	steps := []struct {
		name string
		want time.Time
		arms bool
	}{
		{"first", t0.Add(time.Minute), true},
		{"later, within the slack", t0.Add(time.Minute + deadlineSlack/2), false},
		{"none", time.Time{}, false},
		{"later by the slack", t0.Add(time.Minute + deadlineSlack), true},
		{"earlier", t0.Add(time.Second), true},
	}
	for _, s := range steps {
		n := len(armed)
		l.update(s.want)
		if got := len(armed) > n; got != s.arms {
			t.Fatalf("%s: update(%v) armed the socket = %v, want %v", s.name, s.want, got, s.arms)
		}
		if !l.want.Equal(s.want) {
			t.Fatalf("%s: want = %v, want %v", s.name, l.want, s.want)
		}
	}
	l.update(t0.Add(time.Hour))
	if l.expired() || !armed[len(armed)-1].Equal(t0.Add(time.Hour)) {
		t.Fatalf("expired() before the deadline: true or not re-armed (armed %v), want false and re-armed", armed[len(armed)-1])
	}
	l.update(t0.Add(-time.Second))
	if !l.expired() {
		t.Fatal("expired() after the deadline = false, want true")
	}
}
