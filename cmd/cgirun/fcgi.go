package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cgirun/cgirun/bridge"
	"github.com/cgirun/cgirun/fastcgi"
	"github.com/cgirun/cgirun/internal/proc"
	"github.com/cgirun/cgirun/internal/serve"
	"github.com/cgirun/cgirun/upgrade"
)

// fcgiConfig is the configuration of "cgirun fcgi".
type fcgiConfig struct {
	Root              []string      `desc:"--root: the directories holding the scripts; default: those of the -p scripts"`
	RootFromRequest   bool          `split_words:"true" desc:"--root-from-request: confine each request's script to its DOCUMENT_ROOT (inside --root when given); the default of fcgiwrap's command line without --root and -p"`
	Fastcgi           string        `desc:"-s: the address to listen on: unix:/path, /path, tcp:host:port or host:port; empty: the socket on fd 0, or systemd's"`
	Allow             []string      `desc:"-p: the only scripts that may run, by path"`
	StderrToWebServer bool          `split_words:"true" desc:"-f: copy what scripts write to stderr to the web server's error log"`
	SocketMode        string        `split_words:"true" default:"0660" desc:"--socket-mode: the mode of the unix socket -s creates (octal)"`
	SocketOwner       string        `split_words:"true" desc:"--socket-owner: the owner of the unix socket -s creates, a user name or uid; empty: the runner's"`
	SocketGroup       string        `split_words:"true" desc:"--socket-group: the group of the unix socket -s creates, a name or gid such as www-data; empty: the runner's"`
	ShutdownGrace     time.Duration `split_words:"true" default:"30s" desc:"--shutdown-grace: on SIGTERM or SIGINT, how long requests in flight may take"`
	UpgradeTimeout    time.Duration `split_words:"true" default:"30s" desc:"--upgrade-timeout: on SIGHUP, how long the new runner may take to serve before it is given up"`
	LogFormat         string        `split_words:"true" default:"text" desc:"--log-format: log lines on stderr as text or json"`
	AccessLog         bool          `split_words:"true" desc:"--access-log: log every request"`
	AccessLogFormat   string        `split_words:"true" default:"slog" desc:"--access-log-format: with --access-log, each request's line: slog (key=value, or JSON with --log-format json) or combined (raw lines of Apache's combined format)"`
	ScriptConfig
}

