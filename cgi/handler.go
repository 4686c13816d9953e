package cgi

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cgirun/cgirun/bridge"
	"github.com/cgirun/cgirun/internal/defaults"
)

// DefaultMaxLocalRedirects bounds the local redirects a Handler follows
// for one request.
const DefaultMaxLocalRedirects = 10

// Handler is an http.Handler that runs the CGI executables under a
// directory, as Apache's mod_cgi serves a cgi-bin: the counterpart of
// net/http/cgi.Handler, which runs one program.
//
// The request's URL path, decoded, is walked segment by segment from Root;
// the first segment that names a regular file is the script. SCRIPT_NAME
// is the path up to it and PATH_INFO the rest, a trailing slash kept, so
// /app.cgi/users/7 runs Root/app.cgi with PATH_INFO=/users/7. Nothing
// runs, and the client gets:
//
//   - 400 for a path that is not absolute or holds a NUL byte;
//   - 403 for a path with a ".." segment, plain or percent-encoded ("/..",
//     "/%2e%2e"), refused before anything is looked up, and for a path
//     through something that is neither a directory nor a regular file, or
//     that cannot be looked up (permissions);
//   - 404 for a path that names nothing, or a directory and no script;
//   - whatever the Executor answers for a script it refuses: 403 for one
//     that resolves, symlinks followed, outside its roots, or that is not
//     executable (see Executor).
//
// The script gets the CGI variables of RFC 3875 for the request (see
// bridge.EnvironFromHTTP: never Proxy, as HTTP_PROXY, nor Authorization
// unless PassAuth is set), with SERVER_SOFTWARE, DOCUMENT_ROOT,
// SCRIPT_FILENAME and, when there is a PATH_INFO, PATH_TRANSLATED. Its
// answer streams to the client; a script that fails before its header
// block gets 502, one that fails after it has its response cut short (the
// connection is closed, through http.ErrAbortHandler).
//
// The request body is the script's stdin until the script has answered.
// Then the Handler reads what the script left of it, so that the
// connection can carry the next request, and gives the client up to the
// Executor's KillGrace to send it.
//
// A script that answers with a local redirect (a Location path and no
// Status, RFC 3875 section 6.2.2) has that path served in its place, as a
// GET without a body, and so on up to MaxLocalRedirects times; past that,
// or for a Location that does not parse, the client gets 500.
//
// A Handler maps the whole URL path: it belongs at the root of a server,
// not under http.StripPrefix, which would leave the prefix out of
// SCRIPT_NAME.
type Handler struct {
	// Root is the directory holding the scripts. Required.
	Root string
	// Executor runs the scripts; nil means one with Roots {Root}, Logger
	// and the defaults. Its Roots must hold Root: a script that resolves
	// outside them is refused.
	Executor *Executor
	// PassAuth gives scripts the Authorization header as
	// HTTP_AUTHORIZATION. Off by default: credentials reach a script only
	// when the operator asks (RFC 3875 section 4.1.18).
	PassAuth bool
	// MaxLocalRedirects bounds the local redirects followed for one
	// request; 0 means DefaultMaxLocalRedirects.
	MaxLocalRedirects int
	// Logger receives the log lines; nil means slog.Default().
	Logger *slog.Logger

	initOnce sync.Once
	initErr  error
	root     string // Root, absolute and clean
	exec     *Executor
}

var _ http.Handler = (*Handler)(nil)

// Validate checks the settings, the Executor's too; ServeHTTP calls it
// once and answers 500 to every request while it fails.
func (h *Handler) Validate() error {
	h.initOnce.Do(func() { h.initErr = h.init() })
	return h.initErr
}

func (h *Handler) init() error {
	if h.Root == "" {
		return errors.New("cgi: Handler needs a Root directory")
	}
	root, err := filepath.Abs(h.Root)
	if err != nil {
		return fmt.Errorf("cgi: root %s: %w", h.Root, err)
	}
	if fi, err := os.Stat(root); err != nil || !fi.IsDir() {
		return fmt.Errorf("cgi: root %s is not a directory", h.Root)
	}
	h.root = root
	h.exec = h.Executor
	if h.exec == nil {
		h.exec = &Executor{Roots: []string{root}, Logger: h.Logger}
	}
	return h.exec.Validate()
}

