package serve

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"
)

// Protocol is a protocol that a connection's first byte tells apart on a
// socket that answers every protocol (see Sniff).
type Protocol int

// The protocols, by the first byte of a connection.
const (
	FastCGI Protocol = iota // 0x01, the version of a FastCGI record header
	SCGI                    // an ASCII digit, the start of a netstring's length
	UWSGI                   // 0x00, modifier1 of a uwsgi packet header
	HTTP                    // an ASCII capital letter, a method's first; 0x16, a TLS ClientHello, with SniffConfig.TLS
	numProtocols
)

var protocolNames = [numProtocols]string{FastCGI: "FastCGI", SCGI: "SCGI", UWSGI: "uwsgi", HTTP: "HTTP"}

func (p Protocol) String() string {
	if p < 0 || p >= numProtocols {
		return fmt.Sprintf("Protocol(%d)", int(p))
	}
	return protocolNames[p]
}

// ProtocolOf returns the protocol whose connections start with b, and
// false for a byte that starts none. With tls, 0x16, the first byte of a
// TLS handshake record, is HTTP's: the HTTP server then serves HTTPS.
//
// Every ASCII digit is SCGI's, 0 too: a netstring's length is the only
// thing a digit can start, and the SCGI server, whose parser knows the
// netstring's rules, refuses a length with a leading zero or an empty
// header block with its own error.
func ProtocolOf(b byte, tls bool) (Protocol, bool) {
	switch {
	case b == 0x01:
		return FastCGI, true
	case b == 0x00:
		return UWSGI, true
	case '0' <= b && b <= '9':
		return SCGI, true
	case 'A' <= b && b <= 'Z':
		return HTTP, true
	case b == 0x16 && tls:
		return HTTP, true
	}
	return 0, false
}

// SniffConfig is how Sniff tells the connections of a socket apart.
type SniffConfig struct {
	// Timeout bounds the wait for a connection's first byte: past it, the
	// connection is closed and logged at debug level. 0 means no bound.
	Timeout time.Duration
	// MaxPending bounds the connections whose first byte is awaited or
	// that wait for their server to accept them; past it, new
	// connections wait in the kernel's backlog. 0 means no bound.
	MaxPending int
	// TLS sends a TLS ClientHello (first byte 0x16) to the HTTP listener,
	// which is then served with TLS; otherwise such a connection is
	// refused as an unknown protocol.
	TLS bool
	// Allowed, when set, says whether a connection's peer may be
	// served; one it refuses is closed before its first byte is read
	// and logged. FCGI_WEB_SERVER_ADDRS's allowlist goes here, so that
	// it holds for HTTP as for the gateway protocols.
	Allowed func(net.Conn) bool
	// Log receives the refusals; nil means slog.Default().
	Log *slog.Logger
}

// Sniffer serves one listening socket as one listener per protocol: it
// accepts each connection, reads its first byte in a goroutine of its
// own, so that a client that sends nothing holds no other, and hands the
// connection to the listener of the protocol that byte starts (see
// ProtocolOf). A connection whose first byte starts no protocol is closed
// and logged with that byte.
//
// The first byte is peeked (MSG_PEEK), not read, from a *net.TCPConn or a
// *net.UnixConn: the server gets the socket itself, with its raw reads,
// CloseWrite and peer address. Any other connection is handed in a
// wrapper whose first Read returns the byte read.
type Sniffer struct {
	// Immutable.
	l          net.Listener
	cfg        SniffConfig
	log        *slog.Logger
	children   [numProtocols]*sniffListener
	pending    chan struct{} // MaxPending's slots; nil without a bound
	closing    chan struct{} // closed by Close
	acceptDone chan struct{} // closed when the accept loop returns
	full       func()        // test hook: the accept loop waits for a slot

	mu       sync.Mutex
	sniffing map[net.Conn]struct{} // awaiting their first byte
	err      error                 // the parent's accept error, once it failed
	closed   bool
	open     int // children not closed
	wg       sync.WaitGroup
}

