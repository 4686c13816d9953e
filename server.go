package cgirun

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"

	"github.com/cgirun/cgirun/bridge"
	"github.com/cgirun/cgirun/cgi"
	"github.com/cgirun/cgirun/fastcgi"
	"github.com/cgirun/cgirun/internal/serve"
	"github.com/cgirun/cgirun/upgrade"
)

// ErrServerClosed is returned by Server.Serve after Shutdown or Close.
var ErrServerClosed = errors.New("cgirun: Server closed")

// Mode is how a Server serves.
type Mode string

// The modes, in the order Run detects them.
const (
	ModeCGI     Mode = "cgi"
	ModeFastCGI Mode = "fastcgi"
	ModeHTTP    Mode = "http"
)

// Server is Run taken apart, for programs that serve in the background and
// stop it themselves. Its shape is net/http.Server's and fastcgi.Server's
// (Serve, Shutdown, Close), with one difference: Serve takes no listener,
// because finding the sockets (fd 0, systemd, an upgrade's, CGIRUN_FASTCGI,
// CGIRUN_HTTP) is the Server's own job; Listen does it, and Serve calls it
// when it was not called.
type Server struct {
	cfg     Config
	opts    Options
	log     *slog.Logger
	handler http.Handler
	mon     *monitor

	mu    sync.Mutex // guards the fields below it, set by Listen
	mode  Mode
	where string // where it listens, for the log
	inner serve.Server
	lns   []net.Listener
	ready func() error // tells the process this one replaces that it serves
	shut  bool         // Shutdown or Close was called
}

// NewServer returns a Server for cfg (see LoadConfig) that answers with h.
func NewServer(cfg Config, h http.Handler, opts Options) *Server {
	log := opts.Logger
	if log == nil {
		log = serve.NewLogger(cfg.LogFormat, os.Stderr)
	}
	if h == nil {
		h = http.DefaultServeMux
	}
	return &Server{cfg: cfg, opts: opts, log: log, handler: h, mon: newMonitor(cfg, log, h)}
}

// Mode reports how the server serves; it is set by Listen.
func (s *Server) Mode() Mode {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mode
}

// Addrs returns the addresses the server listens on; set by Listen.
func (s *Server) Addrs() []net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	addrs := make([]net.Addr, len(s.lns))
	for i, l := range s.lns {
		addrs[i] = l.Addr()
	}
	return addrs
}

// Listen detects how the process was started (see Run for the order) and
// opens or takes the sockets to serve; in CGI mode there are none. Mode
// and Addrs tell the outcome. Calls after the first do nothing; after
// Shutdown or Close it returns ErrServerClosed.
func (s *Server) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.shut:
		return ErrServerClosed
	case s.mode != "":
		return nil
	}
	cfg := s.cfg
	if err := cfg.validate(); err != nil {
		return err
	}
	if cfg.CGI || cgi.IsCGI() {
		s.mode = ModeCGI
		return nil
	}
	lc, _ := cfg.listenConfig()
	set, err := serve.Listen(cfg.Fastcgi, "CGIRUN_FASTCGI", lc, os.Stdin, s.log)
	if err != nil {
		return fmt.Errorf("cgirun: %w", err)
	}
	s.ready = set.Ready
	if len(set.Listeners) == 0 {
		return s.listenHTTP()
	}
	s.mode, s.lns, s.where = ModeFastCGI, set.Listeners, set.Where
	s.mon.keepMetrics()
	srv := &fastcgi.Server{
		Responder:   s.responder(),
		Logger:      s.log,
		BaseContext: func(net.Listener) context.Context { return s.baseContext() },
		// Not MaxRequests: the monitor bounds the requests, after the
		// status and ping pages (see monitor).
		MaxConns:          cfg.MaxConns,
		MaxParamsBytes:    cfg.MaxHeaderBytes,
		ReadHeaderTimeout: cfg.HeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		HandlerTimeout:    cfg.RequestTimeout,
	}
	s.mon.counts = func() counts {
		st := srv.Stats()
		return counts{Accepted: st.AcceptedConns, Open: int64(st.OpenConns), Idle: -1, Requests: st.Requests, Active: st.Active, MaxActive: st.MaxActive, HeadersLarge: st.HeadersLarge}
	}
	s.inner = srv
	return nil
}

