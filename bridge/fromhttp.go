package bridge

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// EnvironFromHTTP returns the CGI meta-variables of r, a request received
// by a Go HTTP server, for the script at scriptName with pathInfo the rest
// of the path (RFC 3875 section 4.1): the HTTP front end's half of running
// a CGI program, and the inverse of NewHTTPRequest. Both names are URL
// paths, decoded; pathInfo is set only when it is not empty.
//
// It sets GATEWAY_INTERFACE, SERVER_PROTOCOL, REQUEST_METHOD, REQUEST_URI
// (as the client sent it), QUERY_STRING (raw), SCRIPT_NAME, PATH_INFO,
// SERVER_NAME (the host of r.Host, else the local address), SERVER_PORT
// (the port the request arrived on, else the one in r.Host, else 80 or
// 443), SERVER_ADDR, REMOTE_ADDR, REMOTE_PORT, CONTENT_TYPE,
// CONTENT_LENGTH (only when the body's length is known and not zero),
// HTTPS=on and REQUEST_SCHEME, HTTP_HOST, and one HTTP_* variable per
// header field, in sorted order: repeated fields are joined with ", ",
// Cookie fields with "; ".
//
// Left out on purpose: Authorization and Proxy-Authorization (section
// 4.1.18: credentials are not passed unless the server operator asks; set
// HTTP_AUTHORIZATION yourself), Proxy (httpoxy: a script would take
// HTTP_PROXY for its proxy setting), header names holding '_' (X_Real_IP
// would pass for X-Real-IP; Apache and nginx drop them too), and
// Content-Type and Content-Length, which have variables of their own. The
// caller adds what only it knows: SCRIPT_FILENAME, DOCUMENT_ROOT,
// SERVER_SOFTWARE, PATH_TRANSLATED.
func EnvironFromHTTP(r *http.Request, scriptName, pathInfo string) Environ {
	var env Environ
	env.Grow(20 + len(r.Header))
	env.Set("GATEWAY_INTERFACE", "CGI/1.1")
	env.Set("SERVER_PROTOCOL", r.Proto)
	env.Set("REQUEST_METHOD", r.Method)
	uri := r.RequestURI
	if uri == "" && r.URL != nil {
		uri = r.URL.RequestURI()
	}
	env.Set("REQUEST_URI", uri)
	query := ""
	if r.URL != nil {
		query = r.URL.RawQuery
	}
	env.Set("QUERY_STRING", query)
	env.Set("SCRIPT_NAME", scriptName)
	if pathInfo != "" {
		env.Set("PATH_INFO", pathInfo)
	}

	host := r.Host
	if host == "" && r.URL != nil {
		host = r.URL.Host
	}
	hostName, hostPort, err := net.SplitHostPort(host)
	if err != nil {
		hostName, hostPort = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"), ""
	}
	localIP, localPort := "", ""
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		localIP, localPort, _ = net.SplitHostPort(a.String())
	}
	if hostName == "" {
		hostName = localIP
	}
	port := localPort
	switch {
	case port != "":
	case hostPort != "":
		port = hostPort
	case r.TLS != nil:
		port = "443"
	default:
		port = "80"
	}
	env.Set("SERVER_NAME", hostName)
	env.Set("SERVER_PORT", port)
	if localIP != "" {
		env.Set("SERVER_ADDR", localIP)
	}
	if ip, rport, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		env.Set("REMOTE_ADDR", ip)
		env.Set("REMOTE_PORT", rport)
	} else if r.RemoteAddr != "" {
		env.Set("REMOTE_ADDR", r.RemoteAddr)
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		env.Set("CONTENT_TYPE", ct)
	}
	if r.ContentLength > 0 {
		env.Set("CONTENT_LENGTH", strconv.FormatInt(r.ContentLength, 10))
	}
	if r.TLS != nil {
		env.Set("HTTPS", "on")
		env.Set("REQUEST_SCHEME", "https")
	} else {
		env.Set("REQUEST_SCHEME", "http")
	}
	if host != "" {
		env.Set("HTTP_HOST", host)
	}

	keys := make([]string, 0, len(r.Header))
	for k := range r.Header {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		values := r.Header[k]
		if len(values) == 0 || strings.ContainsRune(k, '_') || !isToken(k) {
			continue
		}
		switch http.CanonicalHeaderKey(k) {
		case "Authorization", "Proxy-Authorization", "Proxy", "Content-Type", "Content-Length", "Host":
			continue
		case "Cookie":
			env.Set("HTTP_COOKIE", strings.Join(values, "; "))
			continue
		}
		env.Set("HTTP_"+strings.ToUpper(strings.ReplaceAll(k, "-", "_")), strings.Join(values, ", "))
	}
	return env
}

