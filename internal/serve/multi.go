package serve

import (
	"context"
	"errors"
	"net"
	"sync"
)

// ErrServerClosed is returned by Multi.Serve after Multi's Shutdown or
// Close.
var ErrServerClosed = errors.New("cgirun: server closed")

// Any is the protocol of a listener that serves every protocol, told
// apart by each connection's first byte (see Sniff).
const Any Protocol = -1

// Multi is a Server made of one Server per protocol: it serves each
// listener with the server of the protocol Of names, and a listener of
// protocol Any with all of them, through a Sniffer. Shutdown and Close go
// to every server. Set its fields before Serve, and change them no more.
type Multi struct {
	// Servers holds the server of each protocol; a nil one has no
	// listener of its own, and a sniffed listener refuses its
	// connections.
	Servers [numProtocols]Server
	// Of returns the protocol of l, one of the listeners Serve is
	// given.
	Of func(l net.Listener) Protocol
	// Sniff is how a listener of protocol Any tells its connections
	// apart.
	Sniff SniffConfig

	mu       sync.Mutex
	shut     bool
	sniffers map[*Sniffer]struct{}
}

// Serve serves l with the server of its protocol, or with each server
// through a Sniffer for a listener of protocol Any, and returns once every
// server has stopped serving it; a server that stops on its own closes the
// Sniffer, and the others stop with it. It returns ErrServerClosed after
// Shutdown or Close, the first error otherwise.
func (m *Multi) Serve(l net.Listener) error {
	p := m.Of(l)
	if p != Any {
		return m.result(m.Servers[p].Serve(l))
	}
	m.mu.Lock()
	if m.shut {
		m.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	sn := Sniff(l, m.Sniff)
	if m.sniffers == nil {
		m.sniffers = map[*Sniffer]struct{}{}
	}
	m.sniffers[sn] = struct{}{}
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		delete(m.sniffers, sn)
		m.mu.Unlock()
	}()
	errc := make(chan error, numProtocols)
	n := 0
	for p, srv := range m.Servers {
		if srv == nil {
			sn.Listener(Protocol(p)).Close()
			continue
		}
		n++
		go func() { errc <- srv.Serve(sn.Listener(Protocol(p))) }()
	}
	var first error
	for range n {
		err := <-errc
		if first == nil {
			first = err
			sn.Close()
		}
	}
	sn.Close()
	return m.result(first)
}

// result is Serve's error: ErrServerClosed once m is shut, whatever a
// server returned as the listeners closed under it.
func (m *Multi) result(err error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.shut {
		return ErrServerClosed
	}
	return err
}

// stop marks m shut and closes the sniffed listeners, so that no
// protocol accepts a connection from then on, as one server's listener
// would stop at once.
func (m *Multi) stop() {
	m.mu.Lock()
	m.shut = true
	var sns []*Sniffer
	for sn := range m.sniffers {
		sns = append(sns, sn)
	}
	m.mu.Unlock()
	for _, sn := range sns {
		sn.closeParent()
	}
}

// Shutdown stops accepting on every listener, then shuts every server
// down at once, and returns when all have: the first error, such as ctx's.
func (m *Multi) Shutdown(ctx context.Context) error {
	m.stop()
	return m.each(func(s Server) error { return s.Shutdown(ctx) })
}

// Close closes every listener and server at once.
func (m *Multi) Close() error {
	m.stop()
	return m.each(Server.Close)
}

// each calls f on every server at once and returns the first error.
func (m *Multi) each(f func(Server) error) error {
	var wg sync.WaitGroup
	errs := make([]error, numProtocols)
	for i, s := range m.Servers {
		if s != nil {
			wg.Go(func() { errs[i] = f(s) })
		}
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