// listenHTTP sets the server up for plain HTTP (or HTTPS) on CGIRUN_HTTP.
func (s *Server) listenHTTP() error {
	cfg := s.cfg
	// The files are read before the socket listens and "serving HTTPS"
	// is logged, rather than at the first handshake.
	var certs []tls.Certificate
	if cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return fmt.Errorf("cgirun: CGIRUN_TLS_CERT=%q and CGIRUN_TLS_KEY=%q: %w: want a PEM certificate (chain) file and its PEM private key file, such as certbot's fullchain.pem and privkey.pem", cfg.TLSCert, cfg.TLSKey, err)
		}
		certs = []tls.Certificate{cert}
	}
	s.mon.keepMetrics()
	var count requestCounter
	var conns *connStates // for the status page's open and idle connections
	if s.mon.metrics != nil {
		conns = newConnStates()
	}
	// Held as bridge holds it in CGI and FastCGI mode, so that a failing
	// handler gets the same answer.
	hr := &bridge.HandlerResponder{Handler: s.mon.handler(string(ModeHTTP)), Logger: s.log, Debug: cfg.Debug}
	h := count.wrap(hr)
	if cfg.RequestTimeout > 0 {
		h = http.TimeoutHandler(h, cfg.RequestTimeout, "Service Unavailable\n")
	}
	srv := &http.Server{
		Handler:           h,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		ReadHeaderTimeout: cfg.HeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		BaseContext:       func(net.Listener) context.Context { return s.baseContext() },
		ConnState: func(c net.Conn, st http.ConnState) {
			if st == http.StateNew {
				count.accepted.Add(1)
			}
			if conns != nil {
				conns.set(c, st)
			}
		},
	}
	srv.SetKeepAlivesEnabled(cfg.Keepalive)
	s.mon.counts = count.counts
	if conns != nil {
		s.mon.counts = func() counts {
			n := count.counts()
			n.Open, n.Idle = conns.counts()
			return n
		}
	}
	l, err := net.Listen("tcp", cfg.HTTP)
	if err != nil {
		return fmt.Errorf("cgirun: CGIRUN_HTTP: %w", err)
	}
	if cfg.MaxConns > 0 {
		l = &limitListener{Listener: l, slots: make(chan struct{}, cfg.MaxConns)}
	}
	s.mode, s.lns, s.where, s.inner = ModeHTTP, []net.Listener{l}, l.Addr().String(), srv
	if certs != nil {
		srv.TLSConfig = &tls.Config{Certificates: certs}
		s.inner = tlsServer{srv}
	}
	return nil
}

// tlsServer serves HTTPS through Serve, with the certificate of its
// TLSConfig.
type tlsServer struct{ *http.Server }

func (t tlsServer) Serve(l net.Listener) error { return t.ServeTLS(l, "", "") }

// Serve serves until Shutdown or Close, and then returns ErrServerClosed;
// it calls Listen first when that was not done. In CGI mode it answers the
// one request and returns nil once the response was written whole. If one
// of several sockets fails, Serve shuts the others down (within
// CGIRUN_SHUTDOWN_GRACE) and returns that socket's error.
func (s *Server) Serve() error {
	if err := s.Listen(); err != nil {
		return err
	}
	if s.Mode() == ModeCGI {
		return s.serveCGI()
	}
	if err := s.loop(nil).Run(context.Background()); err != nil {
		return err
	}
	return ErrServerClosed
}

// loop is the serve loop of the server's sockets; hup, when not nil,
// upgrades a FastCGI server.
func (s *Server) loop(hup <-chan os.Signal) *serve.Loop {
	s.mu.Lock()
	defer s.mu.Unlock()
	kind := "HTTP"
	switch {
	case s.mode == ModeFastCGI:
		kind = "FastCGI"
	case s.cfg.TLSCert != "":
		kind = "HTTPS"
	}
	s.log.Info("cgirun: serving "+kind, "on", s.where)
	lp := &serve.Loop{Server: s.inner, Listeners: s.lns, Log: s.log, Grace: s.cfg.ShutdownGrace, Ready: s.ready, Hup: hup}
	if s.mode == ModeFastCGI {
		lp.Upgrade = s.Upgrade
	}
	return lp
}

// serveCGI answers the one request of a CGI program.
func (s *Server) serveCGI() error {
	var count requestCounter
	s.mon.counts = count.counts
	c := cgi.Child{Handler: count.wrap(s.mon.handler(string(ModeCGI))), Logger: s.log, Debug: s.cfg.Debug}
	env := os.Environ()
	for name, v := range s.opts.Environ {
		if _, ok := os.LookupEnv(name); !ok {
			env = append(env, name+"="+v)
		}
	}
	return c.Serve(s.baseContext(), env, os.Stdin, os.Stdout, os.Stderr)
}

// Shutdown stops the server gracefully: it stops accepting, lets the
// requests in flight finish, and returns when they have, or ctx's error
// when ctx ends first (then Close cuts what is left). Serve then returns
// ErrServerClosed.
func (s *Server) Shutdown(ctx context.Context) error {
	if inner := s.stop(); inner != nil {
		return inner.Shutdown(ctx)
	}
	return nil
}

// Close stops the server at once: the listeners and every connection are
// closed, and requests in flight get no answer.
func (s *Server) Close() error {
	if inner := s.stop(); inner != nil {
		return inner.Close()
	}
	return nil
}

// stop marks s shut down, so that it never listens after, and returns
// what serves, nil before Listen.
func (s *Server) stop() serve.Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.shut = true
	return s.inner
}

// Upgrade starts a new copy of the program on the server's FastCGI sockets
// and returns its pid once it serves them, within CGIRUN_UPGRADE_TIMEOUT
// (see upgrade.Start); the caller then shuts s down. On an error, s serves
// on as before.
func (s *Server) Upgrade(ctx context.Context) (int, error) {
	s.mu.Lock()
	mode, lns := s.mode, s.lns
	s.mu.Unlock()
	if mode != ModeFastCGI {
		return 0, fmt.Errorf("cgirun: upgrade: only in FastCGI mode, not %s", mode)
	}
	return upgrade.Start(ctx, lns, s.cfg.UpgradeTimeout)
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
