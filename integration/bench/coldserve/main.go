// Command coldserve is a CGI hello world on cgi.Serve, for the cold-start
// benchmark.
package main

import (
	"fmt"
	"net/http"
	"os"

	"github.com/cgirun/cgirun/cgi"
	"github.com/cgirun/cgirun/integration/bench/benchapp"
)

func main() {
	if err := cgi.Serve(http.HandlerFunc(benchapp.Hello)); err != nil {
		fmt.Fprintln(os.Stderr, "coldserve:", err)
		os.Exit(1)
	}
}