const fcgiHelp = `
Usage: cgirun fcgi [flags]
       cgirun [fcgiwrap's flags]

Serves the CGI executables under the --root directories over FastCGI, for
nginx (fastcgi_pass) or Apache (mod_proxy_fcgi): fcgiwrap's job. The script
of a request is SCRIPT_FILENAME, or DOCUMENT_ROOT + SCRIPT_NAME; it must be
an executable file inside a root (symbolic links resolved), and one of the
-p scripts when -p is given, or the client gets 403 or 404 and nothing runs.
Scripts get the request's CGI variables, never HTTP_PROXY, plus only the
--pass-env variables of cgirun's own environment.

With --root-from-request, each request's script must be inside the
request's DOCUMENT_ROOT (symlinks resolved; not /), and that inside a
--root when --root is given too: a request without DOCUMENT_ROOT gets 403.
fcgiwrap's command line (flags, no command) given neither --root nor -p
does so, with a warning at start, so that "cgirun -f" serves what
fcgiwrap -f served. The web server sends DOCUMENT_ROOT, so whoever can
connect to the socket chooses it, as with fcgiwrap: keep the socket to
the web server alone (a unix socket of mode 0660), and give --root to fix
where scripts may be.

fcgiwrap's flags work as they are: -s ADDR, -c N, -f, -p PATH. Unlike
fcgiwrap, -c is the most scripts running at once (a request past it waits up
to 10 seconds for a slot, then gets 503), not a number of preforked
processes; it is 16 per CPU unless given, and -c 0 lifts the bound. The
sockets cgirun was handed come first: the listening socket on fd 0
(spawn-fcgi, mod_fcgid), else those systemd passed (LISTEN_FDS); -s
creates one only when there is none (it is logged as ignored otherwise).

On SIGTERM or SIGINT it stops accepting, lets requests in flight finish
within --shutdown-grace, and exits 0.

On SIGHUP it upgrades itself without refusing a connection: it starts the
cgirun binary now at its path, with the same arguments and environment,
hands it the listening sockets (CGIRUN_INHERIT_FDS), and once the new
process serves them, stops accepting, finishes its requests in flight and
exits 0. A socket file of -s stays: it is the new process's. If the new
process fails to start or to serve within --upgrade-timeout, it is
stopped, the reason is logged, and this one goes on serving.

A request ends with its script: past --timeout, when the client leaves,
or --kill-grace after the script exited, cgirun closes its ends of the
script's pipes, also when a process the script started in a session of
its own (setsid, a double fork) still holds them, and the answer is cut.
A script that dies on a signal or exits with a status other than 0 after
its header block has its answer cut short (the connection is closed
without FCGI_END_REQUEST; nginx passes the cut on with fastcgi_keep_conn
on) and logged with its exit status.
On Linux cgirun is a child subreaper: processes that scripts leave behind
become its children, and it kills them once their script is done with.

A TCP socket accepts any peer unless FCGI_WEB_SERVER_ADDRS lists the web
servers' addresses (such as 127.0.0.1,10.0.0.2), and any peer that reaches
it runs the scripts: listen on 127.0.0.1 or a unix socket. On TCP beyond
loopback with no such list (-s :9000 binds every interface), a warning
naming the address is logged at start.

With --status-path PATH, a request whose SCRIPT_NAME is PATH (as
php-fpm's pm.status_path) is answered by cgirun itself, never by a script:
its counts of scripts started, exits, timeouts, kills, scripts running,
requests waiting for a slot and refused, responses by status class and
their durations, as text, JSON (?json) or OpenMetrics (?openmetrics, or
Accept: application/openmetrics-text). Give the web server a location for
that path alone, open to the hosts that may read it. With --access-log,
each request is logged, as a line of --log-format or, with
--access-log-format combined, as a raw line of Apache's combined format.

Scripts get fds 0, 1 and 2 only: every other descriptor cgirun was started
with (such as "7< root-only-file") is made close-on-exec at start, so that
a script, whatever its --user, cannot read it.
`

