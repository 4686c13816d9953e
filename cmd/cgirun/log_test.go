package main

import (
	"net/http"
	"path/filepath"
	"testing"
)

// TestHTTPLogsJSONDurationsInSeconds: with --log-format json the request
// log gives its duration in seconds, a float, not in nanoseconds.
func TestHTTPLogsJSONDurationsInSeconds(t *testing.T) {
	root := t.TempDir()
	writeScript(t, filepath.Join(root, "ok.cgi"), "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nok'\n")
	r := start(t, nil, "http", "--root", root, "--addr", "127.0.0.1:0", "--log-format", "json")
	addr := r.waitLog(`"msg":"cgirun: serving HTTP","addr":"(127\.0\.0\.1:\d+)"`)[1]
	if status, _, body := get(t, "GET", "http://"+addr+"/ok.cgi", "", nil); status != http.StatusOK {
		t.Fatalf("GET /ok.cgi = %d %q, want 200", status, body)
	}
	// A script's run takes more than a microsecond and less than a
	// minute: in nanoseconds the number would have no point and 4 or more
	// digits.
	r.waitLog(`"msg":"cgirun: request","method":"GET","uri":"/ok.cgi","status":200,"bytes":2,"remote":"[^"]+","duration":\d{1,2}\.\d+(e-0\d)?}`)
}
