package uwsgi_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"

	"github.com/cgirun/cgirun/uwsgi"
)

// A Server serves an http.Handler to the web server over uwsgi: nginx's
// uwsgi_pass 127.0.0.1:3031, Apache's ProxyPass / uwsgi://127.0.0.1:3031/,
// or lighttpd's mod_scgi with "proto" => "uwsgi". Here the test plays the
// web server and sends the packet of GET /hello?name=nginx.
func ExampleServer() {
	l, err := uwsgi.Listen("tcp:127.0.0.1:0", 0)
	if err != nil {
		log.Fatal(err)
	}
	srv := &uwsgi.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "Hello, %s, from %s\n", r.URL.Query().Get("name"), r.URL.Path)
		}),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()

	// The web server's side: modifier1 0, the size of the variables
	// (little-endian), modifier2 0, then each key and value after its
	// 2-byte length.
	var vars []byte
	for _, s := range []string{"REQUEST_METHOD", "GET", "REQUEST_URI", "/hello?name=nginx", "QUERY_STRING", "name=nginx"} {
		vars = binary.LittleEndian.AppendUint16(vars, uint16(len(s)))
		vars = append(vars, s...)
	}
	packet := binary.LittleEndian.AppendUint16([]byte{0}, uint16(len(vars)))
	packet = append(append(packet, 0), vars...)
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	c.Write(packet)
	answer, err := io.ReadAll(c) // one request per connection: it closes
	if err != nil {
		log.Fatal(err)
	}
	// An HTTP status line, then the CGI header fields and the body; the
	// CRLF line ends are printed as plain ones here.
	fmt.Println(strings.ReplaceAll(string(answer), "\r\n", "\n"))

	// Shutdown lets requests in flight finish; Serve then returns
	// ErrServerClosed.
	if err := srv.Shutdown(context.Background()); err != nil {
		log.Fatal(err)
	}
	fmt.Println(<-served)
	// Output:
	// HTTP/1.1 200 OK
	// Content-Type: text/plain; charset=utf-8
	// Content-Length: 26
	//
	// Hello, nginx, from /hello
	//
	// uwsgi: Server closed
}
