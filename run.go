// Package cgirun runs one http.Handler through whatever gateway the process
// was started behind: Run detects a CGI request, a FastCGI socket on fd 0,
// systemd socket activation, a FastCGI address or, failing all of them,
// serves plain HTTP. The same binary works in Apache's cgi-bin, behind
// nginx's fastcgi_pass, under mod_fcgid and on its own.
//
// Settings come from CGIRUN_* environment variables (see Config); bare
// unprefixed names are never read, because in CGI mode the environment holds
// HTTP_* values that any client controls.
package cgirun

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kelseyhightower/envconfig"

	"github.com/cgirun/cgirun/bridge"
	"github.com/cgirun/cgirun/cgi"
	"github.com/cgirun/cgirun/fastcgi"
)

// Config is every setting of Run, read from CGIRUN_* environment variables
// (CGIRUN_FASTCGI, CGIRUN_SHUTDOWN_GRACE, ...). The names follow
// eventlet.wsgi.server's and php-fpm's settings where they have one.
// CGIRUN_SHUTDOWN_GRACE also bounds the drain of a FastCGI server that
// SIGHUP replaced with a new process (see Run); CGIRUN_INHERIT_FDS and
// CGIRUN_READY_FD are no settings but that upgrade's hand-over (see
// Upgrade).
type Config struct {
	CGI              bool          `desc:"serve one CGI request even without GATEWAY_INTERFACE"`
	Fastcgi          string        `desc:"serve FastCGI on this address: unix:/path, tcp:host:port or host:port"`
	HTTP             string        `default:"127.0.0.1:8080" desc:"plain HTTP address when no gateway is detected"`
	TLSCert          string        `split_words:"true" desc:"certificate file: serve HTTPS instead of HTTP (with TLS_KEY)"`
	TLSKey           string        `split_words:"true" desc:"private key file for TLS_CERT"`
	SocketMode       string        `split_words:"true" default:"0660" desc:"mode of a unix socket created for FASTCGI (octal)"`
	ShutdownGrace    time.Duration `split_words:"true" default:"30s" desc:"on SIGTERM or SIGINT, how long in-flight requests may take"`
	Debug            bool          `desc:"show panics and their stacks to clients (never in production)"`
	LogFormat        string        `split_words:"true" default:"text" desc:"log format on stderr: text or json"`
	AccessLog        bool          `split_words:"true" desc:"log every request"`
	AccessLogFormat  string        `split_words:"true" default:"slog" desc:"access log lines: slog (key=value or JSON) or combined (Apache's)"`
	LogXForwardedFor bool          `split_words:"true" desc:"put X-Forwarded-For before the client address in the access log"`
	SlowlogTimeout   time.Duration `split_words:"true" desc:"log requests that take longer than this; 0: off"`
	StatusPath       string        `split_words:"true" desc:"path of the status page (text, or JSON with ?json); empty: off"`
	PingPath         string        `split_words:"true" desc:"path that answers pong; empty: off"`
	MaxConns         int           `split_words:"true" desc:"most open connections; 0: no bound"`
	MaxRequests      int           `split_words:"true" desc:"most requests answered at once; 0: no bound"`
	MaxHeaderBytes   int           `split_words:"true" default:"65536" desc:"bound on a request's header block (431 past it)"`
	MaxURLLength     int           `split_words:"true" default:"8192" desc:"bound on a request URI (414 past it); 0: none"`
	Keepalive        bool          `default:"true" desc:"HTTP: keep client connections open between requests"`
	IdleTimeout      time.Duration `split_words:"true" default:"2m" desc:"how long a kept-alive connection with no request stays open"`
	HeaderTimeout    time.Duration `split_words:"true" default:"10s" desc:"bound on reading a request's header block"`
	ReadTimeout      time.Duration `split_words:"true" default:"60s" desc:"HTTP: bound on reading a whole request; FastCGI: on each body record"`
	WriteTimeout     time.Duration `split_words:"true" desc:"HTTP: bound on writing a whole response (0: none, for streams); FastCGI: on each write (0: 60s)"`
	RequestTimeout   time.Duration `split_words:"true" desc:"bound on one request: its context ends, and 503 if nothing was sent yet; 0: none"`
}

