package fastcgi

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cgirun/cgirun/bridge"
)

// ErrServerClosed is returned by Serve after Shutdown or Close. It is also
// the cause (context.Cause) with which Close cancels the requests in
// flight, and what their body reads return.
var ErrServerClosed = errors.New("fastcgi: Server closed")

// Defaults of the Server's limits.
const (
	DefaultMaxParamsBytes     = 128 << 10
	DefaultMaxConnParamsBytes = 1 << 20
	DefaultMaxRequestsPerConn = 100
	DefaultReadHeaderTimeout  = 10 * time.Second
	DefaultReadTimeout        = 60 * time.Second
	DefaultIdleTimeout        = 120 * time.Second
	DefaultWriteTimeout       = 60 * time.Second
	DefaultInputBuffer        = 64 << 10
)

// Server is a FastCGI 1.0 application server: it answers the web server's
// requests (Responder, Authorizer and Filter roles) with a bridge.Responder,
// normally an http.Handler. Its shape is net/http.Server's.
//
// The zero value serves http.DefaultServeMux with the documented defaults.
// Fields must not change once Serve has been called.
type Server struct {
	// Handler answers the requests; nil means http.DefaultServeMux. It is
	// run through bridge.HandlerResponder unless Responder is set.
	Handler http.Handler
	// Responder, when set, answers the requests instead of Handler: for
	// back ends that produce a CGI response stream themselves, such as a
	// CGI executable.
	Responder bridge.Responder
	// Logger receives the server's log lines; nil means slog.Default().
	Logger *slog.Logger
	// BaseContext returns the base context of the requests accepted on l;
	// nil means context.Background().
	BaseContext func(l net.Listener) context.Context
	// Debug shows a handler's panic and stack in its 500 response. Off by
	// default: it shows internals to clients.
	Debug bool
	// LogToStderr also sends the log lines about a request to the web
	// server, in FCGI_STDERR records: nginx writes them to its error log.
	LogToStderr bool

	// MaxConns bounds the open connections; 0 means no bound. Connections
	// past it wait in the listener's backlog.
	MaxConns int
	// MaxRequests bounds the requests being answered at once on all
	// connections; 0 means no bound. A request past it gets 503 Service
	// Unavailable with Retry-After: 1 and FCGI_REQUEST_COMPLETE, or waits
	// for a slot when QueueRequests is set. Not FCGI_OVERLOADED: nginx
	// answers that with 502 and logs "upstream sent unexpected FastCGI
	// record: 3".
	MaxRequests int
	// QueueRequests makes a request past MaxRequests wait for a slot, up to
	// ReadHeaderTimeout, instead of being refused at once (then it gets
	// the 503).
	QueueRequests bool
	// MaxRequestsPerConn bounds the request ids in use at once on one
	// connection (multiplexing); 0 means DefaultMaxRequestsPerConn. A
	// request past it gets FCGI_OVERLOADED; with 1, FCGI_MPXS_CONNS is 0
	// and a second request gets FCGI_CANT_MPX_CONN.
	MaxRequestsPerConn int
	// MaxParamsBytes bounds a request's FCGI_PARAMS stream; 0 means
	// DefaultMaxParamsBytes. A request past it is answered with 431.
	MaxParamsBytes int
	// MaxConnParamsBytes bounds the FCGI_PARAMS bytes that the requests
	// open on one connection hold together, header blocks still arriving
	// and those of requests being answered: what multiplexed request ids
	// can make one connection hold. 0 means DefaultMaxConnParamsBytes; it
	// is never less than MaxParamsBytes. A request whose header block
	// would pass it is answered with 431.
	MaxConnParamsBytes int
	// InputBuffer bounds the body bytes held for one request while its
	// handler has not read them; 0 means DefaultInputBuffer. Past it the
	// connection waits for the handler (FastCGI's only flow control).
	InputBuffer int

	// ReadHeaderTimeout bounds the time from a connection's first byte or
	// a request's FCGI_BEGIN_REQUEST to the end of its FCGI_PARAMS,
	// record after record; 0 means DefaultReadHeaderTimeout. A web server
	// that trickles its records is cut off.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds the wait for each record of a request body
	// (FCGI_STDIN, FCGI_DATA) still arriving; 0 means DefaultReadTimeout.
	ReadTimeout time.Duration
	// IdleTimeout is how long a kept connection (FCGI_KEEP_CONN) with no
	// request stays open; 0 means DefaultIdleTimeout.
	IdleTimeout time.Duration
	// WriteTimeout bounds each write to the web server; 0 means
	// DefaultWriteTimeout. A web server that stops reading loses the
	// connection.
	WriteTimeout time.Duration
	// HandlerTimeout, when positive, bounds each request: its context is
	// cancelled, the client gets 503 if nothing was sent yet, and the
	// handler's later writes are dropped (php-fpm's
	// request_terminate_timeout). 0 means no bound.
	HandlerTimeout time.Duration

	// WebServerAddrs lists the peers allowed on TCP listeners (the spec's
	// FCGI_WEB_SERVER_ADDRS); others are closed at once and logged. Nil
	// means the FCGI_WEB_SERVER_ADDRS environment variable when set,
	// otherwise any peer. Unix sockets are not checked.
	WebServerAddrs []string

	inShutdown atomic.Bool
	stats      counters

	mu        sync.Mutex
	listeners map[*net.Listener]struct{}
	serving   int  // Serve loops running
	cut       bool // Close was called: connections are closed, not drained
	conns     map[*conn]struct{}
	idleWait  chan struct{} // closed when conns and serving reach none during Shutdown
	slots     chan struct{} // MaxRequests semaphore; nil without a bound
	connSlots chan struct{} // MaxConns semaphore; nil without a bound
	closing   chan struct{} // closed by Shutdown and Close
	closeOnce sync.Once
	initOnce  sync.Once
}

