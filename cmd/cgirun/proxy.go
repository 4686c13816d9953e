package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/yookoala/gofast"

	"github.com/cgirun/cgirun/bridge"
	"github.com/cgirun/cgirun/internal/serve"
)

// proxyConfig is the configuration of "cgirun proxy".
type proxyConfig struct {
	Fastcgi       string        `desc:"--to: the FastCGI server: unix:/path, tcp:host:port or host:port (required)"`
	Root          string        `desc:"--root: the DOCUMENT_ROOT sent to the server, as the server sees it, whose other files are served when it is a directory here too; default: the current directory, whose files are not served"`
	Index         string        `default:"index.php" desc:"--index: the file a path ending in / names; empty: none"`
	ScriptExt     []string      `split_words:"true" default:".php" desc:"--script-ext: the extensions of the server's scripts: PATH_INFO is split off after one"`
	HTTP          string        `default:"127.0.0.1:8000" desc:"--addr: the address to listen on, host:port"`
	ShutdownGrace time.Duration `split_words:"true" default:"5s" desc:"--shutdown-grace: on SIGTERM or SIGINT, how long requests in flight may take"`
	LogFormat     string        `split_words:"true" default:"text" desc:"--log-format: log lines on stderr as text or json"`
	HTTPServerConfig
}

const proxyHelp = `
Usage: cgirun proxy --to ADDR [--root DIR] [flags]

Serves HTTP and passes every request to the FastCGI server at ADDR
(php-fpm, "cgirun fcgi", a program built with cgirun.Run), as nginx's
fastcgi_pass would: to try a FastCGI application without a web server.
SCRIPT_NAME is the URL path up to a segment ending in a --script-ext
extension and PATH_INFO the rest, as nginx's "fastcgi_split_path_info
^(.+?\.php)(/.*)$" makes them (/index.php/a/b: /index.php and /a/b);
without such a segment, SCRIPT_NAME is the whole path (plus --index when it
ends in /) and there is no PATH_INFO. SCRIPT_FILENAME is --root plus
SCRIPT_NAME and DOCUMENT_ROOT is --root; the other variables are those of
RFC 3875, with HTTP_AUTHORIZATION and REDIRECT_STATUS=200 as nginx's
fastcgi_params send them, never HTTP_PROXY. A path holding a NUL byte (%00)
gets 400 and is not passed on.

When --root is given and is a directory on this machine too, the proxy
serves its files itself, as nginx's "try_files $uri @php" would: a path that names a regular
file with no execute bit, no segment ending in a --script-ext extension and
no dotfile gets that file (to GET and HEAD; Content-Type by its extension,
ranges, If-Modified-Since), checked on the opened file with its symbolic
links resolved inside --root; a directory's path gets its index.html unless
the directory holds --index (after a redirect that adds the final slash).
Everything else goes to the FastCGI server as before: scripts, executables,
dotfiles, links to them or out of --root, and paths that name no file. A
script's source is never served.

At start it asks the FastCGI server for FCGI_GET_VALUES, which runs no
script, and logs whether it answered within 5 seconds; if not, a warning
names ADDR and the error, and the proxy serves all the same (answering 502
until the server is up), since php-fpm may start after it. Responses are flushed to the client as they
come. Each request is logged on stderr, with what the FastCGI server writes
to its error stream; with --access-log-format combined, as a raw line of
Apache's combined format.

Connections are bounded as a cgirun.Run program's in HTTP mode, with the
same CGIRUN_* variables and defaults: one that sends no request within
--header-timeout, or stays idle between requests past --idle-timeout, is
closed; a header block over --max-header-bytes gets 431.
`

// proxyDialTimeout bounds connecting to the FastCGI server.
const proxyDialTimeout = 10 * time.Second

// proxyCheckTimeout bounds the check at start that the FastCGI server
// answers. A variable, for the tests.
var proxyCheckTimeout = 5 * time.Second

// Management record types of the start-up check (the FastCGI
// specification, section 4); probe.go has the request's.
const (
	fcgiGetValues       = 9
	fcgiGetValuesResult = 10
	fcgiUnknownType     = 11
)