// LoadConfig reads Config from the environment and checks it. The error
// names the variable and what it accepts.
func LoadConfig() (Config, error) {
	var c Config
	if err := envconfig.Process("CGIRUN", &c); err != nil {
		return c, fmt.Errorf("cgirun: %w", err)
	}
	return c, c.validate()
}

// defaultConfig is what LoadConfig returns when no CGIRUN_* variable is
// set: the default tags of Config, which TestDefaultConfig checks it
// against.
func defaultConfig() Config {
	return Config{
		HTTP:            "127.0.0.1:8080",
		SocketMode:      "0660",
		ShutdownGrace:   30 * time.Second,
		LogFormat:       "text",
		AccessLogFormat: "slog",
		MaxHeaderBytes:  65536,
		MaxURLLength:    8192,
		Keepalive:       true,
		IdleTimeout:     2 * time.Minute,
		HeaderTimeout:   10 * time.Second,
		ReadTimeout:     60 * time.Second,
	}
}

// hasSettings reports whether environ (os.Environ's form) sets any CGIRUN_*
// variable that LoadConfig would read differently from the defaults. A
// CGIRUN_CGI of "true" or "1" does not count: Run has read it already.
func hasSettings(environ []string) bool {
	for _, kv := range environ {
		if strings.HasPrefix(kv, "CGIRUN_") && kv != "CGIRUN_CGI=true" && kv != "CGIRUN_CGI=1" {
			return true
		}
	}
	return false
}

func (c *Config) validate() error {
	if _, err := c.socketMode(); err != nil {
		return err
	}
	if c.Fastcgi != "" {
		if _, _, err := fastcgi.ParseAddr(c.Fastcgi); err != nil {
			return fmt.Errorf("cgirun: CGIRUN_FASTCGI: %w", err)
		}
	}
	choices := []struct{ name, value, allowed string }{
		{"CGIRUN_LOG_FORMAT", c.LogFormat, "text json"},
		{"CGIRUN_ACCESS_LOG_FORMAT", c.AccessLogFormat, "slog combined"},
	}
	for _, ch := range choices {
		if !strings.Contains(" "+ch.allowed+" ", " "+ch.value+" ") {
			return fmt.Errorf("cgirun: %s=%q: want one of %s", ch.name, ch.value, ch.allowed)
		}
	}
	for name, p := range map[string]string{"CGIRUN_STATUS_PATH": c.StatusPath, "CGIRUN_PING_PATH": c.PingPath} {
		if p != "" && !strings.HasPrefix(p, "/") {
			return fmt.Errorf("cgirun: %s=%q: want a path starting with /", name, p)
		}
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("cgirun: CGIRUN_TLS_CERT and CGIRUN_TLS_KEY go together")
	}
	counts := []struct {
		name  string
		value int
	}{{"CGIRUN_MAX_CONNS", c.MaxConns}, {"CGIRUN_MAX_REQUESTS", c.MaxRequests}, {"CGIRUN_MAX_HEADER_BYTES", c.MaxHeaderBytes}, {"CGIRUN_MAX_URL_LENGTH", c.MaxURLLength}}
	for _, n := range counts {
		if n.value < 0 {
			return fmt.Errorf("cgirun: %s=%d: want 0 or more", n.name, n.value)
		}
	}
	durations := []struct {
		name  string
		value time.Duration
	}{{"CGIRUN_SHUTDOWN_GRACE", c.ShutdownGrace}, {"CGIRUN_SLOWLOG_TIMEOUT", c.SlowlogTimeout}, {"CGIRUN_IDLE_TIMEOUT", c.IdleTimeout},
		{"CGIRUN_HEADER_TIMEOUT", c.HeaderTimeout}, {"CGIRUN_READ_TIMEOUT", c.ReadTimeout}, {"CGIRUN_WRITE_TIMEOUT", c.WriteTimeout},
		{"CGIRUN_REQUEST_TIMEOUT", c.RequestTimeout}}
	for _, d := range durations {
		if d.value < 0 {
			return fmt.Errorf("cgirun: %s=%v: want a duration of 0 or more", d.name, d.value)
		}
	}
	return nil
}

