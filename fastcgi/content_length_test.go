package fastcgi

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestUnknownContentLengthFromCaddy: Caddy's FastCGI transport sends
// CONTENT_LENGTH=-1 for a client's chunked body. The handler gets
// ContentLength -1 and the whole body, to the end of FCGI_STDIN, however
// many records carry it.
func TestUnknownContentLengthFromCaddy(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "%d %s", r.ContentLength, b)
	})
	_, addr, _ := startServer(t, h, nil)
	rc := dialRaw(t, addr)
	b := beginRecord(1, roleResponder, false)
	b = append(b, paramsRecords(1, "REQUEST_METHOD=POST", "REQUEST_URI=/upload", "SERVER_PROTOCOL=HTTP/1.1", "CONTENT_LENGTH=-1", "HTTP_TRANSFER_ENCODING=chunked")...)
	for _, part := range []string{"first chunk, ", "second chunk, ", "last"} {
		b = appendStream(b, typeStdin, 1, []byte(part))
	}
	rc.send(appendStream(b, typeStdin, 1, nil))
	got := string(rc.readResponses(1)[1].stdout)
	if want := "\r\n\r\n-1 first chunk, second chunk, last"; !strings.HasPrefix(got, "Status: 200 OK\r\n") || !strings.HasSuffix(got, want) {
		t.Errorf("response = %q, want 200 with body %q", got, want[4:])
	}
}
