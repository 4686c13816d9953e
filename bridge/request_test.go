package bridge

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

func newReq(env []string, body string) *Request {
	req := &Request{Env: EnvironFromList(env)}
	if body != "" {
		req.Body = strings.NewReader(body)
	}
	return req
}

func TestNewHTTPRequest(t *testing.T) {
	base := []string{"GATEWAY_INTERFACE=CGI/1.1", "REQUEST_METHOD=GET", "SERVER_PROTOCOL=HTTP/1.1",
		"SERVER_NAME=example.org", "SERVER_PORT=80"}
	type want struct {
		method, proto        string
		major, minor         int
		host, path, rawQuery string
		requestURI, scheme   string
		remoteAddr           string
		tls                  bool
		contentLength        int64
		header               http.Header // checked key by key
		scriptName           string
	}
	tests := []struct {
		name   string
		env    []string
		script bool // Request.IsScript
		want   want
	}{
		{
			name:   "apache cgi-bin script without PATH_INFO is /",
			env:    []string{"SCRIPT_NAME=/cgi-bin/app", "REQUEST_URI=/cgi-bin/app?x=1", "QUERY_STRING=x=1"},
			script: true,
			want: want{method: "GET", proto: "HTTP/1.1", major: 1, minor: 1, host: "example.org", path: "/", rawQuery: "x=1",
				requestURI: "/cgi-bin/app?x=1", scheme: "http", contentLength: -1, scriptName: "/cgi-bin/app"},
		},
		{
			name: "apache cgi-bin with path info",
			env: []string{"SCRIPT_NAME=/cgi-bin/app", "PATH_INFO=/users", "REQUEST_URI=/cgi-bin/app/users?id=7",
				"QUERY_STRING=id=7", "HTTP_HOST=example.org:8080", "REMOTE_ADDR=127.0.0.1", "REMOTE_PORT=5555"},
			want: want{method: "GET", proto: "HTTP/1.1", major: 1, minor: 1, host: "example.org:8080", path: "/users",
				rawQuery: "id=7", requestURI: "/cgi-bin/app/users?id=7", scheme: "http", remoteAddr: "127.0.0.1:5555",
				contentLength: -1, scriptName: "/cgi-bin/app"},
		},
		{
			name: "apache cgi-bin without path info",
			env:  []string{"SCRIPT_NAME=/cgi-bin/app", "PATH_INFO=", "REQUEST_URI=/cgi-bin/app", "QUERY_STRING="},
			want: want{method: "GET", proto: "HTTP/1.1", major: 1, minor: 1, host: "example.org", path: "/",
				requestURI: "/cgi-bin/app", scheme: "http", contentLength: -1, scriptName: "/cgi-bin/app"},
		},
		{
			name: "nginx at the root: no PATH_INFO, path from REQUEST_URI",
			env: []string{"SCRIPT_NAME=/users/a b", "REQUEST_URI=/users/a%20b?x=%41", "QUERY_STRING=x=%41",
				"DOCUMENT_URI=/users/a b", "CONTENT_LENGTH=", "CONTENT_TYPE="},
			want: want{method: "GET", proto: "HTTP/1.1", major: 1, minor: 1, host: "example.org", path: "/users/a b",
				rawQuery: "x=%41", requestURI: "/users/a%20b?x=%41", scheme: "http", contentLength: -1},
		},
		{
			name: "non-UTF-8 path info and query, byte for byte",
			env:  []string{"SCRIPT_NAME=/cgi-bin/app", "PATH_INFO=/caf\xe9/\xff", "QUERY_STRING=q=\xe9&r=%FF", "REQUEST_URI=/cgi-bin/app/caf%E9/%FF?q=%E9&r=%FF"},
			want: want{method: "GET", proto: "HTTP/1.1", major: 1, minor: 1, host: "example.org", path: "/caf\xe9/\xff",
				rawQuery: "q=\xe9&r=%FF", requestURI: "/cgi-bin/app/caf%E9/%FF?q=%E9&r=%FF", scheme: "http", contentLength: -1,
				scriptName: "/cgi-bin/app"},
		},
		{
			name: "non-UTF-8 in REQUEST_URI decodes to raw bytes",
			env:  []string{"REQUEST_URI=/caf%E9"},
			want: want{method: "GET", proto: "HTTP/1.1", major: 1, minor: 1, host: "example.org", path: "/caf\xe9",
				requestURI: "/caf%E9", scheme: "http", contentLength: -1},
		},
		{
			name: "CVE-2019-11043: PATH_INFO is taken as given, never matched against REQUEST_URI",
			env:  []string{"SCRIPT_NAME=/index.php", "PATH_INFO=/x\nmore", "REQUEST_URI=/index.php/PHP%0Ais_the_shittiest_lang.php?"},
			want: want{method: "GET", proto: "HTTP/1.1", major: 1, minor: 1, host: "example.org", path: "/x\nmore",
				requestURI: "/index.php/PHP%0Ais_the_shittiest_lang.php?", scheme: "http", contentLength: -1, scriptName: "/index.php"},
		},
		{
			name: "path info without a leading slash gets one",
			env:  []string{"PATH_INFO=users", "SCRIPT_NAME=/app"},
			want: want{method: "GET", proto: "HTTP/1.1", major: 1, minor: 1, host: "example.org", path: "/users",
				requestURI: "/appusers", scheme: "http", contentLength: -1, scriptName: "/app"},
		},
		{
			name: "no REQUEST_URI: built and escaped from SCRIPT_NAME, PATH_INFO, QUERY_STRING",
			env:  []string{"SCRIPT_NAME=/cgi-bin/app", "PATH_INFO=/a b", "QUERY_STRING=x=1"},
			want: want{method: "GET", proto: "HTTP/1.1", major: 1, minor: 1, host: "example.org", path: "/a b",
				rawQuery: "x=1", requestURI: "/cgi-bin/app/a%20b?x=1", scheme: "http", contentLength: -1, scriptName: "/cgi-bin/app"},
		},
		{
			name: "query from REQUEST_URI when QUERY_STRING is absent",
			env:  []string{"REQUEST_URI=/p?a=1"},
			want: want{method: "GET", proto: "HTTP/1.1", major: 1, minor: 1, host: "example.org", path: "/p", rawQuery: "a=1",
				requestURI: "/p?a=1", scheme: "http", contentLength: -1},
		},
		{
			name: "POST with a body, headers, one Cookie header",
			env: []string{"REQUEST_METHOD=POST", "REQUEST_URI=/form", "CONTENT_LENGTH=11",
				"CONTENT_TYPE=application/x-www-form-urlencoded", "HTTP_COOKIE=a=1; b=2", "HTTP_USER_AGENT=curl/8",
				"HTTP_X_CUSTOM_THING=\xfe\xff", "HTTP_ACCEPT=*/*", "HTTP_CONTENT_LENGTH=999", "HTTP_CONTENT_TYPE=text/evil"},
			want: want{method: "POST", proto: "HTTP/1.1", major: 1, minor: 1, host: "example.org", path: "/form",
				requestURI: "/form", scheme: "http", contentLength: 11, header: http.Header{
					"Cookie":            {"a=1; b=2"},
					"User-Agent":        {"curl/8"},
					"X-Custom-Thing":    {"\xfe\xff"},
					"Accept":            {"*/*"},
					"Content-Type":      {"application/x-www-form-urlencoded"},
					"Content-Length":    nil,
					"Host":              nil,
					"Gateway-Interface": nil,
				}},
		},
		{
			name: "HTTPS on gives TLS and https",
			env:  []string{"HTTPS=on", "SERVER_PORT=443", "REQUEST_URI=/"},
			want: want{method: "GET", proto: "HTTP/1.1", major: 1, minor: 1, host: "example.org", path: "/", requestURI: "/",
				scheme: "https", tls: true, contentLength: -1},
		},
		{
			name: "HTTPS On",
			env:  []string{"HTTPS=On", "SERVER_PORT=8443", "REQUEST_URI=/"},
			want: want{method: "GET", proto: "HTTP/1.1", major: 1, minor: 1, host: "example.org:8443", path: "/", requestURI: "/",
				scheme: "https", tls: true, contentLength: -1},
		},
		{
			name: "HTTPS 1",
			env:  []string{"HTTPS=1", "REQUEST_URI=/"},
			want: want{method: "GET", proto: "HTTP/1.1", major: 1, minor: 1, host: "example.org:80", path: "/", requestURI: "/",
				scheme: "https", tls: true, contentLength: -1},
		},
		{
			name: "HTTPS off is plain",
			env:  []string{"HTTPS=off", "SERVER_PORT=8080", "REQUEST_URI=/"},
			want: want{method: "GET", proto: "HTTP/1.1", major: 1, minor: 1, host: "example.org:8080", path: "/", requestURI: "/",
				scheme: "http", contentLength: -1},
		},
		{
			name: "no REMOTE_PORT gives port 0; IPv6 bracketed",
			env:  []string{"REMOTE_ADDR=::1", "REQUEST_URI=/"},
			want: want{method: "GET", proto: "HTTP/1.1", major: 1, minor: 1, host: "example.org", path: "/", requestURI: "/",
				scheme: "http", remoteAddr: "[::1]:0", contentLength: -1},
		},
		{
			name: "HTTP/2.0 and INCLUDED protocols",
			env:  []string{"SERVER_PROTOCOL=HTTP/2.0", "REQUEST_URI=/"},
			want: want{method: "GET", proto: "HTTP/2.0", major: 2, minor: 0, host: "example.org", path: "/", requestURI: "/",
				scheme: "http", contentLength: -1},
		},
		{
			name: "INCLUDED is HTTP/1.0",
			env:  []string{"SERVER_PROTOCOL=INCLUDED", "REQUEST_URI=/"},
			want: want{method: "GET", proto: "HTTP/1.0", major: 1, minor: 0, host: "example.org", path: "/", requestURI: "/",
				scheme: "http", contentLength: -1},
		},
		{
			name: "CONTENT_LENGTH 0 is no body",
			env:  []string{"REQUEST_METHOD=PUT", "CONTENT_LENGTH=0", "REQUEST_URI=/"},
			want: want{method: "PUT", proto: "HTTP/1.1", major: 1, minor: 1, host: "example.org", path: "/", requestURI: "/",
				scheme: "http", contentLength: 0},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := append(append([]string(nil), base...), tt.env...)
			req := newReq(env, "")
			req.IsScript = tt.script
			r, err := NewHTTPRequest(context.Background(), req)
			if err != nil {
				t.Fatalf("NewHTTPRequest(%q) error: %v", env, err)
			}
			w := tt.want
			got := want{method: r.Method, proto: r.Proto, major: r.ProtoMajor, minor: r.ProtoMinor, host: r.Host,
				path: r.URL.Path, rawQuery: r.URL.RawQuery, requestURI: r.RequestURI, scheme: r.URL.Scheme,
				remoteAddr: r.RemoteAddr, tls: r.TLS != nil, contentLength: r.ContentLength, header: w.header,
				scriptName: ScriptName(r)}
			if got.method != w.method || got.proto != w.proto || got.major != w.major || got.minor != w.minor ||
				got.host != w.host || got.path != w.path || got.rawQuery != w.rawQuery || got.requestURI != w.requestURI ||
				got.scheme != w.scheme || got.remoteAddr != w.remoteAddr || got.tls != w.tls ||
				got.contentLength != w.contentLength || got.scriptName != w.scriptName {
				t.Errorf("NewHTTPRequest(%q) =\n %+v\nwant\n %+v", env, got, w)
			}
			if r.URL.Host != r.Host {
				t.Errorf("URL.Host = %q, want Host %q", r.URL.Host, r.Host)
			}
			for k, v := range w.header {
				if gotv := r.Header[k]; strings.Join(gotv, "\x00") != strings.Join(v, "\x00") || len(gotv) != len(v) {
					t.Errorf("Header[%q] = %q, want %q", k, gotv, v)
				}
			}
			if EnvironOf(r) == nil || EnvironOf(r).Get("GATEWAY_INTERFACE") != "CGI/1.1" {
				t.Errorf("EnvironOf(r) does not give the raw variables")
			}
			if RequestOf(r).Role != RoleResponder {
				t.Errorf("RequestOf(r).Role = %v, want RESPONDER", RequestOf(r).Role)
			}
		})
	}
}