func (c *cli) fcgi(ctx context.Context, args []string) error {
	if err := closeInherited(); err != nil {
		return err
	}
	var cfg fcgiConfig
	envErr := loadEnv(&cfg)
	fs := newFlagSet("fcgi")
	fs.Var(&listFlag{list: &cfg.Root}, "root", "serve the scripts under `DIR` (repeatable)")
	fs.BoolVar(&cfg.RootFromRequest, "root-from-request", cfg.RootFromRequest, "confine each request's script to the request's DOCUMENT_ROOT, which the web server sends (fcgiwrap's way; with --root, the DOCUMENT_ROOT must be inside one); whoever can connect to the socket chooses it")
	fs.StringVar(&cfg.Fastcgi, "s", cfg.Fastcgi, "listen on `ADDR`: unix:/path, /path, tcp:host:port or host:port")
	fs.Var(&listFlag{list: &cfg.Allow}, "p", "let only the script at `PATH` run (repeatable)")
	fs.BoolVar(&cfg.StderrToWebServer, "f", cfg.StderrToWebServer, "copy scripts' stderr to the web server's error log (it always goes to cgirun's log)")
	fs.StringVar(&cfg.SocketMode, "socket-mode", cfg.SocketMode, "create the unix socket of -s with `MODE` (octal)")
	fs.StringVar(&cfg.SocketOwner, "socket-owner", cfg.SocketOwner, "give the unix socket of -s to `USER`, a name or uid (php-fpm's listen.owner)")
	fs.StringVar(&cfg.SocketGroup, "socket-group", cfg.SocketGroup, "give the unix socket of -s to `GROUP`, a name or gid, such as nginx's www-data (php-fpm's listen.group)")
	fs.DurationVar(&cfg.ShutdownGrace, "shutdown-grace", cfg.ShutdownGrace, "on SIGTERM, let requests in flight take up to `DURATION`")
	fs.DurationVar(&cfg.UpgradeTimeout, "upgrade-timeout", cfg.UpgradeTimeout, "on SIGHUP, give the new runner up to `DURATION` to serve")
	fs.StringVar(&cfg.LogFormat, "log-format", cfg.LogFormat, "write log lines as `text` or json")
	fs.BoolVar(&cfg.AccessLog, "access-log", cfg.AccessLog, "log every request (as cgirun.Run's CGIRUN_ACCESS_LOG)")
	fs.StringVar(&cfg.AccessLogFormat, "access-log-format", cfg.AccessLogFormat, "with --access-log, log each request as `slog` (a line of --log-format) or combined (a raw line of Apache's combined format, which goaccess reads)")
	cfg.ScriptConfig.flags(fs)
	pos, err := parse(fs, args, c.stdout, func(w io.Writer) { writeHelp(w, fcgiHelp, fs, &fcgiConfig{}) })
	if err != nil {
		return err
	}
	if envErr != nil {
		return envErr
	}
	c.warnUnknownSettings("fcgi", &fcgiConfig{}, cfg.PassEnv)
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	implied := c.fcgiwrapLine && len(cfg.Root) == 0 && len(cfg.Allow) == 0 && !cfg.RootFromRequest
	if implied {
		cfg.RootFromRequest = true
	}
	lc, err := cfg.validate()
	if err != nil {
		return err
	}

	log := serve.NewLogger(cfg.LogFormat, c.stderr)
	exec, err := cfg.executor(cfg.Root, log)
	if err != nil {
		return err
	}
	exec.RootFromRequest = cfg.RootFromRequest
	switch {
	case implied:
		log.Warn("cgirun: no --root: each request's script must be inside the request's DOCUMENT_ROOT, which the web server sends, as with fcgiwrap; whoever can connect to the socket chooses it. Give --root DIR (CGIRUN_ROOT), such as --root /usr/lib/cgi-bin, to fix where scripts may be")
	case cfg.RootFromRequest && len(cfg.Root) == 0:
		log.Warn("cgirun: --root-from-request without --root: each request's script must be inside the request's DOCUMENT_ROOT, which whoever can connect to the socket chooses. Give --root DIR (CGIRUN_ROOT) too to bound the DOCUMENT_ROOTs")
	}
	exec.Allow = cfg.Allow
	exec.StderrToWebServer = cfg.StderrToWebServer
	if err := exec.Validate(); err != nil {
		return &usageError{err}
	}

	// SIGHUP is caught before the sockets listen, so that one sent as
	// soon as they accept does not kill the runner.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	set, err := serve.Listen(cfg.Fastcgi, "-s", lc, c.stdin, log)
	switch {
	case err != nil:
		return err
	case len(set.Listeners) == 0:
		return usagef("no socket: give -s or start with a socket on fd 0")
	}
	if os.Geteuid() == 0 && exec.Credential == nil {
		log.Warn("cgirun: scripts run as root; give --user to run them as someone else")
	}
	var responder bridge.Responder = exec
	if cfg.StatusPath != "" || cfg.AccessLog {
		st := newRunnerStatus(cfg.StatusPath, "fastcgi", exec, log)
		if cfg.AccessLog {
			st.accessLog = cfg.AccessLogFormat
		}
		responder = st
	}
	srv := &fastcgi.Server{Responder: responder, Logger: log}
	roots := strings.Join(cfg.Root, ",")
	if cfg.RootFromRequest {
		roots = strings.Join(append([]string{"DOCUMENT_ROOT"}, cfg.Root...), " inside ")
	}
	log.Info("cgirun: serving FastCGI", "on", set.Where, "roots", roots, "children", cfg.Children)
	loop := &serve.Loop{Server: srv, Listeners: set.Listeners, Log: log, Grace: cfg.ShutdownGrace, Ready: set.Ready, Hup: hup,
		Upgrade: func(ctx context.Context) (int, error) { return upgrade.Start(ctx, set.Listeners, cfg.UpgradeTimeout) }}
	return loop.Run(ctx)
}

