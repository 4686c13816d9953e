package scgi

import (
	"errors"
	"slices"
	"testing"

	"github.com/cgirun/cgirun/bridge"
	"github.com/cgirun/cgirun/internal/gateway"
)

// nginxGet is the header block nginx 1.22 sends for GET / with Debian's
// scgi_params, taken from the wire.
var nginxGet = []string{
	"CONTENT_LENGTH", "0", "QUERY_STRING", "", "REQUEST_METHOD", "GET", "CONTENT_TYPE", "",
	"DOCUMENT_URI", "/", "DOCUMENT_ROOT", "/var/www/html", "SCGI", "1", "SERVER_PROTOCOL", "HTTP/1.1",
	"REQUEST_SCHEME", "http", "REQUEST_URI", "/", "REMOTE_ADDR", "127.0.0.1", "REMOTE_PORT", "51234",
	"SERVER_PORT", "8080", "SERVER_NAME", "localhost", "HTTP_HOST", "localhost:8080",
	"HTTP_USER_AGENT", "wrk", "HTTP_ACCEPT", "*/*",
}

func TestFrame(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		limit   int
		want    int
		wantErr error
	}{
		{"empty", "", 100, 0, nil},
		{"digits only", "12", 100, 0, nil},
		{"whole prefix", "12:", 100, 16, nil},
		{"zero", "0:,", 100, 3, nil},
		{"at the limit", "100:", 100, 105, nil},
		{"past the limit", "101:", 100, 0, gateway.ErrHeaderTooLarge},
		{"past the limit before the colon", "1000", 100, 0, gateway.ErrHeaderTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := frame([]byte(tt.in), tt.limit)
			if got != tt.want || !errors.Is(err, tt.wantErr) {
				t.Errorf("frame(%q, %d) = %d, %v; want %d, %v", tt.in, tt.limit, got, err, tt.want, tt.wantErr)
			}
		})
	}
	for _, in := range []string{":", "01:", "1x:", "G", " 1:", "-1:"} {
		if n, err := frame([]byte(in), 100); err == nil || errors.Is(err, gateway.ErrHeaderTooLarge) {
			t.Errorf("frame(%q) = %d, %v; want a malformed-length error", in, n, err)
		}
	}
}

func TestDecode(t *testing.T) {
	block := appendHeader(nil, nginxGet...)
	n, err := frame(block, DefaultMaxParamsBytes)
	if err != nil || n != len(block) {
		t.Fatalf("frame = %d, %v; want %d", n, err, len(block))
	}
	var env bridge.Environ
	if err := decode(string(block), &env); err != nil {
		t.Fatal(err)
	}
	var got []string
	for name, value := range env.All() {
		got = append(got, name, value)
	}
	if !slices.Equal(got, nginxGet) {
		t.Errorf("decode = %q, want %q", got, nginxGet)
	}
	// Round trip: the same block again.
	if again := appendHeader(nil, got...); string(again) != string(block) {
		t.Errorf("encoded again: %q, want %q", again, block)
	}
}

// TestDecodeRepeatedHeader: nginx before 1.23 sends one HTTP_* variable
// for each line of a header the client repeated.
func TestDecodeRepeatedHeader(t *testing.T) {
	var env bridge.Environ
	block := appendHeader(nil, "CONTENT_LENGTH", "0", "SCGI", "1", "HTTP_ACCEPT", "text/html", "HTTP_ACCEPT", "*/*", "HTTP_COOKIE", "a=1", "HTTP_COOKIE", "b=2")
	if err := decode(string(block), &env); err != nil {
		t.Fatal(err)
	}
	if got := env.Get("HTTP_ACCEPT"); got != "text/html, */*" {
		t.Errorf("HTTP_ACCEPT = %q, want the lines joined with a comma", got)
	}
	if got := env.Get("HTTP_COOKIE"); got != "a=1; b=2" {
		t.Errorf("HTTP_COOKIE = %q, want the lines joined with a semicolon", got)
	}
}

func TestDecodeLengths(t *testing.T) {
	for _, tt := range []struct {
		length string
		ok     bool
	}{
		{"0", true}, {"1024", true}, {"-1", true},
		{"", false}, {"01", false}, {"-0", false}, {"-", false}, {"+1", false}, {"1e3", false}, {"9999999999999999999", false},
	} {
		var env bridge.Environ
		err := decode(string(appendHeader(nil, "CONTENT_LENGTH", tt.length, "SCGI", "1")), &env)
		if (err == nil) != tt.ok {
			t.Errorf("CONTENT_LENGTH %q: decode = %v, want ok %v", tt.length, err, tt.ok)
		}
	}
}
