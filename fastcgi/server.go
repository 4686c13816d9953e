package fastcgi

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/cgirun/cgirun/bridge"
	"github.com/cgirun/cgirun/internal/gateway"
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

	track gateway.Tracker
	stats counters
}

// counters are the server's statistics, read by Stats.
type counters struct {
	lends atomic.Uint64 // a serve loop lent its reader to a handler
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
	return Stats(s.track.Stats())
}

func (s *Server) init() {
	s.track.Init("fastcgi", ErrServerClosed, s.MaxConns, s.MaxRequests)
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
	responder := s.responder()
	return s.track.Serve(l, gateway.ServeConfig{
		Logger:      s.logger(),
		BaseContext: s.BaseContext,
		Peers:       allowed,
		NewConn: func(rwc net.Conn, base context.Context) gateway.Conn {
			return newConn(s, rwc, base, responder)
		},
	})
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
	s.init()
	return s.track.Shutdown(ctx)
}

// Close closes the listeners and every connection at once: requests in
// flight have their contexts cancelled with ErrServerClosed as the cause
// and get no answer. Use Shutdown to let them finish.
func (s *Server) Close() error {
	s.init()
	return s.track.Close()
}
