package bridge

import (
	"bufio"
	"context"
	"io"
	stdcgi "net/http/cgi"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func FuzzNewHTTPRequest(f *testing.F) {
	for _, env := range [][]string{
		{"REQUEST_METHOD=GET", "SCRIPT_NAME=/cgi-bin/app", "PATH_INFO=/users", "REQUEST_URI=/cgi-bin/app/users?id=7", "QUERY_STRING=id=7", "HTTP_HOST=example.org:8080", "REMOTE_ADDR=127.0.0.1", "REMOTE_PORT=5555"},
		{"REQUEST_METHOD=GET", "SCRIPT_NAME=/users/a b", "REQUEST_URI=/users/a%20b?x=%41", "QUERY_STRING=x=%41", "CONTENT_LENGTH=", "CONTENT_TYPE="},
		{"REQUEST_METHOD=GET", "PATH_INFO=/caf\xe9/\xff", "QUERY_STRING=q=\xe9&r=%FF", "REQUEST_URI=/cgi-bin/app/caf%E9/%FF?q=%E9&r=%FF"},
		{"REQUEST_METHOD=POST", "REQUEST_URI=/form", "CONTENT_LENGTH=11", "CONTENT_TYPE=application/x-www-form-urlencoded", "HTTP_COOKIE=a=1; b=2", "HTTP_X_CUSTOM_THING=\xfe\xff"},
		{"REQUEST_METHOD=GET", "HTTPS=on", "SERVER_NAME=example.org", "SERVER_PORT=443", "SERVER_PROTOCOL=HTTP/2.0"},
		{"REQUEST_METHOD=GET", "REQUEST_URI=/a%zz"},
		{"REQUEST_METHOD=POST", "CONTENT_LENGTH=-1"},
	} {
		f.Add(strings.Join(env, "\x00"), "body")
	}
	f.Fuzz(func(t *testing.T, envText, body string) {
		list := strings.Split(envText, "\x00")
		req := &Request{Env: EnvironFromList(list), Body: strings.NewReader(body)}
		r, err := NewHTTPRequest(context.Background(), req)
		if err != nil {
			return
		}
		if !strings.HasPrefix(r.URL.Path, "/") {
			t.Errorf("URL.Path = %q, want a leading slash", r.URL.Path)
		}
		if pi, ok := req.Env.Lookup("PATH_INFO"); ok && r.URL.Path != pi && r.URL.Path != "/"+pi {
			t.Errorf("URL.Path = %q, want PATH_INFO %q byte for byte", r.URL.Path, pi)
		}
		if r.RequestURI == "" || !isToken(r.Method) {
			t.Errorf("RequestURI %q, Method %q: want both set", r.RequestURI, r.Method)
		}
		got, err := io.ReadAll(r.Body)
		if r.ContentLength >= 0 && int64(len(got)) > r.ContentLength {
			t.Errorf("read %d body bytes past CONTENT_LENGTH %d", len(got), r.ContentLength)
		}
		if err == nil && r.ContentLength < 0 && string(got) != body {
			t.Errorf("body of unknown length = %q, want %q", got, body)
		}

		// The standard library reads the same variables the same way where
		// both accept them.
		m := make(map[string]string)
		for name, v := range req.Env.All() {
			m[name] = v
		}
		std, err := stdcgi.RequestFromMap(m)
		if err != nil {
			return
		}
		if std.Method != r.Method {
			t.Errorf("Method = %q, net/http/cgi %q", r.Method, std.Method)
		}
		if m["HTTP_HOST"] != "" && std.Host != r.Host {
			t.Errorf("Host = %q, net/http/cgi %q", r.Host, std.Host)
		}
		if m["CONTENT_LENGTH"] != "" && std.ContentLength != r.ContentLength {
			t.Errorf("ContentLength = %d, net/http/cgi %d", r.ContentLength, std.ContentLength)
		}
		if got, want := r.Header.Values("Cookie"), std.Header.Values("Cookie"); !slices.Equal(got, want) {
			t.Errorf("Cookie = %q, net/http/cgi %q", got, want)
		}
	})
}

func FuzzReadResponse(f *testing.F) {
	for _, s := range []string{
		"Content-Type: text/plain\r\n\r\nhello",
		"Status: 404 Not Found\nContent-Type: text/html\n\n",
		"Location: /other?x=1\n\n",
		"Location: https://example.org/\n\n",
		"Status: 301 Moved\nLocation: http://a/\nContent-Type: text/html\n\n<a>",
		"content-type:text/plain\r\nset-cookie:  a=1 \r\nSet-Cookie: b=2\r\n\r\n",
		"Content-Type: text/plain\n  continued\n\n",
		"Status: 200 OK\nStatus: 500 No\n\n",
		"X-Raw: caf\xe9\xff\nStatus: 200\n\n",
		"Content-Type: text/plain\nContent-Length: 5\nContent-Length: 50\n\nhello",
		"Content-Type: text/plain\nContent-Length: 5, 5\ncontent-length: 5\n\nhello",
		"Content-Type: text/plain\nContent-Length: -1\n\n",
		"Status: 200 OK\x1b[2J\nContent-Type: text/plain\n\n",
		"Status: 404 Not\tFound\vX\x7f\n\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		resp, err := ReadResponse(bufio.NewReaderSize(strings.NewReader(in), 16), 4096)
		if err != nil {
			return
		}
		if cl := resp.Header["Content-Length"]; len(cl) > 1 {
			t.Errorf("Content-Length = %q, want one value", cl)
		}
		if strings.ContainsFunc(resp.Reason, func(r rune) bool { return (r < ' ' && r != '\t') || r == 0x7f }) {
			t.Errorf("Reason = %q, want no control character", resp.Reason)
		}
		// Encode what was parsed and parse it again: same result.
		var b strings.Builder
		if !resp.LocalRedirect {
			b.WriteString("Status: ")
			b.WriteString(strings.TrimSpace(strings.Join([]string{itoa3(resp.Status), resp.Reason}, " ")))
			b.WriteString("\r\n")
		}
		keys := slices.Sorted(func(yield func(string) bool) {
			for k := range resp.Header {
				if !yield(k) {
					return
				}
			}
		})
		for _, k := range keys {
			for _, v := range resp.Header[k] {
				b.WriteString(k + ": " + v + "\r\n")
			}
		}
		b.WriteString("\r\n")
		again, err := ReadResponse(bufio.NewReader(strings.NewReader(b.String())), 0)
		if err != nil {
			t.Fatalf("re-encoded %q does not parse: %v", b.String(), err)
		}
		if !reflect.DeepEqual(again, resp) {
			t.Errorf("round trip = %+v, want %+v", again, resp)
		}
	})
}

func itoa3(n int) string {
	return string([]byte{byte('0' + n/100), byte('0' + n/10%10), byte('0' + n%10)})
}
