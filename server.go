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
	"slices"
	"strings"
	"sync"

	"github.com/cgirun/cgirun/bridge"
	"github.com/cgirun/cgirun/cgi"
	"github.com/cgirun/cgirun/fastcgi"
	"github.com/cgirun/cgirun/internal/serve"
	"github.com/cgirun/cgirun/scgi"
	"github.com/cgirun/cgirun/upgrade"
	"github.com/cgirun/cgirun/uwsgi"
)

// ErrServerClosed is returned by Server.Serve after Shutdown or Close.
var ErrServerClosed = errors.New("cgirun: Server closed")

// Mode is how a Server serves.
type Mode string

// The modes, in the order Run detects them. A server on sockets of
// several protocols has a Mode that joins theirs with "+", in the order
// of the constants, such as "fastcgi+scgi" (see Server.Modes).
const (
	ModeCGI     Mode = "cgi"
	ModeFastCGI Mode = "fastcgi"
	ModeSCGI    Mode = "scgi"
	ModeUWSGI   Mode = "uwsgi"
	// ModeListen serves FastCGI, SCGI, uwsgi and HTTP on one socket
	// (CGIRUN_LISTEN), told apart by each connection's first byte.
	ModeListen Mode = "listen"
	ModeHTTP   Mode = "http"
)

// protocolModes are the modes of the protocols of a gateway socket, in
// the order a joined Mode lists them.
var protocolModes = []struct {
	p    serve.Protocol
	mode Mode
	name string // for the log
}{
	{serve.FastCGI, ModeFastCGI, "FastCGI"},
	{serve.SCGI, ModeSCGI, "SCGI"},
	{serve.UWSGI, ModeUWSGI, "uwsgi"},
	{serve.Any, ModeListen, "FastCGI, SCGI, uwsgi and HTTP"},
}

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

	mu     sync.Mutex // guards the fields below it, set by Listen
	mode   Mode
	where  string // where it listens, for the log
	inner  serve.Server
	lns    []net.Listener
	protos []serve.Protocol // the protocol of each of lns, for a gateway
	wheres []string         // where each of lns is, for the log
	ready  func() error     // tells the process this one replaces that it serves
	shut   bool             // Shutdown or Close was called
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

// Mode reports how the server serves; it is set by Listen. On sockets of
// several protocols, it joins their modes with "+".
func (s *Server) Mode() Mode {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mode
}

// Modes reports each mode the server serves in, in the order of the
// constants: one for CGI, HTTP or sockets of one protocol, more for
// sockets of several (CGIRUN_FASTCGI and CGIRUN_SCGI, say). Set by
// Listen.
func (s *Server) Modes() []Mode {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mode == "" {
		return nil
	}
	var modes []Mode
	for m := range strings.SplitSeq(string(s.mode), "+") {
		modes = append(modes, Mode(m))
	}
	return modes
}

// gateway reports whether the server serves gateway sockets (FastCGI,
// SCGI, uwsgi, CGIRUN_LISTEN's), which SIGHUP upgrades.
func (s *Server) gateway() bool { return s.protos != nil }

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
	addrs := cfg.addresses()
	set, err := serve.ListenAll(addrs, lc, os.Stdin, s.log)
	if err != nil {
		return fmt.Errorf("cgirun: %w", err)
	}
	s.ready = set.Ready
	if len(set.Listeners) == 0 {
		return s.listenHTTP()
	}
	s.lns = set.Listeners
	s.protos = make([]serve.Protocol, len(s.lns))
	s.wheres = make([]string, len(s.lns))
	for i, l := range s.lns {
		var guessed bool
		s.protos[i], guessed = cfg.handedProtocol()
		s.wheres[i] = set.Where
		if j := set.Of[i]; j >= 0 {
			s.protos[i] = addressProtocols[j]
			if !set.Handed {
				s.wheres[i] = addrs[j].Addr
			}
		} else if guessed {
			s.log.Warn("cgirun: a socket the process was handed is bound to none of the gateway settings' addresses: it serves FastCGI; give the setting of its protocol its address",
				"addr", l.Addr().String(), "on", set.Where)
		}
	}
	var modes []string
	for _, pm := range protocolModes {
		if slices.Contains(s.protos, pm.p) {
			modes = append(modes, string(pm.mode))
		}
	}
	s.mode, s.where = Mode(strings.Join(modes, "+")), set.Where
	s.mon.keepMetrics()
	if err := s.gatewayServers(); err != nil {
		for _, l := range s.lns {
			l.Close()
		}
		s.mode, s.lns, s.protos, s.wheres = "", nil, nil, nil
		return err
	}
	return nil
}

