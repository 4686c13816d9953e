package cgirun

import (
	"net"
	"sync"
)

// limitListener holds connections past a bound in the kernel's backlog: it
// accepts only while fewer than cap(slots) accepted connections are open.
type limitListener struct {
	net.Listener
	slots     chan struct{}
	closeOnce sync.Once
	closed    chan struct{}
	initOnce  sync.Once
}

func (l *limitListener) init() {
	l.initOnce.Do(func() { l.closed = make(chan struct{}) })
}

func (l *limitListener) Accept() (net.Conn, error) {
	l.init()
	select {
	case l.slots <- struct{}{}:
	case <-l.closed:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.slots }}, nil
}

func (l *limitListener) Close() error {
	l.init()
	l.closeOnce.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
