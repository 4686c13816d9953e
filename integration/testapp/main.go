// Command testapp is the handler the integration tests put behind real web
// servers. Run by a web server as a CGI program (GATEWAY_INTERFACE set), it
// answers one request through cgi.Serve.
//
//	/              "Hello, World!\n"
//	/echo/...      method, path, query, the X-Raw header and the body,
//	               separated by "|", all byte for byte; X-Raw is echoed
//	               back in the X-Echo-Raw response header
//	/stream?wait=F "first\n", flushed; then, once file F exists, "second\n"
//	/env           the raw CGI variables, one NAME=value a line
package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/cgirun/cgirun/bridge"
	"github.com/cgirun/cgirun/cgi"
)

func handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "Hello, World!\n")
	})
	mux.HandleFunc("/echo/", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "reading the body: "+err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("X-Echo-Raw", r.Header.Get("X-Raw"))
		fmt.Fprintf(w, "%s|%s|%s|%s|%s", r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("X-Raw"), body)
	})
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("X-Accel-Buffering", "no")
		io.WriteString(w, "first\n")
		if err := http.NewResponseController(w).Flush(); err != nil {
			return
		}
		// The test creates the file once it has read the first line;
		// give up after a bound so that a failed test leaves no process.
		deadline := time.Now().Add(10 * time.Second)
		for {
			if _, err := os.Stat(r.URL.Query().Get("wait")); err == nil {
				break
			}
			if time.Now().After(deadline) {
				io.WriteString(w, "gave up waiting\n")
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		io.WriteString(w, "second\n")
	})
	mux.HandleFunc("/env", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		for name, value := range bridge.EnvironOf(r).All() {
			fmt.Fprintf(w, "%s=%s\n", name, value)
		}
	})
	return mux
}

func main() {
	if !cgi.IsCGI() {
		fmt.Fprintln(os.Stderr, "testapp: not started as a CGI program")
		os.Exit(2)
	}
	if err := cgi.Serve(handler()); err != nil {
		fmt.Fprintln(os.Stderr, "testapp:", err)
		os.Exit(1)
	}
}