// gatewayServers makes the server of each protocol that s.protos holds,
// and the Multi that serves the sockets with them.
func (s *Server) gatewayServers() error {
	cfg := s.cfg
	allowed, err := serve.PeerAllowed()
	if err != nil {
		return err
	}
	m := &serve.Multi{Sniff: serve.SniffConfig{Timeout: cfg.HeaderTimeout, MaxPending: cfg.MaxConns, TLS: cfg.TLSCert != "", Allowed: allowed, Log: s.log}}
	protos := map[net.Listener]serve.Protocol{}
	for i, l := range s.lns {
		protos[l] = s.protos[i]
	}
	m.Of = func(l net.Listener) serve.Protocol { return protos[l] }
	needs := func(p serve.Protocol) bool {
		return slices.Contains(s.protos, p) || slices.Contains(s.protos, serve.Any)
	}
	base := func(net.Listener) context.Context { return s.baseContext() }
	// One count of the requests over every protocol, unless a single
	// server counts them.
	var count *requestCounter
	var stats []func() counts
	multi := strings.Contains(string(s.mode), "+") || slices.Contains(s.protos, serve.Any)
	if multi {
		count = new(requestCounter)
	}
	responder := s.responder(count)
	if needs(serve.FastCGI) {
		srv := &fastcgi.Server{
			Responder:   responder,
			Logger:      s.log,
			BaseContext: base,
			// Not MaxRequests: the monitor bounds the requests, after
			// the status and ping pages (see monitor).
			MaxConns:          cfg.MaxConns,
			MaxParamsBytes:    cfg.MaxHeaderBytes,
			ReadHeaderTimeout: cfg.HeaderTimeout,
			ReadTimeout:       cfg.ReadTimeout,
			IdleTimeout:       cfg.IdleTimeout,
			WriteTimeout:      cfg.WriteTimeout,
			HandlerTimeout:    cfg.RequestTimeout,
		}
		m.Servers[serve.FastCGI] = srv
		stats = append(stats, func() counts { return fromStats(srv.Stats()) })
	}
	if needs(serve.SCGI) {
		srv := &scgi.Server{
			Responder:         responder,
			Logger:            s.log,
			BaseContext:       base,
			MaxConns:          cfg.MaxConns,
			MaxParamsBytes:    cfg.MaxHeaderBytes,
			ReadHeaderTimeout: cfg.HeaderTimeout,
			ReadTimeout:       cfg.ReadTimeout,
			WriteTimeout:      cfg.WriteTimeout,
			HandlerTimeout:    cfg.RequestTimeout,
		}
		m.Servers[serve.SCGI] = srv
		stats = append(stats, func() counts { return fromStats(fastcgi.Stats(srv.Stats())) })
	}
	if needs(serve.UWSGI) {
		srv := &uwsgi.Server{
			Responder:         responder,
			Logger:            s.log,
			BaseContext:       base,
			MaxConns:          cfg.MaxConns,
			MaxParamsBytes:    cfg.MaxHeaderBytes,
			ReadHeaderTimeout: cfg.HeaderTimeout,
			ReadTimeout:       cfg.ReadTimeout,
			WriteTimeout:      cfg.WriteTimeout,
			HandlerTimeout:    cfg.RequestTimeout,
		}
		m.Servers[serve.UWSGI] = srv
		stats = append(stats, func() counts { return fromStats(fastcgi.Stats(srv.Stats())) })
	}
	if slices.Contains(s.protos, serve.Any) {
		srv, hc, err := s.httpServer(count)
		if err != nil {
			return err
		}
		m.Servers[serve.HTTP] = srv
		stats = append(stats, hc)
	}
	s.mon.counts = func() counts {
		var n counts
		for _, st := range stats {
			c := st()
			n.Accepted += c.Accepted
			n.Open += c.Open
			n.HeadersLarge += c.HeadersLarge
			n.Requests, n.Active, n.MaxActive = c.Requests, c.Active, c.MaxActive
		}
		n.Idle = -1
		if count != nil {
			c := count.counts()
			n.Requests, n.Active, n.MaxActive = c.Requests, c.Active, c.MaxActive
		}
		return n
	}
	s.inner = m
	return nil
}

