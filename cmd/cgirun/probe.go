package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/cgirun/cgirun/bridge"
)

// probeConfig is the configuration of "cgirun probe".
type probeConfig struct {
	Fastcgi      string        `desc:"ADDR: the FastCGI server when the command line gives none"`
	Root         string        `desc:"--root: SCRIPT_FILENAME is it plus the path, DOCUMENT_ROOT is it (the first of a list)"`
	ProbeTimeout time.Duration `split_words:"true" default:"5s" desc:"--timeout: bound on the whole exchange"`
	ProbeMethod  string        `split_words:"true" default:"GET" desc:"--method: the request method"`
}

const probeHelp = `
Usage: cgirun probe [flags] [ADDR] [PATH]

Sends one FastCGI request for PATH (default /, a query allowed) to the
server at ADDR (unix:/path, tcp:host:port or host:port; default
CGIRUN_FASTCGI) and prints the answer: "HTTP <status> <text>", the header
fields, an empty line and the body; a local redirect (a Location path and
no Status) is shown as a 302. What the server writes to its FastCGI stderr
goes to stderr (its first 64 KiB). The exit status is 0 for a 2xx or 3xx
answer and 1 for any other answer, no answer or an error: a health check
for php-fpm, "cgirun fcgi" or a cgirun program (what "cgi-fcgi -bind
-connect" does, with a readable answer).

--timeout bounds the whole exchange (connecting, sending the request,
reading the answer to its end), and SIGTERM or SIGINT ends it at once,
whatever the server does. An answer whose stdout has no valid CGI header
block (a script that printed nothing, or a body without the header lines
and the empty line), an answer cut short and a refused request are
failures too, and stderr says what was received.

The request has REQUEST_METHOD, REQUEST_URI, SCRIPT_NAME, QUERY_STRING,
SCRIPT_FILENAME (--root plus the path, or the path), SERVER_PROTOCOL
HTTP/1.1, SERVER_NAME localhost, GATEWAY_INTERFACE, and one HTTP_* variable
per -H header; no body.
`

func (c *cli) probe(ctx context.Context, args []string) error {
	var cfg probeConfig
	envErr := loadEnv(&cfg)
	var headers []string
	fs := newFlagSet("probe")
	fs.DurationVar(&cfg.ProbeTimeout, "timeout", cfg.ProbeTimeout, "give up after `DURATION`")
	fs.StringVar(&cfg.ProbeMethod, "method", cfg.ProbeMethod, "send `METHOD` as REQUEST_METHOD")
	fs.StringVar(&cfg.Root, "root", cfg.Root, "send `DIR` as DOCUMENT_ROOT, and DIR plus the path as SCRIPT_FILENAME")
	fs.Var(&listFlag{list: &headers}, "H", "send the header `\"Name: value\"` (repeatable)")
	pos, err := parse(fs, args, c.stdout, func(w io.Writer) { writeHelp(w, probeHelp, fs, &probeConfig{}) })
	if err != nil {
		return err
	}
	if envErr != nil {
		return envErr
	}
	c.warnUnknownSettings("probe", &probeConfig{}, nil)
	addr, target := cfg.Fastcgi, "/"
	switch {
	case len(pos) > 2:
		return usagef("unexpected argument %q", pos[2])
	case len(pos) == 2:
		addr, target = pos[0], pos[1]
	case len(pos) == 1 && strings.HasPrefix(pos[0], "/"):
		target = pos[0]
	case len(pos) == 1:
		addr = pos[0]
	}
	if addr == "" {
		return usagef("no FastCGI server: give ADDR (or CGIRUN_FASTCGI)")
	}
	_, network, address, err := fastcgiAddr(addr)
	if err != nil {
		return &usageError{err}
	}
	root, _, _ := strings.Cut(cfg.Root, ",")
	params, err := probeParams(cfg.ProbeMethod, target, root, headers)
	if err != nil {
		return err
	}
	if cfg.ProbeTimeout <= 0 {
		return usagef("--timeout (CGIRUN_PROBE_TIMEOUT) = %v: want more than 0", cfg.ProbeTimeout)
	}

	if err := c.exchange(ctx, network, address, cfg.ProbeTimeout, params); err != nil {
		return fmt.Errorf("%s %s: %w", addr, target, err)
	}
	return nil
}