func TestNewHTTPRequestErrors(t *testing.T) {
	tests := []struct {
		name string
		env  []string
	}{
		{"no method", []string{"REQUEST_URI=/"}},
		{"method with a space", []string{"REQUEST_METHOD=GE T"}},
		{"bad protocol", []string{"REQUEST_METHOD=GET", "SERVER_PROTOCOL=HTTP/one"}},
		{"minus sign alone", []string{"REQUEST_METHOD=POST", "CONTENT_LENGTH=-"}},
		{"negative zero", []string{"REQUEST_METHOD=POST", "CONTENT_LENGTH=-0"}},
		{"negative text", []string{"REQUEST_METHOD=POST", "CONTENT_LENGTH=-one"}},
		{"huge negative length", []string{"REQUEST_METHOD=POST", "CONTENT_LENGTH=-99999999999999999999"}},
		{"signed length", []string{"REQUEST_METHOD=POST", "CONTENT_LENGTH=+5"}},
		{"text length", []string{"REQUEST_METHOD=POST", "CONTENT_LENGTH=ten"}},
		{"huge length", []string{"REQUEST_METHOD=POST", "CONTENT_LENGTH=99999999999999999999"}},
		{"bad request uri", []string{"REQUEST_METHOD=GET", "REQUEST_URI=/a%zz"}},
		{"relative request uri", []string{"REQUEST_METHOD=GET", "REQUEST_URI=a/b"}},
		{"header name with a space", []string{"REQUEST_METHOD=GET", "HTTP_X Y=1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := NewHTTPRequest(context.Background(), newReq(tt.env, ""))
			if !errors.Is(err, ErrBadEnviron) {
				t.Errorf("NewHTTPRequest(%q) = %v, %v; want an error wrapping ErrBadEnviron", tt.env, r, err)
			}
		})
	}
}

