// Package cgirun runs one http.Handler through whatever gateway the process
// was started behind: Run detects a CGI request, a FastCGI socket on fd 0,
// systemd socket activation, a FastCGI, SCGI or uwsgi address, a socket
// for every protocol (CGIRUN_LISTEN) or, failing all of them, serves plain
// HTTP. The same binary works in Apache's cgi-bin, behind
// nginx's fastcgi_pass, under mod_fcgid and on its own.
//
// Settings come from CGIRUN_* environment variables (see Config); bare
// unprefixed names are never read, because in CGI mode the environment holds
// HTTP_* values that any client controls.
package cgirun

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/cgirun/cgirun/cgi"
	"github.com/cgirun/cgirun/internal/settings"
)

// Options are what cannot come from the environment.
type Options struct {
	// Logger receives the log lines; nil means text or JSON lines on
	// stderr, as CGIRUN_LOG_FORMAT says. With
	// CGIRUN_ACCESS_LOG_FORMAT=combined, each access line is the message
	// of an Info record without attributes.
	Logger *slog.Logger
	// BaseContext is the parent of every request's context; nil means
	// context.Background().
	BaseContext context.Context
	// Environ holds CGI variables added to every CGI and FastCGI request
	// that the web server did not set itself (eventlet's environ=).
	Environ map[string]string
}

// Run serves h as the process was started to, and returns when it is done:
// after the one request in CGI mode, after a graceful shutdown on SIGTERM
// or SIGINT otherwise, or after an upgrade on SIGHUP (FastCGI only, see
// below). main should exit non-zero on an error:
//
//	if err := cgirun.Run(handler); err != nil {
//		fmt.Fprintln(os.Stderr, err)
//		os.Exit(1)
//	}
//
// The order of detection: GATEWAY_INTERFACE (or CGIRUN_CGI) means CGI;
// then the sockets the process was handed, in this order: those an
// upgrade passed on (CGIRUN_INHERIT_FDS), a listening socket on fd 0
// (mod_fcgid, spawn-fcgi), systemd's (LISTEN_FDS for this process); then
// new sockets at CGIRUN_FASTCGI, CGIRUN_SCGI, CGIRUN_UWSGI and
// CGIRUN_LISTEN, each that is set (logged as ignored when the process was
// handed sockets); otherwise plain HTTP on CGIRUN_HTTP.
//
// A handed socket serves the protocol of the setting whose address it is
// bound to (the same unix path, or the same host and port); one bound to
// none serves the protocol of the one gateway setting that is set, and
// FastCGI when none or several are. CGIRUN_LISTEN's socket serves
// FastCGI, SCGI, uwsgi and HTTP (HTTPS with CGIRUN_TLS_CERT), told apart
// by each connection's first byte: 1 is FastCGI's, 0 uwsgi's, a digit
// SCGI's, a capital letter HTTP's (0x16, a TLS handshake, HTTPS's).
// Whoever can connect to any of these sockets can send any CGI variable,
// as over FastCGI: keep them to the web server (a unix socket of mode 0660
// and its group, or loopback; FCGI_WEB_SERVER_ADDRS holds for every
// protocol).
//
// A CGIRUN_* variable that is no setting, such as a mistyped
// CGIRUN_FASTCG, is logged as a warning naming the closest setting.
//
// Started with -h or --help outside CGI, Run prints the settings to stdout
// and exits the process with status 0, as the flag package does for a
// program's own -h: main needs no code for it. Started with the one
// argument version, --version or -version outside CGI, and unless main
// called flag.Parse, it prints Version and exits 0. These are the only
// cases where Run ends the process. Any other argument starting with "-" (a mistyped
// --help, a --port the program does not have) is logged at start as one
// Run does not read, outside CGI and unless main called flag.Parse; the
// program still starts, since its main may read its arguments some other
// way. In CGI the arguments come from the client (a query without "=")
// and are never read.
//
// Serving gateway sockets (FastCGI, SCGI, uwsgi, CGIRUN_LISTEN's), SIGHUP
// upgrades the program without a refused connection, as nginx's binary upgrade does: Run starts the binary now at
// the program's path with the same arguments and environment, passing it
// the listening sockets (see package upgrade); once the new process serves,
// this one stops accepting, finishes its requests in flight (within
// CGIRUN_SHUTDOWN_GRACE) and Run returns nil. If the new process fails to
// start or to serve within CGIRUN_UPGRADE_TIMEOUT, it is stopped, the
// error is logged, and this one goes on serving. A unix socket's file
// stays: it is the new process's. Under systemd, whose Type=simple service
// ends with its main process, use socket activation and a restart instead.
//
// If one of several sockets fails (its accept returns an error that is not
// temporary), Run shuts the others down gracefully and returns that error.
func Run(h http.Handler) error {
	return RunWith(h, Options{})
}