// exchange sends the request with params to the FastCGI server at
// network, address and prints the answer. The whole exchange ends when
// timeout passes or ctx ends, whatever the server does: the connection's
// deadline ends any read or write. It returns exitCode(exitFailure) for an
// answer outside 2xx and 3xx.
func (c *cli) exchange(parent context.Context, network, address string, timeout time.Duration, params map[string]string) error {
	ctx, cancel := context.WithTimeout(parent, timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, address)
	if err != nil {
		return probeFailure(parent, "no answer", timeout, err)
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	if err := conn.SetDeadline(deadline); err != nil {
		return fmt.Errorf("setting the deadline: %w", err)
	}
	// SIGTERM or SIGINT ends the exchange at once.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()

	var stderr probeStderr
	defer stderr.print(c.stderr)
	if _, err := conn.Write(probeRequest(params)); err != nil {
		return probeFailure(parent, "no answer", timeout, fmt.Errorf("sending the request: %w", err))
	}
	stdout := &probeStdout{r: conn, stderr: &stderr}
	br := bufio.NewReader(stdout)
	resp, err := bridge.ReadResponse(br, 0)
	switch {
	case stdout.err != nil && stdout.err != io.EOF:
		return probeFailure(parent, "no answer", timeout, stdout.err)
	case errors.Is(err, bridge.ErrNoHeader):
		return fmt.Errorf("the answer had no CGI header block: its stdout ended after %d bytes without the empty line that ends one; stdout %s", stdout.size, stdout.excerpt())
	case err != nil:
		return fmt.Errorf("the answer had no valid CGI header block: %w; stdout %s", err, stdout.excerpt())
	}
	status := resp.Status
	if resp.LocalRedirect {
		status = http.StatusFound
	}
	if err := printHead(c.stdout, status, resp.Header); err != nil {
		return err
	}
	if _, err := io.Copy(c.stdout, br); err != nil {
		if stdout.err != nil && stdout.err != io.EOF {
			return probeFailure(parent, "the answer did not end", timeout, stdout.err)
		}
		return fmt.Errorf("printing the answer: %w", err)
	}
	if status < 200 || status > 399 {
		return exitCode(exitFailure)
	}
	return nil
}

// probeFailure says why the exchange failed: ctx ended (a signal), the
// timeout passed before what, or err.
func probeFailure(parent context.Context, what string, timeout time.Duration, err error) error {
	switch {
	case parent.Err() != nil:
		return fmt.Errorf("stopped: %w", context.Cause(parent))
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s within --timeout %v: %w", what, timeout, err)
	}
	return err
}

// printHead prints "HTTP <status> <text>", the header fields in sorted
// order and an empty line.
func printHead(w io.Writer, status int, header http.Header) error {
	var b strings.Builder
	fmt.Fprintf(&b, "HTTP %d %s\n", status, http.StatusText(status))
	for _, k := range slices.Sorted(maps.Keys(header)) {
		for _, v := range header[k] {
			fmt.Fprintf(&b, "%s: %s\n", k, v)
		}
	}
	b.WriteString("\n")
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("printing the answer: %w", err)
	}
	return nil
}

