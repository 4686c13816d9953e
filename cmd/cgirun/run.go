package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cgirun/cgirun"
	"github.com/cgirun/cgirun/fastcgi"
)

// cli is one invocation: its streams and its environment.
type cli struct {
	getenv func(string) string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// command is a subcommand.
type command struct {
	name    string
	summary string
	run     func(c *cli, ctx context.Context, args []string) error
}

var commands = []command{
	{"fcgi", "serve CGI executables over FastCGI (fcgiwrap's job; the default when fd 0 is a socket)", (*cli).fcgi},
	{"http", "serve the CGI executables of a directory over HTTP, for development", (*cli).http},
	{"proxy", "put an HTTP front on a FastCGI server (php-fpm, cgirun fcgi, a cgirun program)", (*cli).proxy},
	{"probe", "send one FastCGI request and print the answer, for health checks", (*cli).probe},
	{"version", "print the version", (*cli).version},
}

func topUsage(w io.Writer) {
	io.WriteString(w, "Usage: cgirun COMMAND [flags] [arguments]\n\nCommands:\n")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	io.WriteString(w, `
Started with no command and a listening socket on fd 0 (spawn-fcgi,
mod_fcgid) or systemd sockets, cgirun serves FastCGI: "cgirun fcgi". Flags
with no command are fcgi's, so that fcgiwrap's command line works as it is.

"cgirun COMMAND --help" lists a command's flags and its CGIRUN_* environment
variables. Exit status: 0 done, 1 failed, 2 a usage error.
`)
}

// run is the whole program: it runs the command args name and returns the
// exit status. ctx ends on SIGTERM or SIGINT: serving commands then shut
// down gracefully.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	c := &cli{getenv: getenv, stdin: stdin, stdout: stdout, stderr: stderr}
	_, onSocket := socketOnStdin(stdin)
	if getenv("GATEWAY_INTERFACE") != "" && !onSocket {
		// Started as a CGI program: a web server puts a query without '='
		// in argv, so any client would choose the command and its flags.
		fmt.Fprintln(stderr, "cgirun: refusing to run as a CGI program (GATEWAY_INTERFACE is set): its arguments would come from the client")
		return exitUsage
	}
	name, rest := "", args
	if len(args) > 0 {
		name, rest = args[0], args[1:]
	}
	switch {
	case name == "":
		// An upgrade passes the sockets on in CGIRUN_INHERIT_FDS, and
		// stdin is no longer the socket.
		if !onSocket && getenv("LISTEN_PID") != strconv.Itoa(os.Getpid()) && getenv(cgirun.EnvInheritFDs) == "" {
			topUsage(stderr)
			return exitUsage
		}
		name = "fcgi"
	case name == "-h" || name == "-help" || name == "--help" || (name == "help" && len(rest) == 0):
		topUsage(stdout)
		return exitOK
	case name == "help":
		name, rest = rest[0], []string{"--help"}
	case name == "-version" || name == "--version":
		name = "version"
	case strings.HasPrefix(name, "-"):
		// fcgiwrap's command line: its flags and no command.
		name, rest = "fcgi", args
	}
	for _, cmd := range commands {
		if cmd.name == name {
			return c.exit(name, cmd.run(c, ctx, rest))
		}
	}
	fmt.Fprintf(stderr, "cgirun: unknown command %q (commands: fcgi, http, proxy, probe, version; see cgirun --help)\n", name)
	return exitUsage
}