// TestNegativeContentLength: Caddy's FastCGI transport sends
// CONTENT_LENGTH=-1 (Go's Request.ContentLength) for a chunked body, and
// lighttpd sends it over SCGI and uwsgi for a streamed one. It means an
// unknown length: the body is read to its end.
func TestNegativeContentLength(t *testing.T) {
	for _, length := range []string{"-1", "-42"} {
		env := []string{"REQUEST_METHOD=POST", "REQUEST_URI=/upload", "CONTENT_LENGTH=" + length}
		r, err := NewHTTPRequest(context.Background(), newReq(env, "chunked body"))
		if err != nil {
			t.Fatalf("CONTENT_LENGTH=%s: NewHTTPRequest: %v", length, err)
		}
		if r.ContentLength != -1 {
			t.Errorf("CONTENT_LENGTH=%s: ContentLength = %d, want -1", length, r.ContentLength)
		}
		if got, err := io.ReadAll(r.Body); string(got) != "chunked body" || err != nil {
			t.Errorf("CONTENT_LENGTH=%s: ReadAll(body) = %q, %v; want the whole body", length, got, err)
		}
	}
	r, err := NewHTTPRequest(context.Background(), &Request{Env: EnvironFromList([]string{"REQUEST_METHOD=POST", "CONTENT_LENGTH=-1"})})
	if err != nil || r.Body != http.NoBody {
		t.Errorf("CONTENT_LENGTH=-1 with no body: %v, %v; want http.NoBody", r.Body, err)
	}
}

