package gateway

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Conn is a connection a Tracker serves.
type Conn interface {
	// Serve serves the connection, on a goroutine of its own; it returns
	// once the connection is closed, and calls the Tracker's Remove.
	Serve()
	// Drain makes the connection close once it has answered what it was
	// sent, as Shutdown asks: an idle one closes soon.
	Drain()
	// Close closes the connection at once; cause is what its requests'
	// contexts are cancelled with.
	Close(cause error)
}

// Tracker is a gateway server's bookkeeping: its accept loops and their
// listeners, its open connections, the slots of MaxConns and
// MaxRequests, its counters, and Shutdown and Close in net/http.Server's
// shape. The zero value is ready once Init has set the limits.
type Tracker struct {
	// Immutable after Init.
	proto     string        // the package name, in log lines and panics
	closedErr error         // what Serve returns once closed
	slots     chan struct{} // MaxRequests semaphore; nil without a bound
	connSlots chan struct{} // MaxConns semaphore; nil without a bound
	closing   chan struct{} // closed by Shutdown and Close

	inShutdown atomic.Bool
	stats      counters

	mu        sync.Mutex
	listeners map[*net.Listener]struct{}
	serving   int  // Serve loops running
	cut       bool // Close was called: connections are closed, not drained
	conns     map[Conn]struct{}
	idleWait  chan struct{} // closed when conns and serving reach none during Shutdown

	closeOnce sync.Once
	initOnce  sync.Once
}

// counters are a server's statistics, read by Stats.
type counters struct {
	acceptedConns atomic.Uint64
	requests      atomic.Uint64
	active        atomic.Int64
	maxActive     atomic.Int64
	overloaded    atomic.Uint64
	headersLarge  atomic.Uint64
}

// Stats is a snapshot of a Tracker's counters. The servers' own Stats
// types have the same fields, so that one converts to the other.
type Stats struct {
	AcceptedConns uint64
	OpenConns     int
	Requests      uint64
	Active        int64
	MaxActive     int64
	Overloaded    uint64
	HeadersLarge  uint64
}

// Init sets the package name that log lines start with, the error Serve
// returns once the server is closed, and the bounds on open connections
// and requests answered at once (0: none). Only the first call counts;
// Serve, Shutdown and Close need it made.
func (t *Tracker) Init(proto string, closed error, maxConns, maxRequests int) {
	t.initOnce.Do(func() {
		t.proto, t.closedErr = proto, closed
		if maxRequests > 0 {
			t.slots = make(chan struct{}, maxRequests)
		}
		if maxConns > 0 {
			t.connSlots = make(chan struct{}, maxConns)
		}
		t.closing = make(chan struct{})
	})
}

// ServeConfig is what one Serve loop needs from its server.
type ServeConfig struct {
	Logger *slog.Logger
	// BaseContext returns the base context of the connections accepted
	// on l; nil means context.Background().
	BaseContext func(l net.Listener) context.Context
	// Peers are the TCP peers allowed (AllowedPeers); nil lets any in.
	Peers []netip.Addr
	// NewConn makes the Conn that serves rwc, whose requests' contexts
	// derive from base.
	NewConn func(rwc net.Conn, base context.Context) Conn
}

// Serve accepts connections on l and serves each in its own goroutine,
// taking a MaxConns slot for each before accepting it. It always returns
// a non-nil error; after Shutdown or Close, the error given to Init. Serve
// closes l when it returns.
func (t *Tracker) Serve(l net.Listener, cfg ServeConfig) error {
	if !t.trackListener(&l, true) {
		l.Close()
		return t.closedErr
	}
	defer t.trackListener(&l, false)
	defer l.Close()

	baseCtx := context.Background()
	if cfg.BaseContext != nil {
		if baseCtx = cfg.BaseContext(l); baseCtx == nil {
			panic(t.proto + ": BaseContext returned a nil context")
		}
	}
	log := cfg.Logger
	var delay time.Duration // backoff after temporary accept errors
	for {
		if t.connSlots != nil {
			select {
			case t.connSlots <- struct{}{}:
			case <-t.closing:
				return t.closedErr
			}
		}
		rwc, err := l.Accept()
		if err != nil {
			t.releaseConnSlot()
			if t.inShutdown.Load() {
				return t.closedErr
			}
			if isTemporary(err) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				log.Warn(t.proto+": accept error; retrying", "err", err, "delay", delay)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		if !PeerAllowed(rwc, cfg.Peers) {
			log.Warn(t.proto+": connection refused: peer not in "+PeersVar, "remote", rwc.RemoteAddr().String())
			rwc.Close()
			t.releaseConnSlot()
			continue
		}
		t.stats.acceptedConns.Add(1)
		c := cfg.NewConn(rwc, baseCtx)
		ok, drain := t.addConn(c)
		if !ok {
			rwc.Close()
			t.releaseConnSlot()
			return t.closedErr
		}
		if drain {
			// Accepted as Shutdown closed the listener: the web server
			// has sent a request on it, or is about to. Shutdown waits
			// for this loop, and the connection drains like the others.
			c.Drain()
		}
		go c.Serve()
	}
}

func (t *Tracker) releaseConnSlot() {
	if t.connSlots != nil {
		<-t.connSlots
	}
}

// isTemporary reports accept errors worth retrying, such as running out of
// file descriptors.
func isTemporary(err error) bool {
	var te interface{ Temporary() bool }
	return errors.As(err, &te) && te.Temporary()
}

// trackListener adds or removes a Serve loop and its listener. Adding
// fails once Shutdown or Close has been called.
func (t *Tracker) trackListener(l *net.Listener, add bool) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if add {
		if t.inShutdown.Load() {
			return false
		}
		if t.listeners == nil {
			t.listeners = make(map[*net.Listener]struct{})
		}
		t.listeners[l] = struct{}{}
		t.serving++
		return true
	}
	delete(t.listeners, l)
	t.serving--
	t.idleLocked()
	return true
}

