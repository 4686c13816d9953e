package bridge

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

// incoming returns a request as a Go HTTP server hands it to a handler,
// received on 127.0.0.1:8000.
func incoming(method, target string, body io.Reader, header map[string][]string) *http.Request {
	r := httptest.NewRequest(method, target, body)
	for k, v := range header {
		r.Header[k] = v
	}
	ctx := context.WithValue(r.Context(), http.LocalAddrContextKey, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8000})
	return r.WithContext(ctx)
}

func TestEnvironFromHTTP(t *testing.T) {
	tests := []struct {
		name         string
		r            *http.Request
		script, info string
		want         map[string]string // variables that must have these values
		absent       []string
	}{
		{
			name:   "GET with a query and a path info",
			r:      incoming("GET", "/cgi-bin/app/caf%C3%A9/x?q=a%20b&r", nil, nil),
			script: "/cgi-bin/app", info: "/café/x",
			want: map[string]string{
				"GATEWAY_INTERFACE": "CGI/1.1", "SERVER_PROTOCOL": "HTTP/1.1", "REQUEST_METHOD": "GET",
				"REQUEST_URI": "/cgi-bin/app/caf%C3%A9/x?q=a%20b&r", "QUERY_STRING": "q=a%20b&r",
				"SCRIPT_NAME": "/cgi-bin/app", "PATH_INFO": "/café/x",
				"SERVER_NAME": "example.com", "SERVER_PORT": "8000", "SERVER_ADDR": "127.0.0.1",
				"REMOTE_ADDR": "192.0.2.1", "REMOTE_PORT": "1234", "HTTP_HOST": "example.com", "REQUEST_SCHEME": "http",
			},
			absent: []string{"CONTENT_LENGTH", "CONTENT_TYPE", "HTTPS"},
		},
		{
			name:   "no path info",
			r:      incoming("GET", "/app", nil, nil),
			script: "/app",
			want:   map[string]string{"SCRIPT_NAME": "/app", "QUERY_STRING": ""},
			absent: []string{"PATH_INFO"},
		},
		{
			name: "POST with a body",
			r: incoming("POST", "/form", strings.NewReader("a=1&b=2"), map[string][]string{
				"Content-Type": {"application/x-www-form-urlencoded"},
			}),
			script: "/form",
			want:   map[string]string{"REQUEST_METHOD": "POST", "CONTENT_LENGTH": "7", "CONTENT_TYPE": "application/x-www-form-urlencoded"},
			absent: []string{"HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"},
		},
		{
			name: "repeated fields joined, cookies with semicolons",
			r: incoming("GET", "/", nil, map[string][]string{
				"Accept": {"text/html", "application/json"},
				"Cookie": {"a=1", "b=2"},
				"X-Odd":  {"\xff\xfe"},
			}),
			script: "/",
			want:   map[string]string{"HTTP_ACCEPT": "text/html, application/json", "HTTP_COOKIE": "a=1; b=2", "HTTP_X_ODD": "\xff\xfe"},
		},
		{
			name: "TLS and a host with a port",
			r: func() *http.Request {
				r := incoming("GET", "https://example.org:8443/x", nil, nil)
				r.TLS = &tls.ConnectionState{}
				return r
			}(),
			script: "/x",
			want:   map[string]string{"HTTPS": "on", "REQUEST_SCHEME": "https", "SERVER_NAME": "example.org", "HTTP_HOST": "example.org:8443", "SERVER_PORT": "8000"},
		},
		{
			name:   "an IPv6 host without a port",
			r:      func() *http.Request { r := incoming("GET", "/", nil, nil); r.Host = "[::1]"; return r }(),
			script: "/",
			want:   map[string]string{"SERVER_NAME": "::1", "HTTP_HOST": "[::1]"},
		},
		{
			name: "no local address: the port comes from Host",
			r: func() *http.Request {
				r := httptest.NewRequest("GET", "/", nil)
				r.Host = "example.net:81"
				return r
			}(),
			script: "/",
			want:   map[string]string{"SERVER_NAME": "example.net", "SERVER_PORT": "81"},
			absent: []string{"SERVER_ADDR"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := EnvironFromHTTP(tt.r, tt.script, tt.info)
			for name, want := range tt.want {
				if got, ok := env.Lookup(name); !ok || got != want {
					t.Errorf("EnvironFromHTTP(%s)[%s] = %q (set: %v), want %q", tt.r.RequestURI, name, got, ok, want)
				}
			}
			for _, name := range tt.absent {
				if got, ok := env.Lookup(name); ok {
					t.Errorf("EnvironFromHTTP(%s)[%s] = %q, want it absent", tt.r.RequestURI, name, got)
				}
			}
		})
	}
}