// probeParams returns the CGI variables of the probe's request.
func probeParams(method, target, root string, headers []string) (map[string]string, error) {
	if method == "" || strings.ContainsAny(method, " \t\r\n") {
		return nil, usagef("--method (CGIRUN_PROBE_METHOD) = %q: want a method such as GET", method)
	}
	u, err := url.ParseRequestURI(target)
	if err != nil || !strings.HasPrefix(target, "/") {
		return nil, usagef("path %q: want an absolute path such as /healthz", target)
	}
	p := map[string]string{
		"GATEWAY_INTERFACE": "CGI/1.1",
		"SERVER_SOFTWARE":   "cgirun-probe",
		"SERVER_PROTOCOL":   "HTTP/1.1",
		"SERVER_NAME":       "localhost",
		"SERVER_PORT":       "80",
		"REMOTE_ADDR":       "127.0.0.1",
		"REMOTE_PORT":       "0",
		"REQUEST_METHOD":    method,
		"REQUEST_URI":       target,
		"SCRIPT_NAME":       u.Path,
		"SCRIPT_FILENAME":   u.Path,
		"QUERY_STRING":      u.RawQuery,
		"HTTP_HOST":         "localhost",
	}
	if root != "" {
		p["DOCUMENT_ROOT"] = root
		p["SCRIPT_FILENAME"] = path.Join(root, u.Path)
	}
	for _, h := range headers {
		name, value, ok := strings.Cut(h, ":")
		if !ok || name == "" || strings.ContainsAny(name, " \t\r\n_") || strings.ContainsAny(value, "\r\n") {
			return nil, usagef("-H %q: want \"Name: value\"", h)
		}
		value = strings.TrimSpace(value)
		switch key := strings.ToUpper(strings.ReplaceAll(name, "-", "_")); key {
		case "CONTENT_TYPE", "CONTENT_LENGTH":
			p[key] = value
		case "PROXY":
			// httpoxy: never HTTP_PROXY.
		default:
			p["HTTP_"+key] = value
		}
	}
	return p, nil
}

// FastCGI record types and values of the probe's exchange (the FastCGI
// specification, section 8). The fastcgi package has the server's side;
// this is the little a client needs.
const (
	fcgiVersion      = 1
	fcgiBeginRequest = 1
	fcgiEndRequest   = 3
	fcgiParams       = 4
	fcgiStdin        = 5
	fcgiStdout       = 6
	fcgiStderr       = 7
	fcgiResponder    = 1
	fcgiHeaderLen    = 8
	fcgiMaxContent   = 65535
	probeReqID       = 1
)

// fcgiProtocolStatus names the protocolStatus values of FCGI_END_REQUEST
// that refuse a request.
var fcgiProtocolStatus = map[byte]string{
	1: "FCGI_CANT_MPX_CONN",
	2: "FCGI_OVERLOADED",
	3: "FCGI_UNKNOWN_ROLE",
}

// probeMaxStderr bounds the server's FCGI_STDERR that probe holds to print
// after the answer; the rest is counted and dropped.
const probeMaxStderr = 64 << 10

// probeExcerpt is how much of the answer's stdout an error message quotes.
const probeExcerpt = 64

// errHungUp is the answer's end before FCGI_END_REQUEST.
var errHungUp = errors.New("the server closed the connection before the end of its answer")

// probeRequest returns the records of the probe's request: a responder's
// FCGI_BEGIN_REQUEST without FCGI_KEEP_CONN, the params in sorted order,
// and the empty FCGI_PARAMS and FCGI_STDIN records that end both streams.
func probeRequest(params map[string]string) []byte {
	b := appendRecord(nil, fcgiBeginRequest, []byte{0, fcgiResponder, 0, 0, 0, 0, 0, 0})
	var pairs []byte
	for _, k := range slices.Sorted(maps.Keys(params)) {
		pairs = appendPairLen(pairs, len(k))
		pairs = appendPairLen(pairs, len(params[k]))
		pairs = append(pairs, k...)
		pairs = append(pairs, params[k]...)
	}
	for len(pairs) > 0 {
		n := min(len(pairs), fcgiMaxContent)
		b = appendRecord(b, fcgiParams, pairs[:n])
		pairs = pairs[n:]
	}
	b = appendRecord(b, fcgiParams, nil)
	return appendRecord(b, fcgiStdin, nil)
}

// appendRecord appends a record of the probe's request holding content,
// at most fcgiMaxContent bytes, without padding.
func appendRecord(b []byte, typ byte, content []byte) []byte {
	return appendRecordOf(b, typ, probeReqID, content)
}

// appendRecordOf appends a record of request id (0: a management record)
// holding content, at most fcgiMaxContent bytes, without padding.
func appendRecordOf(b []byte, typ byte, id uint16, content []byte) []byte {
	b = append(b, fcgiVersion, typ)
	b = binary.BigEndian.AppendUint16(b, id)
	b = binary.BigEndian.AppendUint16(b, uint16(len(content)))
	b = append(b, 0, 0)
	return append(b, content...)
}

