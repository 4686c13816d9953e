package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/yookoala/gofast"
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
fields, an empty line and the body. What the server writes to its FastCGI
stderr goes to stderr. The exit status is 0 for a 2xx or 3xx answer and 1
for any other answer, no answer or an error: a health check for php-fpm,
"cgirun fcgi" or a cgirun program (what "cgi-fcgi -bind -connect" does, with
a readable answer).

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

	ctx, cancel := context.WithTimeout(ctx, cfg.ProbeTimeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	var conn *probeConn
	dial := func() (net.Conn, error) {
		var d net.Dialer
		nc, err := d.DialContext(ctx, network, address)
		if err != nil {
			return nil, err
		}
		nc.SetDeadline(deadline)
		// SIGTERM or SIGINT ends the exchange at once.
		stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Now()) })
		conn = &probeConn{Conn: nc, stop: stop}
		return conn, nil
	}
	client, err := gofast.SimpleClientFactory(dial)()
	if err != nil {
		return fmt.Errorf("%s: %w", addr, err)
	}
	defer client.Close()
	req := gofast.NewRequest(nil)
	req.Params = params
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", addr, err)
	}
	pw := &probeWriter{out: c.stdout, header: make(http.Header)}
	var stderr bytes.Buffer
	err = resp.WriteTo(pw, &stderr)
	if cerr := conn.failure(); cerr != nil {
		// A read or write that failed (timeout, reset, the server hung
		// up before FCGI_END_REQUEST) says more than gofast's "no
		// headers".
		err = cerr
	}
	if stderr.Len() > 0 {
		for _, line := range strings.Split(strings.TrimRight(stderr.String(), "\n"), "\n") {
			fmt.Fprintf(c.stderr, "cgirun probe: stderr: %s\n", line)
		}
	}
	if err != nil || pw.status == 0 {
		if err == nil {
			err = errors.New("no answer")
		}
		return fmt.Errorf("%s %s: %w", addr, target, err)
	}
	if err := pw.sendHead(); err != nil {
		return err
	}
	if pw.status < 200 || pw.status > 399 {
		return exitCode(exitFailure)
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

// probeConn notes the first failed read or write: gofast reports none.
type probeConn struct {
	net.Conn
	stop func() bool
	mu   sync.Mutex
	err  error
}

func (c *probeConn) note(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		if errors.Is(err, io.EOF) {
			err = errors.New("the server closed the connection before the end of its answer")
		}
		c.err = err
	}
}

func (c *probeConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil {
		c.note(err)
	}
	return n, err
}

func (c *probeConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if err != nil {
		c.note(err)
	}
	return n, err
}

func (c *probeConn) Close() error {
	c.stop()
	return c.Conn.Close()
}

func (c *probeConn) failure() error {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// probeWriter is the http.ResponseWriter that gofast writes the answer to:
// it prints the status line and the header fields before the first byte
// of the body, or at the end. gofast calls WriteHeader(500) for an answer
// it could not parse and then returns an error: nothing was printed by
// then.
type probeWriter struct {
	out    io.Writer
	header http.Header
	status int
	sent   bool
}

func (p *probeWriter) Header() http.Header { return p.header }

func (p *probeWriter) WriteHeader(code int) {
	if p.status == 0 {
		p.status = code
	}
}

func (p *probeWriter) Write(b []byte) (int, error) {
	if p.status == 0 {
		p.status = http.StatusOK
	}
	if err := p.sendHead(); err != nil {
		return 0, err
	}
	return p.out.Write(b)
}

func (p *probeWriter) sendHead() error {
	if p.sent {
		return nil
	}
	p.sent = true
	var b strings.Builder
	fmt.Fprintf(&b, "HTTP %d %s\n", p.status, http.StatusText(p.status))
	for _, k := range slices.Sorted(maps.Keys(p.header)) {
		for _, v := range p.header[k] {
			fmt.Fprintf(&b, "%s: %s\n", k, v)
		}
	}
	b.WriteString("\n")
	_, err := io.WriteString(p.out, b.String())
	return err
}
