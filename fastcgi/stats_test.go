package fastcgi

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"testing"
)

// TestRequestID: a handler learns its request's id from its context, and
// only there.
func TestRequestID(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := RequestID(r.Context())
		fmt.Fprintf(w, "id=%d ok=%v", id, ok)
	})
	_, addr, _ := startServer(t, h, nil)
	rc := dialRaw(t, addr)
	var b []byte
	for _, id := range []uint16{7, 300} {
		b = append(b, beginRecord(id, roleResponder, true)...)
		b = appendStream(b, typeParams, id, appendPair(nil, "REQUEST_METHOD", "GET"))
		b = appendRecord(b, typeParams, id, nil)
		b = appendRecord(b, typeStdin, id, nil)
	}
	rc.send(b)
	for id, got := range rc.readResponses(7, 300) {
		if want := fmt.Sprintf("id=%d ok=true", id); !bytes.HasSuffix(got.stdout, []byte(want)) {
			t.Errorf("request %d: handler saw %q, want %q", id, got.stdout, want)
		}
	}
	if id, ok := RequestID(context.Background()); ok {
		t.Errorf("RequestID(context.Background()) = %d, true; want false", id)
	}
}

// TestStatsHeadersLarge: a header block past MaxParamsBytes is counted
// among the 431 refusals, and one within it is not.
func TestStatsHeadersLarge(t *testing.T) {
	s, addr, _ := startServer(t, http.NotFoundHandler(), func(s *Server) { s.MaxParamsBytes = 1 << 10 })
	rc := dialRaw(t, addr)
	b := beginRecord(1, roleResponder, true)
	b = append(b, pairsRecords(1, 4<<10, true)...)
	b = appendRecord(b, typeStdin, 1, nil)
	b = append(b, beginRecord(2, roleResponder, true)...)
	b = appendStream(b, typeParams, 2, appendPair(nil, "REQUEST_METHOD", "GET"))
	b = appendRecord(b, typeParams, 2, nil)
	b = appendRecord(b, typeStdin, 2, nil)
	rc.send(b)
	got := rc.readResponses(1, 2)
	if !bytes.HasPrefix(got[1].stdout, []byte("Status: 431 ")) || !bytes.HasPrefix(got[2].stdout, []byte("Status: 404 ")) {
		t.Fatalf("answers = %.40q and %.40q, want 431 and 404", got[1].stdout, got[2].stdout)
	}
	if st := s.Stats(); st.HeadersLarge != 1 {
		t.Errorf("Stats().HeadersLarge = %d, want 1", st.HeadersLarge)
	}
}
