// Package listen opens the listening socket of the benchmark's net/http
// back ends.
package listen

import (
	"fmt"
	"net"
	"os"
	"strings"
)

// Listen listens on addr, unix:/path or tcp:host:port. A unix socket is
// created afresh (a stale file removed) with mode 0666, so that nginx's
// workers reach it whatever user they run as.
func Listen(addr string) (net.Listener, error) {
	network, where, ok := strings.Cut(addr, ":")
	switch {
	case ok && network == "unix":
		if err := os.Remove(where); err != nil && !os.IsNotExist(err) {
			return nil, err
		}
		l, err := net.Listen("unix", where)
		if err != nil {
			return nil, err
		}
		if err := os.Chmod(where, 0o666); err != nil {
			l.Close()
			return nil, err
		}
		return l, nil
	case ok && network == "tcp":
		return net.Listen("tcp", where)
	}
	return nil, fmt.Errorf("listen %q: want unix:/path or tcp:host:port", addr)
}