func (c *Config) socketMode() (os.FileMode, error) {
	m, err := strconv.ParseUint(c.SocketMode, 8, 32)
	if err != nil || m > 0o777 {
		return 0, fmt.Errorf("cgirun: CGIRUN_SOCKET_MODE=%q: want an octal mode such as 0660", c.SocketMode)
	}
	return os.FileMode(m), nil
}

// Usage writes the table of settings, their defaults and descriptions.
func Usage(w io.Writer) error {
	return envconfig.Usagef("CGIRUN", &Config{}, w, envconfig.DefaultTableFormat)
}

// Options are what cannot come from the environment.
type Options struct {
	// Logger receives the log lines; nil means text or JSON lines on
	// stderr, as CGIRUN_LOG_FORMAT says.
	Logger *slog.Logger
	// BaseContext is the parent of every request's context; nil means
	// context.Background().
	BaseContext context.Context
	// Environ holds CGI variables added to every CGI and FastCGI request
	// that the web server did not set itself (eventlet's environ=).
	Environ map[string]string
}

// Run serves h as the process was started to, and returns when it is done:
// after the one request in CGI mode, after a graceful shutdown on SIGTERM
// or SIGINT otherwise, or after an upgrade on SIGHUP (FastCGI only, see
// below). main should exit non-zero on an error:
//
//	if err := cgirun.Run(handler); err != nil {
//		fmt.Fprintln(os.Stderr, err)
//		os.Exit(1)
//	}
//
// The order of detection: GATEWAY_INTERFACE (or CGIRUN_CGI) means CGI;
// CGIRUN_INHERIT_FDS means FastCGI on the sockets an upgrade passed on; a
// listening socket on fd 0 means FastCGI on it (mod_fcgid, spawn-fcgi);
// LISTEN_FDS for this process means FastCGI on those sockets (systemd);
// CGIRUN_FASTCGI means FastCGI on that address; otherwise plain HTTP on
// CGIRUN_HTTP. Started with -h or --help outside CGI, it prints the
// settings and exits.
//
// Serving FastCGI, SIGHUP upgrades the program without a refused
// connection, as nginx's binary upgrade does: Run starts the binary now at
// the program's path with the same arguments and environment, passing it
// the listening sockets (see Upgrade); once the new process serves, this
// one stops accepting, finishes its requests in flight (within
// CGIRUN_SHUTDOWN_GRACE) and Run returns nil. If the new process fails to
// start or to serve within 30 s, it is stopped, the error is logged, and
// this one goes on serving. A unix socket's file stays: it is the new
// process's. Under systemd, whose Type=simple service ends with its main
// process, use socket activation and a restart instead.
func Run(h http.Handler) error {
	return RunWith(h, Options{})
}

