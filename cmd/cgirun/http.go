package main

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

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
	HTTPServerConfig
	ScriptConfig
}

// HTTPServerConfig holds the bounds of the HTTP server of "cgirun http" and
// "cgirun proxy": the CGIRUN_* variables, defaults and meaning of
// cgirun.Config's in HTTP mode. It is exported so that envconfig reads it
// embedded.
type HTTPServerConfig struct {
	IdleTimeout     time.Duration `split_words:"true" default:"2m" desc:"--idle-timeout: how long a kept-alive connection with no request stays open"`
	HeaderTimeout   time.Duration `split_words:"true" default:"10s" desc:"--header-timeout: bound on reading a request's header block"`
	ReadTimeout     time.Duration `split_words:"true" default:"60s" desc:"--read-timeout: bound on reading a whole request, body included"`
	WriteTimeout    time.Duration `split_words:"true" desc:"--write-timeout: bound on writing a whole response; 0: none, for streams"`
	MaxHeaderBytes  int           `split_words:"true" default:"65536" desc:"--max-header-bytes: bound on a request's header block (431 past it)"`
	AccessLogFormat string        `split_words:"true" default:"slog" desc:"--access-log-format: each request's log line: slog (key=value, or JSON with --log-format json) or combined (raw lines of Apache's combined format)"`
}

func (s *HTTPServerConfig) flags(fs *flag.FlagSet) {
	fs.DurationVar(&s.IdleTimeout, "idle-timeout", s.IdleTimeout, "close a kept-alive connection idle for `DURATION`; 0: the --read-timeout")
	fs.DurationVar(&s.HeaderTimeout, "header-timeout", s.HeaderTimeout, "close a connection that takes longer than `DURATION` to send a request's header block; 0: the --read-timeout")
	fs.DurationVar(&s.ReadTimeout, "read-timeout", s.ReadTimeout, "give up a request whose header block and body take longer than `DURATION` to arrive; 0: no bound")
	fs.DurationVar(&s.WriteTimeout, "write-timeout", s.WriteTimeout, "cut a response that takes longer than `DURATION` to write, streams included; 0: no bound")
	fs.IntVar(&s.MaxHeaderBytes, "max-header-bytes", s.MaxHeaderBytes, "answer 431 to a request whose header block is over `BYTES`; 0: net/http's 1 MB")
	fs.StringVar(&s.AccessLogFormat, "access-log-format", s.AccessLogFormat, "log each request as `slog` (a line of --log-format) or combined (a raw line of Apache's combined format, which goaccess reads), as a cgirun.Run program's CGIRUN_ACCESS_LOG_FORMAT")
}

func (s *HTTPServerConfig) validate() error {
	durations := []struct {
		what  string
		value time.Duration
	}{
		{"--idle-timeout (CGIRUN_IDLE_TIMEOUT)", s.IdleTimeout},
		{"--header-timeout (CGIRUN_HEADER_TIMEOUT)", s.HeaderTimeout},
		{"--read-timeout (CGIRUN_READ_TIMEOUT)", s.ReadTimeout},
		{"--write-timeout (CGIRUN_WRITE_TIMEOUT)", s.WriteTimeout},
	}
	for _, d := range durations {
		if d.value < 0 {
			return usagef("%s = %v: want 0 or more, such as 30s", d.what, d.value)
		}
	}
	if s.AccessLogFormat != "slog" && s.AccessLogFormat != "combined" {
		return usagef("--access-log-format (CGIRUN_ACCESS_LOG_FORMAT) = %q: want slog or combined", s.AccessLogFormat)
	}
	if s.MaxHeaderBytes < 0 {
		return usagef("--max-header-bytes (CGIRUN_MAX_HEADER_BYTES) = %d: want 0 or more, such as 65536", s.MaxHeaderBytes)
	}
	return nil
}

