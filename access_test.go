package cgirun

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cgirun/cgirun/bridge"
	"github.com/cgirun/cgirun/internal/serve"
)

// combinedRE matches one line of Apache's combined log format as goaccess's
// COMBINED format reads it: %h %^[%d:%t %^] "%r" %s %b "%R" "%u".
var combinedRE = regexp.MustCompile(`^(\S+) (\S+) (\S+) \[(\d{2}/[A-Z][a-z]{2}/\d{4}):(\d{2}:\d{2}:\d{2}) [+-]\d{4}\] "((?:[^"\\]|\\.)*)" (\d{3}) (\d+|-) "((?:[^"\\]|\\.)*)" "((?:[^"\\]|\\.)*)"$`)

// TestAccessLogCombined: with CGIRUN_ACCESS_LOG_FORMAT=combined each
// request is one raw line of Apache's combined format on the log's writer,
// not a slog record, and goaccess can read it.
func TestAccessLogCombined(t *testing.T) {
	at := time.Date(2026, time.March, 4, 5, 6, 7, 0, time.FixedZone("", -5*3600))
	tests := []struct {
		name    string
		xff     bool // CGIRUN_LOG_X_FORWARDED_FOR
		request func() *http.Request
		status  int
		body    string
		want    string
	}{
		{name: "full", request: func() *http.Request {
			r := httptest.NewRequest("GET", "/x?y=1", nil)
			r.Header.Set("Referer", "http://example.com/")
			r.Header.Set("User-Agent", "curl/8.5.0")
			return r
		}, status: 201, body: "made",
			want: `192.0.2.1 - - [04/Mar/2026:05:06:07 -0500] "GET /x?y=1 HTTP/1.1" 201 4 "http://example.com/" "curl/8.5.0"` + "\n"},
		{name: "empty referer, user agent and body", request: func() *http.Request {
			return httptest.NewRequest("POST", "/x", nil)
		}, status: 204,
			want: `192.0.2.1 - - [04/Mar/2026:05:06:07 -0500] "POST /x HTTP/1.1" 204 - "-" "-"` + "\n"},
		{name: "user from the URL", request: func() *http.Request {
			r := httptest.NewRequest("GET", "/x", nil)
			r.URL.User = url.User("bob")
			return r
		}, status: 200, body: "ok",
			want: `192.0.2.1 - bob [04/Mar/2026:05:06:07 -0500] "GET /x HTTP/1.1" 200 2 "-" "-"` + "\n"},
		{name: "REMOTE_USER from the web server", request: func() *http.Request {
			r, err := bridge.NewHTTPRequest(context.Background(), &bridge.Request{Env: bridge.EnvironFromList([]string{
				"REQUEST_METHOD=GET", "SERVER_PROTOCOL=HTTP/1.1", "REQUEST_URI=/x", "REMOTE_ADDR=198.51.100.7",
				"REMOTE_PORT=4000", "REMOTE_USER=alice", "HTTP_HOST=example.com"})})
			if err != nil {
				t.Fatal(err)
			}
			return r
		}, status: 200, body: "ok",
			want: `198.51.100.7 - alice [04/Mar/2026:05:06:07 -0500] "GET /x HTTP/1.1" 200 2 "-" "-"` + "\n"},
		{name: "quotes, backslashes and control bytes escaped as Apache does", request: func() *http.Request {
			r := httptest.NewRequest("GET", "/x", nil)
			r.Header.Set("User-Agent", "a\"b\\c\td\x7fé")
			r.Header.Set("Referer", `"`)
			return r
		}, status: 200, body: "ok",
			want: `192.0.2.1 - - [04/Mar/2026:05:06:07 -0500] "GET /x HTTP/1.1" 200 2 "\"" "a\"b\\c\td\x7f\xc3\xa9"` + "\n"},
		{name: "X-Forwarded-For, one field", xff: true, request: func() *http.Request {
			r := httptest.NewRequest("GET", "/x", nil)
			r.Header.Set("X-Forwarded-For", "203.0.113.9, 10.0.0.1")
			return r
		}, status: 200,
			want: `203.0.113.9,10.0.0.1,192.0.2.1 - - [04/Mar/2026:05:06:07 -0500] "GET /x HTTP/1.1" 200 - "-" "-"` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{AccessLog: true, AccessLogFormat: "combined", LogXForwardedFor: tt.xff}
			var logs strings.Builder
			m := newMonitor(cfg, serve.NewLogger("text", &logs), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			}))
			m.now = func() time.Time { return at }
			r := tt.request()
			m.handler("fastcgi").ServeHTTP(httptest.NewRecorder(), r)
			if got := logs.String(); got != tt.want {
				t.Errorf("access log of %s %s = %q, want %q", r.Method, r.RequestURI, got, tt.want)
			}
			if line := strings.TrimSuffix(logs.String(), "\n"); !combinedRE.MatchString(line) {
				t.Errorf("access log line %q does not parse as a combined log line", line)
			}
		})
	}
}

// TestAccessLogCombinedOtherLogger: with a logger of the caller's
// (Options.Logger), the combined line is the message of a record without
// attributes: the caller's handler decides how it is written.
func TestAccessLogCombinedOtherLogger(t *testing.T) {
	var got []string
	h := recordHandler(func(r slog.Record) {
		if r.NumAttrs() != 0 {
			t.Errorf("record %q has %d attributes, want none", r.Message, r.NumAttrs())
		}
		got = append(got, r.Message)
	})
	m := newMonitor(Config{AccessLog: true, AccessLogFormat: "combined"}, slog.New(h), http.NotFoundHandler())
	m.handler("fastcgi").ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/x", nil))
	if len(got) != 1 || !combinedRE.MatchString(got[0]) || !strings.Contains(got[0], `"GET /x HTTP/1.1" 404 19 "-" "-"`) {
		t.Errorf("access log messages = %q, want one combined line", got)
	}
}

type recordHandler func(slog.Record)

func (h recordHandler) Enabled(context.Context, slog.Level) bool      { return true }
func (h recordHandler) Handle(_ context.Context, r slog.Record) error { h(r); return nil }
func (h recordHandler) WithAttrs([]slog.Attr) slog.Handler            { return h }
func (h recordHandler) WithGroup(string) slog.Handler                 { return h }

// FuzzAccessLogCombined: whatever a client sends as its request URI,
// Referer and User-Agent, the combined log holds one line that parses.
func FuzzAccessLogCombined(f *testing.F) {
	f.Add("/x?y=1", "http://example.com/", "curl/8.5.0")
	f.Add("/x", "", "")
	f.Add("/a b\"c", "\"", "a\"b\\c\td\x7fé\n")
	f.Fuzz(func(t *testing.T, uri, referer, ua string) {
		var logs strings.Builder
		m := newMonitor(Config{AccessLog: true, AccessLogFormat: "combined"}, serve.NewLogger("text", &logs), http.NotFoundHandler())
		r := httptest.NewRequest("GET", "/", nil)
		r.RequestURI = uri
		r.Header["Referer"] = []string{referer}
		r.Header["User-Agent"] = []string{ua}
		m.handler("fastcgi").ServeHTTP(httptest.NewRecorder(), r)
		line, ok := strings.CutSuffix(logs.String(), "\n")
		if !ok || strings.Contains(line, "\n") || !combinedRE.MatchString(line) {
			t.Errorf("access log of URI %q, Referer %q, User-Agent %q = %q, want one combined line", uri, referer, ua, logs.String())
		}
	})
}