func (c *cli) proxy(ctx context.Context, args []string) error {
	var cfg proxyConfig
	envErr := loadEnv(&cfg)
	fs := newFlagSet("proxy")
	fs.StringVar(&cfg.Fastcgi, "to", cfg.Fastcgi, "pass requests to the FastCGI server at `ADDR`: unix:/path, tcp:host:port or host:port")
	fs.StringVar(&cfg.Root, "root", cfg.Root, "send `DIR` as DOCUMENT_ROOT (a path on the FastCGI server's side), and serve its files that are no scripts")
	fs.StringVar(&cfg.Index, "index", cfg.Index, "add `FILE` to paths ending in /")
	fs.Var(&listFlag{list: &cfg.ScriptExt}, "script-ext", "split PATH_INFO off after a segment ending in `EXT`, such as .php (repeatable)")
	fs.StringVar(&cfg.HTTP, "addr", cfg.HTTP, "listen on `HOST:PORT`")
	fs.DurationVar(&cfg.ShutdownGrace, "shutdown-grace", cfg.ShutdownGrace, "on SIGTERM, let requests in flight take up to `DURATION`")
	fs.StringVar(&cfg.LogFormat, "log-format", cfg.LogFormat, "write log lines as `text` or json")
	cfg.HTTPServerConfig.flags(fs)
	pos, err := parse(fs, args, c.stdout, func(w io.Writer) { writeHelp(w, proxyHelp, fs, &proxyConfig{}) })
	if err != nil {
		return err
	}
	if envErr != nil {
		return envErr
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	if cfg.Fastcgi == "" {
		return usagef("no FastCGI server: give --to ADDR (or CGIRUN_FASTCGI)")
	}
	addr, network, address, err := fastcgiAddr(cfg.Fastcgi)
	if err != nil {
		return usagef("--to (CGIRUN_FASTCGI): %v", err)
	}
	if err := checkHTTPAddr("--addr (CGIRUN_HTTP)", cfg.HTTP); err != nil {
		return err
	}
	if err := checkLogFormat(cfg.LogFormat); err != nil {
		return err
	}
	if strings.Contains(cfg.Index, "/") {
		return usagef("--index (CGIRUN_INDEX) = %q: want a file name", cfg.Index)
	}
	cfg.ScriptExt = slices.DeleteFunc(cfg.ScriptExt, func(e string) bool { return e == "" })
	if len(cfg.ScriptExt) == 0 {
		return usagef("--script-ext (CGIRUN_SCRIPT_EXT) is empty: want the extension of the server's scripts, such as .php")
	}
	for _, e := range cfg.ScriptExt {
		if len(e) < 2 || e[0] != '.' || strings.ContainsAny(e, "/\x00") {
			return usagef("--script-ext (CGIRUN_SCRIPT_EXT) %q: want an extension with its dot, such as .php", e)
		}
	}
	if cfg.ShutdownGrace < 0 {
		return usagef("--shutdown-grace (CGIRUN_SHUTDOWN_GRACE) = %v: want 0 or more", cfg.ShutdownGrace)
	}
	if err := cfg.HTTPServerConfig.validate(); err != nil {
		return err
	}
	// Files are served only from a --root the operator named: the
	// current directory, the default, may hold anything.
	serveFiles := cfg.Root != ""
	if cfg.Root == "" {
		cfg.Root = "."
	}
	root, err := filepath.Abs(cfg.Root)
	if err != nil {
		return usagef("--root (CGIRUN_ROOT) %q: %v", cfg.Root, err)
	}

	log := serve.NewLogger(cfg.LogFormat, c.stderr)
	l, err := net.Listen("tcp", cfg.HTTP)
	if err != nil {
		return err
	}
	// A warning, not a refusal: under systemd, php-fpm may start after
	// the proxy.
	if err := checkFastCGI(ctx, network, address, proxyCheckTimeout); err != nil {
		log.Warn("cgirun: the FastCGI server does not answer; requests get 502 until it does", "to", addr, "err", err)
	} else {
		log.Info("cgirun: the FastCGI server answers", "to", addr)
	}
	var h http.Handler = newProxy(network, address, filepath.ToSlash(root), cfg.Index, cfg.ScriptExt, log)
	if real, err := filepath.EvalSymlinks(root); err == nil && serveFiles {
		// The files the FastCGI server would not run are served here,
		// when --root is this machine's directory too.
		h = &staticFiles{root: real, scripts: h, scriptExt: cfg.ScriptExt, scriptIndex: cfg.Index}
	}
	srv := cfg.HTTPServerConfig.server(logRequests(log, cfg.AccessLogFormat, h), log)
	log.Info("cgirun: serving HTTP", "addr", l.Addr().String(), "to", addr, "root", root)
	loop := &serve.Loop{Server: srv, Listeners: []net.Listener{l}, Log: log, Grace: cfg.ShutdownGrace}
	return loop.Run(ctx)
}

// checkFastCGI asks the FastCGI server at network, address for
// FCGI_MPXS_CONNS in one FCGI_GET_VALUES record, which runs no script,
// and returns nil once it answers with FCGI_GET_VALUES_RESULT (or
// FCGI_UNKNOWN_TYPE: a FastCGI server all the same). The whole exchange
// ends within timeout or when ctx ends, whatever the server does.
func checkFastCGI(ctx context.Context, network, address string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, address)
	if err != nil {
		return err
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	const name = "FCGI_MPXS_CONNS"
	pair := append(appendPairLen(appendPairLen(nil, len(name)), 0), name...)
	if _, err := conn.Write(appendRecordOf(nil, fcgiGetValues, 0, pair)); err != nil {
		return fmt.Errorf("sending FCGI_GET_VALUES: %w", err)
	}
	var h [fcgiHeaderLen]byte
	switch _, err := io.ReadFull(conn, h[:]); {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET):
		return errors.New("it closed the connection without answering FCGI_GET_VALUES")
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("no answer to FCGI_GET_VALUES within %v", timeout)
	case err != nil:
		return fmt.Errorf("reading the answer to FCGI_GET_VALUES: %w", err)
	case h[0] != fcgiVersion || h[1] != fcgiGetValuesResult && h[1] != fcgiUnknownType:
		return fmt.Errorf("not a FastCGI answer to FCGI_GET_VALUES: it began %q", h[:])
	}
	return nil
}