// forcedCGI reports whether v, the value of CGIRUN_CGI, is a boolean
// that is true (see LoadConfig).
func forcedCGI(v string) bool {
	b, err := settings.ParseBool(v)
	return err == nil && b
}

// checkArgs returns a warning for the first argument of args (os.Args's
// form) that starts with "-", "" when there is none: Run reads no flags
// but -h and --help.
func checkArgs(args []string) string {
	for _, a := range args[1:] {
		if strings.HasPrefix(a, "-") {
			return fmt.Sprintf("cgirun: flag %q is not read: settings are CGIRUN_* environment variables, such as CGIRUN_HTTP=127.0.0.1:8080; see %s --help", a, filepath.Base(args[0]))
		}
	}
	return ""
}

// RunWith is Run with Options.
func RunWith(h http.Handler, opts Options) error {
	// CGI first: a CGI program starts for every request, so telling the
	// mode and reading the settings must cost next to nothing there.
	// envconfig reads nothing but CGIRUN_* variables, so without one the
	// settings are the defaults, and defaultConfig has them without it.
	isCGI := cgi.IsCGI() || forcedCGI(os.Getenv("CGIRUN_CGI"))
	if isCGI && !hasSettings(os.Environ()) {
		return newDefaultCGI(h, opts).serveCGI()
	}
	return run(h, opts, isCGI)
}

// newDefaultCGI returns the server of a CGI program with the default
// settings, its mode set: Listen's checks are left out, since
// TestDefaultConfig checks that the defaults pass them. It is not inlined,
// so that the copies of the settings it makes are off the stack while the
// request is answered: with them (and Listen's frames) the goroutine's
// stack doubled once more than cgi.Serve's, a copy that cost a CGI
// program more than the rest of Run's work.
//
//go:noinline
func newDefaultCGI(h http.Handler, opts Options) *Server {
	cfg := defaultConfig()
	cfg.CGI = true
	s := NewServer(cfg, h, opts)
	s.mode = ModeCGI
	return s
}

// run is RunWith past the CGI program with the default settings.
func run(h http.Handler, opts Options, isCGI bool) error {
	// Not for CGI: a web server puts a query without "=" in argv, where
	// any client could write --help.
	if !isCGI && len(os.Args) > 1 && (os.Args[1] == "-h" || os.Args[1] == "-help" || os.Args[1] == "--help") {
		fmt.Fprintf(os.Stdout, "%s serves HTTP requests through CGI, FastCGI, SCGI, uwsgi or plain HTTP, as it is started.\n\n", os.Args[0])
		Usage(os.Stdout)
		os.Exit(0)
	}
	if !isCGI && isVersionArg(os.Args, flag.Parsed()) {
		fmt.Fprintln(os.Stdout, Version(os.Args[0]))
		os.Exit(0)
	}
	cfg, err := LoadConfig()
	if err != nil {
		return err
	}
	// SIGHUP is caught before the sockets listen, so that one sent as
	// soon as they accept does not kill the process; outside FastCGI it
	// keeps its default action (a plain HTTP server in a closed terminal
	// ends).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	s := NewServer(cfg, h, opts)
	// A program that parsed its own flags (flag.Parse) has its own
	// arguments; otherwise a flag is likely a mistake Run would ignore.
	if w := checkArgs(os.Args); !isCGI && !flag.Parsed() && w != "" {
		s.log.Warn(w)
	}
	if environ := os.Environ(); hasSettings(environ) {
		for _, w := range settings.Unknown(environ, settings.Names("CGIRUN", &Config{})) {
			s.log.Warn("cgirun: " + w)
		}
	}
	if err := s.Listen(); err != nil {
		return err
	}
	if s.mode == ModeCGI {
		return s.Serve()
	}
	if !s.gateway() {
		signal.Stop(hup)
		hup = nil
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return s.loop(hup).Run(ctx)
}
