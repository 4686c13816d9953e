package fastcgi

import (
	"bytes"
	"net/http"
	"testing"
)

// TestDirectWrite: writes from directWriteMin bytes up leave from the
// handler's slice, framed in records of a multiple of 8 bytes, smaller
// ones and the tails through the buffer; the body arrives whole and in
// order, and a handler may reuse its slice as soon as Write returns.
func TestDirectWrite(t *testing.T) {
	sizes := []int{100, directWriteMin - 1, directWriteMin, 65536, 3, 2*maxStreamChunk + 3, 100000}
	var want []byte
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.(http.Flusher).Flush() // commit: later writes reach the connection as they come
		for i, n := range sizes {
			p := bytes.Repeat([]byte{byte('a' + i)}, n)
			if _, err := w.Write(p); err != nil {
				t.Errorf("Write(%d bytes) = %v", n, err)
				return
			}
			clear(p) // the handler's slice is its own again
		}
	})
	for i, n := range sizes {
		want = append(want, bytes.Repeat([]byte{byte('a' + i)}, n)...)
	}
	_, addr, _ := startServer(t, h, nil)
	rc := dialRaw(t, addr)
	rc.send(requestRecords(1, true, "", nginxHello...))
	got := rc.readResponses(1)[1]
	_, body, ok := bytes.Cut(got.stdout, []byte("\r\n\r\n"))
	if !ok || !bytes.Equal(body, want) || got.protoStatus != statusRequestComplete {
		t.Fatalf("body of %d bytes (header block found: %v), %s; want the %d bytes written", len(body), ok, got.protoStatus, len(want))
	}
}
