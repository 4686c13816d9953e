package uwsgi

import (
	"encoding/binary"
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

// request returns what nginx's uwsgi_pass sends: env in order, with
// CONTENT_LENGTH (the body's length unless env sets it), then the body.
func request(body string, env ...string) []byte {
	length := strconv.Itoa(len(body))
	var pairs []string
	for _, kv := range env {
		name, value, _ := strings.Cut(kv, "=")
		if name == "CONTENT_LENGTH" {
			length = value
			continue
		}
		pairs = append(pairs, name, value)
	}
	pairs = append(pairs, "CONTENT_LENGTH", length)
	return append(appendPacket(nil, 0, 0, pairs...), body...)
}

// appendPacket appends a packet header with modifier1 and modifier2 and
// the variables of pairs.
func appendPacket(dst []byte, mod1, mod2 byte, pairs ...string) []byte {
	var vars []byte
	for _, s := range pairs {
		vars = binary.LittleEndian.AppendUint16(vars, uint16(len(s)))
		vars = append(vars, s...)
	}
	dst = append(dst, mod1)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(vars)))
	dst = append(dst, mod2)
	return append(dst, vars...)
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
		Listen:  func(addr string) (net.Listener, error) { return Listen(addr, 0) },
		Request: request,
		// Apache's mod_proxy_uwsgi reads an HTTP status line only.
		StatusPrefix:      "HTTP/1.1 ",
		ErrServerClosed:   ErrServerClosed,
		ErrConnClosed:     ErrConnClosed,
		ErrHandlerTimeout: ErrHandlerTimeout,
		Malformed: []gatewaytest.Malformed{
			bad("modifier1 not 0", appendPacket(nil, 5, 0, "REQUEST_METHOD", "GET"), 0, "modifier1 5: only 0 (WSGI request) is served"),
			bad("HTTP instead of uwsgi", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 0, "modifier1 71"),
			bad("modifier2 not 0", appendPacket(nil, 0, 1, "REQUEST_METHOD", "GET"), 0, "modifier2 1"),
			bad("key length past datasize", []byte{0, 3, 0, 0, 9, 0, 'A'}, 400, "9 bytes run past datasize"),
			bad("value length cut", []byte{0, 4, 0, 0, 1, 0, 'A', 5}, 400, "its 2-byte length runs past datasize"),
			bad("key without a value", []byte{0, 3, 0, 0, 1, 0, 'A'}, 400, `value of \"A\" at byte 3`),
			bad("a variable twice", appendPacket(nil, 0, 0, "REQUEST_METHOD", "GET", "REQUEST_METHOD", "POST"), 400, "REQUEST_METHOD sent twice"),
			bad("empty name", appendPacket(nil, 0, 0, "", "x"), 400, "empty name"),
			bad("CONTENT_LENGTH not a number", appendPacket(nil, 0, 0, "REQUEST_METHOD", "GET", "CONTENT_LENGTH", "ten"), 400, `CONTENT_LENGTH \"ten\" is not a length`),
			bad("datasize past MaxParamsBytes", []byte{0, 0xff, 0xff, 0}, 431, "datasize 65535 passes MaxParamsBytes"),
			bad("packet ends early", []byte{0, 50, 0, 0, 4, 0}, 0, "ended early"),
		},
	}
}

func TestServer(t *testing.T) {
	suite().Run(t)
}
