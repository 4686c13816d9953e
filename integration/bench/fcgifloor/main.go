//go:build linux

// Command fcgifloor is the load benchmark's floor: the least a Go program
// can do to answer nginx over FastCGI, with none of a gateway's work, so
// that the benchmark can show how close cgirun comes to what Go itself
// costs. It is not a server anyone should run: it checks nothing, bounds
// nothing and logs nothing.
//
// With -mode hello, each connection's goroutine reads the records, skips
// the parameters, and once a request's FCGI_STDIN ends writes a fixed
// "Hello, World!\n" answer, its empty FCGI_STDOUT and FCGI_END_REQUEST in
// one write: no handler, no goroutine per request, no allocation per
// request. Each connection holds a 4 KiB buffer, as cgirun's FastCGI
// server does while a request's records are read.
//
// With -mode exec, it runs the request's SCRIPT_FILENAME as fcgiwrap does,
// in the connection's goroutine: a pipe, syscall.ForkExec with the
// request's parameters as the environment (stdin and stderr /dev/null),
// blocking reads of the pipe until its end (the thread waits in read(2),
// not in the poller), wait4, then the output in FCGI_STDOUT records. No
// check of the script, no limit, no timeout, no stderr.
//
// With -mode handler, it answers each request with benchapp's
// http.Handler, the one every Go back end of the benchmark serves, called
// in the connection's goroutine: the parameters become an *http.Request
// (method, URI, protocol, host, remote address, HTTP_* headers, no body,
// the background context) and the handler writes to a ResponseWriter that
// collects the header and body, then the answer leaves as in -mode hello.
// No goroutine per request, no context that ends, no limit, no check: the
// least a Go program that runs an http.Handler does. The binary links
// net/http in every mode, as every other back end of the benchmark does.
//
// It serves on -listen unix:/path (created with mode 0666) or
// tcp:host:port.
package main

import (
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/cgirun/cgirun/integration/bench/benchapp"
	"github.com/cgirun/cgirun/integration/bench/internal/listen"
)

// FastCGI record types and flags (the FastCGI specification).
const (
	typeBeginRequest = 1
	typeEndRequest   = 3
	typeParams       = 4
	typeStdin        = 5
	typeStdout       = 6
	flagKeepConn     = 1
	headerLen        = 8
)

const hello = "Status: 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 14\r\n\r\nHello, World!\n"

func main() {
	addr := flag.String("listen", "", "unix:/path or tcp:host:port")
	mode := flag.String("mode", "hello", "hello: a fixed answer; exec: run SCRIPT_FILENAME; handler: benchapp's http.Handler")
	flag.Parse()
	if *mode != "hello" && *mode != "exec" && *mode != "handler" {
		fmt.Fprintf(os.Stderr, "fcgifloor: -mode %q: want hello, exec or handler\n", *mode)
		os.Exit(2)
	}
	l, err := listen.Listen(*addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fcgifloor:", err)
		os.Exit(2)
	}
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fcgifloor:", err)
		os.Exit(1)
	}
	for {
		c, err := l.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, "fcgifloor:", err)
			os.Exit(1)
		}
		go serve(c, *mode, int(null.Fd()))
	}
}