// Sniff starts serving l's connections through one listener per protocol
// (see Sniffer.Listener). Closing every one of them, or the Sniffer,
// closes l.
func Sniff(l net.Listener, cfg SniffConfig) *Sniffer { return sniff(l, cfg, nil) }

// sniff is Sniff with a test hook, full, called when the accept loop
// waits for one of MaxPending's slots.
func sniff(l net.Listener, cfg SniffConfig, full func()) *Sniffer {
	s := &Sniffer{l: l, cfg: cfg, log: cfg.Log, full: full, closing: make(chan struct{}), acceptDone: make(chan struct{}),
		sniffing: map[net.Conn]struct{}{}, open: int(numProtocols)}
	if s.log == nil {
		s.log = slog.Default()
	}
	if cfg.MaxPending > 0 {
		s.pending = make(chan struct{}, cfg.MaxPending)
	}
	for p := range numProtocols {
		s.children[p] = &sniffListener{s: s, p: p, conns: make(chan net.Conn), done: make(chan struct{})}
	}
	go s.acceptLoop()
	return s
}

// Listener returns the listener of p's connections. Its Accept returns
// net.ErrClosed once it or the Sniffer is closed, and the parent's error
// when the parent's Accept fails; its Addr is the parent's. Closing it
// refuses p's connections from then on.
func (s *Sniffer) Listener(p Protocol) net.Listener { return s.children[p] }

// Close closes the parent listener, every protocol's listener and the
// connections whose first byte is awaited, and returns once the
// Sniffer's goroutines have. It returns the parent's Close error.
func (s *Sniffer) Close() error {
	err := s.closeParent()
	for _, c := range s.children {
		c.close()
	}
	<-s.acceptDone
	s.wg.Wait()
	return err
}

// closeParent closes the parent and the connections being sniffed, once.
func (s *Sniffer) closeParent() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.closing)
	for c := range s.sniffing {
		c.Close()
	}
	s.mu.Unlock()
	return s.l.Close()
}

func (s *Sniffer) acceptLoop() {
	defer close(s.acceptDone)
	var backoff time.Duration
	for {
		if s.pending != nil && !s.takeSlot() {
			return
		}
		c, err := s.l.Accept()
		if err != nil {
			s.release()
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) || errors.Is(err, syscall.ECONNABORTED) {
				// As net/http.Server does: wait, then try again.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("cgirun: accept failed; retrying", "err", err, "in", backoff)
				t := time.NewTimer(backoff)
				select {
				case <-t.C:
					continue
				case <-s.closing:
					t.Stop()
					return
				}
			}
			s.mu.Lock()
			if !s.closed {
				s.err = err
			}
			s.mu.Unlock()
			for _, ch := range s.children {
				ch.close()
			}
			return
		}
		backoff = 0
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			s.release()
			return
		}
		s.sniffing[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.sniffConn(c)
	}
}

// takeSlot waits for one of MaxPending's slots, and reports false when
// the Sniffer closes first.
func (s *Sniffer) takeSlot() bool {
	select {
	case s.pending <- struct{}{}:
		return true
	default:
	}
	if s.full != nil {
		s.full()
	}
	select {
	case s.pending <- struct{}{}:
		return true
	case <-s.closing:
		return false
	}
}

// release frees a MaxPending slot.
func (s *Sniffer) release() {
	if s.pending != nil {
		<-s.pending
	}
}

