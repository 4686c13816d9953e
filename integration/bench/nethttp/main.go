// Command nethttp serves benchapp's handler with Go's net/http on -listen
// unix:/path (created with mode 0666) or tcp:host:port, for nginx's
// proxy_pass.
package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"

	"github.com/cgirun/cgirun/integration/bench/benchapp"
	"github.com/cgirun/cgirun/integration/bench/internal/listen"
)

func main() {
	addr := flag.String("listen", "", "unix:/path or tcp:host:port")
	flag.Parse()
	l, err := listen.Listen(*addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "nethttp:", err)
		os.Exit(2)
	}
	err = (&http.Server{Handler: benchapp.Handler()}).Serve(l)
	fmt.Fprintln(os.Stderr, "nethttp:", err)
	os.Exit(1)
}
