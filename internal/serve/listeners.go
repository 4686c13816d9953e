package serve

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/cgirun/cgirun/fastcgi"
	"github.com/cgirun/cgirun/internal/gateway"
	"github.com/cgirun/cgirun/internal/proc"
	"github.com/cgirun/cgirun/upgrade"
)

// ListenerSet is the FastCGI sockets a process serves, and how it found
// them.
type ListenerSet struct {
	// Listeners are the sockets; none when the process was handed none
	// and given no address.
	Listeners []net.Listener
	// Where says where they came from, for the log: "fd 0 (...)",
	// "systemd sockets", the address, or the sockets an upgrade passed on.
	Where string
	// Handed says that the process was handed the sockets (an
	// upgrade's, fd 0's, systemd's) rather than creating them.
	Handed bool
	// Of holds, for each listener, the index of the address of
	// ListenAll's addrs it is bound to; -1 for a socket the process was
	// handed that is bound to none of them.
	Of []int
	// Ready tells the process this one replaces, if any, that this one
	// serves; it does nothing otherwise. Call it once serving.
	Ready func() error
}

// Listen finds the sockets to serve, in one order for every program of
// the module: those the process this one replaces passed on
// (upgrade.Inherit), then a listening socket on stdin (spawn-fcgi,
// mod_fcgid), then systemd's (LISTEN_FDS), then a new socket on addr
// (unix:/path or /path, created as lc says and logged with its owner,
// group and mode, or tcp:host:port or host:port). The
// sockets a process was handed come first: whoever handed them sends the
// requests there. An addr that is not used for fd 0's or systemd's
// sockets is logged as ignored. With no
// socket and no addr, the set is empty. what names the setting addr comes
// from, in errors and the log. A TCP socket beyond loopback, wherever it
// came from, is warned about while FCGI_WEB_SERVER_ADDRS is empty: any
// host that reaches it would be served.
//
// stdin is the process's standard input; a listening socket there is
// served through a close-on-exec duplicate. When stdin is the process's fd
// 0, /dev/null takes its place there, so that no child process inherits
// the socket and no file opened later becomes fd 0; any other stdin (a
// test's) is left untouched.
func Listen(addr, what string, lc fastcgi.ListenConfig, stdin io.Reader, log *slog.Logger) (ListenerSet, error) {
	return ListenAll([]Address{{Setting: what, Addr: addr, Proto: "FastCGI"}}, lc, stdin, log)
}

// Address is an address a setting names, for ListenAll.
type Address struct {
	// Setting names the setting, such as CGIRUN_SCGI or -s, in errors
	// and the log.
	Setting string
	// Addr is unix:/path, /path, tcp:host:port or host:port; empty when
	// the setting is not set.
	Addr string
	// Proto names the protocol served there, for the log.
	Proto string
}

// prefix starts the errors about a's socket: the name of its protocol's
// package ("fastcgi", "scgi", "uwsgi"), or "listen" for a socket of
// every protocol.
func (a Address) prefix() string {
	switch p := strings.ToLower(a.Proto); p {
	case "fastcgi", "scgi", "uwsgi":
		return p
	}
	return "listen"
}

// Parse splits a.Addr into a network ("unix" or "tcp") and an address, as
// fastcgi.ParseAddr does, with an error that names a's protocol.
func (a Address) Parse() (network, address string, err error) {
	return gateway.ParseAddr(a.prefix(), a.Addr)
}

// ListenAll is Listen for several addresses, each its own socket:
// created in the order of addrs when the process was handed none. A
// socket the process was handed (an upgrade's, fd 0's, systemd's) takes
// the place of the address it is bound to: the same unix path, or the same
// TCP address and port (a host name resolved, an empty or unspecified host
// matching a socket on every interface); ListenerSet.Of tells which. An
// address that no handed socket is bound to is logged as ignored, except
// after an upgrade, whose sockets are all the old process's.
func ListenAll(addrs []Address, lc fastcgi.ListenConfig, stdin io.Reader, log *slog.Logger) (ListenerSet, error) {
	set, err := listenAll(addrs, lc, stdin, log)
	if err != nil {
		return set, err
	}
	for i, l := range set.Listeners {
		a := Address{Setting: "CGIRUN_FASTCGI", Proto: "FastCGI"}
		switch {
		case set.Of[i] >= 0:
			a = addrs[set.Of[i]]
		case len(addrs) > 0:
			a.Setting = addrs[0].Setting
		}
		warnExposed(log, []net.Listener{l}, a.Setting, a.Proto)
	}
	return set, nil
}