// sniffConn reads c's first byte and hands c to its protocol's listener.
func (s *Sniffer) sniffConn(c net.Conn) {
	defer s.wg.Done()
	defer s.release()
	if s.cfg.Allowed != nil && !s.cfg.Allowed(c) {
		s.mu.Lock()
		delete(s.sniffing, c)
		s.mu.Unlock()
		c.Close()
		s.log.Warn("cgirun: connection refused: peer not in "+envWebServerAddrs, "remote", c.RemoteAddr())
		return
	}
	if s.cfg.Timeout > 0 {
		c.SetReadDeadline(time.Now().Add(s.cfg.Timeout))
	}
	b, hc, err := peekByte(c)
	s.mu.Lock()
	delete(s.sniffing, c)
	closed := s.closed
	s.mu.Unlock()
	if err == nil && s.cfg.Timeout > 0 {
		err = c.SetReadDeadline(time.Time{})
	}
	if closed || err != nil {
		c.Close()
		if !closed {
			s.log.Debug("cgirun: connection closed before its first byte", "remote", c.RemoteAddr(), "err", err)
		}
		return
	}
	p, ok := ProtocolOf(b, s.cfg.TLS)
	if !ok {
		c.Close()
		s.log.Warn("cgirun: connection refused: its first byte starts no protocol served here (FastCGI 0x01, uwsgi 0x00, SCGI a digit, HTTP a capital letter)",
			"byte", fmt.Sprintf("0x%02x", b), "remote", c.RemoteAddr())
		return
	}
	ch := s.children[p]
	select {
	case ch.conns <- hc:
	case <-ch.done:
		c.Close()
		s.log.Debug("cgirun: connection refused: its protocol's listener is closed", "protocol", p.String(), "remote", c.RemoteAddr())
	}
}

// peekByte returns c's first byte and the connection to hand on: c itself
// when the byte was peeked, a wrapper that returns it first otherwise.
func peekByte(c net.Conn) (byte, net.Conn, error) {
	var sc syscall.Conn
	switch t := c.(type) {
	case *net.TCPConn:
		sc = t
	case *net.UnixConn:
		sc = t
	}
	if sc == nil {
		var b [1]byte
		if _, err := c.Read(b[:]); err != nil {
			return 0, nil, err
		}
		return b[0], &replayConn{Conn: c, first: b[0], pending: true}, nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return 0, nil, err
	}
	var b [1]byte
	var n int
	var rerr error
	// Read waits for the socket to be readable, within its deadline,
	// whenever the function returns false.
	err = raw.Read(func(fd uintptr) bool {
		for {
			n, _, rerr = syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK)
			if rerr != syscall.EINTR {
				return rerr != syscall.EAGAIN
			}
		}
	})
	switch {
	case err != nil:
		return 0, nil, err
	case rerr != nil:
		return 0, nil, rerr
	case n == 0:
		return 0, nil, errEOFBeforeByte
	}
	return b[0], c, nil
}

var errEOFBeforeByte = errors.New("the peer closed the connection without sending a byte")

// replayConn is a connection whose first byte was read already: its first
// Read returns it.
type replayConn struct {
	net.Conn
	first   byte
	pending bool
}

func (c *replayConn) Read(p []byte) (int, error) {
	if c.pending && len(p) > 0 {
		c.pending = false
		p[0] = c.first
		return 1, nil
	}
	return c.Conn.Read(p)
}

// sniffListener is the listener of one protocol's connections.
type sniffListener struct {
	s     *Sniffer
	p     Protocol
	conns chan net.Conn
	done  chan struct{} // closed by close
	once  sync.Once
}

func (l *sniffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
	}
	l.s.mu.Lock()
	err := l.s.err
	l.s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return nil, &net.OpError{Op: "accept", Net: l.s.l.Addr().Network(), Addr: l.s.l.Addr(), Err: net.ErrClosed}
}

// Close closes the listener; the last one closed closes the parent.
func (l *sniffListener) Close() error {
	if !l.close() {
		return nil
	}
	l.s.mu.Lock()
	l.s.open--
	last := l.s.open == 0
	l.s.mu.Unlock()
	if last {
		return l.s.closeParent()
	}
	return nil
}

// close marks l closed, and reports whether this call did.
func (l *sniffListener) close() bool {
	did := false
	l.once.Do(func() {
		close(l.done)
		did = true
	})
	return did
}

func (l *sniffListener) Addr() net.Addr { return l.s.l.Addr() }
