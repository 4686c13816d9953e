package gateway

import (
	"errors"
	"strings"
	"testing"
)

// TestErrorsStartWithThePrefix: each server package's errors keep their
// own wording, and the root package and the runner unwrap the error of
// IDs once to name the setting beside "no such user".
func TestErrorsStartWithThePrefix(t *testing.T) {
	_, _, err := ListenConfig{Prefix: "scgi", Owner: "no-such-user-cgirun"}.IDs()
	if err == nil || err.Error() != `scgi: socket owner "no-such-user-cgirun": no such user` {
		t.Errorf("IDs = %v, want the scgi prefix", err)
	}
	if inner := errors.Unwrap(err); inner == nil || inner.Error() != "no such user" {
		t.Errorf("errors.Unwrap(IDs error) = %v, want no such user", inner)
	}
	for name, err := range map[string]error{
		"ParseAddr": func() error { _, _, err := ParseAddr("uwsgi", "nowhere"); return err }(),
		"InheritedListener": func() error {
			_, err := InheritedListener("uwsgi", 1<<20)
			return err
		}(),
		"AllowedPeers": func() error { _, err := AllowedPeers("uwsgi", []string{"not-an-ip"}); return err }(),
	} {
		if err == nil || !strings.HasPrefix(err.Error(), "uwsgi: ") {
			t.Errorf("%s = %v, want an error starting with uwsgi: ", name, err)
		}
	}
}
