// Package benchapp is the handler every Go back end of the load benchmark
// (run.sh) serves, so that cgirun, net/http/fcgi and net/http answer with
// the same code:
//
//	GET /              "Hello, World!\n"
//	PUT or POST /upload  reads the body to its end, discards it, and answers
//	                   "received N\n" with N the bytes read
//	GET /download?bytes=N  N zero bytes (1 GiB without bytes), with
//	                   Content-Length
//
// Every other path is 404.
package benchapp

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// Greeting is the body of GET /.
const Greeting = "Hello, World!\n"

// DefaultDownload is the size of GET /download without ?bytes=.
const DefaultDownload = 1 << 30

// chunk is the size of the handler's reads and writes on /upload and
// /download.
const chunk = 64 << 10

// Handler returns the benchmark's handler. It routes with a switch, not a
// ServeMux, so that GET / costs what examples/hello's handler costs (the
// cgirun rows of the hello benchmark run examples/hello itself).
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/":
			Hello(w, r)
		case "/upload":
			upload(w, r)
		case "/download":
			download(w, r)
		default:
			http.Error(w, "Not Found", http.StatusNotFound)
		}
	})
}

// Hello answers "Hello, World!\n" whatever the path: the cold-start
// programs use it alone, since net/http/cgi and cgirun put different paths
// in URL.Path.
func Hello(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, Greeting)
}

func upload(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPut && r.Method != http.MethodPost {
		http.Error(w, "PUT or POST a body", http.StatusMethodNotAllowed)
		return
	}
	n, err := io.CopyBuffer(io.Discard, r.Body, make([]byte, chunk))
	if err != nil {
		http.Error(w, fmt.Sprintf("reading the body: %v after %d bytes", err, n), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "received %d\n", n)
}

func download(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "GET it", http.StatusMethodNotAllowed)
		return
	}
	size := int64(DefaultDownload)
	if s := r.URL.Query().Get("bytes"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			http.Error(w, "bytes: want a count", http.StatusBadRequest)
			return
		}
		size = n
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	buf := make([]byte, chunk)
	for size > 0 {
		b := buf[:min(int64(len(buf)), size)]
		if _, err := w.Write(b); err != nil {
			return // the client went away; nothing more to say
		}
		size -= int64(len(b))
	}
}
