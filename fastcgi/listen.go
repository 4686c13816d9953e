package fastcgi

import (
	"io/fs"
	"net"
	"net/netip"

	"github.com/cgirun/cgirun/internal/gateway"
)

// Listen opens a listener on addr: "unix:/path/to.sock", "/path/to.sock",
// "tcp:host:port" or "host:port". A unix socket file is created with mode
// (0 means 0660, so that only the owner and the web server's group can
// connect: anyone who can connect to a FastCGI socket can run requests as
// any client), after removing a stale socket file that nothing listens
// on. A socket file that something still listens on, or a path that is
// not a socket, is an error. It is ListenConfig{Mode: mode}.Listen(addr).
func Listen(addr string, mode fs.FileMode) (net.Listener, error) {
	return ListenConfig{Mode: mode}.Listen(addr)
}

// ListenConfig is how Listen creates a unix socket file: php-fpm's
// listen.mode, listen.owner and listen.group. A web server that cannot
// connect logs "Permission denied" in its own log alone, so give the
// socket to the web server's group (www-data on Debian) rather than
// opening its mode to everyone. The scgi and uwsgi packages create their
// sockets by the same rules.
type ListenConfig struct {
	// Mode is the socket file's mode; 0 means 0660.
	Mode fs.FileMode
	// Owner is the socket file's user, a name or a uid ("www-data",
	// "33"); empty leaves the process's. Another user than the process's
	// needs root (CAP_CHOWN).
	Owner string
	// Group is the socket file's group, a name or a gid; empty leaves the
	// process's. A group the process is not in needs root (CAP_CHOWN).
	Group string
}

// Listen opens a listener on addr as the package's Listen does, and gives
// a unix socket file it creates lc's mode, owner and group. Owner and
// Group are looked up first: when one is unknown, no socket is created.
// TCP addresses ignore lc.
func (lc ListenConfig) Listen(addr string) (net.Listener, error) {
	return lc.gateway().Listen(addr)
}

// IDs returns the uid and gid of lc.Owner and lc.Group, -1 for an empty
// one. The error names the one that is not a user or group of this
// system.
func (lc ListenConfig) IDs() (uid, gid int, err error) {
	return lc.gateway().IDs()
}

func (lc ListenConfig) gateway() gateway.ListenConfig {
	return gateway.ListenConfig{Prefix: "fastcgi", Mode: lc.Mode, Owner: lc.Owner, Group: lc.Group}
}

// ParseAddr splits a listen address into a network ("unix" or "tcp") and an
// address, and rejects what cannot be one. A bare absolute path is a unix
// socket, as php-fpm's listen and nginx's fastcgi_pass write one.
func ParseAddr(addr string) (network, address string, err error) {
	return gateway.ParseAddr("fastcgi", addr)
}

// IsListeningSocket reports whether fd is a listening socket, the way a
// FastCGI application started by mod_fcgid, spawn-fcgi or lighttpd finds its
// socket on fd 0. A pipe, a file or a terminal is never taken for one.
func IsListeningSocket(fd int) bool { return gateway.IsListeningSocket(fd) }

// InheritedListener returns a listener on the listening socket at fd (0
// for mod_fcgid and spawn-fcgi). The descriptor is closed-on-exec, so that
// CGI children never inherit it.
func InheritedListener(fd int) (net.Listener, error) {
	return gateway.InheritedListener("fastcgi", fd)
}

// SystemdListeners returns the sockets passed by systemd socket activation
// (LISTEN_PID, LISTEN_FDS), or none when the process was not started that
// way. It unsets LISTEN_* and marks the descriptors close-on-exec, so that
// child processes never inherit them.
func SystemdListeners() ([]net.Listener, error) {
	return gateway.SystemdListeners("fastcgi")
}

// allowedPeers returns the addresses allowed to connect over TCP: the
// server's WebServerAddrs, else FCGI_WEB_SERVER_ADDRS, else nil (any).
func (s *Server) allowedPeers() ([]netip.Addr, error) {
	return gateway.AllowedPeers("fastcgi", s.WebServerAddrs)
}