// counters are the server's statistics, read by Stats.
type counters struct {
	acceptedConns atomic.Uint64
	requests      atomic.Uint64
	active        atomic.Int64
	maxActive     atomic.Int64
	overloaded    atomic.Uint64
	headersLarge  atomic.Uint64
	lends         atomic.Uint64 // a serve loop lent its reader to a handler
}

// Stats is a snapshot of a Server's counters.
type Stats struct {
	AcceptedConns uint64 // connections accepted since start
	OpenConns     int    // connections open now
	Requests      uint64 // requests started since start
	Active        int64  // requests being answered now
	MaxActive     int64  // the most requests answered at once
	Overloaded    uint64 // requests refused: 503 past MaxRequests, FCGI_OVERLOADED past MaxRequestsPerConn
	HeadersLarge  uint64 // requests refused with 431: a header block past MaxParamsBytes or MaxConnParamsBytes
}

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	open := len(s.conns)
	s.mu.Unlock()
	return Stats{
		AcceptedConns: s.stats.acceptedConns.Load(),
		OpenConns:     open,
		Requests:      s.stats.requests.Load(),
		Active:        s.stats.active.Load(),
		MaxActive:     s.stats.maxActive.Load(),
		Overloaded:    s.stats.overloaded.Load(),
		HeadersLarge:  s.stats.headersLarge.Load(),
	}
}