// TestEnvironFromHTTPLeavesOut covers the headers that must never become
// variables: credentials, httpoxy's Proxy, and names that would pass for
// others.
func TestEnvironFromHTTPLeavesOut(t *testing.T) {
	tests := []struct {
		name   string
		header map[string][]string
		absent string
	}{
		{name: "httpoxy: Proxy is not HTTP_PROXY", header: map[string][]string{"Proxy": {"http://evil:3128"}}, absent: "HTTP_PROXY"},
		{name: "Authorization is not passed", header: map[string][]string{"Authorization": {"Basic dTpw"}}, absent: "HTTP_AUTHORIZATION"},
		{name: "Proxy-Authorization is not passed", header: map[string][]string{"Proxy-Authorization": {"Basic dTpw"}}, absent: "HTTP_PROXY_AUTHORIZATION"},
		{name: "an underscore name does not pass for a dash name", header: map[string][]string{"X_Real_Ip": {"10.0.0.1"}}, absent: "HTTP_X_REAL_IP"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := EnvironFromHTTP(incoming("GET", "/", nil, tt.header), "/", "")
			if got, ok := env.Lookup(tt.absent); ok {
				t.Errorf("EnvironFromHTTP(%v)[%s] = %q, want it absent", tt.header, tt.absent, got)
			}
		})
	}
}

// TestEnvironFromHTTPRoundTrip checks that NewHTTPRequest gives back the
// request EnvironFromHTTP described.
func TestEnvironFromHTTPRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		r    *http.Request
	}{
		{name: "GET", r: incoming("GET", "/a/b?x=1&y=%41", nil, map[string][]string{"Accept-Language": {"fr"}, "X-Trace": {"a", "b"}})},
		{name: "POST", r: incoming("POST", "/upload", strings.NewReader("hello"), map[string][]string{"Content-Type": {"text/plain"}})},
		{name: "cookies", r: incoming("GET", "/", nil, map[string][]string{"Cookie": {"a=1", "b=2"}})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := EnvironFromHTTP(tt.r, tt.r.URL.Path, "")
			got, err := NewHTTPRequest(context.Background(), &Request{Env: env, Body: tt.r.Body})
			if err != nil {
				t.Fatalf("NewHTTPRequest(EnvironFromHTTP(%s)) = %v, want no error", tt.r.RequestURI, err)
			}
			checks := []struct{ what, got, want string }{
				{"Method", got.Method, tt.r.Method},
				{"RequestURI", got.RequestURI, tt.r.RequestURI},
				{"URL.Path", got.URL.Path, tt.r.URL.Path},
				{"URL.RawQuery", got.URL.RawQuery, tt.r.URL.RawQuery},
				{"Host", got.Host, tt.r.Host},
				{"RemoteAddr", got.RemoteAddr, tt.r.RemoteAddr},
			}
			for _, c := range checks {
				if c.got != c.want {
					t.Errorf("round trip %s = %q, want %q", c.what, c.got, c.want)
				}
			}
			wantLength := tt.r.ContentLength
			if wantLength == 0 {
				wantLength = -1 // no CONTENT_LENGTH without a body: unknown
			}
			if got.ContentLength != wantLength {
				t.Errorf("round trip ContentLength = %d, want %d", got.ContentLength, wantLength)
			}
			wantCookies, gotCookies := tt.r.Cookies(), got.Cookies()
			if !reflect.DeepEqual(gotCookies, wantCookies) {
				t.Errorf("round trip Cookies() = %v, want %v", gotCookies, wantCookies)
			}
			for k, v := range tt.r.Header {
				if k == "Cookie" {
					continue
				}
				if g := got.Header.Get(k); g != strings.Join(v, ", ") {
					t.Errorf("round trip Header[%s] = %q, want %q", k, g, strings.Join(v, ", "))
				}
			}
		})
	}
}

