// Command nethttpfcgi serves benchapp's handler with Go's net/http/fcgi on
// -listen unix:/path (created with mode 0666) or tcp:host:port.
package main

import (
	"flag"
	"fmt"
	"net/http/fcgi"
	"os"

	"github.com/cgirun/cgirun/integration/bench/benchapp"
	"github.com/cgirun/cgirun/integration/bench/internal/listen"
)

func main() {
	addr := flag.String("listen", "", "unix:/path or tcp:host:port")
	flag.Parse()
	l, err := listen.Listen(*addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "nethttpfcgi:", err)
		os.Exit(2)
	}
	err = fcgi.Serve(l, benchapp.Handler())
	fmt.Fprintln(os.Stderr, "nethttpfcgi:", err)
	os.Exit(1)
}
