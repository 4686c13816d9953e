package cgirun

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/kelseyhightower/envconfig"

	"github.com/cgirun/cgirun/fastcgi"
	"github.com/cgirun/cgirun/internal/serve"
	"github.com/cgirun/cgirun/internal/settings"
)

// Config is every setting of Run, read from CGIRUN_* environment variables
// (CGIRUN_FASTCGI, CGIRUN_SHUTDOWN_GRACE, ...). CGIRUN_FASTCGI,
// CGIRUN_SCGI, CGIRUN_UWSGI and CGIRUN_LISTEN may be set together: each
// is a socket of its own, and no two may name the same one.
// CGIRUN_LISTEN's serves every protocol, told apart by each connection's
// first byte (see Run); its connections wait for that byte at most
// CGIRUN_HEADER_TIMEOUT, and CGIRUN_MAX_CONNS bounds those waiting as it
// bounds each protocol's connections. The names follow
// eventlet.wsgi.server's and php-fpm's settings where they have one.
// CGIRUN_SHUTDOWN_GRACE also bounds the drain of a FastCGI server that
// SIGHUP replaced with a new process, and CGIRUN_UPGRADE_TIMEOUT the wait
// for that process to serve (see Run); CGIRUN_INHERIT_FDS and
// CGIRUN_READY_FD are no settings but that upgrade's hand-over (see
// package upgrade).
//
// The status page (CGIRUN_STATUS_PATH, php-fpm's pm.status_path) reports
// the start time, uptime, pid, version and mode, the connections accepted,
// open and idle, the requests started, in flight and most at once, the
// requests answered by status class and by duration (a histogram with
// Prometheus's default buckets), the requests refused by reason and the
// slow requests: as php-fpm's "key: value" text, as JSON with ?json, and as
// OpenMetrics with ?openmetrics or "Accept: application/openmetrics-text"
// (Prometheus's text format 0.0.4 for an Accept of "text/plain;
// version=0.0.4"); ?full adds the requests in flight to the text and JSON.
// The page leaves its own request out of its counts, and
// CGIRUN_MAX_REQUESTS never refuses it. A CGI program keeps none of these
// counts.
//
// The slow log (CGIRUN_SLOWLOG_TIMEOUT, php-fpm's request_slowlog_timeout)
// writes a warning, "cgirun: slow request running", when a request has run
// that long and still runs: its method, URI, duration so far, remote
// address and the stacks of its goroutines, the handler's and those it
// started (they carry the pprof label cgirun_request), at most 16 KiB of
// them. When the request ends, "cgirun: slow request" gives its status
// and whole duration. Each request then has one timer; without the slow
// log, none.
type Config struct {
	CGI              bool          `desc:"serve one CGI request even without GATEWAY_INTERFACE"`
	Fastcgi          string        `desc:"serve FastCGI on this address: unix:/path, /path, tcp:host:port or host:port"`
	SCGI             string        `desc:"serve SCGI on this address (nginx scgi_pass, Apache mod_proxy_scgi, lighttpd mod_scgi), as FASTCGI"`
	UWSGI            string        `desc:"serve uwsgi on this address (nginx uwsgi_pass, Apache mod_proxy_uwsgi), as FASTCGI"`
	Listen           string        `desc:"serve FastCGI, SCGI, uwsgi and HTTP on this one address, told apart by each connection's first byte"`
	HTTP             string        `default:"127.0.0.1:8080" desc:"plain HTTP address when no gateway is detected"`
	TLSCert          string        `split_words:"true" desc:"certificate file: serve HTTPS instead of HTTP (with TLS_KEY)"`
	TLSKey           string        `split_words:"true" desc:"private key file for TLS_CERT"`
	SocketMode       string        `split_words:"true" default:"0660" desc:"mode of a unix socket created for FASTCGI, SCGI, UWSGI or LISTEN (octal)"`
	SocketOwner      string        `split_words:"true" desc:"owner of a unix socket created for FASTCGI, SCGI, UWSGI or LISTEN: a user name or uid; empty: the process's"`
	SocketGroup      string        `split_words:"true" desc:"group of a unix socket created for FASTCGI, SCGI, UWSGI or LISTEN: a name or gid, such as www-data for nginx; empty: the process's"`
	ShutdownGrace    time.Duration `split_words:"true" default:"30s" desc:"on SIGTERM or SIGINT, how long in-flight requests may take"`
	UpgradeTimeout   time.Duration `split_words:"true" default:"30s" desc:"on SIGHUP (FastCGI), how long the new process may take to serve before it is given up"`
	Debug            bool          `desc:"show panics and their stacks to clients (never in production)"`
	LogFormat        string        `split_words:"true" default:"text" desc:"log format on stderr: text or json (durations in seconds)"`
	AccessLog        bool          `split_words:"true" desc:"log every request"`
	AccessLogFormat  string        `split_words:"true" default:"slog" desc:"access log lines: slog (key=value or JSON) or combined (raw lines of Apache's format)"`
	LogXForwardedFor bool          `split_words:"true" desc:"put X-Forwarded-For before the client address in the access log"`
	SlowlogTimeout   time.Duration `split_words:"true" desc:"log a request still running after this, with its goroutines' stacks, and again when it ends; 0: off"`
	StatusPath       string        `split_words:"true" desc:"path of the status page: text, JSON with ?json, OpenMetrics with ?openmetrics; ?full lists the requests in flight; empty: off"`
	PingPath         string        `split_words:"true" desc:"path that answers pong; empty: off"`
	MaxConns         int           `split_words:"true" desc:"most open connections; 0: no bound"`
	MaxRequests      int           `split_words:"true" desc:"most requests answered at once, status and ping pages aside; past it 503 with Retry-After; 0: no bound"`
	QueueRequests    bool          `split_words:"true" desc:"a request past MAX_REQUESTS waits for a slot, up to HEADER_TIMEOUT, instead of 503 at once"`
	MaxHeaderBytes   int           `split_words:"true" default:"65536" desc:"bound on a request's header block (431 past it)"`
	MaxURLLength     int           `split_words:"true" default:"8192" desc:"bound on a request URI (414 past it); 0: none"`
	Keepalive        bool          `default:"true" desc:"HTTP: keep client connections open between requests"`
	IdleTimeout      time.Duration `split_words:"true" default:"2m" desc:"how long a kept-alive connection with no request stays open"`
	HeaderTimeout    time.Duration `split_words:"true" default:"10s" desc:"bound on reading a request's header block"`
	ReadTimeout      time.Duration `split_words:"true" default:"60s" desc:"HTTP: bound on reading a whole request; FastCGI: on each body record"`
	WriteTimeout     time.Duration `split_words:"true" desc:"HTTP: bound on writing a whole response (0: none, for streams); FastCGI: on each write (0: 60s)"`
	RequestTimeout   time.Duration `split_words:"true" desc:"bound on one request: its context ends, and 503 if nothing was sent yet; 0: none"`
}

