package bridge_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"

	"github.com/cgirun/cgirun/bridge"
)

// memOutput is an Output that keeps the stream in memory.
type memOutput struct{ bytes.Buffer }

func (*memOutput) Flush() error { return nil }

// An Apache mod_authnz_fcgi Authorizer: the web server asks, in the FastCGI
// Authorizer role, whether a request may proceed. Status 200 lets it
// through, and each Variable-NAME header becomes the variable NAME of the
// request that follows; any other status is sent to the client as the
// answer. bridge.RequestOf tells the role (and mod_authnz_fcgi's own
// FCGI_APACHE_ROLE) apart from an ordinary request.
func ExampleRequestOf() {
	authorize := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req := bridge.RequestOf(r)
		if req == nil || req.Role != bridge.RoleAuthorizer {
			http.Error(w, "not an authorizer request", http.StatusBadRequest)
			return
		}
		user, pass := req.Env.Get("REMOTE_USER"), req.Env.Get("REMOTE_PASSWD")
		if req.Env.Get("FCGI_APACHE_ROLE") == "AUTHENTICATOR" && (user != "ann" || pass != "secret") {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		bridge.SetVariable(w.Header(), "AUTH_LEVEL", "admin")
		w.WriteHeader(http.StatusOK)
	})

	// What mod_authnz_fcgi sends for "AuthBasicProvider fcgi".
	var req bridge.Request
	req.Role = bridge.RoleAuthorizer
	for _, kv := range [][2]string{
		{"REQUEST_METHOD", "GET"}, {"REQUEST_URI", "/private/"}, {"SERVER_PROTOCOL", "HTTP/1.1"},
		{"FCGI_APACHE_ROLE", "AUTHENTICATOR"}, {"REMOTE_USER", "ann"}, {"REMOTE_PASSWD", "secret"},
	} {
		req.Env.Set(kv[0], kv[1])
	}
	var out memOutput
	hr := &bridge.HandlerResponder{Handler: authorize}
	if err := hr.Respond(context.Background(), &req, &out); err != nil {
		fmt.Println(err)
	}
	fmt.Printf("%q\n", out.String())
	// Output:
	// "Status: 200 OK\r\nVariable-AUTH_LEVEL: admin\r\nContent-Length: 0\r\n\r\n"
}
