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