func TestRequestBody(t *testing.T) {
	tests := []struct {
		name    string
		length  string
		body    string
		want    string
		wantErr error
	}{
		{"exact", "5", "hello", "hello", nil},
		{"longer than declared is cut", "3", "hello", "hel", nil},
		{"shorter than declared", "9", "hello", "hello", io.ErrUnexpectedEOF},
		{"unknown length reads to EOF", "", "hello world", "hello world", nil},
		{"declared with no body", "4", "", "", io.ErrUnexpectedEOF},
		{"no length no body", "", "", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := []string{"REQUEST_METHOD=POST", "CONTENT_LENGTH=" + tt.length}
			r, err := NewHTTPRequest(context.Background(), newReq(env, tt.body))
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(r.Body)
			if string(got) != tt.want || !errors.Is(err, tt.wantErr) {
				t.Errorf("ReadAll(body) = %q, %v; want %q, %v", got, err, tt.want, tt.wantErr)
			}
			r.Body.Close()
			if r.Body != http.NoBody {
				if _, err := r.Body.Read(make([]byte, 1)); err != http.ErrBodyReadAfterClose {
					t.Errorf("Read after Close = %v, want ErrBodyReadAfterClose", err)
				}
			}
		})
	}
}

func TestRoleString(t *testing.T) {
	for role, want := range map[Role]string{RoleResponder: "RESPONDER", RoleAuthorizer: "AUTHORIZER", RoleFilter: "FILTER", 7: "Role(7)"} {
		if got := role.String(); got != want {
			t.Errorf("Role(%d).String() = %q, want %q", role, got, want)
		}
	}
}

