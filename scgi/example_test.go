package scgi_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/cgirun/cgirun/scgi"
)

// A Server serves an http.Handler to the web server over SCGI: nginx's
// scgi_pass 127.0.0.1:4000, Apache's ProxyPass / scgi://127.0.0.1:4000/,
// or lighttpd's mod_scgi. Here the test plays the web server and sends
// the header block of GET /hello?name=nginx.
func ExampleServer() {
	l, err := scgi.Listen("tcp:127.0.0.1:0", 0)
	if err != nil {
		log.Fatal(err)
	}
	srv := &scgi.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "Hello, %s, from %s\n", r.URL.Query().Get("name"), r.URL.Path)
		}),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()

	// The web server's side: a netstring of NUL-terminated names and
	// values, CONTENT_LENGTH first, then the body (none here).
	vars := "CONTENT_LENGTH\x000\x00SCGI\x001\x00REQUEST_METHOD\x00GET\x00" +
		"REQUEST_URI\x00/hello?name=nginx\x00QUERY_STRING\x00name=nginx\x00"
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	io.WriteString(c, strconv.Itoa(len(vars))+":"+vars+",")
	answer, err := io.ReadAll(c) // one request per connection: it closes
	if err != nil {
		log.Fatal(err)
	}
	// A CGI response stream, which nginx, Apache and lighttpd read; its
	// CRLF line ends are printed as plain ones here.
	fmt.Println(strings.ReplaceAll(string(answer), "\r\n", "\n"))

	// Shutdown lets requests in flight finish; Serve then returns
	// ErrServerClosed.
	if err := srv.Shutdown(context.Background()); err != nil {
		log.Fatal(err)
	}
	fmt.Println(<-served)
	// Output:
	// Status: 200 OK
	// Content-Type: text/plain; charset=utf-8
	// Content-Length: 26
	//
	// Hello, nginx, from /hello
	//
	// scgi: Server closed
}
