package bridge

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Role is what the web server asks of the application, after the FastCGI
// roles. A CGI request is always a Responder request.
type Role uint8

// The roles. The zero value is RoleResponder.
const (
	// RoleResponder answers an HTTP request: the common case.
	RoleResponder Role = iota
	// RoleAuthorizer decides whether a request may proceed: status 200
	// allows it, any other status is sent to the client as the answer.
	// Headers named Variable-NAME become the variable NAME for the
	// request that follows. There is no body.
	RoleAuthorizer
	// RoleFilter answers with a filtered version of a file, which
	// arrives as Request.Data after the body.
	RoleFilter
)

// String returns the role's name as the FastCGI specification spells it.
func (r Role) String() string {
	switch r {
	case RoleResponder:
		return "RESPONDER"
	case RoleAuthorizer:
		return "AUTHORIZER"
	case RoleFilter:
		return "FILTER"
	}
	return "Role(" + strconv.Itoa(int(r)) + ")"
}

// Request is one CGI request as a front end received it: the meta-variables,
// the body, and what FastCGI adds (the role and, for filters, the data
// stream).
type Request struct {
	// Env holds the meta-variables as received.
	Env Environ
	// Body is the request body (CGI stdin, FastCGI STDIN). Nil means the
	// body is known to be empty: a front end that knows it (a FastCGI
	// request whose end of STDIN came with its header block, as nginx
	// sends a GET) leaves Body nil, and a back end need not read it (the
	// runner gives such a script /dev/null, no pipe).
	Body io.Reader
	// Role is the FastCGI role; CGI requests are RoleResponder.
	Role Role
	// Data is the FastCGI DATA stream of a RoleFilter request (the file to
	// filter); nil for other roles.
	Data io.Reader
	// Stderr reaches the web server's error log (CGI stderr, FastCGI
	// STDERR); nil means there is none.
	Stderr io.Writer
	// IsScript says that the web server found the program as a file and
	// ran it (CGI): SCRIPT_NAME is then the program's own URL, and an
	// absent PATH_INFO means the same as an empty one (RFC 3875 section
	// 4.1.5; Apache omits PATH_INFO for /cgi-bin/app). Behind FastCGI,
	// SCRIPT_NAME is whatever the web server's configuration makes it
	// (nginx's $fastcgi_script_name is the whole path), so IsScript is
	// false there.
	IsScript bool
	// Log, when set, receives the log lines about this request in place
	// of the Responder's own logger: a front end uses it to add the
	// request's id or to copy the lines to Stderr.
	Log *slog.Logger
}

// Output is where a Responder writes the CGI response stream.
type Output interface {
	io.Writer
	// Flush sends what has been written so far towards the client.
	Flush() error
}

// Aborter is implemented by an Output that can tell the client that a
// response is incomplete (a FastCGI server closes the connection instead of
// ending the request). A Responder calls Abort when it cuts a response
// short, also on paths where it cannot return an error (runtime.Goexit).
type Aborter interface {
	Abort(err error)
}

// Responder answers a Request by writing a CGI response stream (a header
// block with Status, Content-Type, Location and other fields, an empty line,
// then the body; RFC 3875 section 6) to out. It is what every back end
// implements: a Go http.Handler through HandlerResponder, a CGI executable
// through package cgi.
//
// Respond returns nil when out holds a complete response, including a clean
// error response it chose to send. It returns an error when the response
// was cut short, so that the front end does not present it as complete.
// Respond need not flush out at the end: the front end does, so that it can
// add its own framing to the same write.
type Responder interface {
	Respond(ctx context.Context, req *Request, out Output) error
}

type requestKey struct{}

// RequestOf returns the Request behind r, or nil when r did not come through
// the bridge. The handler reads the role, the filter data and the web
// server's error stream there.
func RequestOf(r *http.Request) *Request {
	req, _ := r.Context().Value(requestKey{}).(*Request)
	return req
}

// EnvironOf returns the CGI meta-variables behind r exactly as the web server
// sent them: SCRIPT_NAME, PATH_INFO, REMOTE_USER, AUTH_TYPE, SSL_*, custom
// fastcgi_param values. It returns nil when r did not come through the
// bridge (plain HTTP); a nil *Environ reads as empty.
func EnvironOf(r *http.Request) *Environ {
	if req := RequestOf(r); req != nil {
		return &req.Env
	}
	return nil
}

