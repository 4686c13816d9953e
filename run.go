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
	"syscall"
	"time"

	"github.com/kelseyhightower/envconfig"

	"github.com/cgirun/cgirun/cgi"
	"github.com/cgirun/cgirun/fastcgi"
)

// Config is every setting of Run, read from CGIRUN_* environment variables
// (CGIRUN_FASTCGI, CGIRUN_SHUTDOWN_GRACE, ...).
type Config struct {
	CGI            bool          `desc:"serve one CGI request even without GATEWAY_INTERFACE"`
	Fastcgi        string        `desc:"serve FastCGI on this address: unix:/path, tcp:host:port or host:port"`
	HTTP           string        `default:"127.0.0.1:8080" desc:"plain HTTP address when no gateway is detected"`
	TLSCert        string        `split_words:"true" desc:"certificate file: serve HTTPS instead of HTTP (with TLS_KEY)"`
	TLSKey         string        `split_words:"true" desc:"private key file for TLS_CERT"`
	SocketMode     string        `split_words:"true" default:"0660" desc:"mode of a unix socket created for FASTCGI (octal)"`
	ShutdownGrace  time.Duration `split_words:"true" default:"30s" desc:"on SIGTERM or SIGINT, how long in-flight requests may take"`
	Debug          bool          `desc:"show panics and their stacks to clients (never in production)"`
	LogFormat      string        `split_words:"true" default:"text" desc:"log format on stderr: text or json"`
	MaxConns       int           `split_words:"true" desc:"most open connections; 0: no bound"`
	MaxRequests    int           `split_words:"true" desc:"most requests answered at once; 0: no bound"`
	RequestTimeout time.Duration `split_words:"true" desc:"bound on one request (FastCGI: 503 when nothing was sent yet); 0: none"`
	IdleTimeout    time.Duration `split_words:"true" default:"2m" desc:"how long a kept-alive connection with no request stays open"`
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

func (c *Config) validate() error {
	if _, err := c.socketMode(); err != nil {
		return err
	}
	if c.Fastcgi != "" {
		if _, _, err := fastcgi.ParseAddr(c.Fastcgi); err != nil {
			return fmt.Errorf("cgirun: CGIRUN_FASTCGI: %w", err)
		}
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		return fmt.Errorf("cgirun: CGIRUN_LOG_FORMAT=%q: want text or json", c.LogFormat)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("cgirun: CGIRUN_TLS_CERT and CGIRUN_TLS_KEY go together")
	}
	for name, v := range map[string]int{"CGIRUN_MAX_CONNS": c.MaxConns, "CGIRUN_MAX_REQUESTS": c.MaxRequests} {
		if v < 0 {
			return fmt.Errorf("cgirun: %s=%d: want 0 or more", name, v)
		}
	}
	for name, v := range map[string]time.Duration{"CGIRUN_SHUTDOWN_GRACE": c.ShutdownGrace, "CGIRUN_REQUEST_TIMEOUT": c.RequestTimeout, "CGIRUN_IDLE_TIMEOUT": c.IdleTimeout} {
		if v < 0 {
			return fmt.Errorf("cgirun: %s=%v: want a duration of 0 or more", name, v)
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

// Run serves h as the process was started to, and returns when it is done:
// after the one request in CGI mode, after a graceful shutdown on SIGTERM
// or SIGINT otherwise. main should exit non-zero on an error:
//
//	if err := cgirun.Run(handler); err != nil {
//		fmt.Fprintln(os.Stderr, err)
//		os.Exit(1)
//	}
//
// The order of detection: GATEWAY_INTERFACE (or CGIRUN_CGI) means CGI; a
// listening socket on fd 0 means FastCGI on it (mod_fcgid, spawn-fcgi);
// LISTEN_FDS for this process means FastCGI on those sockets (systemd);
// CGIRUN_FASTCGI means FastCGI on that address; otherwise plain HTTP on
// CGIRUN_HTTP.
func Run(h http.Handler) error {
	// CGI first, before any configuration is read: a CGI program starts
	// for every request.
	if cgi.IsCGI() || os.Getenv("CGIRUN_CGI") == "true" || os.Getenv("CGIRUN_CGI") == "1" {
		return cgi.Serve(h)
	}
	cfg, err := LoadConfig()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return Serve(ctx, cfg, h)
}

// Serve serves h in the mode cfg and the process's start call for, until
// ctx ends; then it shuts down gracefully within cfg.ShutdownGrace.
func Serve(ctx context.Context, cfg Config, h http.Handler) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	log := newLogger(cfg, os.Stderr)
	if cfg.CGI || cgi.IsCGI() {
		c := cgi.Child{Handler: h, Logger: log, Debug: cfg.Debug}
		return c.Serve(ctx, os.Environ(), os.Stdin, os.Stdout, os.Stderr)
	}
	listeners, how, err := fastcgiListeners(cfg)
	if err != nil {
		return err
	}
	if listeners == nil {
		return serveHTTP(ctx, cfg, h, log)
	}
	srv := &fastcgi.Server{
		Handler:        h,
		Logger:         log,
		Debug:          cfg.Debug,
		MaxConns:       cfg.MaxConns,
		MaxRequests:    cfg.MaxRequests,
		HandlerTimeout: cfg.RequestTimeout,
		IdleTimeout:    cfg.IdleTimeout,
	}
	log.Info("cgirun: serving FastCGI", "on", how)
	errs := make(chan error, len(listeners))
	for _, l := range listeners {
		go func() { errs <- srv.Serve(l) }()
	}
	return waitAndShutdown(ctx, cfg, log, errs, len(listeners), srv.Shutdown, srv.Close)
}

// fastcgiListeners returns the FastCGI sockets the process should serve,
// and nil when it should serve HTTP.
func fastcgiListeners(cfg Config) ([]net.Listener, string, error) {
	if fastcgi.IsListeningSocket(0) {
		l, err := fastcgi.InheritedListener(0)
		return []net.Listener{l}, "fd 0", err
	}
	ls, err := fastcgi.SystemdListeners()
	if err != nil || len(ls) > 0 {
		return ls, "systemd sockets", err
	}
	if cfg.Fastcgi != "" {
		mode, _ := cfg.socketMode()
		l, err := fastcgi.Listen(cfg.Fastcgi, mode)
		return []net.Listener{l}, cfg.Fastcgi, err
	}
	return nil, "", nil
}

func serveHTTP(ctx context.Context, cfg Config, h http.Handler, log *slog.Logger) error {
	srv := &http.Server{
		Addr:              cfg.HTTP,
		Handler:           h,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       cfg.IdleTimeout,
	}
	l, err := net.Listen("tcp", cfg.HTTP)
	if err != nil {
		return fmt.Errorf("cgirun: CGIRUN_HTTP: %w", err)
	}
	errs := make(chan error, 1)
	if cfg.TLSCert != "" {
		log.Info("cgirun: serving HTTPS", "on", l.Addr().String())
		go func() { errs <- srv.ServeTLS(l, cfg.TLSCert, cfg.TLSKey) }()
	} else {
		log.Info("cgirun: serving HTTP", "on", l.Addr().String())
		go func() { errs <- srv.Serve(l) }()
	}
	return waitAndShutdown(ctx, cfg, log, errs, 1, srv.Shutdown, srv.Close)
}

// waitAndShutdown waits for ctx to end or a server to fail, then shuts down
// gracefully within the grace period and closes what remains.
func waitAndShutdown(ctx context.Context, cfg Config, log *slog.Logger, errs chan error, n int,
	shutdown func(context.Context) error, closeNow func() error) error {
	var first error
	select {
	case <-ctx.Done():
		log.Info("cgirun: shutting down", "grace", cfg.ShutdownGrace)
	case first = <-errs:
		n--
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownGrace)
	defer cancel()
	if err := shutdown(sctx); err != nil {
		log.Warn("cgirun: grace period over; closing the remaining connections", "err", err)
		closeNow()
	}
	for range n {
		if err := <-errs; first == nil {
			first = err
		}
	}
	if errors.Is(first, fastcgi.ErrServerClosed) || errors.Is(first, http.ErrServerClosed) {
		return nil
	}
	return first
}

func newLogger(cfg Config, w io.Writer) *slog.Logger {
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, nil))
	}
	return slog.New(slog.NewTextHandler(w, nil))
}