// exit turns a command's error into an exit status, and says why on one
// line of stderr.
func (c *cli) exit(name string, err error) int {
	var code exitCode
	var usage *usageError
	switch {
	case err == nil, errors.Is(err, errHelp):
		return exitOK
	case errors.As(err, &code):
		return int(code)
	case errors.As(err, &usage):
		fmt.Fprintf(c.stderr, "cgirun %s: %s (see cgirun %s --help)\n", name, oneLine(err), name)
		return exitUsage
	}
	fmt.Fprintf(c.stderr, "cgirun %s: %s\n", name, oneLine(err))
	return exitFailure
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

func (c *cli) version(_ context.Context, args []string) error {
	fs := newFlagSet("version")
	pos, err := parse(fs, args, c.stdout, func(w io.Writer) {
		io.WriteString(w, "Usage: cgirun version\n\nPrints the version of cgirun and of the Go toolchain that built it.\n")
	})
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	v := "(devel)"
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		v = bi.Main.Version
	}
	_, err = fmt.Fprintf(c.stdout, "cgirun %s %s %s/%s\n", v, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return err
}

// socketOnStdin reports whether stdin is a listening socket, as spawn-fcgi
// and mod_fcgid start a FastCGI application, and returns its descriptor.
// It reads the descriptor without File.Fd, which would put it in blocking
// mode.
func socketOnStdin(stdin io.Reader) (int, bool) {
	f, ok := stdin.(*os.File)
	if !ok || f == nil {
		return -1, false
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return -1, false
	}
	fd, listening := -1, false
	rc.Control(func(u uintptr) {
		fd, listening = int(u), fastcgi.IsListeningSocket(int(u))
	})
	return fd, listening
}

// stdinListener returns a listener on the listening socket that stdin is.
// It works on a close-on-exec duplicate, so that stdin itself stays open
// and untouched.
func stdinListener(stdin io.Reader) (net.Listener, error) {
	f := stdin.(*os.File)
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	var dup uintptr
	var errno syscall.Errno
	if err := rc.Control(func(fd uintptr) {
		dup, _, errno = syscall.Syscall(syscall.SYS_FCNTL, fd, syscall.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return nil, err
	}
	if errno != 0 {
		return nil, fmt.Errorf("duplicating fd 0: %w", errno)
	}
	return fastcgi.InheritedListener(int(dup))
}

// serveUntil runs serve(i) for each of n listeners until ctx ends or one
// of them fails; then it shuts the server down, giving the requests in
// flight grace to finish before close cuts them. It returns the first
// failure, or nil after a shutdown asked for by ctx.
func serveUntil(ctx context.Context, log *slog.Logger, grace time.Duration, n int,
	serve func(i int) error, shutdown func(context.Context) error, close func() error) error {
	return serveUpgradable(ctx, log, grace, n, serve, shutdown, close, upgrading{})
}

// upgrading is how a server hands its sockets to a new process (see
// cgirun.Upgrade); the zero value never does.
type upgrading struct {
	// ready, called once the server serves, tells the process this one
	// replaces, if any.
	ready func() error
	// hup asks for an upgrade (SIGHUP).
	hup <-chan os.Signal
	// upgrade starts the new process and returns its pid once it serves.
	upgrade func(context.Context) (int, error)
}

// serveUpgradable is serveUntil for a server that up can upgrade: once a
// new process serves the sockets, this one shuts down as when ctx ends,
// and the result is nil. A failed upgrade is logged, and serving goes on.
func serveUpgradable(ctx context.Context, log *slog.Logger, grace time.Duration, n int,
	serve func(i int) error, shutdown func(context.Context) error, close func() error, up upgrading) error {
	errc := make(chan error, n)
	for i := range n {
		go func() { errc <- serve(i) }()
	}
	if up.ready != nil {
		if err := up.ready(); err != nil {
			log.Warn("cgirun: upgrade: the old process was not told", "err", err)
		}
	}
	var first error
wait:
	for {
		select {
		case <-ctx.Done():
			log.Info("cgirun: shutting down", "grace", grace)
			break wait
		case <-up.hup:
			if up.upgrade == nil {
				continue
			}
			log.Info("cgirun: SIGHUP: starting a new process on the same sockets")
			pid, err := up.upgrade(ctx)
			if err != nil {
				log.Error("cgirun: upgrade failed; still serving", "err", err)
				continue
			}
			log.Info("cgirun: upgraded: the new process serves; shutting down", "pid", pid, "grace", grace)
			break wait
		case first = <-errc:
			n--
			log.Error("cgirun: serving failed; shutting down", "err", first)
			break wait
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := shutdown(sctx); err != nil {
		log.Warn("cgirun: grace period over; closing the remaining connections", "err", err)
		close()
	}
	for range n {
		if err := <-errc; first == nil && !errors.Is(err, fastcgi.ErrServerClosed) && !errors.Is(err, http.ErrServerClosed) {
			first = err
		}
	}
	return first
}