func listenAll(addrs []Address, lc fastcgi.ListenConfig, stdin io.Reader, log *slog.Logger) (ListenerSet, error) {
	lns, ready, err := upgrade.Inherit("")
	if err != nil {
		return ListenerSet{}, err
	}
	set := ListenerSet{Listeners: lns, Ready: ready, Handed: true}
	switch {
	case len(lns) > 0:
		// The sockets of the process this one replaces, the
		// addresses' among them: nothing is ignored.
		set.Where = fmt.Sprintf("sockets inherited from pid %d", os.Getppid())
		set.match(addrs)
		return set, nil
	case StdinIsListening(stdin):
		l, err := stdinListener(stdin.(*os.File))
		if err != nil {
			return ListenerSet{}, err
		}
		set.Listeners, set.Where = []net.Listener{l}, "fd 0"
	default:
		ls, err := fastcgi.SystemdListeners()
		if err != nil {
			return ListenerSet{}, err
		}
		if len(ls) > 0 {
			set.Listeners, set.Where = ls, "systemd sockets"
			break
		}
		set.Handed = false
		var where []string
		for i, a := range addrs {
			if a.Addr == "" {
				continue
			}
			l, err := gateway.ListenConfig{Prefix: a.prefix(), Mode: lc.Mode, Owner: lc.Owner, Group: lc.Group}.Listen(a.Addr)
			if err != nil {
				for _, l := range set.Listeners {
					l.Close()
				}
				return ListenerSet{}, fmt.Errorf("%s %s: %w", a.Setting, a.Addr, err)
			}
			if ul, ok := l.(*net.UnixListener); ok {
				logSocket(log, ul.Addr().String())
			}
			set.Listeners, set.Of = append(set.Listeners, l), append(set.Of, i)
			where = append(where, a.Addr)
		}
		set.Where = strings.Join(where, ", ")
		return set, nil
	}
	set.match(addrs)
	for i, a := range addrs {
		if a.Addr != "" && !slices.Contains(set.Of, i) {
			log.Warn("cgirun: "+a.Setting+" is ignored: serving the sockets the process was handed", "addr", a.Addr, "on", set.Where)
		}
	}
	return set, nil
}

// match sets set.Of: for each listener, the index of the address of addrs
// it is bound to, or -1. An inherited unix socket bound to an address has
// its file removed when it closes, as one that Listen created would.
func (set *ListenerSet) match(addrs []Address) {
	set.Of = make([]int, len(set.Listeners))
	for i, l := range set.Listeners {
		set.Of[i] = -1
		for j, a := range addrs {
			if a.Addr != "" && boundTo(l, a.Addr) {
				set.Of[i] = j
				if ul, ok := l.(*net.UnixListener); ok {
					ul.SetUnlinkOnClose(true)
				}
				break
			}
		}
	}
}

// boundTo reports whether l listens on addr (see ListenAll).
func boundTo(l net.Listener, addr string) bool {
	network, address, err := fastcgi.ParseAddr(addr)
	if err != nil {
		return false
	}
	switch la := l.Addr().(type) {
	case *net.UnixAddr:
		return network == "unix" && la.Name == address
	case *net.TCPAddr:
		if network != "tcp" {
			return false
		}
		ta, err := net.ResolveTCPAddr("tcp", address)
		if err != nil || ta.Port == 0 || ta.Port != la.Port {
			return false
		}
		if ta.IP == nil || ta.IP.IsUnspecified() {
			return la.IP == nil || la.IP.IsUnspecified()
		}
		return ta.IP.Equal(la.IP)
	}
	return false
}

// logSocket logs the path, owner, group and mode of the socket file Listen
// created: what a web server's "Permission denied" is checked against.
func logSocket(log *slog.Logger, path string) {
	fi, err := os.Stat(path)
	if err != nil {
		log.Warn("cgirun: created unix socket, but cannot stat it", "socket", path, "err", err)
		return
	}
	owner, group := "?", "?"
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		owner, group = strconv.FormatUint(uint64(st.Uid), 10), strconv.FormatUint(uint64(st.Gid), 10)
		if u, err := user.LookupId(owner); err == nil {
			owner = u.Username
		}
		if g, err := user.LookupGroupId(group); err == nil {
			group = g.Name
		}
	}
	log.Info("cgirun: created unix socket", "socket", path, "owner", owner, "group", group, "mode", fmt.Sprintf("%04o", fi.Mode().Perm()))
}

// StdinIsListening reports whether stdin is a listening socket, as
// spawn-fcgi and mod_fcgid start a FastCGI application.
func StdinIsListening(stdin io.Reader) bool {
	f, ok := stdin.(*os.File)
	if !ok || f == nil {
		return false
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	listening := false
	rc.Control(func(fd uintptr) { listening = fastcgi.IsListeningSocket(int(fd)) })
	return listening
}

// stdinListener returns a listener on a close-on-exec duplicate of the
// listening socket f, read without File.Fd, which would put f in blocking
// mode. When f is fd 0, /dev/null replaces it there.
func stdinListener(f *os.File) (net.Listener, error) {
	dup, err := proc.DupCloseOnExec(f)
	if err != nil {
		return nil, fmt.Errorf("fd 0: %w", err)
	}
	l, err := fastcgi.InheritedListener(dup)
	if err != nil {
		return nil, err
	}
	if rc, err := f.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) {
			if fd == 0 {
				nullOverStdin()
			}
		})
	}
	return l, nil
}

// nullOverStdin puts /dev/null on fd 0.
func nullOverStdin() {
	null, err := syscall.Open(os.DevNull, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	dupOnto(null, 0)
	syscall.Close(null)
}
