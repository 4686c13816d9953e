// Command hello is the smallest cgirun program: "/" answers
// "Hello, World!", every other path 404 "Not Found". Built once, the binary
// is a CGI program: copy it into Apache's cgi-bin, or run it by hand with a
// CGI environment:
//
//	go build -o hello ./examples/hello
//	GATEWAY_INTERFACE=CGI/1.1 REQUEST_METHOD=GET PATH_INFO=/ ./hello
package main

import (
	"fmt"
	"io"
	"net/http"
	"os"

	"github.com/cgirun/cgirun/cgi"
)

// handler answers "/" and nothing else. It sees the path below its mount
// point, so it works unchanged at /cgi-bin/hello/.
func handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.Error(w, "Not Found", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "Hello, World!\n")
	})
}

func main() {
	if !cgi.IsCGI() {
		fmt.Fprintln(os.Stderr, "hello: not started as a CGI program (GATEWAY_INTERFACE is not set); try:\n"+
			"  GATEWAY_INTERFACE=CGI/1.1 REQUEST_METHOD=GET PATH_INFO=/ hello")
		os.Exit(2)
	}
	if err := cgi.Serve(handler()); err != nil {
		fmt.Fprintln(os.Stderr, "hello:", err)
		os.Exit(1)
	}
}