// newProxy returns the handler that passes requests to the FastCGI server
// at network, address through gofast, and logs what goes wrong on log.
// gofast's own parameter middlewares are not used: BasicParamsMap and
// MapHeader join Cookie fields with "," (which breaks cookie parsing), pass
// a Proxy header on as HTTP_PROXY (httpoxy) and let "X_Real_IP" pass for
// "X-Real-IP". The variables come from bridge.EnvironFromHTTP instead, as
// for "cgirun http".
func newProxy(network, address, root, index string, exts []string, log *slog.Logger) http.Handler {
	dial := func() (net.Conn, error) { return net.DialTimeout(network, address, proxyDialTimeout) }
	return &proxyHandler{
		session:   proxyParams(root, index, exts)(gofast.BasicSession),
		newClient: gofast.SimpleClientFactory(dial),
		log:       log,
	}
}

// proxyHandler is gofast's handler (gofast.NewHandler) with its log lines
// on a slog.Logger: gofast's writes them with the log package whatever
// SetLogger was given, in a format of its own.
type proxyHandler struct {
	session   gofast.SessionHandler
	newClient gofast.ClientFactory
	log       *slog.Logger
}

func (h *proxyHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// php-fpm reads SCRIPT_FILENAME up to a NUL: /index.php%00.txt would
	// run index.php. nginx, "cgirun http" and the runner answer 400 too.
	if strings.IndexByte(r.URL.Path, 0) >= 0 {
		http.Error(w, "bad request: NUL in the path", http.StatusBadRequest)
		return
	}
	// gofast sends the body while it relays the answer: the answer's
	// header must not make net/http discard the unread body.
	http.NewResponseController(w).EnableFullDuplex()
	c, err := h.newClient()
	if err != nil {
		h.log.Error("cgirun: cannot connect to the FastCGI server", "uri", r.RequestURI, "err", err)
		http.Error(w, "failed to connect to FastCGI application", http.StatusBadGateway)
		return
	}
	defer func() {
		if err := c.Close(); err != nil {
			h.log.Warn("cgirun: closing the FastCGI connection", "uri", r.RequestURI, "err", err)
		}
	}()
	resp, err := h.session(c, gofast.NewRequest(r))
	if err != nil {
		h.log.Error("cgirun: FastCGI request failed", "uri", r.RequestURI, "err", err)
		http.Error(w, "failed to process request", http.StatusInternalServerError)
		return
	}
	var stderr bytes.Buffer
	if err := resp.WriteTo(flushWriter{w}, &stderr); err != nil {
		h.log.Warn("cgirun: relaying the FastCGI response", "uri", r.RequestURI, "err", err)
	}
	if stderr.Len() > 0 {
		h.log.Warn("cgirun: FastCGI error stream", "uri", r.RequestURI, "stderr", stderr.String())
	}
}