// closeInherited marks every descriptor above stderr close-on-exec, first
// thing, so that none the runner was started with ("7< root-only-file",
// one its parent leaked) reaches a script: scripts hold fds 0, 1 and 2
// only, whatever their --user. The sockets served stay open (and are
// close-on-exec already); an upgrade hands them on through
// exec.Cmd.ExtraFiles, which needs no inheritable descriptor.
func closeInherited() error {
	if err := proc.CloseOnExecFrom(3); err != nil {
		return fmt.Errorf("closing inherited descriptors to scripts: %w", err)
	}
	return nil
}

// validate checks cfg, fills in what has a derived default, and returns
// how -s creates a unix socket.
func (cfg *fcgiConfig) validate() (fastcgi.ListenConfig, error) {
	if err := checkLogFormat(cfg.LogFormat); err != nil {
		return fastcgi.ListenConfig{}, err
	}
	m, err := strconv.ParseUint(cfg.SocketMode, 8, 32)
	if err != nil || m > 0o777 {
		return fastcgi.ListenConfig{}, usagef("--socket-mode (CGIRUN_SOCKET_MODE) = %q: want an octal mode such as 0660", cfg.SocketMode)
	}
	ids := []struct {
		what, value, example string
		lc                   fastcgi.ListenConfig
	}{
		{"--socket-owner (CGIRUN_SOCKET_OWNER)", cfg.SocketOwner, "a user name or uid, such as www-data", fastcgi.ListenConfig{Owner: cfg.SocketOwner}},
		{"--socket-group (CGIRUN_SOCKET_GROUP)", cfg.SocketGroup, "a group name or gid, such as www-data", fastcgi.ListenConfig{Group: cfg.SocketGroup}},
	}
	for _, id := range ids {
		if _, _, err := id.lc.IDs(); err != nil {
			return fastcgi.ListenConfig{}, usagef("%s = %q: %v: want %s", id.what, id.value, errors.Unwrap(err), id.example)
		}
	}
	if cfg.AccessLogFormat != "slog" && cfg.AccessLogFormat != "combined" {
		return fastcgi.ListenConfig{}, usagef("--access-log-format (CGIRUN_ACCESS_LOG_FORMAT) = %q: want slog or combined", cfg.AccessLogFormat)
	}
	if cfg.ShutdownGrace < 0 {
		return fastcgi.ListenConfig{}, usagef("--shutdown-grace (CGIRUN_SHUTDOWN_GRACE) = %v: want 0 or more", cfg.ShutdownGrace)
	}
	if cfg.UpgradeTimeout < 0 {
		return fastcgi.ListenConfig{}, usagef("--upgrade-timeout (CGIRUN_UPGRADE_TIMEOUT) = %v: want 0 or more", cfg.UpgradeTimeout)
	}
	if cfg.Fastcgi != "" {
		addr, _, _, err := fastcgiAddr(cfg.Fastcgi)
		if err != nil {
			return fastcgi.ListenConfig{}, usagef("-s (CGIRUN_FASTCGI): %v", err)
		}
		cfg.Fastcgi = addr
	}
	empty := func(s string) bool { return s == "" }
	cfg.Allow = slices.DeleteFunc(cfg.Allow, empty)
	cfg.Root = slices.DeleteFunc(cfg.Root, empty)
	if len(cfg.Root) == 0 {
		// fcgiwrap needs no root: "fcgiwrap -p /usr/lib/cgit/cgit.cgi"
		// still works, with the scripts' directories as roots.
		for _, a := range cfg.Allow {
			if d := filepath.Dir(a); !slices.Contains(cfg.Root, d) {
				cfg.Root = append(cfg.Root, d)
			}
		}
	}
	if len(cfg.Root) == 0 && !cfg.RootFromRequest {
		return fastcgi.ListenConfig{}, usagef("no root: give --root DIR (or CGIRUN_ROOT), the directory holding the scripts, such as --root /usr/lib/cgi-bin; or --root-from-request (CGIRUN_ROOT_FROM_REQUEST) to confine each request to its DOCUMENT_ROOT, as fcgiwrap does")
	}
	if err := cfg.ScriptConfig.validate(); err != nil {
		return fastcgi.ListenConfig{}, err
	}
	return fastcgi.ListenConfig{Mode: os.FileMode(m), Owner: cfg.SocketOwner, Group: cfg.SocketGroup}, nil
}
