// Command upload hashes uploads of any size as they arrive, never holding
// them in memory: it answers "<bytes> <hex SHA-256>\n". POST /upload hashes
// the raw body; GET / is a form whose file, posted to / as
// multipart/form-data, is read part by part (r.MultipartReader, not
// ParseMultipartForm, which buffers up to 32 MiB and spills the rest to
// temporary files). A body that cannot be read gets 400 and says why.
//
// Alone, over plain HTTP on 127.0.0.1:8080:
//
//	go run ./examples/upload
//	curl --data-binary @big.iso http://127.0.0.1:8080/upload
//	curl -F file=@big.iso http://127.0.0.1:8080/
//
// Behind nginx, client_max_body_size (1m by default) bounds uploads, and
// nginx reads each whole body first unless fastcgi_request_buffering is off
// (see examples/deploy/nginx-fastcgi.conf).
package main

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"

	"github.com/cgirun/cgirun"
)

// fileField is the name of the form's file input.
const fileField = "file"

const form = `<!doctype html>
<meta charset="utf-8">
<title>cgirun upload</title>
<h1>SHA-256 of a file</h1>
<form method="post" enctype="multipart/form-data">
<input type="file" name="` + fileField + `" required>
<button>Upload</button>
</form>
`

func handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		// The form has no action: it posts to the page's own URL, which
		// the handler sees as / wherever the program is mounted.
		if _, err := io.WriteString(w, form); err != nil {
			slog.Warn("upload: writing the form", "remote", r.RemoteAddr, "err", err)
		}
	})
	mux.HandleFunc("POST /{$}", func(w http.ResponseWriter, r *http.Request) {
		n, sum, err := hashFilePart(r)
		answer(w, r, n, sum, err)
	})
	mux.HandleFunc("POST /upload", func(w http.ResponseWriter, r *http.Request) {
		n, sum, err := hash(r.Body)
		answer(w, r, n, sum, err)
	})
	return mux
}

// hash reads r to its end and returns its length and SHA-256.
func hash(r io.Reader) (int64, []byte, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		return n, nil, fmt.Errorf("reading the upload after %d bytes: %w", n, err)
	}
	return n, h.Sum(nil), nil
}

// hashFilePart hashes the first part of a multipart/form-data body named
// fileField, streaming it. Parts before it are skipped.
func hashFilePart(r *http.Request) (int64, []byte, error) {
	mr, err := r.MultipartReader()
	if err != nil {
		return 0, nil, fmt.Errorf("want a multipart/form-data body: %w", err)
	}
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return 0, nil, fmt.Errorf("no part named %q in the form", fileField)
		}
		if err != nil {
			return 0, nil, fmt.Errorf("reading the form: %w", err)
		}
		if p.FormName() == fileField {
			return hash(p)
		}
	}
}

func answer(w http.ResponseWriter, r *http.Request, n int64, sum []byte, err error) {
	if err != nil {
		http.Error(w, "upload: "+err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if _, err := fmt.Fprintf(w, "%d %x\n", n, sum); err != nil {
		slog.Warn("upload: writing the answer", "remote", r.RemoteAddr, "err", err)
	}
}

func main() {
	if err := cgirun.Run(handler()); err != nil {
		fmt.Fprintln(os.Stderr, "upload:", err)
		os.Exit(1)
	}
}