// LoadConfig reads Config from the environment and checks it. The error
// names the variable, says what was wrong and gives an example of a right
// value. Booleans are true or false, yes or no, on or off (in any case),
// or what strconv.ParseBool takes; LoadConfig rewrites a yes, no, on or
// off in the environment to true or false, which envconfig reads.
func LoadConfig() (Config, error) {
	var c Config
	settings.NormalizeBools("CGIRUN", &c)
	if err := envconfig.Process("CGIRUN", &c); err != nil {
		return c, fmt.Errorf("cgirun: %w", settings.EnvError(err))
	}
	return c, c.validate()
}

// defaultConfig is what LoadConfig returns when no CGIRUN_* variable is
// set: the default tags of Config, which TestDefaultConfig checks it
// against.
func defaultConfig() Config {
	return Config{
		HTTP:            "127.0.0.1:8080",
		SocketMode:      "0660",
		ShutdownGrace:   30 * time.Second,
		UpgradeTimeout:  30 * time.Second,
		LogFormat:       "text",
		AccessLogFormat: "slog",
		MaxHeaderBytes:  65536,
		MaxURLLength:    8192,
		Keepalive:       true,
		IdleTimeout:     2 * time.Minute,
		HeaderTimeout:   10 * time.Second,
		ReadTimeout:     60 * time.Second,
	}
}

