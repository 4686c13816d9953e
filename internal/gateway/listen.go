package gateway

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/coreos/go-systemd/v22/activation"
)

// ListenConfig is how Listen creates a unix socket file: php-fpm's
// listen.mode, listen.owner and listen.group.
type ListenConfig struct {
	// Prefix starts the errors of Listen and IDs: the package name,
	// "fastcgi".
	Prefix string
	// Mode is the socket file's mode; 0 means 0660.
	Mode fs.FileMode
	// Owner is the socket file's user, a name or a uid; empty leaves the
	// process's.
	Owner string
	// Group is the socket file's group, a name or a gid; empty leaves the
	// process's.
	Group string
}

// Listen opens a listener on addr: "unix:/path/to.sock", "/path/to.sock",
// "tcp:host:port" or "host:port". A unix socket file is created with lc's
// mode (0 means 0660), owner and group, after removing a stale socket
// file that nothing listens on. A socket file that something still
// listens on, or a path that is not a socket, is an error. Owner and
// Group are looked up first: when one is unknown, no socket is created.
// TCP addresses ignore lc.
func (lc ListenConfig) Listen(addr string) (net.Listener, error) {
	network, address, err := ParseAddr(lc.Prefix, addr)
	if err != nil {
		return nil, err
	}
	if network == "tcp" {
		return net.Listen("tcp", address)
	}
	uid, gid, err := lc.IDs()
	if err != nil {
		return nil, err
	}
	mode := lc.Mode
	if mode == 0 {
		mode = 0o660
	}
	if err := removeStaleSocket(lc.Prefix, address); err != nil {
		return nil, err
	}
	if err := checkDir(lc.Prefix, filepath.Dir(address)); err != nil {
		return nil, err
	}
	l, err := net.Listen("unix", address)
	if err != nil {
		return nil, err
	}
	if uid != -1 || gid != -1 {
		if err := os.Chown(address, uid, gid); err != nil {
			l.Close()
			return nil, fmt.Errorf(lc.Prefix+": giving %s to owner %q, group %q: %w", address, lc.Owner, lc.Group, err)
		}
	}
	if err := os.Chmod(address, mode); err != nil {
		l.Close()
		return nil, fmt.Errorf(lc.Prefix+": setting the mode of %s: %w", address, err)
	}
	return l, nil
}

// IDs returns the uid and gid of lc.Owner and lc.Group, -1 for an empty
// one. The error names the one that is not a user or group of this
// system.
func (lc ListenConfig) IDs() (uid, gid int, err error) {
	uid, gid = -1, -1
	if lc.Owner != "" {
		if uid, err = lookupID(lc.Owner, "user", lookupUser); err != nil {
			return -1, -1, fmt.Errorf(lc.Prefix+": socket owner %q: %w", lc.Owner, err)
		}
	}
	if lc.Group != "" {
		if gid, err = lookupID(lc.Group, "group", lookupGroup); err != nil {
			return -1, -1, fmt.Errorf(lc.Prefix+": socket group %q: %w", lc.Group, err)
		}
	}
	return uid, gid, nil
}

func lookupUser(name string) (string, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return "", err
	}
	return u.Uid, nil
}

func lookupGroup(name string) (string, error) {
	g, err := user.LookupGroup(name)
	if err != nil {
		return "", err
	}
	return g.Gid, nil
}

// lookupID returns the id of name, a name that lookup finds or a number
// (which need not be in /etc/passwd or /etc/group, as for chown).
func lookupID(name, kind string, lookup func(string) (string, error)) (int, error) {
	if n, err := strconv.ParseUint(name, 10, 31); err == nil {
		return int(n), nil
	}
	if strings.HasPrefix(name, "-") || strings.HasPrefix(name, "+") {
		return -1, fmt.Errorf("not a %s name or a number of 0 or more", kind)
	}
	id, err := lookup(name)
	if err != nil {
		return -1, fmt.Errorf("no such %s", kind)
	}
	n, err := strconv.ParseUint(id, 10, 31)
	if err != nil {
		return -1, fmt.Errorf("%s id %q is not a number", kind, id)
	}
	return int(n), nil
}

