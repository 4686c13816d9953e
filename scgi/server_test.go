package scgi

import (
	"net"
	"strconv"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/cgirun/cgirun/internal/gateway/gatewaytest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// request returns what nginx's scgi_pass sends: CONTENT_LENGTH first
// (the body's length unless env sets it), env in order, SCGI=1, then the
// body.
func request(body string, env ...string) []byte {
	length := strconv.Itoa(len(body))
	var rest []string
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "CONTENT_LENGTH="); ok {
			length = v
			continue
		}
		rest = append(rest, kv)
	}
	pairs := append([]string{"CONTENT_LENGTH", length}, splitPairs(rest)...)
	pairs = append(pairs, "SCGI", "1")
	return append(appendHeader(nil, pairs...), body...)
}

func splitPairs(env []string) []string {
	var out []string
	for _, kv := range env {
		name, value, _ := strings.Cut(kv, "=")
		out = append(out, name, value)
	}
	return out
}

// appendHeader appends the netstring of strings, each NUL-terminated.
func appendHeader(dst []byte, strs ...string) []byte {
	n := 0
	for _, s := range strs {
		n += len(s) + 1
	}
	dst = strconv.AppendInt(dst, int64(n), 10)
	dst = append(dst, ':')
	for _, s := range strs {
		dst = append(dst, s...)
		dst = append(dst, 0)
	}
	return append(dst, ',')
}

func bad(name string, b []byte, status int, log string) gatewaytest.Malformed {
	return gatewaytest.Malformed{Name: name, Bytes: b, Status: status, Log: log}
}

func suite() *gatewaytest.Suite {
	return &gatewaytest.Suite{
		New: func(c gatewaytest.Config) gatewaytest.Server {
			return &Server{
				Handler: c.Handler, Responder: c.Responder, Logger: c.Logger,
				MaxConns: c.MaxConns, MaxRequests: c.MaxRequests, MaxParamsBytes: c.MaxParamsBytes,
				ReadHeaderTimeout: c.ReadHeaderTimeout, ReadTimeout: c.ReadTimeout,
				WriteTimeout: c.WriteTimeout, HandlerTimeout: c.HandlerTimeout,
				WebServerAddrs: c.WebServerAddrs,
			}
		},
		Listen:            func(addr string) (net.Listener, error) { return Listen(addr, 0) },
		Request:           request,
		StatusPrefix:      "Status: ",
		ErrServerClosed:   ErrServerClosed,
		ErrConnClosed:     ErrConnClosed,
		ErrHandlerTimeout: ErrHandlerTimeout,
		Malformed: []gatewaytest.Malformed{
			bad("HTTP instead of SCGI", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 400, `is not a digit`),
			bad("leading zero", []byte("024:CONTENT_LENGTH\x000\x00SCGI\x001\x00,"), 400, "leading zero"),
			bad("no length", []byte(":CONTENT_LENGTH\x000\x00SCGI\x001\x00,"), 400, "without a length"),
			bad("no comma", []byte("24:CONTENT_LENGTH\x000\x00SCGI\x001\x00;"), 400, `not ','`),
			bad("odd number of strings", appendHeader(nil, "CONTENT_LENGTH", "0", "SCGI", "1", "LONELY"), 400, "odd number of strings"),
			bad("not NUL-terminated", []byte("23:CONTENT_LENGTH\x000\x00SCGI\x001,"), 400, "does not end with NUL"),
			bad("CONTENT_LENGTH not first", appendHeader(nil, "SCGI", "1", "CONTENT_LENGTH", "0"), 400, "want CONTENT_LENGTH first"),
			bad("CONTENT_LENGTH not a number", appendHeader(nil, "CONTENT_LENGTH", "ten", "SCGI", "1"), 400, `CONTENT_LENGTH \"ten\" is not a length`),
			bad("CONTENT_LENGTH with a sign", appendHeader(nil, "CONTENT_LENGTH", "+5", "SCGI", "1"), 400, `CONTENT_LENGTH \"+5\" is not a length`),
			bad("no SCGI", appendHeader(nil, "CONTENT_LENGTH", "0", "REQUEST_METHOD", "GET"), 400, "want SCGI=1"),
			bad("SCGI 2", appendHeader(nil, "CONTENT_LENGTH", "0", "SCGI", "2"), 400, "want SCGI=1"),
			bad("a variable twice", appendHeader(nil, "CONTENT_LENGTH", "0", "SCGI", "1", "REQUEST_METHOD", "GET", "REQUEST_METHOD", "POST"), 400, "REQUEST_METHOD sent twice"),
			bad("empty name", appendHeader(nil, "CONTENT_LENGTH", "0", "SCGI", "1", "", "x"), 400, "empty name"),
			bad("length past MaxParamsBytes", []byte("99999999999:"), 431, "passes MaxParamsBytes"),
			bad("header block ends early", []byte("50:CONTENT_LENGTH\x000"), 0, "ended early"),
		},
	}
}

func TestServer(t *testing.T) {
	suite().Run(t)
}