func TestHTTPOutput(t *testing.T) {
	tests := []struct {
		name       string
		chunks     []string
		flushAfter bool // flush after every chunk
		wantStatus int  // 0: nothing sent
		wantHeader map[string]string
		wantBody   string
		wantErr    error // from Write or Close
		wantLocal  string
	}{
		{
			name:       "one write",
			chunks:     []string{"Status: 201 Created\r\nContent-Type: text/plain\r\nX-A: 1\r\n\r\nhello"},
			wantStatus: 201, wantHeader: map[string]string{"Content-Type": "text/plain", "X-A": "1"}, wantBody: "hello",
		},
		{
			name:       "byte by byte, bare LF",
			chunks:     strings.Split("Content-Type: text/plain\n\nhello", ""),
			flushAfter: true,
			wantStatus: 200, wantHeader: map[string]string{"Content-Type": "text/plain"}, wantBody: "hello",
		},
		{
			name:       "CR and LF of the empty line in two writes",
			chunks:     []string{"Content-Type: a/b\r\n\r", "\nbody", " more"},
			wantStatus: 200, wantHeader: map[string]string{"Content-Type": "a/b"}, wantBody: "body more",
		},
		{
			name:       "client redirect",
			chunks:     []string{"Location: https://example.org/\r\n\r\n"},
			wantStatus: 302, wantHeader: map[string]string{"Location": "https://example.org/"},
		},
		{
			name:      "local redirect is not sent",
			chunks:    []string{"Location: /elsewhere?x=1\r\n\r\n", "ignored body"},
			wantLocal: "/elsewhere?x=1",
		},
		{
			name:       "a body after 204 is dropped",
			chunks:     []string{"Status: 204 No Content\r\n\r\n", "nope"},
			wantStatus: 204,
		},
		{
			name:    "malformed header block",
			chunks:  []string{"this is not a header\r\n\r\n"},
			wantErr: errors.New("any"),
		},
		{
			name:    "stream ends inside the header block",
			chunks:  []string{"Content-Type: text/plain\r\n"},
			wantErr: ErrNoHeader,
		},
		{
			name:    "header block too large",
			chunks:  []string{"Content-Type: text/plain\r\nX: ", strings.Repeat("x", MaxHeaderBytes)},
			wantErr: ErrHeaderTooLarge,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			out := NewHTTPOutput(rec, 0)
			var err error
			for _, c := range tt.chunks {
				if _, err = out.Write([]byte(c)); err != nil {
					break
				}
				if tt.flushAfter {
					if err = out.Flush(); err != nil {
						break
					}
				}
			}
			if err == nil {
				err = out.Close()
			}
			switch {
			case tt.wantErr == nil && err != nil:
				t.Fatalf("HTTPOutput(%q) error = %v, want none", tt.chunks, err)
			case tt.wantErr != nil && err == nil:
				t.Fatalf("HTTPOutput(%q) error = nil, want %v", tt.chunks, tt.wantErr)
			case tt.wantErr != nil && tt.wantErr.Error() != "any" && !errors.Is(err, tt.wantErr):
				t.Fatalf("HTTPOutput(%q) error = %v, want %v", tt.chunks, err, tt.wantErr)
			}
			if got := out.Committed(); got != (tt.wantStatus != 0) {
				t.Errorf("Committed() = %v, want %v", got, tt.wantStatus != 0)
			}
			if tt.wantStatus == 0 {
				if rec.Body.Len() > 0 || len(rec.Header()) > 0 {
					t.Errorf("HTTPOutput(%q) sent header %v body %q, want nothing", tt.chunks, rec.Header(), rec.Body)
				}
			} else if rec.Code != tt.wantStatus {
				t.Errorf("HTTPOutput(%q) status = %d, want %d", tt.chunks, rec.Code, tt.wantStatus)
			}
			for k, v := range tt.wantHeader {
				if got := rec.Header().Get(k); got != v {
					t.Errorf("HTTPOutput(%q) header %s = %q, want %q", tt.chunks, k, got, v)
				}
			}
			if got := rec.Body.String(); got != tt.wantBody {
				t.Errorf("HTTPOutput(%q) body = %q, want %q", tt.chunks, got, tt.wantBody)
			}
			if tt.flushAfter && !rec.Flushed {
				t.Errorf("HTTPOutput(%q) after Flush: recorder not flushed", tt.chunks)
			}
			local := ""
			if r := out.Response(); r != nil && r.LocalRedirect {
				local = r.Header.Get("Location")
			}
			if local != tt.wantLocal {
				t.Errorf("HTTPOutput(%q) local redirect = %q, want %q", tt.chunks, local, tt.wantLocal)
			}
		})
	}
}