// ScriptName returns the path at which the application is mounted, for
// building links: ScriptName(r) + r.URL.Path is the path the client asked
// for. It is SCRIPT_NAME when the web server sent PATH_INFO or ran the
// program as a CGI script, and "" otherwise, because r.URL.Path is then the
// whole path (see NewHTTPRequest).
func ScriptName(r *http.Request) string {
	req := RequestOf(r)
	if req == nil {
		return ""
	}
	if _, ok := req.Env.Lookup("PATH_INFO"); !ok && !req.IsScript {
		return ""
	}
	return req.Env.Get("SCRIPT_NAME")
}

// ErrBadEnviron is wrapped by every error of NewHTTPRequest: the
// meta-variables do not describe a valid request. The client gets 400.
var ErrBadEnviron = errors.New("bridge: bad CGI environment")

func badEnviron(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrBadEnviron}, args...)...)
}

// NewHTTPRequest turns a CGI request into an *http.Request whose context is
// ctx carrying req (see RequestOf), following RFC 3875 section 4.1:
//
//   - Method from REQUEST_METHOD (required, a token); Proto from
//     SERVER_PROTOCOL (absent or "INCLUDED" means HTTP/1.0).
//   - Every HTTP_* variable becomes a header: HTTP_USER_AGENT is User-Agent,
//     HTTP_COOKIE stays one Cookie header. CONTENT_TYPE is Content-Type.
//     Host is HTTP_HOST, or SERVER_NAME[:SERVER_PORT].
//   - CONTENT_LENGTH, when present and not empty, is ContentLength and
//     limits the body; a body shorter than that ends in
//     io.ErrUnexpectedEOF. Absent, empty or negative (Caddy's FastCGI
//     transport sends -1 for a chunked body, lighttpd over SCGI and uwsgi
//     for a streamed one), the length is unknown: ContentLength is -1 and
//     the body is read to its end. Anything else that is not a length
//     is an error.
//   - The path rule, which lets one handler run unchanged in a cgi-bin, at
//     the root of nginx or behind plain HTTP: URL.Path is the path below the
//     mount point. It is PATH_INFO when the web server sent one (empty
//     means "/"; for a CGI script, req.IsScript, absent means "/" too),
//     otherwise the decoded path of REQUEST_URI. RequestURI is
//     always the full REQUEST_URI as the client sent it (or
//     SCRIPT_NAME+PATH_INFO+?QUERY_STRING, escaped, when absent). Package
//     net/http/cgi differs: it puts the full path in URL.Path, so a handler
//     in /cgi-bin/app sees /cgi-bin/app/users where this one sees /users.
//     PATH_INFO is taken as given: it is never assumed to be a suffix of
//     REQUEST_URI or of anything else (CVE-2019-11043).
//   - URL.RawQuery is QUERY_STRING, or the query of REQUEST_URI.
//     URL.Scheme and URL.Host are set, as net/http/cgi sets them.
//   - RemoteAddr is REMOTE_ADDR:REMOTE_PORT (port 0 when absent).
//   - HTTPS "on", "ON", "On" or "1" makes a TLS request: r.TLS is set and
//     the scheme is https.
//
// Values are used byte for byte: a PATH_INFO or QUERY_STRING holding bytes
// that are not UTF-8 reaches the handler unchanged. The other variables are
// read with EnvironOf. Errors wrap ErrBadEnviron.
func NewHTTPRequest(ctx context.Context, req *Request) (*http.Request, error) {
	env := &req.Env
	method := env.Get("REQUEST_METHOD")
	if method == "" {
		return nil, badEnviron("no REQUEST_METHOD")
	}
	if !isToken(method) {
		return nil, badEnviron("REQUEST_METHOD %q is not a token", method)
	}
	proto := env.Get("SERVER_PROTOCOL")
	major, minor := 1, 0
	switch proto {
	case "", "INCLUDED":
		proto = "HTTP/1.0"
	default:
		var ok bool
		if major, minor, ok = http.ParseHTTPVersion(proto); !ok {
			return nil, badEnviron("SERVER_PROTOCOL %q is not HTTP/x.y", proto)
		}
	}

	r := &http.Request{
		Method:     method,
		Proto:      proto,
		ProtoMajor: major,
		ProtoMinor: minor,
	}
	var err error
	if r.Header, err = headers(env); err != nil {
		return nil, err
	}

	clen, err := contentLength(env)
	if err != nil {
		return nil, err
	}
	r.ContentLength = clen
	switch {
	case clen == 0, clen < 0 && req.Body == nil:
		r.Body = http.NoBody
	case req.Body == nil:
		// A declared length with nothing behind it: reads end in
		// io.ErrUnexpectedEOF.
		r.Body = &body{r: http.NoBody, remaining: clen}
	default:
		r.Body = &body{r: req.Body, remaining: clen}
	}

	if isHTTPS(env.Get("HTTPS")) {
		r.TLS = &tls.ConnectionState{HandshakeComplete: true, ServerName: env.Get("SERVER_NAME")}
	}
	r.Host = env.Get("HTTP_HOST")
	if r.Host == "" {
		r.Host = serverHost(env, r.TLS != nil)
	}
	if r.URL, r.RequestURI, err = requestURL(env, req.IsScript); err != nil {
		return nil, err
	}
	r.URL.Host = r.Host
	r.URL.Scheme = "http"
	if r.TLS != nil {
		r.URL.Scheme = "https"
	}
	if addr := env.Get("REMOTE_ADDR"); addr != "" {
		port := env.Get("REMOTE_PORT")
		if port == "" {
			port = "0"
		}
		r.RemoteAddr = net.JoinHostPort(addr, port)
	}
	return r.WithContext(context.WithValue(ctx, requestKey{}, req)), nil
}

