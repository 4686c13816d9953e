package scgi

import (
	"testing"

	"github.com/cgirun/cgirun/bridge"
	"github.com/cgirun/cgirun/internal/gateway"
)

// FuzzParseHeader checks that frame and decode never panic, that a block
// they accept holds CONTENT_LENGTH and SCGI=1, and that it decodes to the
// same variables once encoded again.
func FuzzParseHeader(f *testing.F) {
	f.Add(appendHeader(nil, nginxGet...))
	f.Add(request("body", "REQUEST_METHOD=POST", "PATH_INFO=/caf\xe9"))
	f.Add(appendHeader(nil, "CONTENT_LENGTH", "-1", "SCGI", "1", "HTTP_X", "1", "HTTP_X", "2"))
	f.Add([]byte("0:,"))
	f.Add([]byte("99999999999:"))
	f.Add([]byte("24:CONTENT_LENGTH\x000\x00SCGI\x001\x00;"))
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := frame(b, 4096)
		if err != nil || n == 0 || n > len(b) {
			return
		}
		var env bridge.Environ
		if err := decode(string(b[:n]), &env); err != nil {
			return
		}
		if !gateway.ValidLength(env.Get("CONTENT_LENGTH")) || env.Get("SCGI") != "1" {
			t.Fatalf("accepted %q without a CONTENT_LENGTH and SCGI=1", b[:n])
		}
		var pairs []string
		for name, value := range env.All() {
			pairs = append(pairs, name, value)
		}
		again := appendHeader(nil, pairs...)
		var env2 bridge.Environ
		if err := decode(string(again), &env2); err != nil {
			t.Fatalf("%q decoded, encoded again as %q: %v", b[:n], again, err)
		}
		if env2.Len() != env.Len() {
			t.Fatalf("round trip: %d variables, want %d", env2.Len(), env.Len())
		}
		for name, value := range env.All() {
			if got := env2.Get(name); got != value {
				t.Fatalf("round trip: %s = %q, want %q", name, got, value)
			}
		}
	})
}