// hasSettings reports whether environ (os.Environ's form) sets any CGIRUN_*
// variable that LoadConfig would read differently from the defaults. A
// CGIRUN_CGI of "true" or "1" does not count: Run has read it already.
func hasSettings(environ []string) bool {
	for _, kv := range environ {
		if strings.HasPrefix(kv, "CGIRUN_") && kv != "CGIRUN_CGI=true" && kv != "CGIRUN_CGI=1" {
			return true
		}
	}
	return false
}

func (c *Config) validate() error {
	if _, err := c.listenConfig(); err != nil {
		return err
	}
	seen := map[string]string{}
	for _, a := range c.addresses() {
		if a.Addr == "" {
			continue
		}
		network, address, err := a.Parse()
		if err != nil {
			return fmt.Errorf("cgirun: %s: %w", a.Setting, err)
		}
		if other, ok := seen[network+" "+address]; ok {
			or := ", or serve every protocol on one with CGIRUN_LISTEN"
			if a.Setting == "CGIRUN_LISTEN" {
				or = ", or leave " + other + " unset: CGIRUN_LISTEN's socket serves its protocol too"
			}
			return fmt.Errorf("cgirun: %s=%q: %s names the same socket: give each its own address, such as %s=unix:/run/app-%s.sock%s",
				a.Setting, a.Addr, other, a.Setting, strings.ToLower(strings.TrimPrefix(a.Setting, "CGIRUN_")), or)
		}
		seen[network+" "+address] = a.Setting
	}
	choices := []struct{ name, value, allowed string }{
		{"CGIRUN_LOG_FORMAT", c.LogFormat, "text json"},
		{"CGIRUN_ACCESS_LOG_FORMAT", c.AccessLogFormat, "slog combined"},
	}
	for _, ch := range choices {
		if !strings.Contains(" "+ch.allowed+" ", " "+ch.value+" ") {
			return fmt.Errorf("cgirun: %s=%q: want one of %s", ch.name, ch.value, ch.allowed)
		}
	}
	for name, p := range map[string]string{"CGIRUN_STATUS_PATH": c.StatusPath, "CGIRUN_PING_PATH": c.PingPath} {
		if p != "" && !strings.HasPrefix(p, "/") {
			return fmt.Errorf("cgirun: %s=%q: want a path starting with /", name, p)
		}
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("cgirun: CGIRUN_TLS_CERT and CGIRUN_TLS_KEY go together")
	}
	counts := []struct {
		name  string
		value int
	}{{"CGIRUN_MAX_CONNS", c.MaxConns}, {"CGIRUN_MAX_REQUESTS", c.MaxRequests}, {"CGIRUN_MAX_HEADER_BYTES", c.MaxHeaderBytes}, {"CGIRUN_MAX_URL_LENGTH", c.MaxURLLength}}
	for _, n := range counts {
		if n.value < 0 {
			return fmt.Errorf("cgirun: %s=%d: want 0 or more", n.name, n.value)
		}
	}
	durations := []struct {
		name  string
		value time.Duration
	}{{"CGIRUN_SHUTDOWN_GRACE", c.ShutdownGrace}, {"CGIRUN_UPGRADE_TIMEOUT", c.UpgradeTimeout}, {"CGIRUN_SLOWLOG_TIMEOUT", c.SlowlogTimeout}, {"CGIRUN_IDLE_TIMEOUT", c.IdleTimeout},
		{"CGIRUN_HEADER_TIMEOUT", c.HeaderTimeout}, {"CGIRUN_READ_TIMEOUT", c.ReadTimeout}, {"CGIRUN_WRITE_TIMEOUT", c.WriteTimeout},
		{"CGIRUN_REQUEST_TIMEOUT", c.RequestTimeout}}
	for _, d := range durations {
		if d.value < 0 {
			return fmt.Errorf("cgirun: %s=%v: want a duration of 0 or more", d.name, d.value)
		}
	}
	return nil
}