// serve answers the requests of one connection until nginx closes it, or
// after a request without FCGI_KEEP_CONN.
func serve(c net.Conn, mode string, null int) {
	defer c.Close()
	exec, handler := mode == "exec", mode == "handler"
	var w *respWriter
	if handler {
		w = &respWriter{h: make(http.Header)}
	}
	buf := make([]byte, 4<<10) // nginx's header block of a GET fits
	var out []byte
	var env []string
	keep := true
	n := 0
	for {
		m, rerr := c.Read(buf[n:])
		n += m
		// Every complete record in buf.
		off := 0
		for n-off >= headerLen {
			h := buf[off : off+headerLen]
			typ, id := h[1], binary.BigEndian.Uint16(h[2:])
			clen, plen := int(binary.BigEndian.Uint16(h[4:])), int(h[6])
			if n-off < headerLen+clen+plen {
				break
			}
			content := buf[off+headerLen : off+headerLen+clen]
			off += headerLen + clen + plen
			switch typ {
			case typeBeginRequest:
				keep = clen >= 3 && content[2]&flagKeepConn != 0
				env = env[:0]
			case typeParams:
				if exec || handler {
					env = appendPairs(env, content)
				}
			case typeStdin:
				if clen != 0 {
					continue // a body: not in this benchmark
				}
				switch {
				case exec:
					out = appendStdout(out, id, run(env, null))
				case handler:
					out = appendStdout(out, id, w.serve(env))
				default:
					out = appendStdout(out, id, []byte(hello))
				}
				out = append(out, 1, typeEndRequest, byte(id>>8), byte(id), 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
			}
		}
		n = copy(buf, buf[off:n])
		if n == len(buf) {
			return // a record larger than the buffer: not in this benchmark
		}
		if len(out) > 0 {
			if _, err := c.Write(out); err != nil {
				return
			}
			out = out[:0]
			if !keep {
				return
			}
		}
		if rerr != nil {
			return
		}
	}
}

// appendStdout appends p as FCGI_STDOUT records of request id, then the
// empty record that ends the stream.
func appendStdout(out []byte, id uint16, p []byte) []byte {
	for len(p) > 0 {
		k := min(len(p), 65535)
		out = append(out, 1, typeStdout, byte(id>>8), byte(id), byte(k>>8), byte(k), 0, 0)
		out = append(out, p[:k]...)
		p = p[k:]
	}
	return append(out, 1, typeStdout, byte(id>>8), byte(id), 0, 0, 0, 0)
}

// appendPairs appends the name-value pairs of one FCGI_PARAMS record, as
// NAME=VALUE; a pair split across records is dropped (nginx sends the
// parameters in one).
func appendPairs(env []string, p []byte) []string {
	size := func() int {
		if len(p) == 0 {
			return -1
		}
		if p[0]&0x80 == 0 {
			n := int(p[0])
			p = p[1:]
			return n
		}
		if len(p) < 4 {
			return -1
		}
		n := int(binary.BigEndian.Uint32(p) & 0x7fffffff)
		p = p[4:]
		return n
	}
	for len(p) > 0 {
		nl, vl := size(), size()
		if nl < 0 || vl < 0 || nl+vl > len(p) {
			return env
		}
		env = append(env, string(p[:nl])+"="+string(p[nl:nl+vl]))
		p = p[nl+vl:]
	}
	return env
}

// run runs the request's script and returns its output, or a 502 when it
// could not run.
func run(env []string, null int) []byte {
	var script string
	for _, kv := range env {
		if len(kv) > 16 && kv[:16] == "SCRIPT_FILENAME=" {
			script = kv[16:]
		}
	}
	out, err := forkExecRead(script, env, null)
	if err != nil {
		return []byte("Status: 502 Bad Gateway\r\nContent-Type: text/plain\r\n\r\n" + err.Error() + "\n")
	}
	return out
}

// forkExecRead runs script with env, its stdout a pipe read to its end by
// blocking reads in this thread, and waits for it.
func forkExecRead(script string, env []string, null int) ([]byte, error) {
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC); err != nil {
		return nil, err
	}
	pid, err := syscall.ForkExec(script, []string{script}, &syscall.ProcAttr{
		Env:   env,
		Files: []uintptr{uintptr(null), uintptr(p[1]), uintptr(null)},
	})
	syscall.Close(p[1])
	if err != nil {
		syscall.Close(p[0])
		return nil, err
	}
	var out []byte
	var buf [4096]byte
	for {
		n, err := syscall.Read(p[0], buf[:])
		if n > 0 {
			out = append(out, buf[:n]...)
		}
		if err == syscall.EINTR {
			continue
		}
		if n <= 0 {
			break
		}
	}
	syscall.Close(p[0])
	var ws syscall.WaitStatus
	for {
		_, err := syscall.Wait4(pid, &ws, 0, nil)
		if err != syscall.EINTR {
			break
		}
	}
	if !ws.Exited() || ws.ExitStatus() != 0 {
		return nil, errors.New("script failed: " + fmt.Sprint(ws))
	}
	return out, nil
}

// app is what -mode handler serves.
var app = benchapp.Handler()

// respWriter is -mode handler's http.ResponseWriter, one per connection,
// reused by its requests.
type respWriter struct {
	h      http.Header
	status int
	body   []byte
	out    []byte
}

func (w *respWriter) Header() http.Header { return w.h }

func (w *respWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

func (w *respWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	w.body = append(w.body, p...)
	return len(p), nil
}

// serve answers the request whose parameters are env (NAME=VALUE) with
// app and returns the CGI answer, valid until the next call.
func (w *respWriter) serve(env []string) []byte {
	r := &http.Request{Header: make(http.Header), Body: http.NoBody, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}
	for _, kv := range env {
		name, value, _ := strings.Cut(kv, "=")
		switch {
		case name == "REQUEST_METHOD":
			r.Method = value
		case name == "REQUEST_URI":
			r.RequestURI = value
		case name == "SERVER_PROTOCOL":
			r.Proto = value
		case name == "REMOTE_ADDR":
			r.RemoteAddr = value
		case name == "HTTP_HOST":
			r.Host = value
		case strings.HasPrefix(name, "HTTP_"):
			r.Header.Add(textproto.CanonicalMIMEHeaderKey(strings.ReplaceAll(name[5:], "_", "-")), value)
		}
	}
	u, err := url.ParseRequestURI(r.RequestURI)
	if err != nil {
		return []byte("Status: 400 Bad Request\r\n\r\n")
	}
	r.URL = u
	clear(w.h)
	w.status, w.body = 0, w.body[:0]
	app.ServeHTTP(w, r)
	w.WriteHeader(http.StatusOK)
	out := append(w.out[:0], "Status: "...)
	out = strconv.AppendInt(out, int64(w.status), 10)
	out = append(out, ' ')
	out = append(out, http.StatusText(w.status)...)
	out = append(out, "\r\n"...)
	for k, vs := range w.h {
		for _, v := range vs {
			out = append(append(append(append(out, k...), ": "...), v...), "\r\n"...)
		}
	}
	if w.h.Get("Content-Length") == "" {
		out = append(out, "Content-Length: "...)
		out = strconv.AppendInt(out, int64(len(w.body)), 10)
		out = append(out, "\r\n"...)
	}
	out = append(append(out, "\r\n"...), w.body...)
	w.out = out
	return out
}