// appendPairLen appends the length of a name or value: one byte below 128,
// else four with the high bit set.
func appendPairLen(b []byte, n int) []byte {
	if n < 128 {
		return append(b, byte(n))
	}
	return binary.BigEndian.AppendUint32(b, uint32(n)|1<<31)
}

// probeStdout reads the answer's records from r and gives the content of
// its FCGI_STDOUT records. FCGI_STDERR goes to stderr; FCGI_END_REQUEST
// ends the stream with io.EOF, or with an error if it refuses the request.
type probeStdout struct {
	r      io.Reader
	stderr *probeStderr
	rec    [fcgiHeaderLen + fcgiMaxContent + 255]byte
	buf    []byte // what Read has not given yet of the current record
	seen   []byte // the first probeExcerpt bytes of stdout
	size   int64  // bytes of stdout so far
	err    error  // the first error of r or of the records; sticky
}

func (s *probeStdout) Read(p []byte) (int, error) {
	for len(s.buf) == 0 {
		if s.err != nil {
			return 0, s.err
		}
		s.err = s.next()
	}
	n := copy(p, s.buf)
	s.buf = s.buf[n:]
	return n, nil
}

// next reads one record.
func (s *probeStdout) next() error {
	h := s.rec[:fcgiHeaderLen]
	if _, err := io.ReadFull(s.r, h); err != nil {
		return hungUp(err)
	}
	if h[0] != fcgiVersion {
		return fmt.Errorf("not a FastCGI answer: a record began %q", h)
	}
	if id := binary.BigEndian.Uint16(h[2:]); id != probeReqID {
		return fmt.Errorf("a record for request %d, want %d", id, probeReqID)
	}
	n := int(binary.BigEndian.Uint16(h[4:]))
	body := s.rec[fcgiHeaderLen : fcgiHeaderLen+n+int(h[6])]
	if _, err := io.ReadFull(s.r, body); err != nil {
		return hungUp(err)
	}
	content := body[:n]
	switch h[1] {
	case fcgiStdout:
		s.buf = content
		s.size += int64(n)
		s.seen = append(s.seen, content[:min(n, probeExcerpt-len(s.seen))]...)
	case fcgiStderr:
		s.stderr.write(content)
	case fcgiEndRequest:
		if n < 8 {
			return fmt.Errorf("an FCGI_END_REQUEST of %d bytes, want 8", n)
		}
		if st := content[4]; st != 0 {
			name := cmp.Or(fcgiProtocolStatus[st], fmt.Sprintf("protocol status %d", st))
			return fmt.Errorf("the server refused the request (%s)", name)
		}
		return io.EOF
	default:
		return fmt.Errorf("an unexpected record of type %d", h[1])
	}
	return nil
}

// excerpt quotes the start of stdout for an error message.
func (s *probeStdout) excerpt() string {
	switch {
	case s.size == 0 && s.err == io.EOF:
		return "was empty"
	case s.size == int64(len(s.seen)) && s.err == io.EOF:
		return fmt.Sprintf("was %q", s.seen)
	}
	return fmt.Sprintf("began %q", s.seen)
}

// hungUp names an end of the connection in the middle of the answer.
func hungUp(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errHungUp
	}
	return err
}

// probeStderr holds the first probeMaxStderr bytes of the server's
// FCGI_STDERR and counts the rest.
type probeStderr struct {
	buf     bytes.Buffer
	dropped int
}

func (e *probeStderr) write(p []byte) {
	keep := min(len(p), probeMaxStderr-e.buf.Len())
	e.buf.Write(p[:keep])
	e.dropped += len(p) - keep
}

// print prints what it holds to w, a line "cgirun probe: stderr: ..." for
// each line.
func (e *probeStderr) print(w io.Writer) {
	var b strings.Builder
	if e.buf.Len() > 0 {
		for line := range strings.SplitSeq(strings.TrimRight(e.buf.String(), "\n"), "\n") {
			fmt.Fprintf(&b, "cgirun probe: stderr: %s\n", line)
		}
	}
	if e.dropped > 0 {
		fmt.Fprintf(&b, "cgirun probe: stderr: (%d more bytes dropped)\n", e.dropped)
	}
	// Nothing can be done about a failing stderr.
	_, _ = io.WriteString(w, b.String())
}
