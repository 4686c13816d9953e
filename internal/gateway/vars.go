package gateway

import (
	"fmt"
	"strings"

	"github.com/cgirun/cgirun/bridge"
)

// AddVar adds a variable of a header block to env. A name sent twice is
// an error, except a request header's (HTTP_*): nginx before 1.23 sends
// one variable for each line of a header the client repeated, and those
// are joined as HTTP joins field lines, with ", " ("; " for
// HTTP_COOKIE), as later nginx versions join them before sending.
func AddVar(env *bridge.Environ, name, value string) error {
	if name == "" {
		return fmt.Errorf("a variable with an empty name")
	}
	old, dup := env.Lookup(name)
	if !dup {
		env.Set(name, value)
		return nil
	}
	if !strings.HasPrefix(name, "HTTP_") {
		return fmt.Errorf("variable %s sent twice", name)
	}
	sep := ", "
	if name == "HTTP_COOKIE" {
		sep = "; "
	}
	env.Set(name, old+sep+value)
	return nil
}

// ValidLength reports whether v is a CONTENT_LENGTH a header block may
// carry: digits without a leading zero, or a negative number, which
// lighttpd sends for a body it streams without knowing its length.
func ValidLength(v string) bool {
	neg := len(v) > 0 && v[0] == '-'
	if neg {
		v = v[1:]
	}
	if v == "" || len(v) > 1 && v[0] == '0' || neg && v == "0" || len(v) > 18 {
		return false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return false
		}
	}
	return true
}