// RunWith is Run with Options.
func RunWith(h http.Handler, opts Options) error {
	// CGI first: a CGI program starts for every request, so telling the
	// mode and reading the settings must cost next to nothing there.
	// envconfig.Process costs some 590,000 instructions (reflection, and
	// a regexp run per field to split its name) where the whole program
	// without it takes 1,500,000; it reads nothing but CGIRUN_*
	// variables, so without one the settings are the defaults, and
	// defaultConfig has them without it.
	isCGI := cgi.IsCGI() || os.Getenv("CGIRUN_CGI") == "true" || os.Getenv("CGIRUN_CGI") == "1"
	if isCGI && !hasSettings(os.Environ()) {
		cfg := defaultConfig()
		cfg.CGI = true
		return NewServer(cfg, h, opts).Start()
	}
	// Not for CGI: a web server puts a query without "=" in argv, where
	// any client could write --help.
	if !isCGI && len(os.Args) > 1 && (os.Args[1] == "-h" || os.Args[1] == "-help" || os.Args[1] == "--help") {
		fmt.Fprintf(os.Stdout, "%s serves HTTP requests through CGI, FastCGI or plain HTTP, as it is started.\n\n", os.Args[0])
		Usage(os.Stdout)
		os.Exit(0)
	}
	cfg, err := LoadConfig()
	if err != nil {
		return err
	}
	// SIGHUP is caught before Start, so that one sent as soon as the
	// socket accepts does not kill the process; outside FastCGI it keeps
	// its default action (a plain HTTP server in a closed terminal ends).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	s := NewServer(cfg, h, opts)
	if err := s.Start(); err != nil {
		return err
	}
	if s.mode != ModeFastCGI {
		signal.Stop(hup)
		hup = nil // never ready
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	for {
		select {
		case <-ctx.Done():
			s.log.Info("cgirun: shutting down", "grace", cfg.ShutdownGrace)
			return s.drain(cfg.ShutdownGrace)
		case <-hup:
			s.log.Info("cgirun: SIGHUP: starting a new process on the same sockets")
			pid, err := s.Upgrade(ctx)
			if err != nil {
				s.log.Error("cgirun: upgrade failed; still serving", "err", err)
				continue
			}
			s.log.Info("cgirun: upgraded: the new process serves; shutting down", "pid", pid, "grace", cfg.ShutdownGrace)
			return s.drain(cfg.ShutdownGrace)
		case <-s.done:
			return s.Wait()
		}
	}
}

// drain stops s within grace and waits for it.
func (s *Server) drain(grace time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	s.Stop(ctx)
	return s.Wait()
}

// Mode is how a Server serves.
type Mode string

// The modes, in the order Run detects them.
const (
	ModeCGI     Mode = "cgi"
	ModeFastCGI Mode = "fastcgi"
	ModeHTTP    Mode = "http"
)

// Server is Run taken apart, for programs that start serving in the
// background and stop it themselves: Start, then Wait or Stop.
type Server struct {
	cfg     Config
	opts    Options
	log     *slog.Logger
	handler http.Handler
	mon     *monitor

	mode  Mode
	how   string // where it listens, for the log
	fcgi  *fastcgi.Server
	http  *http.Server
	lns   []net.Listener
	ready func() error // tells the process this one replaces that it serves
	n     int          // serving goroutines
	errs  chan error
	done  chan struct{} // closed when the first serving goroutine ends
	once  sync.Once
	first error
}

// NewServer returns a Server for cfg (see LoadConfig) that answers with h.
func NewServer(cfg Config, h http.Handler, opts Options) *Server {
	log := opts.Logger
	if log == nil {
		log = newLogger(cfg, os.Stderr)
	}
	if h == nil {
		h = http.DefaultServeMux
	}
	s := &Server{cfg: cfg, opts: opts, log: log, done: make(chan struct{})}
	s.mon = newMonitor(cfg, log, h)
	return s
}

// Mode reports how the server serves; it is set by Start.
func (s *Server) Mode() Mode { return s.mode }

// Addrs returns the addresses the server listens on; set by Start.
func (s *Server) Addrs() []net.Addr {
	addrs := make([]net.Addr, len(s.lns))
	for i, l := range s.lns {
		addrs[i] = l.Addr()
	}
	return addrs
}

// Start detects the mode and starts serving in the background. In CGI mode
// it answers the one request before it returns.
func (s *Server) Start() error {
	cfg := s.cfg
	if err := cfg.validate(); err != nil {
		return err
	}
	if cfg.CGI || cgi.IsCGI() {
		s.mode = ModeCGI
		c := cgi.Child{Handler: s.mon.handler(string(ModeCGI)), Logger: s.log, Debug: cfg.Debug}
		env := os.Environ()
		for name, v := range s.opts.Environ {
			if _, ok := os.LookupEnv(name); !ok {
				env = append(env, name+"="+v)
			}
		}
		err := c.Serve(s.baseContext(), env, os.Stdin, os.Stdout, os.Stderr)
		s.finish(err)
		return err
	}
	lns, ready, err := Inherit(cfg.Fastcgi)
	if err != nil {
		return err
	}
	how := fmt.Sprintf("sockets inherited from pid %d", os.Getppid())
	if len(lns) == 0 {
		if lns, how, err = fastcgiListeners(cfg); err != nil {
			return err
		}
	}
	s.lns, s.how, s.ready = lns, how, ready
	if lns == nil {
		if err := s.startHTTP(); err != nil {
			return err
		}
		s.notifyReady()
		return nil
	}
	s.mode = ModeFastCGI
	s.fcgi = &fastcgi.Server{
		Responder:         s.responder(),
		Logger:            s.log,
		BaseContext:       func(net.Listener) context.Context { return s.baseContext() },
		MaxConns:          cfg.MaxConns,
		MaxRequests:       cfg.MaxRequests,
		MaxParamsBytes:    cfg.MaxHeaderBytes,
		ReadHeaderTimeout: cfg.HeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		HandlerTimeout:    cfg.RequestTimeout,
	}
	s.mon.conns = func() uint64 { return s.fcgi.Stats().AcceptedConns }
	s.log.Info("cgirun: serving FastCGI", "on", how)
	s.serve(len(lns), func(i int) error { return s.fcgi.Serve(lns[i]) })
	s.notifyReady()
	return nil
}

// notifyReady tells the process this one replaces, if any, that this one
// serves. Its failure is only logged: the sockets are served either way.
func (s *Server) notifyReady() {
	if err := s.ready(); err != nil {
		s.log.Warn("cgirun: upgrade: the old process was not told", "err", err)
	}
}

// Upgrade starts a new copy of the program on the server's FastCGI
// sockets and returns its pid once it serves them (see the package-level
// Upgrade); the caller then stops s. On an error, s serves on as before.
func (s *Server) Upgrade(ctx context.Context) (int, error) {
	if s.mode != ModeFastCGI {
		return 0, fmt.Errorf("cgirun: upgrade: only in FastCGI mode, not %s", s.mode)
	}
	return Upgrade(ctx, s.lns)
}

// responder is the FastCGI back end: the monitored handler, with
// Options.Environ added to every request.
func (s *Server) responder() bridge.Responder {
	hr := &bridge.HandlerResponder{Handler: s.mon.handler(string(ModeFastCGI)), Logger: s.log, Debug: s.cfg.Debug}
	if len(s.opts.Environ) == 0 {
		return hr
	}
	return responderFunc(func(ctx context.Context, req *bridge.Request, out bridge.Output) error {
		for name, v := range s.opts.Environ {
			if _, ok := req.Env.Lookup(name); !ok {
				req.Env.Set(name, v)
			}
		}
		return hr.Respond(ctx, req, out)
	})
}

type responderFunc func(context.Context, *bridge.Request, bridge.Output) error

func (f responderFunc) Respond(ctx context.Context, req *bridge.Request, out bridge.Output) error {
	return f(ctx, req, out)
}

func (s *Server) baseContext() context.Context {
	if s.opts.BaseContext != nil {
		return s.opts.BaseContext
	}
	return context.Background()
}

func (s *Server) startHTTP() error {
	cfg := s.cfg
	s.mode = ModeHTTP
	var accepted atomicCounter
	h := s.mon.handler(string(ModeHTTP))
	if cfg.RequestTimeout > 0 {
		h = http.TimeoutHandler(h, cfg.RequestTimeout, "Service Unavailable\n")
	}
	s.http = &http.Server{
		Handler:           h,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		ReadHeaderTimeout: cfg.HeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		BaseContext:       func(net.Listener) context.Context { return s.baseContext() },
		ConnState: func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				accepted.add()
			}
		},
	}
	s.http.SetKeepAlivesEnabled(cfg.Keepalive)
	s.mon.conns = accepted.load
	l, err := net.Listen("tcp", cfg.HTTP)
	if err != nil {
		return fmt.Errorf("cgirun: CGIRUN_HTTP: %w", err)
	}
	if cfg.MaxConns > 0 {
		l = &limitListener{Listener: l, slots: make(chan struct{}, cfg.MaxConns)}
	}
	s.lns = []net.Listener{l}
	if cfg.TLSCert != "" {
		s.log.Info("cgirun: serving HTTPS", "on", l.Addr().String())
		s.serve(1, func(int) error { return s.http.ServeTLS(l, cfg.TLSCert, cfg.TLSKey) })
	} else {
		s.log.Info("cgirun: serving HTTP", "on", l.Addr().String())
		s.serve(1, func(int) error { return s.http.Serve(l) })
	}
	return nil
}

