// Command coldhttp prints a CGI hello world, and does nothing else, once
// net/http's packages are initialised: the floor of the cold-start
// benchmark for any CGI program whose handler is an http.Handler, since
// importing net/http runs those inits (crypto/tls's among them) before
// main.
package main

import (
	"net/http"
	"os"
)

func main() {
	h := http.Header{}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	if _, err := os.Stdout.WriteString("Content-Type: " + h.Get("Content-Type") + "\r\n\r\nHello, World!\n"); err != nil {
		os.Exit(1)
	}
}
