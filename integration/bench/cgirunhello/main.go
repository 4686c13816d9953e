// Command cgirunhello serves benchapp's handler with cgirun.Run: FastCGI
// with CGIRUN_FASTCGI=unix:/path, CGI when started as one, else HTTP.
package main

import (
	"fmt"
	"os"

	"github.com/cgirun/cgirun"
	"github.com/cgirun/cgirun/integration/bench/benchapp"
)

func main() {
	if err := cgirun.Run(benchapp.Handler()); err != nil {
		fmt.Fprintln(os.Stderr, "cgirunhello:", err)
		os.Exit(1)
	}
}