// HTTPOutput is the Output that answers an HTTP request with the CGI
// response stream a Responder writes: it holds the header block until its
// empty line, parses it with ReadResponse's rules, then sends the status,
// the header fields and the body to an http.ResponseWriter, the body as it
// comes, flushing the ResponseWriter when the Responder flushes.
//
// A local redirect (RFC 3875 section 6.2.2: a Location path and no Status)
// is not sent: Response reports it and the body is dropped, so that the
// front end can answer the request for that path instead. A body that the
// status forbids (204, 304) is dropped too. A malformed or oversized
// header block, or a stream that ends inside it, sends nothing: Write or
// Close returns the error and the front end answers 502.
//
// Nothing is sent to the ResponseWriter before the header block is
// complete, so Committed tells whether the front end can still choose the
// answer. An HTTPOutput is used by one goroutine at a time.
//
// A CGI program may send its header block before it reads its input, and
// net/http's HTTP/1 server discards the unread request body once a handler
// sends its header: the front end calls
// http.NewResponseController(w).EnableFullDuplex first.
type HTTPOutput struct {
	w   http.ResponseWriter
	max int

	head      []byte    // the header block so far, until it is complete
	lineStart int       // where the line being received starts in head
	resp      *Response // set once the header block is complete
	committed bool      // WriteHeader was called on w
	discard   bool      // the body goes nowhere
	err       error     // first error; sticky
}

var _ Output = (*HTTPOutput)(nil)

// NewHTTPOutput returns an HTTPOutput writing to w that accepts header
// blocks up to maxHeaderBytes (MaxHeaderBytes when maxHeaderBytes <= 0).
func NewHTTPOutput(w http.ResponseWriter, maxHeaderBytes int) *HTTPOutput {
	if maxHeaderBytes <= 0 {
		maxHeaderBytes = MaxHeaderBytes
	}
	return &HTTPOutput{w: w, max: maxHeaderBytes}
}

// Write takes the next bytes of the CGI response stream.
func (o *HTTPOutput) Write(p []byte) (int, error) {
	if o.err != nil {
		return 0, o.err
	}
	if o.resp != nil {
		return o.body(p)
	}
	o.head = append(o.head, p...)
	end := -1
	for end < 0 {
		i := bytes.IndexByte(o.head[o.lineStart:], '\n')
		if i < 0 {
			break
		}
		line := o.head[o.lineStart : o.lineStart+i]
		o.lineStart += i + 1
		if len(line) == 0 || (len(line) == 1 && line[0] == '\r') {
			end = o.lineStart
		}
	}
	if end < 0 {
		if len(o.head) > o.max {
			o.err = fmt.Errorf("%w: over %d bytes", ErrHeaderTooLarge, o.max)
			return 0, o.err
		}
		return len(p), nil
	}
	resp, err := ReadResponse(bufio.NewReader(bytes.NewReader(o.head[:end])), o.max)
	if err != nil {
		o.err = err
		return 0, err
	}
	o.resp = resp
	rest := o.head[end:]
	o.head = nil
	if resp.LocalRedirect {
		o.discard = true
		return len(p), nil
	}
	h := o.w.Header()
	for k, vv := range resp.Header {
		h[k] = vv
	}
	o.discard = !bodyAllowed(resp.Status)
	o.committed = true
	o.w.WriteHeader(resp.Status)
	if len(rest) > 0 {
		if _, err := o.body(rest); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

func (o *HTTPOutput) body(p []byte) (int, error) {
	if o.discard {
		return len(p), nil
	}
	n, err := o.w.Write(p)
	if err != nil {
		o.err = err
	}
	return n, err
}

// Flush sends what was written so far to the client, once the header block
// is complete; before that it does nothing.
func (o *HTTPOutput) Flush() error {
	if o.err != nil {
		return o.err
	}
	if !o.committed || o.discard {
		return nil
	}
	err := http.NewResponseController(o.w).Flush()
	if errors.Is(err, http.ErrNotSupported) {
		return nil
	}
	if err != nil {
		o.err = err
	}
	return err
}

// Close reports whether the stream was a complete header block (and
// whatever body followed): it returns ErrNoHeader, or the error that
// stopped a Write, when it was not. It sends nothing and does not close
// the ResponseWriter.
func (o *HTTPOutput) Close() error {
	if o.err != nil {
		return o.err
	}
	if o.resp == nil {
		return fmt.Errorf("%w (after %d bytes)", ErrNoHeader, len(o.head))
	}
	return nil
}

// Response returns the parsed header block, or nil while it is incomplete.
// Response().LocalRedirect says that nothing was sent and the front end
// should answer the request for Response().Header.Get("Location").
func (o *HTTPOutput) Response() *Response { return o.resp }

// Committed reports whether the status was sent to the ResponseWriter:
// after that, a failure can only cut the response short.
func (o *HTTPOutput) Committed() bool { return o.committed }