// fromStats is the status page's view of a gateway server's counters.
func fromStats(st fastcgi.Stats) counts {
	return counts{Accepted: st.AcceptedConns, Open: int64(st.OpenConns), Idle: -1, Requests: st.Requests, Active: st.Active, MaxActive: st.MaxActive, HeadersLarge: st.HeadersLarge}
}

// listenHTTP sets the server up for plain HTTP (or HTTPS) on CGIRUN_HTTP.
func (s *Server) listenHTTP() error {
	cfg := s.cfg
	s.mon.keepMetrics()
	s.mode = ModeHTTP
	srv, stats, err := s.httpServer(nil)
	if err != nil {
		s.mode = ""
		return err
	}
	s.mon.counts = stats
	l, err := net.Listen("tcp", cfg.HTTP)
	if err != nil {
		s.mode = ""
		return fmt.Errorf("cgirun: CGIRUN_HTTP: %w", err)
	}
	s.lns, s.where, s.inner = []net.Listener{l}, l.Addr().String(), srv
	return nil
}

// httpServer returns the HTTP server of HTTP mode and of CGIRUN_LISTEN,
// HTTPS with CGIRUN_TLS_CERT, bounded to CGIRUN_MAX_CONNS connections on
// each listener it serves, and its counts. count counts its requests when
// not nil; otherwise it has a counter of its own.
func (s *Server) httpServer(count *requestCounter) (serve.Server, func() counts, error) {
	cfg := s.cfg
	// The files are read before the socket listens and "serving HTTPS"
	// is logged, rather than at the first handshake.
	var certs []tls.Certificate
	if cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, nil, fmt.Errorf("cgirun: CGIRUN_TLS_CERT=%q and CGIRUN_TLS_KEY=%q: %w: want a PEM certificate (chain) file and its PEM private key file, such as certbot's fullchain.pem and privkey.pem", cfg.TLSCert, cfg.TLSKey, err)
		}
		certs = []tls.Certificate{cert}
	}
	if count == nil {
		count = new(requestCounter)
	}
	var conns *connStates // for the status page's open and idle connections
	if s.mon.metrics != nil {
		conns = newConnStates()
	}
	// Held as bridge holds it in CGI and FastCGI mode, so that a failing
	// handler gets the same answer.
	hr := &bridge.HandlerResponder{Handler: s.mon.handler(string(s.mode)), Logger: s.log, Debug: cfg.Debug}
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
	stats := count.counts
	if conns != nil {
		stats = func() counts {
			n := count.counts()
			n.Open, n.Idle = conns.counts()
			return n
		}
	}
	var inner serve.Server = srv
	if certs != nil {
		srv.TLSConfig = &tls.Config{Certificates: certs}
		inner = tlsServer{srv}
	}
	if cfg.MaxConns > 0 {
		inner = limitedServer{inner, cfg.MaxConns}
	}
	return inner, stats, nil
}

