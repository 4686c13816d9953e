package fastcgi_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/yookoala/gofast"

	"github.com/cgirun/cgirun/fastcgi"
)

// A Server serves an http.Handler to the web server over FastCGI: nginx's
// fastcgi_pass 127.0.0.1:9000, or Apache's mod_proxy_fcgi. Here gofast, a
// FastCGI client, plays the web server and sends one request.
func ExampleServer() {
	l, err := fastcgi.Listen("tcp:127.0.0.1:0", 0)
	if err != nil {
		log.Fatal(err)
	}
	srv := &fastcgi.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "Hello, %s, from %s\n", r.URL.Query().Get("name"), r.URL.Path)
		}),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()

	// The web server's side: the CGI variables of GET /hello?name=nginx.
	client, err := gofast.SimpleClientFactory(gofast.SimpleConnFactory("tcp", l.Addr().String()))()
	if err != nil {
		log.Fatal(err)
	}
	req := gofast.NewRequest(nil)
	req.Params = map[string]string{
		"REQUEST_METHOD":  "GET",
		"REQUEST_URI":     "/hello?name=nginx",
		"QUERY_STRING":    "name=nginx",
		"SERVER_PROTOCOL": "HTTP/1.1",
		"SERVER_NAME":     "localhost",
		"SERVER_PORT":     "80",
	}
	resp, err := client.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	rec := httptest.NewRecorder()
	if err := resp.WriteTo(rec, io.Discard); err != nil {
		log.Fatal(err)
	}
	client.Close()
	fmt.Print(rec.Code, " ", rec.Body.String())

	// Shutdown lets requests in flight finish; Serve then returns
	// ErrServerClosed.
	if err := srv.Shutdown(context.Background()); err != nil {
		log.Fatal(err)
	}
	fmt.Println(<-served)
	// Output:
	// 200 Hello, nginx, from /hello
	// fastcgi: Server closed
}