// FuzzHTTPOutput checks HTTPOutput against ReadResponse on the same
// stream, cut in two at any point.
func FuzzHTTPOutput(f *testing.F) {
	for _, s := range []string{
		"Status: 201 Created\r\nContent-Type: text/plain\r\n\r\nhello",
		"Content-Type: text/plain\n\nhello",
		"Location: /x\r\n\r\nbody",
		"Location: http://x/\r\n\r\n",
		"Status: 204 No Content\r\n\r\nnope",
		"X: y\r\n\r\n",
		"Content-Type: a\r\n",
		"\r\n\r\n",
	} {
		f.Add(s, uint(len(s)/2))
	}
	f.Fuzz(func(t *testing.T, stream string, cut uint) {
		cut %= uint(len(stream) + 1)
		rec := httptest.NewRecorder()
		out := NewHTTPOutput(rec, 0)
		_, err := out.Write([]byte(stream[:cut]))
		if err == nil {
			_, err = out.Write([]byte(stream[cut:]))
		}
		if err == nil {
			err = out.Close()
		}
		br := bufio.NewReader(strings.NewReader(stream))
		want, wantErr := ReadResponse(br, 0)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("HTTPOutput(%q cut at %d) error = %v, want %v as ReadResponse", stream, cut, err, wantErr)
		}
		if err != nil {
			if out.Committed() || rec.Body.Len() > 0 {
				t.Fatalf("HTTPOutput(%q) failed with %v but sent %q", stream, err, rec.Body)
			}
			return
		}
		body, _ := io.ReadAll(br)
		got := out.Response()
		if got.LocalRedirect != want.LocalRedirect || got.Status != want.Status || !reflect.DeepEqual(got.Header, want.Header) {
			t.Fatalf("HTTPOutput(%q).Response() = %+v, want %+v", stream, got, want)
		}
		wantBody := string(body)
		if want.LocalRedirect || !bodyAllowed(want.Status) {
			wantBody = ""
		}
		if rec.Body.String() != wantBody {
			t.Fatalf("HTTPOutput(%q) body = %q, want %q", stream, rec.Body, wantBody)
		}
		if !want.LocalRedirect && rec.Code != want.Status {
			t.Fatalf("HTTPOutput(%q) status = %d, want %d", stream, rec.Code, want.Status)
		}
	})
}
