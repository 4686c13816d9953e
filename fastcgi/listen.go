package fastcgi

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"

	"github.com/coreos/go-systemd/v22/activation"
)

// Listen opens a listener on addr: "unix:/path/to.sock", "tcp:host:port" or
// "host:port". A unix socket file is created with mode (0 means 0660, so
// that only the owner and the web server's group can connect: anyone who
// can connect to a FastCGI socket can run requests as any client), after
// removing a stale socket file that nothing listens on. A socket file that
// something still listens on, or a path that is not a socket, is an error.
func Listen(addr string, mode fs.FileMode) (net.Listener, error) {
	network, address, err := ParseAddr(addr)
	if err != nil {
		return nil, err
	}
	if network == "tcp" {
		return net.Listen("tcp", address)
	}
	if mode == 0 {
		mode = 0o660
	}
	if err := removeStaleSocket(address); err != nil {
		return nil, err
	}
	l, err := net.Listen("unix", address)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(address, mode); err != nil {
		l.Close()
		return nil, fmt.Errorf("fastcgi: setting the mode of %s: %w", address, err)
	}
	return l, nil
}

// ParseAddr splits a listen address into a network ("unix" or "tcp") and an
// address, and rejects what cannot be one.
func ParseAddr(addr string) (network, address string, err error) {
	switch {
	case strings.HasPrefix(addr, "unix:"):
		path := strings.TrimPrefix(addr, "unix:")
		if path == "" {
			return "", "", fmt.Errorf("fastcgi: address %q: empty socket path", addr)
		}
		return "unix", path, nil
	case strings.HasPrefix(addr, "tcp:"):
		addr = strings.TrimPrefix(addr, "tcp:")
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return "", "", fmt.Errorf("fastcgi: address %q: want unix:/path, tcp:host:port or host:port", addr)
	}
	return "tcp", addr, nil
}

func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("fastcgi: %s exists and is not a socket", path)
	}
	c, err := net.Dial("unix", path)
	if err == nil {
		c.Close()
		return fmt.Errorf("fastcgi: %s: another process listens on it", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("fastcgi: checking %s: %w", path, err)
	}
	return os.Remove(path)
}

// IsListeningSocket reports whether fd is a listening socket, the way a
// FastCGI application started by mod_fcgid, spawn-fcgi or lighttpd finds its
// socket on fd 0. A pipe, a file or a terminal is never taken for one.
func IsListeningSocket(fd int) bool {
	v, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_ACCEPTCONN)
	return err == nil && v == 1
}

// InheritedListener returns a listener on the listening socket at fd (0
// for mod_fcgid and spawn-fcgi). The descriptor is closed-on-exec, so that
// CGI children never inherit it.
func InheritedListener(fd int) (net.Listener, error) {
	if !IsListeningSocket(fd) {
		return nil, fmt.Errorf("fastcgi: fd %d is not a listening socket", fd)
	}
	f := os.NewFile(uintptr(fd), fmt.Sprintf("fd%d", fd))
	l, err := net.FileListener(f) // dups fd with close-on-exec
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("fastcgi: fd %d: %w", fd, err)
	}
	return l, nil
}

// SystemdListeners returns the sockets passed by systemd socket activation
// (LISTEN_PID, LISTEN_FDS), or none when the process was not started that
// way. It unsets LISTEN_* and marks the descriptors close-on-exec, so that
// child processes never inherit them.
func SystemdListeners() ([]net.Listener, error) {
	ls, err := activation.Listeners()
	if err != nil {
		return nil, fmt.Errorf("fastcgi: systemd socket activation: %w", err)
	}
	out := ls[:0]
	for _, l := range ls {
		if l != nil { // nil: a descriptor that is not a stream socket
			out = append(out, l)
		}
	}
	return out, nil
}

// allowedPeers returns the addresses allowed to connect over TCP: the
// server's WebServerAddrs, else FCGI_WEB_SERVER_ADDRS, else nil (any).
func (s *Server) allowedPeers() ([]netip.Addr, error) {
	list := s.WebServerAddrs
	if list == nil {
		env := os.Getenv("FCGI_WEB_SERVER_ADDRS")
		if env == "" {
			return nil, nil
		}
		list = strings.Split(env, ",")
	}
	addrs := make([]netip.Addr, 0, len(list))
	for _, a := range list {
		ip, err := netip.ParseAddr(strings.TrimSpace(a))
		if err != nil {
			return nil, fmt.Errorf("fastcgi: FCGI_WEB_SERVER_ADDRS: %q is not an IP address", a)
		}
		addrs = append(addrs, ip.Unmap())
	}
	return addrs, nil
}

// peerAllowed reports whether c's peer may talk to the server. Only TCP
// peers are checked.
func peerAllowed(c net.Conn, allowed []netip.Addr) bool {
	if allowed == nil {
		return true
	}
	ta, ok := c.RemoteAddr().(*net.TCPAddr)
	if !ok {
		return true
	}
	ip, ok := netip.AddrFromSlice(ta.IP)
	if !ok {
		return false
	}
	ip = ip.Unmap()
	for _, a := range allowed {
		if a == ip {
			return true
		}
	}
	return false
}