func (s *Server) init() {
	s.initOnce.Do(func() {
		if s.MaxRequests > 0 {
			s.slots = make(chan struct{}, s.MaxRequests)
		}
		if s.MaxConns > 0 {
			s.connSlots = make(chan struct{}, s.MaxConns)
		}
		s.closing = make(chan struct{})
	})
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

func (s *Server) responder() bridge.Responder {
	if s.Responder != nil {
		return s.Responder
	}
	return &bridge.HandlerResponder{Handler: s.Handler, Logger: s.Logger, Debug: s.Debug}
}

// Serve accepts connections on l and serves each in its own goroutine. It
// always returns a non-nil error; after Shutdown or Close, ErrServerClosed.
// Serve closes l when it returns.
func (s *Server) Serve(l net.Listener) error {
	s.init()
	allowed, err := s.allowedPeers()
	if err != nil {
		l.Close()
		return err
	}
	if !s.trackListener(&l, true) {
		l.Close()
		return ErrServerClosed
	}
	defer s.trackListener(&l, false)
	defer l.Close()

	baseCtx := context.Background()
	if s.BaseContext != nil {
		if baseCtx = s.BaseContext(l); baseCtx == nil {
			panic("fastcgi: BaseContext returned a nil context")
		}
	}
	log := s.logger()
	responder := s.responder()
	var delay time.Duration // backoff after temporary accept errors
	for {
		if s.connSlots != nil {
			select {
			case s.connSlots <- struct{}{}:
			case <-s.closing:
				return ErrServerClosed
			}
		}
		rwc, err := l.Accept()
		if err != nil {
			if s.connSlots != nil {
				<-s.connSlots
			}
			if s.inShutdown.Load() {
				return ErrServerClosed
			}
			if isTemporary(err) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				log.Warn("fastcgi: accept error; retrying", "err", err, "delay", delay)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		if !peerAllowed(rwc, allowed) {
			log.Warn("fastcgi: connection refused: peer not in FCGI_WEB_SERVER_ADDRS", "remote", rwc.RemoteAddr().String())
			rwc.Close()
			if s.connSlots != nil {
				<-s.connSlots
			}
			continue
		}
		s.stats.acceptedConns.Add(1)
		c := newConn(s, rwc, baseCtx, responder)
		ok, drain := s.addConn(c)
		if !ok {
			rwc.Close()
			if s.connSlots != nil {
				<-s.connSlots
			}
			return ErrServerClosed
		}
		if drain {
			// Accepted as Shutdown closed the listener: the web server
			// has sent a request on it, or is about to. Shutdown waits
			// for this loop, and the connection drains like the others.
			c.drain()
		}
		go c.serve()
	}
}

// isTemporary reports accept errors worth retrying, such as running out of
// file descriptors.
func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// trackListener adds or removes a Serve loop and its listener. Adding
// fails once Shutdown or Close has been called.
func (s *Server) trackListener(l *net.Listener, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		if s.inShutdown.Load() {
			return false
		}
		if s.listeners == nil {
			s.listeners = make(map[*net.Listener]struct{})
		}
		s.listeners[l] = struct{}{}
		s.serving++
		return true
	}
	delete(s.listeners, l)
	s.serving--
	s.idleLocked()
	return true
}

// addConn tracks a new connection: ok is false once Close was called (the
// connection is to be closed), drain is true once Shutdown has begun.
func (s *Server) addConn(c *conn) (ok, drain bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cut {
		return false, false
	}
	if s.conns == nil {
		s.conns = make(map[*conn]struct{})
	}
	s.conns[c] = struct{}{}
	return true, s.inShutdown.Load()
}

// untrackConn stops tracking a connection, and reports whether it was.
func (s *Server) untrackConn(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.conns[c]; !ok {
		return false
	}
	delete(s.conns, c)
	if s.connSlots != nil {
		<-s.connSlots
	}
	s.idleLocked()
	return true
}

// idleLocked ends Shutdown's wait once no connection is open and no Serve
// loop is left to accept one.
func (s *Server) idleLocked() {
	if len(s.conns) == 0 && s.serving == 0 && s.idleWait != nil {
		close(s.idleWait)
		s.idleWait = nil
	}
}

// Shutdown stops the server gracefully: it closes the listeners, closes the
// connections that have no request in flight, and waits for the Serve
// loops to return (a connection accepted as its listener closed is served
// like the others) and for the requests in flight to be answered, closing
// each connection once its last request is done (whatever FCGI_KEEP_CONN
// said) and no other is waiting in its socket: nginx may send one on a
// kept connection before it sees the connection close, and it is
// answered. If ctx ends first, Shutdown returns ctx.Err() and the
// remaining connections stay open: call Close to cut them. Once Shutdown
// has been called, Serve returns ErrServerClosed.
func (s *Server) Shutdown(ctx context.Context) error {
	s.startClosing()
	s.mu.Lock()
	s.closeListenersLocked()
	var wait chan struct{}
	if len(s.conns) > 0 || s.serving > 0 {
		if s.idleWait == nil {
			s.idleWait = make(chan struct{})
		}
		wait = s.idleWait
	}
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.drain()
	}
	if wait == nil {
		return nil
	}
	select {
	case <-wait:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close closes the listeners and every connection at once: requests in
// flight have their contexts cancelled with ErrServerClosed as the cause
// and get no answer. Use Shutdown to let them finish.
func (s *Server) Close() error {
	s.startClosing()
	s.mu.Lock()
	s.cut = true
	err := s.closeListenersLocked()
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.close(ErrServerClosed)
	}
	return err
}

func (s *Server) startClosing() {
	s.init()
	s.inShutdown.Store(true)
	s.closeOnce.Do(func() { close(s.closing) })
}

func (s *Server) closeListenersLocked() error {
	var err error
	for l := range s.listeners {
		if cerr := (*l).Close(); cerr != nil && err == nil {
			err = cerr
		}
		delete(s.listeners, l)
	}
	return err
}

// acquireSlot takes one of MaxRequests slots. It waits only when
// QueueRequests is set, at most until deadline or ctx's end.
func (s *Server) acquireSlot(ctx context.Context, deadline time.Duration) bool {
	if s.slots == nil {
		return true
	}
	select {
	case s.slots <- struct{}{}:
		return true
	default:
	}
	if !s.QueueRequests {
		return false
	}
	t := time.NewTimer(deadline)
	defer t.Stop()
	select {
	case s.slots <- struct{}{}:
		return true
	case <-t.C:
		return false
	case <-ctx.Done():
		return false
	}
}

func (s *Server) releaseSlot() {
	if s.slots != nil {
		<-s.slots
	}
}

func (s *Server) requestStarted() {
	s.stats.requests.Add(1)
	n := s.stats.active.Add(1)
	for {
		m := s.stats.maxActive.Load()
		if n <= m || s.stats.maxActive.CompareAndSwap(m, n) {
			return
		}
	}
}
