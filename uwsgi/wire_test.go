package uwsgi

import (
	"errors"
	"slices"
	"testing"

	"github.com/cgirun/cgirun/bridge"
	"github.com/cgirun/cgirun/internal/gateway"
)

// nginxGet is the packet nginx 1.22 sends for GET / with Debian's
// uwsgi_params.
var nginxGet = []string{
	"QUERY_STRING", "", "REQUEST_METHOD", "GET", "CONTENT_TYPE", "", "CONTENT_LENGTH", "",
	"REQUEST_URI", "/", "PATH_INFO", "/", "DOCUMENT_ROOT", "/var/www/html", "SERVER_PROTOCOL", "HTTP/1.1",
	"REQUEST_SCHEME", "http", "REMOTE_ADDR", "127.0.0.1", "REMOTE_PORT", "51234",
	"SERVER_PORT", "8080", "SERVER_NAME", "localhost", "HTTP_HOST", "localhost:8080",
	"HTTP_USER_AGENT", "wrk", "HTTP_ACCEPT", "*/*",
}

func TestModifierString(t *testing.T) {
	for m, want := range map[modifier]string{modWSGI: "0 (WSGI request)", 5: "5"} {
		if got := m.String(); got != want {
			t.Errorf("modifier(%d).String() = %q, want %q", uint8(m), got, want)
		}
	}
}

func TestFrame(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		limit   int
		want    int
		wantErr error
	}{
		{"empty", nil, 100, 0, nil},
		{"three bytes", []byte{0, 10, 0}, 100, 0, nil},
		{"header", []byte{0, 10, 0, 0}, 100, 14, nil},
		{"little-endian", []byte{0, 0x01, 0x02, 0}, 1 << 16, 4 + 0x0201, nil},
		{"at the limit", []byte{0, 100, 0, 0}, 100, 104, nil},
		{"past the limit", []byte{0, 101, 0, 0}, 100, 0, gateway.ErrHeaderTooLarge},
		{"modifier1 not 0", []byte{5, 0, 0, 0}, 100, 0, gateway.ErrNotRequest},
		{"modifier2 not 0", []byte{0, 0, 0, 1}, 100, 0, gateway.ErrNotRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := frame(tt.in, tt.limit)
			if got != tt.want || !errors.Is(err, tt.wantErr) {
				t.Errorf("frame(%v, %d) = %d, %v; want %d, %v", tt.in, tt.limit, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestDecode(t *testing.T) {
	packet := appendPacket(nil, 0, 0, nginxGet...)
	n, err := frame(packet, DefaultMaxParamsBytes)
	if err != nil || n != len(packet) {
		t.Fatalf("frame = %d, %v; want %d", n, err, len(packet))
	}
	var env bridge.Environ
	if err := decode(string(packet), &env); err != nil {
		t.Fatal(err)
	}
	var got []string
	for name, value := range env.All() {
		got = append(got, name, value)
	}
	if !slices.Equal(got, nginxGet) {
		t.Errorf("decode = %q, want %q", got, nginxGet)
	}
	if again := appendPacket(nil, 0, 0, got...); string(again) != string(packet) {
		t.Errorf("encoded again: %q, want %q", again, packet)
	}
	// An empty packet is a request with no variables: the bridge
	// answers it with 400 (no REQUEST_METHOD).
	if err := decode("\x00\x00\x00\x00", new(bridge.Environ)); err != nil {
		t.Errorf("decode(empty packet) = %v", err)
	}
}
