package cgirun_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/cgirun/cgirun"
)

// The same main serves CGI, FastCGI and plain HTTP: here the process is
// started as Apache's mod_cgi starts a CGI program (the request in the
// environment), so Run answers that one request on stdout and returns.
// Behind nginx's fastcgi_pass, under mod_fcgid or on its own, the same
// call serves until SIGTERM.
func ExampleRun() {
	for k, v := range map[string]string{
		"GATEWAY_INTERFACE": "CGI/1.1", "REQUEST_METHOD": "GET", "SERVER_PROTOCOL": "HTTP/1.1",
		"SCRIPT_NAME": "/cgi-bin/hello", "PATH_INFO": "/world", "SERVER_NAME": "localhost", "SERVER_PORT": "80",
	} {
		os.Setenv(k, v)
		defer os.Unsetenv(k)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /{name}", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "Hello, "+r.PathValue("name")+"!\n")
	})
	// The CGI response goes to stdout, caught here to show it with its
	// CRLF line ends as LF.
	r, w, _ := os.Pipe()
	stdout := os.Stdout
	os.Stdout = w
	err := cgirun.Run(mux)
	os.Stdout = stdout
	w.Close()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	out, _ := io.ReadAll(r)
	fmt.Print(strings.ReplaceAll(string(out), "\r\n", "\n"))
	// Output:
	// Status: 200 OK
	// Content-Type: text/plain; charset=utf-8
	// Content-Length: 14
	//
	// Hello, world!
}