// limitedServer serves each listener with at most max connections open
// (see limitListener).
type limitedServer struct {
	serve.Server
	max int
}

func (ls limitedServer) Serve(l net.Listener) error {
	return ls.Server.Serve(&limitListener{Listener: l, slots: make(chan struct{}, ls.max)})
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
// upgrades a server of gateway sockets.
func (s *Server) loop(hup <-chan os.Signal) *serve.Loop {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.logServing()
	lp := &serve.Loop{Server: s.inner, Listeners: s.lns, Log: s.log, Grace: s.cfg.ShutdownGrace, Ready: s.ready, Hup: hup}
	if s.gateway() {
		lp.Upgrade = s.Upgrade
	}
	return lp
}

// logServing logs "serving" and the protocol, with where: one line for
// each protocol of the gateway sockets.
func (s *Server) logServing() {
	if !s.gateway() {
		kind := "HTTP"
		if s.cfg.TLSCert != "" {
			kind = "HTTPS"
		}
		s.log.Info("cgirun: serving "+kind, "on", s.where)
		return
	}
	for _, pm := range protocolModes {
		var where []string
		for i, p := range s.protos {
			if p == pm.p && !slices.Contains(where, s.wheres[i]) {
				where = append(where, s.wheres[i])
			}
		}
		if where == nil {
			continue
		}
		name := pm.name
		if pm.p == serve.Any && s.cfg.TLSCert != "" {
			name = "FastCGI, SCGI, uwsgi and HTTPS"
		}
		s.log.Info("cgirun: serving "+name, "on", strings.Join(where, ", "))
	}
}

// serveCGI answers the one request of a CGI program.
func (s *Server) serveCGI() error {
	h := s.mon.handler(string(ModeCGI))
	// The counts are the status page's: without one, nothing reads them,
	// and the handler runs a frame less deep (see newDefaultCGI).
	if s.cfg.StatusPath != "" {
		var count requestCounter
		s.mon.counts = count.counts
		h = count.wrap(h)
	}
	c := cgi.Child{Handler: h, Logger: s.log, Debug: s.cfg.Debug}
	return c.Serve(s.baseContext(), s.cgiEnviron(), os.Stdin, os.Stdout, os.Stderr)
}

// cgiEnviron is the environment of a CGI request: the process's, and
// Options.Environ's variables that it does not set.
func (s *Server) cgiEnviron() []string {
	env := os.Environ()
	for name, v := range s.opts.Environ {
		if _, ok := os.LookupEnv(name); !ok {
			env = append(env, name+"="+v)
		}
	}
	return env
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

// Upgrade starts a new copy of the program on the server's gateway
// sockets (FastCGI, SCGI, uwsgi, CGIRUN_LISTEN's) and returns its pid
// once it serves them, within CGIRUN_UPGRADE_TIMEOUT
// (see upgrade.Start); the caller then shuts s down. On an error, s serves
// on as before.
func (s *Server) Upgrade(ctx context.Context) (int, error) {
	s.mu.Lock()
	mode, lns, gateway := s.mode, s.lns, s.gateway()
	s.mu.Unlock()
	if !gateway {
		return 0, fmt.Errorf("cgirun: upgrade: only in FastCGI mode and the other gateway modes (scgi, uwsgi, listen), not %s", mode)
	}
	return upgrade.Start(ctx, lns, s.cfg.UpgradeTimeout)
}

// responder is the back end of the gateway servers: the monitored
// handler, counted by count when it is not nil, with Options.Environ
// added to every request.
func (s *Server) responder(count *requestCounter) bridge.Responder {
	h := s.mon.handler(string(s.mode))
	if count != nil {
		h = count.wrap(h)
	}
	hr := &bridge.HandlerResponder{Handler: h, Logger: s.log, Debug: s.cfg.Debug}
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