// addresses are the addresses of the gateway settings, in the order
// their sockets are created, and the protocol each serves (serve.Any:
// every one).
func (c *Config) addresses() []serve.Address {
	return []serve.Address{
		{Setting: "CGIRUN_FASTCGI", Addr: c.Fastcgi, Proto: "FastCGI"},
		{Setting: "CGIRUN_SCGI", Addr: c.SCGI, Proto: "SCGI"},
		{Setting: "CGIRUN_UWSGI", Addr: c.UWSGI, Proto: "uwsgi"},
		{Setting: "CGIRUN_LISTEN", Addr: c.Listen, Proto: "FastCGI, SCGI, uwsgi and HTTP"},
	}
}

// addressProtocols are the protocols of addresses' entries, in order.
var addressProtocols = [...]serve.Protocol{serve.FastCGI, serve.SCGI, serve.UWSGI, serve.Any}

// handedProtocol is the protocol of a socket the process was handed (fd
// 0, systemd's) that is bound to no setting's address: that of the one
// gateway setting set, FastCGI when none or several are. guessed reports
// the last case: several settings, and the socket is none of theirs.
func (c *Config) handedProtocol() (p serve.Protocol, guessed bool) {
	p, n := serve.FastCGI, 0
	for i, a := range c.addresses() {
		if a.Addr != "" {
			p, n = addressProtocols[i], n+1
		}
	}
	if n != 1 {
		return serve.FastCGI, n > 1
	}
	return p, false
}

func (c *Config) socketMode() (os.FileMode, error) {
	m, err := strconv.ParseUint(c.SocketMode, 8, 32)
	if err != nil || m > 0o777 {
		return 0, fmt.Errorf("cgirun: CGIRUN_SOCKET_MODE=%q: want an octal mode such as 0660", c.SocketMode)
	}
	return os.FileMode(m), nil
}

// listenConfig returns how a unix socket for CGIRUN_FASTCGI, CGIRUN_SCGI,
// CGIRUN_UWSGI or CGIRUN_LISTEN is created.
// The error names the variable that is wrong.
func (c *Config) listenConfig() (fastcgi.ListenConfig, error) {
	mode, err := c.socketMode()
	if err != nil {
		return fastcgi.ListenConfig{}, err
	}
	ids := []struct {
		name, value, example string
		lc                   fastcgi.ListenConfig
	}{
		{"CGIRUN_SOCKET_OWNER", c.SocketOwner, "a user name or uid, such as www-data", fastcgi.ListenConfig{Owner: c.SocketOwner}},
		{"CGIRUN_SOCKET_GROUP", c.SocketGroup, "a group name or gid, such as www-data", fastcgi.ListenConfig{Group: c.SocketGroup}},
	}
	for _, id := range ids {
		if _, _, err := id.lc.IDs(); err != nil {
			return fastcgi.ListenConfig{}, fmt.Errorf("cgirun: %s=%q: %v: want %s", id.name, id.value, errors.Unwrap(err), id.example)
		}
	}
	return fastcgi.ListenConfig{Mode: mode, Owner: c.SocketOwner, Group: c.SocketGroup}, nil
}

// Usage writes the table of settings, their defaults and descriptions.
func Usage(w io.Writer) error {
	return settings.Usage(w, "CGIRUN", &Config{})
}