// addConn tracks a new connection: ok is false once Close was called (the
// connection is to be closed), drain is true once Shutdown has begun.
func (t *Tracker) addConn(c Conn) (ok, drain bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cut {
		return false, false
	}
	if t.conns == nil {
		t.conns = make(map[Conn]struct{})
	}
	t.conns[c] = struct{}{}
	return true, t.inShutdown.Load()
}

// Remove stops tracking a connection that closed, giving its MaxConns
// slot back, and reports whether it was tracked.
func (t *Tracker) Remove(c Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.conns[c]; !ok {
		return false
	}
	delete(t.conns, c)
	t.releaseConnSlot()
	t.idleLocked()
	return true
}

// idleLocked ends Shutdown's wait once no connection is open and no Serve
// loop is left to accept one.
func (t *Tracker) idleLocked() {
	if len(t.conns) == 0 && t.serving == 0 && t.idleWait != nil {
		close(t.idleWait)
		t.idleWait = nil
	}
}

// Shutdown closes the listeners, drains every connection (Conn.Drain) and
// waits for the Serve loops to return and the connections to close. If
// ctx ends first, it returns ctx.Err() and the connections left stay
// open.
func (t *Tracker) Shutdown(ctx context.Context) error {
	t.startClosing()
	t.mu.Lock()
	t.closeListenersLocked()
	var wait chan struct{}
	if len(t.conns) > 0 || t.serving > 0 {
		if t.idleWait == nil {
			t.idleWait = make(chan struct{})
		}
		wait = t.idleWait
	}
	conns := t.connsLocked()
	t.mu.Unlock()
	for _, c := range conns {
		c.Drain()
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

// Close closes the listeners and every connection at once, with the
// error given to Init as the cause, and returns the first error of
// closing a listener.
func (t *Tracker) Close() error {
	t.startClosing()
	t.mu.Lock()
	t.cut = true
	err := t.closeListenersLocked()
	conns := t.connsLocked()
	t.mu.Unlock()
	for _, c := range conns {
		c.Close(t.closedErr)
	}
	return err
}

func (t *Tracker) connsLocked() []Conn {
	conns := make([]Conn, 0, len(t.conns))
	for c := range t.conns {
		conns = append(conns, c)
	}
	return conns
}

// Closing reports whether Shutdown or Close has been called.
func (t *Tracker) Closing() bool { return t.inShutdown.Load() }

func (t *Tracker) startClosing() {
	t.inShutdown.Store(true)
	t.closeOnce.Do(func() { close(t.closing) })
}

func (t *Tracker) closeListenersLocked() error {
	var err error
	for l := range t.listeners {
		if cerr := (*l).Close(); cerr != nil && err == nil {
			err = cerr
		}
		delete(t.listeners, l)
	}
	return err
}

// AcquireSlot takes one of MaxRequests slots and reports whether it got
// one. It waits only when queue is set, at most for wait or until ctx
// ends. A request that gets one calls ReleaseSlot when done.
func (t *Tracker) AcquireSlot(ctx context.Context, queue bool, wait time.Duration) bool {
	if t.slots == nil {
		return true
	}
	select {
	case t.slots <- struct{}{}:
		return true
	default:
	}
	if !queue {
		return false
	}
	tm := time.NewTimer(wait)
	defer tm.Stop()
	select {
	case t.slots <- struct{}{}:
		return true
	case <-tm.C:
		return false
	case <-ctx.Done():
		return false
	}
}

// ReleaseSlot gives back the slot of AcquireSlot and counts the request
// as no longer active.
func (t *Tracker) ReleaseSlot() {
	// Counted out first: a queued request may take the slot the moment
	// it is given back, and Active, with MaxActive, must stay within
	// MaxRequests.
	t.stats.active.Add(-1)
	if t.slots != nil {
		<-t.slots
	}
}

// RequestStarted counts a request whose answer begins, holding a slot.
func (t *Tracker) RequestStarted() {
	t.stats.requests.Add(1)
	n := t.stats.active.Add(1)
	for {
		m := t.stats.maxActive.Load()
		if n <= m || t.stats.maxActive.CompareAndSwap(m, n) {
			return
		}
	}
}

// Overloaded counts a request refused for want of a slot.
func (t *Tracker) Overloaded() { t.stats.overloaded.Add(1) }

// HeadersLarge counts a request refused with 431.
func (t *Tracker) HeadersLarge() { t.stats.headersLarge.Add(1) }

// Stats returns the counters.
func (t *Tracker) Stats() Stats {
	t.mu.Lock()
	open := len(t.conns)
	t.mu.Unlock()
	return Stats{
		AcceptedConns: t.stats.acceptedConns.Load(),
		OpenConns:     open,
		Requests:      t.stats.requests.Load(),
		Active:        t.stats.active.Load(),
		MaxActive:     t.stats.maxActive.Load(),
		Overloaded:    t.stats.overloaded.Load(),
		HeadersLarge:  t.stats.headersLarge.Load(),
	}
}
