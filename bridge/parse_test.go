package bridge

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

func TestReadResponse(t *testing.T) {
	long := strings.Repeat("v", 10000) // longer than bufio's default buffer
	tests := []struct {
		name     string
		in       string
		status   int
		reason   string
		header   http.Header
		local    bool
		wantBody string
	}{
		{"document", "Content-Type: text/plain\r\n\r\nhello", 200, "", http.Header{"Content-Type": {"text/plain"}}, false, "hello"},
		{"bare LF", "Content-Type: text/plain\n\nhello\n", 200, "", http.Header{"Content-Type": {"text/plain"}}, false, "hello\n"},
		{"status with reason", "Status: 404 Not Found\r\nContent-Type: text/html\r\n\r\n", 404, "Not Found", http.Header{"Content-Type": {"text/html"}}, false, ""},
		{"status alone", "Status: 204\r\n\r\n", 204, "", http.Header{}, false, ""},
		{"status any case", "status: 201 Made\n\n", 201, "Made", http.Header{}, false, ""},
		{"client redirect", "Location: https://example.org/x\r\n\r\n", 302, "", http.Header{"Location": {"https://example.org/x"}}, false, ""},
		{"client redirect with document", "Status: 301 Moved\nLocation: http://a/\nContent-Type: text/html\n\n<a>", 301, "Moved",
			http.Header{"Location": {"http://a/"}, "Content-Type": {"text/html"}}, false, "<a>"},
		{"local redirect", "Location: /other?x=1\n\n", 0, "", http.Header{"Location": {"/other?x=1"}}, true, ""},
		{"network-path location is a client redirect", "Location: //evil.example/\n\n", 302, "", http.Header{"Location": {"//evil.example/"}}, false, ""},
		{"repeated fields, canonical names, trimmed values", "content-type:text/plain\r\nset-cookie:  a=1 \r\nSet-Cookie: b=2\r\n\r\n", 200, "",
			http.Header{"Content-Type": {"text/plain"}, "Set-Cookie": {"a=1", "b=2"}}, false, ""},
		{"non-UTF-8 value byte for byte", "Content-Type: text/plain\nX-Raw: caf\xe9\xff\n\n", 200, "",
			http.Header{"Content-Type": {"text/plain"}, "X-Raw": {"caf\xe9\xff"}}, false, ""},
		{"line longer than the reader's buffer", "Content-Type: text/plain\nX-Long: " + long + "\n\nb", 200, "",
			http.Header{"Content-Type": {"text/plain"}, "X-Long": {long}}, false, "b"},
		{"empty value", "Content-Type: text/plain\nX-Empty:\n\n", 200, "", http.Header{"Content-Type": {"text/plain"}, "X-Empty": {""}}, false, ""},
		{"one Content-Length", "Content-Type: text/plain\nContent-Length: 5\n\nhello", 200, "",
			http.Header{"Content-Type": {"text/plain"}, "Content-Length": {"5"}}, false, "hello"},
		{"identical Content-Lengths collapsed", "Content-Type: text/plain\nContent-Length: 5\ncontent-length: 5\n\nhello", 200, "",
			http.Header{"Content-Type": {"text/plain"}, "Content-Length": {"5"}}, false, "hello"},
		{"identical Content-Length list collapsed", "Content-Type: text/plain\nContent-Length: 5, 5,5\n\nhello", 200, "",
			http.Header{"Content-Type": {"text/plain"}, "Content-Length": {"5"}}, false, "hello"},
		{"a tab in the reason", "Status: 404 Not\tFound\n\n", 404, "Not\tFound", http.Header{}, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			br := bufio.NewReader(strings.NewReader(tt.in))
			resp, err := ReadResponse(br, 0)
			if err != nil {
				t.Fatalf("ReadResponse(%q) error: %v", tt.in, err)
			}
			if resp.Status != tt.status || resp.Reason != tt.reason || resp.LocalRedirect != tt.local || !reflect.DeepEqual(resp.Header, tt.header) {
				t.Errorf("ReadResponse(%q) = %d %q %v local=%v, want %d %q %v local=%v",
					tt.in, resp.Status, resp.Reason, resp.Header, resp.LocalRedirect, tt.status, tt.reason, tt.header, tt.local)
			}
			if body, _ := io.ReadAll(br); string(body) != tt.wantBody {
				t.Errorf("body after ReadResponse = %q, want %q", body, tt.wantBody)
			}
		})
	}
}

func TestReadResponseErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		max  int
		is   error // nil: any error
		msg  string
	}{
		{"nothing", "", 0, ErrNoHeader, ""},
		{"no empty line", "Content-Type: text/plain\r\n", 0, ErrNoHeader, ""},
		{"cut mid line", "Content-Type: text/pl", 0, ErrNoHeader, ""},
		{"no colon", "Content-Type text/plain\n\n", 0, nil, "no colon"},
		{"garbage", "\x00\x01\x02\n\n", 0, nil, "no colon"},
		{"name with a space", "Content Type: x\n\n", 0, nil, "not a token"},
		{"empty name", ": x\n\n", 0, nil, "not a token"},
		{"folded line", "Content-Type: text/plain\n  continued\n\n", 0, nil, "folded"},
		{"NUL in value", "Content-Type: text/\x00plain\n\n", 0, nil, "NUL or CR"},
		{"CR inside value", "Content-Type: text/\rplain\n\n", 0, nil, "NUL or CR"},
		{"two statuses", "Status: 200 OK\nStatus: 500 No\n\n", 0, nil, "two Status"},
		{"status not digits", "Status: OK\n\n", 0, nil, "three-digit"},
		{"status four digits", "Status: 2000\n\n", 0, nil, "three-digit"},
		{"status 1xx", "Status: 100 Continue\n\n", 0, nil, "not a final status"},
		{"conflicting Content-Lengths", "Content-Type: text/plain\nContent-Length: 5\nContent-Length: 50\n\nhello", 0, nil, "Content-Length"},
		{"conflicting Content-Length list", "Content-Type: text/plain\nContent-Length: 5, 50\n\nhello", 0, nil, "Content-Length"},
		{"negative Content-Length", "Content-Type: text/plain\nContent-Length: -1\n\n", 0, nil, "Content-Length"},
		{"signed Content-Length", "Content-Type: text/plain\nContent-Length: +5\n\nhello", 0, nil, "Content-Length"},
		{"hex Content-Length", "Content-Type: text/plain\nContent-Length: 0x5\n\nhello", 0, nil, "Content-Length"},
		{"empty Content-Length", "Content-Type: text/plain\nContent-Length:\n\n", 0, nil, "Content-Length"},
		{"empty Content-Length in a list", "Content-Type: text/plain\nContent-Length: 5,\n\nhello", 0, nil, "Content-Length"},
		{"overflowing Content-Length", "Content-Type: text/plain\nContent-Length: 99999999999999999999\n\n", 0, nil, "Content-Length"},
		{"ESC in the reason", "Status: 200 OK\x1b[2J\nContent-Type: text/plain\n\n", 0, nil, "control character"},
		{"VT in the reason", "Status: 200 O\vK\nContent-Type: text/plain\n\n", 0, nil, "control character"},
		{"DEL in the reason", "Status: 200 OK\x7f\nContent-Type: text/plain\n\n", 0, nil, "control character"},
		{"no CGI field", "X-Only: 1\n\n", 0, nil, "none of Content-Type"},
		{"too large", "Content-Type: text/plain\nX-Big: " + strings.Repeat("a", 100) + "\n\n", 64, ErrHeaderTooLarge, ""},
		{"too large without newline", strings.Repeat("a", MaxHeaderBytes+1), 0, ErrHeaderTooLarge, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := ReadResponse(bufio.NewReader(strings.NewReader(tt.in)), tt.max)
			switch {
			case err == nil:
				t.Fatalf("ReadResponse(%q) = %+v, want an error", tt.in, resp)
			case tt.is != nil && !errors.Is(err, tt.is):
				t.Errorf("ReadResponse(%q) error = %v, want %v", tt.in, err, tt.is)
			case !strings.Contains(err.Error(), tt.msg):
				t.Errorf("ReadResponse(%q) error = %v, want it to say %q", tt.in, err, tt.msg)
			}
		})
	}
}

func TestResponseAppendHeader(t *testing.T) {
	tests := []struct {
		name string
		resp Response
		want string
	}{
		{
			name: "status, reason and sorted fields",
			resp: Response{Status: 404, Reason: "Nowhere", Header: http.Header{"X-B": {"2"}, "Content-Type": {"text/plain"}, "X-A": {"1", "one"}}},
			want: "Status: 404 Nowhere\r\nContent-Type: text/plain\r\nX-A: 1\r\nX-A: one\r\nX-B: 2\r\n\r\n",
		},
		{
			name: "the code's text when no reason",
			resp: Response{Status: 201, Header: http.Header{"Location": {"http://x/y"}}},
			want: "Status: 201 Created\r\nLocation: http://x/y\r\n\r\n",
		},
		{
			name: "a code with no text",
			resp: Response{Status: 599, Header: http.Header{}},
			want: "Status: 599 status code 599\r\n\r\n",
		},
		{
			name: "a local redirect keeps no Status",
			resp: Response{LocalRedirect: true, Header: http.Header{"Location": {"/other"}}},
			want: "Location: /other\r\n\r\n",
		},
		{
			name: "injected lines and a second Status are left out",
			resp: Response{Status: 200, Header: http.Header{"X-Ok": {"a\r\nSet-Cookie: evil", "fine"}, "Bad Name": {"v"}, "Status": {"500"}, "Content-Type": {"text/html"}}},
			want: "Status: 200 OK\r\nContent-Type: text/html\r\nX-Ok: fine\r\n\r\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(tt.resp.AppendHeader([]byte("x"))); got != "x"+tt.want {
				t.Errorf("AppendHeader = %q, want %q", got, "x"+tt.want)
			}
		})
	}
}

// TestResponseAppendHeaderRoundTrip: what ReadResponse parses, AppendHeader
// writes back in a form ReadResponse parses to the same response.
func TestResponseAppendHeaderRoundTrip(t *testing.T) {
	for _, in := range []string{
		"Content-Type: text/html\nX-Multi: 1\nX-Multi: 2\n\nbody",
		"Status: 418 I'm a teapot\r\nContent-Type: text/plain\r\n\r\n",
		"Location: /local?q=1\n\n",
		"Location: http://example.com/\n\n",
		"Status: 204\nX-Raw: \xff\xfe\n\n",
	} {
		first, err := ReadResponse(bufio.NewReader(strings.NewReader(in)), 0)
		if err != nil {
			t.Fatalf("ReadResponse(%q): %v", in, err)
		}
		out := first.AppendHeader(nil)
		second, err := ReadResponse(bufio.NewReader(strings.NewReader(string(out))), 0)
		if err != nil {
			t.Fatalf("ReadResponse(AppendHeader(%q) = %q): %v", in, out, err)
		}
		if first.Status != second.Status || first.LocalRedirect != second.LocalRedirect || !reflect.DeepEqual(first.Header, second.Header) {
			t.Errorf("round trip of %q: %+v, then %+v", in, first, second)
		}
	}
}
