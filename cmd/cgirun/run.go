package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/cgirun/cgirun/internal/buildinfo"
	"github.com/cgirun/cgirun/internal/serve"
	"github.com/cgirun/cgirun/upgrade"
)

// cli is one invocation: its streams and its environment.
type cli struct {
	getenv func(string) string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	// fcgiwrapLine is set when fcgi runs for a command line without a
	// command, fcgiwrap's: without --root and -p, each request's script
	// is then confined to its DOCUMENT_ROOT, as fcgiwrap does.
	fcgiwrapLine bool
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
with no command are fcgi's, so that fcgiwrap's command line works as it is:
given neither --root nor -p, it confines each request's script to the
request's DOCUMENT_ROOT, as fcgiwrap does (--root-from-request).

"cgirun COMMAND --help" lists a command's flags and its CGIRUN_* environment
variables. Exit status: 0 done, 1 failed, 2 a usage error.
`)
}

// run is the whole program: it runs the command args name and returns the
// exit status. ctx ends on SIGTERM or SIGINT: serving commands then shut
// down gracefully.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	c := &cli{getenv: getenv, stdin: stdin, stdout: stdout, stderr: stderr}
	onSocket := serve.StdinIsListening(stdin)
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
		if !onSocket && getenv("LISTEN_PID") != strconv.Itoa(os.Getpid()) && getenv(upgrade.EnvInheritFDs) == "" {
			topUsage(stderr)
			return exitUsage
		}
		name, c.fcgiwrapLine = "fcgi", true
	case name == "-h" || name == "-help" || name == "--help" || (name == "help" && len(rest) == 0):
		topUsage(stdout)
		return exitOK
	case name == "help":
		name, rest = rest[0], []string{"--help"}
	case name == "-version" || name == "--version":
		name = "version"
	case strings.HasPrefix(name, "-"):
		// fcgiwrap's command line: its flags and no command.
		name, rest, c.fcgiwrapLine = "fcgi", args, true
	}
	for _, cmd := range commands {
		if cmd.name == name {
			return c.exit(name, cmd.run(c, ctx, rest))
		}
	}
	if name == "man" {
		// Not listed: the release build's, for the packages' man page.
		return c.exit(name, c.man(ctx, rest))
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
	_, err = fmt.Fprintln(c.stdout, buildinfo.Line("cgirun"))
	return err
}