// checkDir checks that dir, where a socket file is to be created, exists,
// and says what to do when it does not.
func checkDir(prefix, dir string) error {
	_, err := os.Stat(dir)
	if !errors.Is(err, fs.ErrNotExist) {
		return nil // net.Listen reports other errors
	}
	if rel, ok := strings.CutPrefix(dir, "/run/"); ok && rel != "" {
		return fmt.Errorf(prefix+": directory %s does not exist: create it, or set RuntimeDirectory=%s under systemd", dir, rel)
	}
	return fmt.Errorf(prefix+": directory %s does not exist: create it", dir)
}

// ParseAddr splits a listen address into a network ("unix" or "tcp") and an
// address, and rejects what cannot be one, with an error that starts
// with prefix. A bare absolute path is a unix socket, as php-fpm's listen
// and nginx's fastcgi_pass write one.
func ParseAddr(prefix, addr string) (network, address string, err error) {
	switch {
	case strings.HasPrefix(addr, "unix:"):
		path := strings.TrimPrefix(addr, "unix:")
		if path == "" {
			return "", "", fmt.Errorf(prefix+": address %q: empty socket path", addr)
		}
		return "unix", path, nil
	case strings.HasPrefix(addr, "/"):
		return "unix", addr, nil
	case strings.HasPrefix(addr, "tcp:"):
		addr = strings.TrimPrefix(addr, "tcp:")
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return "", "", fmt.Errorf(prefix+": address %q: want unix:/path, /path, tcp:host:port or host:port, such as unix:/run/app/app.sock", addr)
	}
	return "tcp", addr, nil
}

func removeStaleSocket(prefix, path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf(prefix+": %s exists and is not a socket", path)
	}
	c, err := net.Dial("unix", path)
	if err == nil {
		c.Close()
		return fmt.Errorf(prefix+": %s: another process listens on it", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf(prefix+": checking %s: %w", path, err)
	}
	return os.Remove(path)
}

// IsListeningSocket reports whether fd is a listening socket, the way an
// application started by mod_fcgid, spawn-fcgi or lighttpd finds its
// socket on fd 0. A pipe, a file or a terminal is never taken for one.
func IsListeningSocket(fd int) bool {
	v, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_ACCEPTCONN)
	return err == nil && v == 1
}

// InheritedListener returns a listener on the listening socket at fd (0
// for mod_fcgid and spawn-fcgi), or an error that starts with prefix. The
// descriptor is closed-on-exec, so that CGI children never inherit it.
func InheritedListener(prefix string, fd int) (net.Listener, error) {
	if !IsListeningSocket(fd) {
		return nil, fmt.Errorf(prefix+": fd %d is not a listening socket", fd)
	}
	f := os.NewFile(uintptr(fd), fmt.Sprintf("fd%d", fd))
	l, err := net.FileListener(f) // dups fd with close-on-exec
	f.Close()
	if err != nil {
		return nil, fmt.Errorf(prefix+": fd %d: %w", fd, err)
	}
	return l, nil
}

// SystemdListeners returns the sockets passed by systemd socket activation
// (LISTEN_PID, LISTEN_FDS), or none when the process was not started that
// way. It unsets LISTEN_* and marks the descriptors close-on-exec, so that
// child processes never inherit them. An error starts with prefix.
func SystemdListeners(prefix string) ([]net.Listener, error) {
	ls, err := activation.Listeners()
	if err != nil {
		return nil, fmt.Errorf(prefix+": systemd socket activation: %w", err)
	}
	out := ls[:0]
	for _, l := range ls {
		if l != nil { // nil: a descriptor that is not a stream socket
			out = append(out, l)
		}
	}
	return out, nil
}