// serve runs n serving goroutines; the first to end closes s.done.
func (s *Server) serve(n int, f func(i int) error) {
	s.n = n
	s.errs = make(chan error, n)
	for i := range n {
		go func() {
			err := f(i)
			s.once.Do(func() { close(s.done) })
			s.errs <- err
		}()
	}
}

func (s *Server) finish(err error) {
	s.first = err
	s.once.Do(func() { close(s.done) })
}

// Stop shuts the server down gracefully: it stops accepting, lets the
// requests in flight finish, and returns when they have or when ctx ends;
// then it closes what remains. Wait returns after it.
func (s *Server) Stop(ctx context.Context) error {
	var err error
	switch {
	case s.fcgi != nil:
		if err = s.fcgi.Shutdown(ctx); err != nil {
			s.fcgi.Close()
		}
	case s.http != nil:
		if err = s.http.Shutdown(ctx); err != nil {
			s.http.Close()
		}
	}
	if err != nil {
		s.log.Warn("cgirun: grace period over; closed the remaining connections", "err", err)
	}
	return err
}

// Wait waits until the server has stopped serving, on its own (an error) or
// after Stop, and returns the first error other than the server being
// closed.
func (s *Server) Wait() error {
	if s.mode == ModeCGI {
		return s.first
	}
	var first error
	for range s.n {
		if err := <-s.errs; first == nil && !errors.Is(err, fastcgi.ErrServerClosed) && !errors.Is(err, http.ErrServerClosed) {
			first = err
		}
	}
	s.n = 0
	return first
}

// fastcgiListeners returns the FastCGI sockets the process should serve,
// and nil when it should serve HTTP.
func fastcgiListeners(cfg Config) ([]net.Listener, string, error) {
	if fastcgi.IsListeningSocket(0) {
		l, err := fastcgi.InheritedListener(0)
		if err != nil {
			return nil, "", err
		}
		return []net.Listener{l}, "fd 0", nil
	}
	ls, err := fastcgi.SystemdListeners()
	if err != nil || len(ls) > 0 {
		return ls, "systemd sockets", err
	}
	if cfg.Fastcgi != "" {
		mode, _ := cfg.socketMode()
		l, err := fastcgi.Listen(cfg.Fastcgi, mode)
		if err != nil {
			return nil, "", fmt.Errorf("cgirun: CGIRUN_FASTCGI: %w", err)
		}
		return []net.Listener{l}, cfg.Fastcgi, nil
	}
	return nil, "", nil
}

func newLogger(cfg Config, w io.Writer) *slog.Logger {
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, nil))
	}
	return slog.New(slog.NewTextHandler(w, nil))
}
