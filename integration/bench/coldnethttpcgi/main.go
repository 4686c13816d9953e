// Command coldnethttpcgi is a CGI hello world on Go's net/http/cgi, for the
// cold-start benchmark.
package main

import (
	"fmt"
	"net/http"
	"net/http/cgi"
	"os"

	"github.com/cgirun/cgirun/integration/bench/benchapp"
)

func main() {
	if err := cgi.Serve(http.HandlerFunc(benchapp.Hello)); err != nil {
		fmt.Fprintln(os.Stderr, "coldnethttpcgi:", err)
		os.Exit(1)
	}
}
