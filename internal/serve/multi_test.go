package serve

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
)

// nameServer answers every connection with its name and closes it. Its
// Shutdown closes its listeners and waits for hold, a request in flight.
type nameServer struct {
	name string
	hold chan struct{} // nil: nothing in flight

	mu     sync.Mutex
	lns    []net.Listener
	closed bool
}

var errNameServerClosed = errors.New("nameServer closed")

func (s *nameServer) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		l.Close()
		return errNameServerClosed
	}
	s.lns = append(s.lns, l)
	s.mu.Unlock()
	for {
		c, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.closed {
				return errNameServerClosed
			}
			return err
		}
		io.WriteString(c, s.name)
		c.Close()
	}
}

func (s *nameServer) Shutdown(ctx context.Context) error {
	s.Close()
	if s.hold != nil {
		select {
		case <-s.hold:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (s *nameServer) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for _, l := range s.lns {
		l.Close()
	}
	return nil
}

// ask connects to l, sends first and returns what the server answers.
func ask(t *testing.T, l net.Listener, first string) string {
	t.Helper()
	return waitClosed(t, dialSend(t, l, []byte(first)))
}

// TestMulti: a sniffed listener hands each protocol's connections to its
// server and refuses those of a protocol without one; a listener of one
// protocol goes to that protocol's server; Shutdown waits for every
// server and Serve then returns ErrServerClosed.
func TestMulti(t *testing.T) {
	sniffed, scgiOnly := listenOn(t, "unix"), listenOn(t, "tcp")
	hold := make(chan struct{})
	m := &Multi{
		Servers: [numProtocols]Server{FastCGI: &nameServer{name: "fastcgi"}, SCGI: &nameServer{name: "scgi", hold: hold}, HTTP: &nameServer{name: "http"}},
		Of: func(l net.Listener) Protocol {
			if l == sniffed {
				return Any
			}
			return SCGI
		},
	}
	errc := make(chan error, 2)
	for _, l := range []net.Listener{sniffed, scgiOnly} {
		go func() { errc <- m.Serve(l) }()
	}
	for _, tt := range []struct{ first, want string }{{"\x01", "fastcgi"}, {"1", "scgi"}, {"GET", "http"}, {"\x00", ""}, {"\x01", "fastcgi"}} {
		if got := ask(t, sniffed, tt.first); got != tt.want {
			t.Errorf("the sniffed socket answered %q to %q, want %q", got, tt.first, tt.want)
		}
	}
	if got := ask(t, scgiOnly, "GET"); got != "scgi" {
		t.Errorf("the SCGI socket answered %q, want scgi", got)
	}
	shut := make(chan error, 1)
	go func() { shut <- m.Shutdown(context.Background()) }()
	for range 2 {
		if err := <-errc; !errors.Is(err, ErrServerClosed) || !IsClosed(err) {
			t.Errorf("Serve = %v, want ErrServerClosed", err)
		}
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown = %v before the SCGI server's request ended", err)
	default:
	}
	close(hold)
	if err := <-shut; err != nil {
		t.Errorf("Shutdown = %v", err)
	}
	if c, err := net.Dial("unix", sniffed.Addr().String()); err == nil {
		c.Close()
		t.Error("the sniffed socket still accepts after Shutdown")
	}
}

// TestMultiServerFails: a server that stops serving a sniffed listener on
// its own stops the others there, and Serve returns its error.
func TestMultiServerFails(t *testing.T) {
	l := listenOn(t, "unix")
	boom := errors.New("boom")
	m := &Multi{
		Servers: [numProtocols]Server{FastCGI: &nameServer{name: "fastcgi"}, UWSGI: serverFunc(func(net.Listener) error { return boom })},
		Of:      func(net.Listener) Protocol { return Any },
	}
	if err := m.Serve(l); err != boom {
		t.Errorf("Serve = %v, want %v", err, boom)
	}
	if c, err := net.Dial("unix", l.Addr().String()); err == nil {
		c.Close()
		t.Error("the socket still accepts after Serve returned")
	}
}

// serverFunc is a Server whose Serve is the function.
type serverFunc func(net.Listener) error

func (f serverFunc) Serve(l net.Listener) error   { return f(l) }
func (serverFunc) Shutdown(context.Context) error { return nil }
func (serverFunc) Close() error                   { return nil }