// server returns the HTTP server of h with these bounds, its errors
// logged on log.
func (s *HTTPServerConfig) server(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: s.HeaderTimeout,
		ReadTimeout:       s.ReadTimeout,
		WriteTimeout:      s.WriteTimeout,
		IdleTimeout:       s.IdleTimeout,
		MaxHeaderBytes:    s.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

const httpHelp = `
Usage: cgirun http --root DIR [flags]

Serves the CGI executables in DIR over plain HTTP, for development, and
the other files of DIR as they are: Python's "http.server --cgi" for any
language. As Apache's mod_cgi does, the URL path is walked segment by
segment under DIR; the first segment that names a file is the script:
SCRIPT_NAME is the path up to it and PATH_INFO the rest, so
/app.cgi/users/7 runs DIR/app.cgi with PATH_INFO=/users/7. A path that ends
in a directory without index.html, or names nothing, gets 404; a path with
".." segments, plain or encoded, gets 403 and nothing runs.

A path that names a regular file with no execute bit gets that file (to GET
and HEAD; Content-Type by its extension, ranges, If-Modified-Since), and one
that names a directory holding such an index.html gets it (after a redirect
that adds the final slash); no directory is listed. A file with an execute
bit is a script: it runs, and its source is never served. Never served
either: dotfiles and what is under a dot directory (.git, .env), a file
that resolves outside DIR (symbolic links followed, checked on the opened
file), and with --user a file that user cannot read. Those paths are
answered as before: a script runs, anything else gets 403 or 404, as does
a file followed by more path (/notes.txt/x). A script that answers with a local
redirect (a Location path and no Status, RFC 3875 section 6.2.2) has that
path served in its place as a GET, up to 10 times.

Scripts get the CGI variables of RFC 3875 (without Authorization unless
--pass-auth, never HTTP_PROXY) plus only the --pass-env variables of
cgirun's own environment. Each request is logged on stderr. As with
"cgirun fcgi", a request ends with its script (at the latest --kill-grace
after its exit), and on Linux processes that scripts leave behind are
killed once their script is done with.

With --status-path PATH, the URL path PATH is answered by cgirun itself,
never by a script or a file of DIR: the status page of "cgirun fcgi
--help", as text, JSON (?json) or OpenMetrics (?openmetrics).

Any host that reaches --addr runs the scripts: beyond loopback (such as
--addr 0.0.0.0:8000), a warning naming the address is logged at start.

Connections are bounded as a cgirun.Run program's in HTTP mode, with the
same CGIRUN_* variables and defaults: one that sends no request within
--header-timeout, or stays idle between requests past --idle-timeout, is
closed; a header block over --max-header-bytes gets 431.

With --access-log-format combined, each request's log line is a raw line
of Apache's combined format, which goaccess reads.
`

func (c *cli) http(ctx context.Context, args []string) error {
	if err := closeInherited(); err != nil {
		return err
	}
	var cfg httpConfig
	envErr := loadEnv(&cfg)
	fs := newFlagSet("http")
	fs.StringVar(&cfg.Root, "root", cfg.Root, "serve the scripts in `DIR`")
	fs.StringVar(&cfg.HTTP, "addr", cfg.HTTP, "listen on `HOST:PORT`")
	fs.BoolVar(&cfg.PassAuth, "pass-auth", cfg.PassAuth, "pass the Authorization header to scripts")
	fs.DurationVar(&cfg.ShutdownGrace, "shutdown-grace", cfg.ShutdownGrace, "on SIGTERM, let requests in flight take up to `DURATION`")
	fs.StringVar(&cfg.LogFormat, "log-format", cfg.LogFormat, "write log lines as `text` or json")
	cfg.HTTPServerConfig.flags(fs)
	cfg.ScriptConfig.flags(fs)
	pos, err := parse(fs, args, c.stdout, func(w io.Writer) { writeHelp(w, httpHelp, fs, &httpConfig{}) })
	if err != nil {
		return err
	}
	if envErr != nil {
		return envErr
	}
	c.warnUnknownSettings("http", &httpConfig{}, cfg.PassEnv)
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
	ch := &cgi.Handler{Root: root, Executor: exec, PassAuth: cfg.PassAuth, Logger: log}
	if err := ch.Validate(); err != nil {
		return &usageError{err}
	}
	l, err := net.Listen("tcp", cfg.HTTP)
	if err != nil {
		return err
	}
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return usagef("--root (CGIRUN_ROOT) %q: %v", cfg.Root, err)
	}
	files := &staticFiles{root: realRoot, cred: exec.Credential, scripts: ch}
	var h http.Handler = files
	if cfg.StatusPath != "" {
		h = newRunnerStatus(cfg.StatusPath, "http", exec, log).handler(files)
	}
	srv := cfg.HTTPServerConfig.server(logRequests(log, cfg.AccessLogFormat, h), log)
	serve.WarnExposedHTTP(log, l, "--addr")
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
	if err := cfg.HTTPServerConfig.validate(); err != nil {
		return err
	}
	return cfg.ScriptConfig.validate()
}

// logRequests returns h that logs each request on log, for "cgirun http"
// and "cgirun proxy": a line of log ("cgirun: request") with format
// "slog", a raw line of Apache's combined format with "combined" (see
// serve.AppendCombined).
func logRequests(log *slog.Logger, format string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := serve.NewStatusRecorder(w)
		uri := r.RequestURI
		returned := false
		defer func() {
			var p any
			if !returned {
				// cgi.Handler panics with http.ErrAbortHandler once a
				// script's response, started, cannot end (a script
				// timed out, or failed): net/http closes the
				// connection. What went out reaches the client first,
				// and the log says cut.
				p = recover()
				rec.Cut = true
				if p == http.ErrAbortHandler {
					http.NewResponseController(w).Flush()
				}
			}
			writeAccess(log, format, r, uri, rec, start)
			if p != nil {
				panic(p)
			}
		}()
		h.ServeHTTP(rec, r)
		returned = true
	})
}