func TestTokenMask(t *testing.T) {
	// RFC 9110 section 5.6.2: tchar.
	const tchars = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	for c := 0; c < 256; c++ {
		s := string([]byte{byte(c)})
		if got, want := isToken(s), strings.Contains(tchars, s); got != want {
			t.Errorf("isToken(%q) = %v, want %v", s, got, want)
		}
	}
	if isToken("") {
		t.Error(`isToken("") = true, want false`)
	}
}

func TestCommonHeader(t *testing.T) {
	suffixes := []string{"ACCEPT", "ACCEPT_CHARSET", "ACCEPT_ENCODING", "ACCEPT_LANGUAGE", "AUTHORIZATION",
		"CACHE_CONTROL", "CONNECTION", "CONTENT_LENGTH", "CONTENT_TYPE", "COOKIE", "DNT", "HOST",
		"IF_MODIFIED_SINCE", "IF_NONE_MATCH", "ORIGIN", "PRAGMA", "RANGE", "REFERER", "SEC_FETCH_DEST",
		"SEC_FETCH_MODE", "SEC_FETCH_SITE", "TE", "UPGRADE_INSECURE_REQUESTS", "USER_AGENT",
		"X_FORWARDED_FOR", "X_FORWARDED_PROTO", "X_REAL_IP", "X_REQUESTED_WITH"}
	for _, s := range suffixes {
		want := http.CanonicalHeaderKey(strings.ReplaceAll(s, "_", "-"))
		if got, ok := commonHeader(s); !ok || got != want {
			t.Errorf("commonHeader(%q) = %q, %v, want %q, true", s, got, ok, want)
		}
	}
	for _, s := range []string{"", "X_CUSTOM", "accept", "ACCEPT_", "HTTP_HOST"} {
		if got, ok := commonHeader(s); ok {
			t.Errorf("commonHeader(%q) = %q, true, want false", s, got)
		}
	}
}
