// Command hello is the smallest cgirun program: "/" answers
// "Hello, World!", every other path 404 "Not Found". The one binary serves
// whatever gateway it is started behind (see cgirun.Run): copy it into
// Apache's cgi-bin, let mod_fcgid or systemd start it, point nginx's
// fastcgi_pass at CGIRUN_FASTCGI=unix:/run/hello.sock, or run it alone for
// plain HTTP on 127.0.0.1:8080.
package main

import (
	"fmt"
	"io"
	"net/http"
	"os"

	"github.com/cgirun/cgirun"
)

// handler answers "/" and nothing else. It sees the path below its mount
// point, so it works unchanged at /cgi-bin/hello/ and at the root of nginx.
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
	if err := cgirun.Run(handler()); err != nil {
		fmt.Fprintln(os.Stderr, "hello:", err)
		os.Exit(1)
	}
}
