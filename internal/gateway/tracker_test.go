package gateway

import (
	"context"
	"sync"
	"testing"
	"time"
)

// TestMaxActiveWithinMaxRequests: the requests counted active at once
// never pass MaxRequests, even while one request gives back its slot as
// another, queued, takes it: the status page's "max active" is a bound an
// operator can read against the limit.
func TestMaxActiveWithinMaxRequests(t *testing.T) {
	const limit, workers, rounds = 2, 8, 2000
	var tr Tracker
	tr.Init("test", nil, 0, limit)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range rounds {
				if !tr.AcquireSlot(context.Background(), true, time.Minute) {
					t.Error("AcquireSlot gave up within a minute")
					return
				}
				tr.RequestStarted()
				tr.ReleaseSlot()
			}
		})
	}
	wg.Wait()
	st := tr.Stats()
	if st.Requests != workers*rounds || st.Active != 0 || st.MaxActive > limit {
		t.Errorf("Stats = %+v, want %d requests, none active, MaxActive at most %d", st, workers*rounds, limit)
	}
}