// writeAccess writes the access log line of request r, whose URI as
// received was uri, answered as rec says: Apache's combined format, or
// one slog line. "cgirun http", "cgirun proxy" and "cgirun fcgi" write the
// same lines.
func writeAccess(log *slog.Logger, format string, r *http.Request, uri string, rec *serve.StatusRecorder, start time.Time) {
	if format == "combined" {
		serve.WriteLine(log, serve.AppendCombined(make([]byte, 0, 256), r, rec, serve.ClientIP(r.RemoteAddr), start))
		return
	}
	args := []any{"method", r.Method, "uri", uri, "status", rec.Status, "bytes", rec.Bytes, "remote", r.RemoteAddr, "duration", time.Since(start)}
	if rec.Cut {
		args = append(args, "cut", true)
	}
	log.Info("cgirun: request", args...)
}

// staticFiles answers the requests whose path names a file to serve as
// it is under root, and passes every other request to scripts: a
// regular file with no execute bit, or a directory holding one named
// index.html. What it opens is checked after the open, on the open
// descriptor, so that no symbolic link swapped in meanwhile makes it
// serve something else: the file must resolve inside root, have no
// segment under root that starts with a dot, and, with cred set (--user),
// be readable by that user by its permission bits. A file with an execute
// bit is a script, never served as source; a dotfile (.git, .env,
// .htaccess) is never served either, nor a path with a segment ending in
// one of scriptExt, nor a file that resolves to such a name. Those go to
// scripts as before: a script runs, anything else is refused there.
type staticFiles struct {
	root    string // absolute, symbolic links resolved
	cred    *syscall.Credential
	scripts http.Handler
	// scriptExt are the extensions of the scripts of a FastCGI server
	// ("cgirun proxy"'s --script-ext): their source is never served.
	scriptExt []string
	// scriptIndex, when set, is the script that a directory's path
	// names when the directory holds it ("cgirun proxy"'s --index): the
	// path then goes to scripts, before any index.html.
	scriptIndex string
}

// staticIndex is the file a directory's path serves.
const staticIndex = "index.html"

func (s *staticFiles) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	if !strings.HasPrefix(p, "/") || strings.IndexByte(p, 0) >= 0 || hasDotSegment(p) || s.scriptPath(p) {
		s.scripts.ServeHTTP(w, r) // its 400 or 403, or a script
		return
	}
	name := filepath.Join(s.root, filepath.FromSlash(path.Clean(p)))
	f, fi := s.open(name)
	if f != nil && fi.IsDir() {
		f.Close()
		f, fi = nil, nil
		if _, err := os.Lstat(filepath.Join(name, s.scriptIndex)); s.scriptIndex == "" || err != nil {
			f, fi = s.open(filepath.Join(name, staticIndex))
		}
		if f != nil && !strings.HasSuffix(p, "/") {
			// Relative links in the index resolve from the directory.
			f.Close()
			u := *r.URL
			u.Path += "/"
			http.Redirect(w, r, u.RequestURI(), http.StatusMovedPermanently)
			return
		}
	}
	if f == nil || !fi.Mode().IsRegular() {
		if f != nil {
			f.Close()
		}
		s.scripts.ServeHTTP(w, r)
		return
	}
	defer f.Close()
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "405 Method Not Allowed: a static file", http.StatusMethodNotAllowed)
		return
	}
	http.ServeContent(w, r, fi.Name(), fi.ModTime(), f)
}

// open opens name for serving and returns it with its FileInfo, or nil
// when it is no file to serve: missing, neither a regular file with no
// execute bit nor a directory, outside the root or a dotfile once
// resolved, or unreadable by s.cred.
func (s *staticFiles) open(name string) (*os.File, os.FileInfo) {
	// O_NONBLOCK: opening a FIFO must not wait for a writer.
	f, err := os.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil
	}
	fi, err := f.Stat()
	ok := err == nil && (fi.IsDir() || fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 == 0)
	if ok {
		// Where the descriptor really leads, whatever the path did.
		real, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(f.Fd())))
		rel, rerr := filepath.Rel(s.root, real)
		// A path outside the root is "../...": a dot segment too.
		ok = err == nil && rerr == nil && filepath.IsAbs(real) && (rel == "." || !hasDotSegment("/"+filepath.ToSlash(rel)) && !s.scriptPath(real))
	}
	if ok && s.cred != nil && s.cred.Uid != 0 {
		st, isStat := fi.Sys().(*syscall.Stat_t)
		need := uint32(0o4)
		if fi.IsDir() {
			need = 0o1
		}
		ok = isStat && permBits(st, s.cred)&need == need
	}
	if !ok {
		f.Close()
		return nil, nil
	}
	return f, fi
}

// scriptPath reports whether a segment of the slash-separated path p ends
// in one of s.scriptExt.
func (s *staticFiles) scriptPath(p string) bool {
	for seg := range strings.SplitSeq(p, "/") {
		for _, ext := range s.scriptExt {
			if strings.HasSuffix(seg, ext) {
				return true
			}
		}
	}
	return false
}

// hasDotSegment reports whether a slash-separated path has a segment that
// starts with a dot: ".", "..", or a dotfile's name.
func hasDotSegment(p string) bool {
	return strings.HasPrefix(p, ".") || strings.Contains(p, "/.")
}
