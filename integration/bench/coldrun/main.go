// Command coldrun is a CGI hello world on cgirun.Run, for the cold-start
// benchmark.
package main

import (
	"fmt"
	"net/http"
	"os"

	"github.com/cgirun/cgirun"
	"github.com/cgirun/cgirun/integration/bench/benchapp"
)

func main() {
	if err := cgirun.Run(http.HandlerFunc(benchapp.Hello)); err != nil {
		fmt.Fprintln(os.Stderr, "coldrun:", err)
		os.Exit(1)
	}
}