func (h *Handler) logger() *slog.Logger {
	if h.Logger != nil {
		return h.Logger
	}
	return slog.Default()
}

// ServeHTTP runs the script that r's path names, and the scripts its
// local redirects name.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	log := h.logger()
	if err := h.Validate(); err != nil {
		log.Error("cgi: handler misconfigured", "err", err)
		http.Error(w, "500 Internal Server Error", http.StatusInternalServerError)
		return
	}
	// The script's header block may go out before the script reads its
	// stdin; without this, net/http would then discard the unread body.
	http.NewResponseController(w).EnableFullDuplex()
	limit := defaults.Or(h.MaxLocalRedirects, DefaultMaxLocalRedirects)
	uri := r.RequestURI
	for n := 0; ; n++ {
		loc := h.serveOnce(w, r, log)
		if loc == "" {
			return
		}
		if n == limit {
			log.Error("cgi: too many local redirects", "uri", uri, "max", limit)
			http.Error(w, "500 Internal Server Error: too many local redirects", http.StatusInternalServerError)
			return
		}
		next, err := localRedirect(r, loc)
		if err != nil {
			log.Error("cgi: bad local redirect", "uri", r.RequestURI, "location", loc, "err", err)
			http.Error(w, "500 Internal Server Error", http.StatusInternalServerError)
			return
		}
		r = next
	}
}

// serveOnce answers r with the script its path names. It returns the path
// of a local redirect, with nothing sent, or "" when it answered.
func (h *Handler) serveOnce(w http.ResponseWriter, r *http.Request, log *slog.Logger) string {
	scriptName, pathInfo, file, status := findScript(h.root, r.URL.Path)
	if status != 0 {
		if status == http.StatusForbidden {
			log.Warn("cgi: path refused", "path", r.URL.Path)
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
	if auth := r.Header.Get("Authorization"); h.PassAuth && auth != "" {
		env.Set("HTTP_AUTHORIZATION", auth)
	}
	// A request without a body leaves Body nil, a body known to be empty:
	// the script gets /dev/null.
	req := &bridge.Request{Env: env, IsScript: true}
	if r.ContentLength != 0 {
		body := &requestBody{r: r.Body}
		defer body.stop(http.NewResponseController(w), defaults.Or(h.exec.KillGrace, DefaultKillGrace))
		req.Body = body
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
		log.Error("cgi: no answer from the script", "script", file, "err", err)
		http.Error(w, "502 Bad Gateway", http.StatusBadGateway)
		return ""
	}
	// The status went out: the client must not take what it got for the
	// whole response. net/http closes the connection quietly.
	log.Warn("cgi: response cut short", "script", file, "err", err)
	panic(http.ErrAbortHandler)
}

// errRequestOver is what the script's stdin copier reads once the handler
// is done with the request.
var errRequestOver = errors.New("cgi: the request is over")

// requestBody is the script's stdin, an HTTP request's body, until stop.
// net/http forbids reading the body once ServeHTTP returns, and the
// executor's stdin copier may still be reading it after the script's
// answer, waiting for bytes the script never wanted.
type requestBody struct {
	mu   sync.Mutex // held by a Read
	r    io.ReadCloser
	done bool
}

func (b *requestBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return 0, errRequestOver
	}
	return b.r.Read(p)
}

// stop ends the reads of the body, then closes it, which reads what the
// script left of it, while the handler still runs: after
// EnableFullDuplex, net/http would do that once the handler returned, and
// then meet its own next read of the connection and panic
// (golang/go#68560). The client gets grace to send that rest, and a read
// in flight the same: a read deadline cuts what waits longer. The
// deadline is lifted after: net/http's own read, which watches for the
// client going away, must not end the request.
func (b *requestBody) stop(rc *http.ResponseController, grace time.Duration) {
	// Without deadlines (ErrNotSupported), the wait is the client's.
	rc.SetReadDeadline(time.Now().Add(grace))
	b.mu.Lock()
	b.done = true
	b.mu.Unlock()
	b.r.Close()
	rc.SetReadDeadline(time.Time{})
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
