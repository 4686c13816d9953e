package uwsgi

import (
	"testing"

	"github.com/cgirun/cgirun/bridge"
	"github.com/cgirun/cgirun/internal/gateway"
)

// FuzzParsePacket checks that frame and decode never panic, that a packet
// they accept has a valid CONTENT_LENGTH or none, and that it decodes to
// the same variables once encoded again.
func FuzzParsePacket(f *testing.F) {
	f.Add(appendPacket(nil, 0, 0, nginxGet...))
	f.Add(request("body", "REQUEST_METHOD=POST", "PATH_INFO=/caf\xe9"))
	f.Add(appendPacket(nil, 0, 0, "CONTENT_LENGTH", "-1", "HTTP_X", "1", "HTTP_X", "2"))
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0, 3, 0, 0, 9, 0, 'A'})
	f.Add([]byte{5, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := frame(b, 4096)
		if err != nil || n == 0 || n > len(b) {
			return
		}
		var env bridge.Environ
		if err := decode(string(b[:n]), &env); err != nil {
			return
		}
		if v := env.Get("CONTENT_LENGTH"); v != "" && !gateway.ValidLength(v) {
			t.Fatalf("accepted CONTENT_LENGTH %q", v)
		}
		var pairs []string
		for name, value := range env.All() {
			pairs = append(pairs, name, value)
		}
		again := appendPacket(nil, 0, 0, pairs...)
		if len(again) > 4+0xffff {
			return // joined HTTP_* lines can outgrow a packet
		}
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
