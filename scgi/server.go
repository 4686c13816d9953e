package scgi

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/cgirun/cgirun/bridge"
	"github.com/cgirun/cgirun/internal/defaults"
	"github.com/cgirun/cgirun/internal/gateway"
)

// ErrServerClosed is returned by Serve after Shutdown or Close. It is also
// the cause (context.Cause) with which Close cancels the requests in
// flight.
var ErrServerClosed = errors.New("scgi: Server closed")

// Errors that end a request's context and body reads, beside
// ErrServerClosed (Close); context.Cause tells which.
var (
	// ErrConnClosed: the web server closed the connection (nginx and
	// Apache do when their client leaves), or a write to it failed.
	ErrConnClosed = errors.New("scgi: connection to the web server closed")
	// ErrHandlerTimeout: the request ran longer than HandlerTimeout.
	ErrHandlerTimeout = errors.New("scgi: handler timeout")
)

// Defaults of the Server's limits, the same as package fastcgi's.
const (
	DefaultMaxParamsBytes    = 128 << 10
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 60 * time.Second
	DefaultWriteTimeout      = 60 * time.Second
)

// Server is an SCGI application server: it answers the web server's
// requests with a bridge.Responder, normally an http.Handler. Its shape is
// net/http.Server's, and its fields are fastcgi.Server's where they apply.
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

	// MaxConns bounds the open connections, each one request; 0 means no
	// bound. Connections past it wait in the listener's backlog.
	MaxConns int
	// MaxRequests bounds the requests being answered at once; 0 means no
	// bound. A request past it gets 503 Service Unavailable with
	// Retry-After: 1, or waits for a slot when QueueRequests is set.
	MaxRequests int
	// QueueRequests makes a request past MaxRequests wait for a slot, up to
	// ReadHeaderTimeout, instead of being refused at once (then it gets
	// the 503).
	QueueRequests bool
	// MaxParamsBytes bounds a request's header block, the netstring's
	// length; 0 means DefaultMaxParamsBytes. A request past it is
	// answered with 431.
	MaxParamsBytes int

	// ReadHeaderTimeout bounds the time from accepting a connection to the
	// end of its header block; 0 means DefaultReadHeaderTimeout. A web
	// server that trickles its header is cut off.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds each read of the request body; 0 means
	// DefaultReadTimeout.
	ReadTimeout time.Duration
	// WriteTimeout bounds each write to the web server; 0 means
	// DefaultWriteTimeout. A web server that stops reading loses the
	// connection.
	WriteTimeout time.Duration
	// HandlerTimeout, when positive, bounds each request: its context is
	// cancelled, the client gets 503 if nothing was sent yet, and the
	// handler's later writes are dropped. 0 means no bound.
	HandlerTimeout time.Duration

	// WebServerAddrs lists the peers allowed on TCP listeners; others are
	// closed at once and logged. Nil means the FCGI_WEB_SERVER_ADDRS
	// environment variable when set, as for package fastcgi, so that one
	// setting guards a socket whatever protocol it serves; otherwise any
	// peer. Unix sockets are not checked.
	WebServerAddrs []string

	core     gateway.Single
	initOnce sync.Once
}

// Stats is a snapshot of a Server's counters.
type Stats struct {
	AcceptedConns uint64 // connections accepted since start
	OpenConns     int    // connections open now
	Requests      uint64 // requests started since start
	Active        int64  // requests being answered now
	MaxActive     int64  // the most requests answered at once
	Overloaded    uint64 // requests refused with 503 past MaxRequests
	HeadersLarge  uint64 // requests refused with 431: a header block past MaxParamsBytes
}

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	s.init()
	return Stats(s.core.Tracker.Stats())
}

func (s *Server) init() {
	s.initOnce.Do(func() {
		c := &s.core
		c.Protocol = gateway.Protocol{Name: "scgi", Frame: frame, Decode: decode}
		c.Logger = s.Logger
		if c.Logger == nil {
			c.Logger = slog.Default()
		}
		c.Responder = s.Responder
		if c.Responder == nil {
			c.Responder = &bridge.HandlerResponder{Handler: s.Handler, Logger: s.Logger, Debug: s.Debug}
		}
		c.MaxParamsBytes = defaults.Or(s.MaxParamsBytes, DefaultMaxParamsBytes)
		c.QueueRequests = s.QueueRequests
		c.ReadHeaderTimeout = defaults.Or(s.ReadHeaderTimeout, DefaultReadHeaderTimeout)
		c.ReadTimeout = defaults.Or(s.ReadTimeout, DefaultReadTimeout)
		c.WriteTimeout = defaults.Or(s.WriteTimeout, DefaultWriteTimeout)
		c.HandlerTimeout = s.HandlerTimeout
		c.ErrConnClosed, c.ErrHandlerTimeout = ErrConnClosed, ErrHandlerTimeout
		c.Tracker.Init("scgi", ErrServerClosed, s.MaxConns, s.MaxRequests)
	})
}

// Serve accepts connections on l and serves each in its own goroutine. It
// always returns a non-nil error; after Shutdown or Close, ErrServerClosed.
// Serve closes l when it returns.
func (s *Server) Serve(l net.Listener) error {
	s.init()
	return s.core.Serve(l, s.WebServerAddrs, s.BaseContext)
}

// Shutdown stops the server gracefully: it closes the listeners, closes
// the connections that have sent nothing yet, and waits for the Serve
// loops to return and for the requests in flight to be answered. If ctx
// ends first, Shutdown returns ctx.Err() and the remaining connections
// stay open: call Close to cut them. Once Shutdown has been called, Serve
// returns ErrServerClosed.
func (s *Server) Shutdown(ctx context.Context) error {
	s.init()
	return s.core.Tracker.Shutdown(ctx)
}

// Close closes the listeners and every connection at once: requests in
// flight have their contexts cancelled with ErrServerClosed as the cause
// and get no answer. Use Shutdown to let them finish.
func (s *Server) Close() error {
	s.init()
	return s.core.Tracker.Close()
}

// Listen opens a listener on addr ("unix:/run/app.sock", "/run/app.sock",
// "tcp:127.0.0.1:4000" or "127.0.0.1:4000") as fastcgi.Listen does: a unix
// socket file is created with mode (0 means 0660: whoever can connect can
// send any request), after removing a stale socket file that nothing
// listens on.
func Listen(addr string, mode fs.FileMode) (net.Listener, error) {
	return gateway.ListenConfig{Prefix: "scgi", Mode: mode}.Listen(addr)
}