// headers returns the header made of every HTTP_* variable and
// CONTENT_TYPE. Values share one backing array to save an allocation per
// header.
func headers(env *Environ) (http.Header, error) {
	n := 1 // CONTENT_TYPE
	for name := range env.All() {
		if strings.HasPrefix(name, "HTTP_") {
			n++
		}
	}
	h := make(http.Header, n)
	values := make([]string, 0, n)
	add := func(key, v string) {
		values = append(values, v)
		h[key] = values[len(values)-1 : len(values) : len(values)]
	}
	for name, v := range env.All() {
		suffix, ok := strings.CutPrefix(name, "HTTP_")
		if !ok || suffix == "" {
			continue
		}
		key, known := commonHeader(suffix)
		if !known {
			if !isToken(suffix) {
				return nil, badEnviron("variable %q does not name a header", name)
			}
			key = http.CanonicalHeaderKey(strings.ReplaceAll(suffix, "_", "-"))
		}
		switch key {
		case "Content-Type", "Content-Length":
			// CONTENT_TYPE and CONTENT_LENGTH are authoritative.
			continue
		}
		add(key, v)
	}
	if ct := env.Get("CONTENT_TYPE"); ct != "" {
		add("Content-Type", ct)
	}
	return h, nil
}

// commonHeader returns the canonical name of a frequent header from its
// HTTP_ suffix without allocating. A switch, not a map: a CGI program
// starts for every request, and a map literal is built at start-up.
func commonHeader(suffix string) (string, bool) {
	switch suffix {
	case "ACCEPT":
		return "Accept", true
	case "ACCEPT_CHARSET":
		return "Accept-Charset", true
	case "ACCEPT_ENCODING":
		return "Accept-Encoding", true
	case "ACCEPT_LANGUAGE":
		return "Accept-Language", true
	case "AUTHORIZATION":
		return "Authorization", true
	case "CACHE_CONTROL":
		return "Cache-Control", true
	case "CONNECTION":
		return "Connection", true
	case "CONTENT_LENGTH":
		return "Content-Length", true
	case "CONTENT_TYPE":
		return "Content-Type", true
	case "COOKIE":
		return "Cookie", true
	case "DNT":
		return "Dnt", true
	case "HOST":
		return "Host", true
	case "IF_MODIFIED_SINCE":
		return "If-Modified-Since", true
	case "IF_NONE_MATCH":
		return "If-None-Match", true
	case "ORIGIN":
		return "Origin", true
	case "PRAGMA":
		return "Pragma", true
	case "RANGE":
		return "Range", true
	case "REFERER":
		return "Referer", true
	case "SEC_FETCH_DEST":
		return "Sec-Fetch-Dest", true
	case "SEC_FETCH_MODE":
		return "Sec-Fetch-Mode", true
	case "SEC_FETCH_SITE":
		return "Sec-Fetch-Site", true
	case "TE":
		return "Te", true
	case "UPGRADE_INSECURE_REQUESTS":
		return "Upgrade-Insecure-Requests", true
	case "USER_AGENT":
		return "User-Agent", true
	case "X_FORWARDED_FOR":
		return "X-Forwarded-For", true
	case "X_FORWARDED_PROTO":
		return "X-Forwarded-Proto", true
	case "X_REAL_IP":
		return "X-Real-Ip", true
	case "X_REQUESTED_WITH":
		return "X-Requested-With", true
	}
	return "", false
}

