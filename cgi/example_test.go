package cgi_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"

	"github.com/cgirun/cgirun/cgi"
)

// A CGI program's main is one call: cgi.Serve(h) reads the request the web
// server put in the environment and on standard input, and writes the CGI
// response stream to standard output. Child.Serve does the same with the
// environment and the streams given, as here.
func ExampleServe() {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /hello/{name}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "Hello, %s!\n", r.PathValue("name"))
	})

	// What Apache sets for GET /cgi-bin/app/hello/gopher.
	environ := []string{
		"GATEWAY_INTERFACE=CGI/1.1",
		"SERVER_PROTOCOL=HTTP/1.1",
		"REQUEST_METHOD=GET",
		"SCRIPT_NAME=/cgi-bin/app",
		"PATH_INFO=/hello/gopher",
		"QUERY_STRING=",
	}
	var stdout bytes.Buffer
	c := cgi.Child{Handler: mux}
	if err := c.Serve(context.Background(), environ, strings.NewReader(""), &stdout, os.Stderr); err != nil {
		log.Fatal(err)
	}
	// Header lines end in CRLF; they are shown here with LF.
	fmt.Print(strings.ReplaceAll(stdout.String(), "\r\n", "\n"))
	// Output:
	// Status: 200 OK
	// Content-Type: text/plain; charset=utf-8
	// Content-Length: 15
	//
	// Hello, gopher!
}

// A Handler serves a directory of CGI executables over HTTP, as Apache's
// mod_cgi serves a cgi-bin: /hello.cgi/world runs hello.cgi with PATH_INFO
// /world.
func ExampleHandler() {
	dir, err := os.MkdirTemp("", "cgi-bin")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	script := "#!/bin/sh\n" +
		"printf 'Content-Type: text/plain\\r\\n\\r\\n'\n" +
		"echo \"$SCRIPT_NAME says hello to $PATH_INFO ($QUERY_STRING)\"\n"
	if err := os.WriteFile(filepath.Join(dir, "hello.cgi"), []byte(script), 0o755); err != nil {
		log.Fatal(err)
	}

	srv := httptest.NewServer(&cgi.Handler{Root: dir})
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/hello.cgi/world?lang=en")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(resp.Status, resp.Header.Get("Content-Type"))
	fmt.Print(string(body))
	// Output:
	// 200 OK text/plain
	// /hello.cgi says hello to /world (lang=en)
}