// proxyParams returns the gofast middleware that sets a request's CGI
// variables.
func proxyParams(root, index string, exts []string) gofast.Middleware {
	return func(inner gofast.SessionHandler) gofast.SessionHandler {
		return func(client gofast.Client, req *gofast.Request) (*gofast.ResponsePipe, error) {
			r := req.Raw
			name, pathInfo := proxyScript(r.URL.Path, index, exts)
			env := bridge.EnvironFromHTTP(r, name, pathInfo)
			if auth := r.Header.Get("Authorization"); auth != "" {
				env.Set("HTTP_AUTHORIZATION", auth)
			}
			env.Set("SCRIPT_FILENAME", path.Join(root, name))
			env.Set("DOCUMENT_ROOT", root)
			env.Set("DOCUMENT_URI", name+pathInfo)
			env.Set("SERVER_SOFTWARE", "cgirun")
			env.Set("REDIRECT_STATUS", "200") // php-cgi's cgi.force_redirect
			for k, v := range env.All() {
				req.Params[k] = v
			}
			return inner(client, req)
		}
	}
}

// proxyScript returns the SCRIPT_NAME and PATH_INFO of a URL path, as
// nginx's fastcgi_split_path_info ^(.+?\.php)(/.*)$ and fastcgi_index
// make them: the path, cleaned, is split at the first "/" that follows a
// segment ending in one of exts (/index.php/a/b: /index.php and /a/b, a
// trailing slash kept); with no split, a path ending in / gets index
// added, and PATH_INFO is empty (it is then not sent). Unlike nginx's
// regexp, a newline in the path does not stop the split: PATH_INFO is
// never sent empty for a script's path, which CVE-2019-11043 needed.
func proxyScript(urlPath, index string, exts []string) (scriptName, pathInfo string) {
	clean := path.Clean("/" + urlPath)
	slash := strings.HasSuffix(urlPath, "/") && clean != "/"
	p := clean
	if slash {
		p += "/"
	}
	for i := 1; i < len(p); i++ {
		if p[i] != '/' {
			continue
		}
		for _, ext := range exts {
			if i > len(ext) && strings.HasSuffix(p[:i], ext) {
				return p[:i], p[i:]
			}
		}
	}
	if index != "" && strings.HasSuffix(urlPath, "/") {
		return path.Join(clean, index), ""
	}
	return clean, ""
}

// flushWriter flushes after every write of a response without
// Content-Length, so that a stream (Server-Sent Events, a long report)
// reaches the client as the FastCGI server sends it; gofast writes once
// per FastCGI record. A response of known length is left to net/http's
// buffering: flushed early, its client could hang up before gofast has
// read FCGI_END_REQUEST, and gofast would log the request as cancelled.
type flushWriter struct{ http.ResponseWriter }

func (w flushWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	if err == nil && w.Header().Get("Content-Length") == "" {
		err = http.NewResponseController(w.ResponseWriter).Flush()
	}
	return n, err
}

func (w flushWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
