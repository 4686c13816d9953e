package main

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/cgirun/cgirun/bridge"
	"github.com/cgirun/cgirun/cgi"
	"github.com/cgirun/cgirun/internal/serve"
)

// httpConfig is the configuration of "cgirun http".
type httpConfig struct {
	Root          string        `desc:"--root: the directory of the scripts (required)"`
	HTTP          string        `default:"127.0.0.1:8000" desc:"--addr: the address to listen on, host:port"`
	PassAuth      bool          `split_words:"true" desc:"--pass-auth: give scripts the Authorization header as HTTP_AUTHORIZATION"`
	ShutdownGrace time.Duration `split_words:"true" default:"5s" desc:"--shutdown-grace: on SIGTERM or SIGINT, how long requests in flight may take"`
	LogFormat     string        `split_words:"true" default:"text" desc:"--log-format: log lines on stderr as text or json"`
	ScriptConfig
}

const httpHelp = `
Usage: cgirun http --root DIR [flags]

Serves the CGI executables in DIR over plain HTTP, for development: Python's
"http.server --cgi" for any language. As Apache's mod_cgi does, the URL path
is walked segment by segment under DIR; the first segment that names a file
is the script: SCRIPT_NAME is the path up to it and PATH_INFO the rest, so
/app.cgi/users/7 runs DIR/app.cgi with PATH_INFO=/users/7. A path that ends
in a directory, or names nothing, gets 404; a path with ".." segments, plain
or encoded, gets 403 and nothing runs. A script that answers with a local
redirect (a Location path and no Status, RFC 3875 section 6.2.2) has that
path served in its place as a GET, up to 10 times.

Scripts get the CGI variables of RFC 3875 (without Authorization unless
--pass-auth, never HTTP_PROXY) plus only the --pass-env variables of
cgirun's own environment. Each request is logged on stderr.
`