func contentLength(env *Environ) (int64, error) {
	s := env.Get("CONTENT_LENGTH")
	if s == "" {
		return -1, nil
	}
	n, err := strconv.ParseUint(s, 10, 63)
	if err == nil {
		return int64(n), nil
	}
	if rest, ok := strings.CutPrefix(s, "-"); ok {
		if n, err := strconv.ParseUint(rest, 10, 63); err == nil && n > 0 {
			// Caddy's FastCGI transport and lighttpd's streamed bodies:
			// a chunked body, of a length nobody knows yet.
			return -1, nil
		}
	}
	return 0, badEnviron("CONTENT_LENGTH %q is not a length", s)
}

func isHTTPS(v string) bool {
	switch v {
	case "on", "ON", "On", "1":
		return true
	}
	return false
}

func serverHost(env *Environ, tls bool) string {
	name, port := env.Get("SERVER_NAME"), env.Get("SERVER_PORT")
	if name == "" || port == "" || (!tls && port == "80") || (tls && port == "443") {
		return name
	}
	return net.JoinHostPort(name, port)
}

// requestURL applies the path rule of NewHTTPRequest.
func requestURL(env *Environ, isScript bool) (*url.URL, string, error) {
	query, hasQuery := env.Lookup("QUERY_STRING")
	pathInfo, hasPathInfo := env.Lookup("PATH_INFO")
	hasPathInfo = hasPathInfo || isScript
	requestURI := env.Get("REQUEST_URI")
	u := new(url.URL)
	if requestURI != "" && (!hasPathInfo || !hasQuery) {
		parsed, err := url.ParseRequestURI(requestURI)
		if err != nil {
			return nil, "", badEnviron("REQUEST_URI %q: %v", requestURI, err)
		}
		if !hasPathInfo {
			u.Path, u.RawPath = parsed.Path, parsed.RawPath
		}
		if !hasQuery {
			query = parsed.RawQuery
		}
	}
	if hasPathInfo {
		u.Path = pathInfo
	}
	if !strings.HasPrefix(u.Path, "/") {
		u.Path = "/" + u.Path
	}
	u.RawQuery = query
	if requestURI == "" {
		whole := url.URL{Path: env.Get("SCRIPT_NAME") + pathInfo, RawQuery: query}
		requestURI = whole.RequestURI()
	}
	return u, requestURI, nil
}

// body is a request body: it enforces CONTENT_LENGTH and refuses reads after
// Close.
type body struct {
	r         io.Reader
	remaining int64 // -1: unknown, read to EOF
	closed    bool
}

func (b *body) Read(p []byte) (int, error) {
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	if b.remaining == 0 {
		return 0, io.EOF
	}
	if b.remaining > 0 && int64(len(p)) > b.remaining {
		p = p[:b.remaining]
	}
	n, err := b.r.Read(p)
	if b.remaining > 0 {
		b.remaining -= int64(n)
		switch {
		case b.remaining == 0:
			err = io.EOF
		case err == io.EOF:
			err = fmt.Errorf("bridge: request body ended %d bytes short of CONTENT_LENGTH: %w", b.remaining, io.ErrUnexpectedEOF)
		}
	}
	return n, err
}

func (b *body) Close() error {
	b.closed = true
	return nil
}

// isToken reports whether s is a non-empty RFC 9110 token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 128 || tokenMask[c>>6]&(1<<(c&63)) == 0 {
			return false
		}
	}
	return true
}

// tokenMask has bit c set for every tchar c (RFC 9110 section 5.6.2):
// digits, letters and !#$%&'*+-.^_`|~. Constants, so that nothing runs at
// start-up; TestTokenMask checks them against that list.
var tokenMask = [2]uint64{0x03ff6cfa00000000, 0x57ffffffc7fffffe}