func (c *cli) http(ctx context.Context, args []string) error {
	var cfg httpConfig
	envErr := loadEnv(&cfg)
	fs := newFlagSet("http")
	fs.StringVar(&cfg.Root, "root", cfg.Root, "serve the scripts in `DIR`")
	fs.StringVar(&cfg.HTTP, "addr", cfg.HTTP, "listen on `HOST:PORT`")
	fs.BoolVar(&cfg.PassAuth, "pass-auth", cfg.PassAuth, "pass the Authorization header to scripts")
	fs.DurationVar(&cfg.ShutdownGrace, "shutdown-grace", cfg.ShutdownGrace, "on SIGTERM, let requests in flight take up to `DURATION`")
	fs.StringVar(&cfg.LogFormat, "log-format", cfg.LogFormat, "write log lines as `text` or json")
	cfg.ScriptConfig.flags(fs)
	pos, err := parse(fs, args, c.stdout, func(w io.Writer) { writeHelp(w, httpHelp, fs, &httpConfig{}) })
	if err != nil {
		return err
	}
	if envErr != nil {
		return envErr
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	root, err := absDir("--root (CGIRUN_ROOT)", cfg.Root)
	if err != nil {
		return err
	}

	log := serve.NewLogger(cfg.LogFormat, c.stderr)
	exec, err := cfg.executor([]string{root}, log)
	if err != nil {
		return err
	}
	if err := exec.Validate(); err != nil {
		return &usageError{err}
	}
	l, err := net.Listen("tcp", cfg.HTTP)
	if err != nil {
		return err
	}
	h := &cgiHandler{root: root, exec: exec, passAuth: cfg.PassAuth, log: log}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	log.Info("cgirun: serving HTTP", "addr", l.Addr().String(), "root", root)
	loop := &serve.Loop{Server: srv, Listeners: []net.Listener{l}, Log: log, Grace: cfg.ShutdownGrace}
	return loop.Run(ctx)
}

func (cfg *httpConfig) validate() error {
	if cfg.Root == "" {
		return usagef("no root: give --root DIR (or CGIRUN_ROOT), the directory holding the scripts")
	}
	if err := checkHTTPAddr("--addr (CGIRUN_HTTP)", cfg.HTTP); err != nil {
		return err
	}
	if err := checkLogFormat(cfg.LogFormat); err != nil {
		return err
	}
	if cfg.ShutdownGrace < 0 {
		return usagef("--shutdown-grace (CGIRUN_SHUTDOWN_GRACE) = %v: want 0 or more", cfg.ShutdownGrace)
	}
	return cfg.ScriptConfig.validate()
}

// maxLocalRedirects bounds the local redirects followed for one request;
// past it the client gets 500.
const maxLocalRedirects = 10

// cgiHandler runs the CGI script that a request's path names under root.
type cgiHandler struct {
	root     string // absolute
	exec     *cgi.Executor
	passAuth bool
	log      *slog.Logger
}

func (h *cgiHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	// The script's header block may go out before the script reads its
	// stdin; without this, net/http would then discard the unread body.
	http.NewResponseController(w).EnableFullDuplex()
	sw := &statusWriter{ResponseWriter: w}
	uri := r.RequestURI
	defer func() {
		h.log.Info("cgirun: request", "method", r.Method, "uri", uri, "status", sw.status, "bytes", sw.n, "remote", r.RemoteAddr, "duration", time.Since(start))
	}()
	for n := 0; ; n++ {
		loc := h.serveOnce(sw, r)
		if loc == "" {
			return
		}
		if n == maxLocalRedirects {
			h.log.Error("cgirun: too many local redirects", "uri", uri, "max", maxLocalRedirects)
			http.Error(sw, "500 Internal Server Error: too many local redirects", http.StatusInternalServerError)
			return
		}
		next, err := localRedirect(r, loc)
		if err != nil {
			h.log.Error("cgirun: bad local redirect", "uri", r.RequestURI, "location", loc, "err", err)
			http.Error(sw, "500 Internal Server Error", http.StatusInternalServerError)
			return
		}
		r = next
	}
}

// serveOnce answers r with the script its path names. It returns the path
// of a local redirect, with nothing sent, or "" when it answered.
func (h *cgiHandler) serveOnce(w http.ResponseWriter, r *http.Request) string {
	scriptName, pathInfo, file, status := findScript(h.root, r.URL.Path)
	if status != 0 {
		if status == http.StatusForbidden {
			h.log.Warn("cgirun: path refused", "path", r.URL.Path)
		}
		http.Error(w, http.StatusText(status), status)
		return ""
	}
	env := bridge.EnvironFromHTTP(r, scriptName, pathInfo)
	env.Set("SERVER_SOFTWARE", "cgirun")
	env.Set("DOCUMENT_ROOT", h.root)
	env.Set("SCRIPT_FILENAME", file)
	if pathInfo != "" {
		env.Set("PATH_TRANSLATED", filepath.Join(h.root, filepath.FromSlash(pathInfo)))
	}
	if auth := r.Header.Get("Authorization"); h.passAuth && auth != "" {
		env.Set("HTTP_AUTHORIZATION", auth)
	}
	req := &bridge.Request{Env: env, IsScript: true}
	if r.ContentLength != 0 {
		req.Body = r.Body
	}
	out := bridge.NewHTTPOutput(w, 0)
	err := h.exec.Respond(r.Context(), req, out)
	if resp := out.Response(); resp != nil && resp.LocalRedirect {
		return resp.Header.Get("Location")
	}
	if err == nil {
		err = out.Close()
	}
	if err == nil {
		return ""
	}
	if !out.Committed() {
		h.log.Error("cgirun: no answer from the script", "script", file, "err", err)
		http.Error(w, "502 Bad Gateway", http.StatusBadGateway)
		return ""
	}
	// The status went out: the client must not take what it got for the
	// whole response. net/http closes the connection quietly.
	h.log.Warn("cgirun: response cut short", "script", file, "err", err)
	panic(http.ErrAbortHandler)
}

// findScript maps a decoded URL path to the script it names under root, as
// Apache's mod_cgi does: the segments are walked from the root, and the
// first one that names a regular file is the script. It returns the
// script's URL path (SCRIPT_NAME), the rest (PATH_INFO, keeping a
// trailing slash), its file name, and a status: 0 when found, else 400 for
// a malformed path, 403 for a ".." segment or a path through something
// that is neither a directory nor a file, 404 for nothing there or a
// directory.
//
// A ".." segment is refused before anything is looked up, so that neither
// "/../x" nor "/%2e%2e/x" (decoded by then) can leave root; the cleaned
// path is joined to root and checked to stay inside it as well. Symbolic
// links are followed here; the Executor then refuses a script that
// resolves outside its roots.
func findScript(root, urlPath string) (scriptName, pathInfo, file string, status int) {
	if !strings.HasPrefix(urlPath, "/") || strings.IndexByte(urlPath, 0) >= 0 {
		return "", "", "", http.StatusBadRequest
	}
	for _, seg := range strings.Split(urlPath, "/") {
		if seg == ".." {
			return "", "", "", http.StatusForbidden
		}
	}
	clean := path.Clean(urlPath)
	if clean == "/" {
		return "", "", "", http.StatusNotFound
	}
	segs := strings.Split(clean[1:], "/")
	cur := root
	for i, seg := range segs {
		cur = filepath.Join(cur, seg)
		if !strings.HasPrefix(cur, strings.TrimSuffix(root, "/")+"/") {
			return "", "", "", http.StatusForbidden
		}
		fi, err := os.Stat(cur)
		switch {
		case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
			return "", "", "", http.StatusNotFound
		case err != nil:
			return "", "", "", http.StatusForbidden
		case fi.IsDir():
			continue
		case !fi.Mode().IsRegular():
			return "", "", "", http.StatusForbidden
		}
		scriptName = "/" + strings.Join(segs[:i+1], "/")
		if rest := segs[i+1:]; len(rest) > 0 {
			pathInfo = "/" + strings.Join(rest, "/")
		}
		if strings.HasSuffix(urlPath, "/") {
			pathInfo += "/"
		}
		return scriptName, pathInfo, cur, 0
	}
	return "", "", "", http.StatusNotFound // a directory, and no script
}

// localRedirect returns the GET request for loc, the path of a local
// redirect response, in place of r (RFC 3875 section 6.2.2).
func localRedirect(r *http.Request, loc string) (*http.Request, error) {
	loc, _, _ = strings.Cut(loc, "#")
	u, err := url.ParseRequestURI(loc)
	if err != nil {
		return nil, err
	}
	next := r.Clone(r.Context())
	next.Method = http.MethodGet
	next.URL = u
	next.RequestURI = loc
	next.Body = http.NoBody
	next.ContentLength = 0
	next.TransferEncoding = nil
	next.Header.Del("Content-Type")
	next.Header.Del("Content-Length")
	return next, nil
}

// statusWriter notes the status and the body size for the access log.
// Unwrap lets http.ResponseController reach Flush.
type statusWriter struct {
	http.ResponseWriter
	status int
	n      int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.n += int64(n)
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
