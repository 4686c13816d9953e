package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/kelseyhightower/envconfig"

	"github.com/cgirun/cgirun/cgi"
	"github.com/cgirun/cgirun/fastcgi"
	"github.com/cgirun/cgirun/internal/settings"
)

// Exit statuses of run.
const (
	exitOK      = 0
	exitFailure = 1 // the command ran and failed
	exitUsage   = 2 // a mistake on the command line or in a CGIRUN_* variable
)

// envPrefix is the prefix of every environment variable the commands read.
// Unprefixed names are never read: in CGI the environment holds HTTP_*
// values that any client controls.
const envPrefix = "CGIRUN"

// usageError is a mistake on the command line or in the environment: one
// line on stderr, exit status 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// exitCode ends a command with a status and nothing more to say (probe's
// answer outside 2xx and 3xx: the answer itself was printed).
type exitCode int

func (e exitCode) Error() string { return "exit status " + strconv.Itoa(int(e)) }

// errHelp is returned once a command's help was printed: exit status 0.
var errHelp = errors.New("help printed")

// loadEnv reads the CGIRUN_* variables into spec, a pointer to a command's
// config struct. Its error names the variable, what was wrong and an
// example of a right value. Booleans take yes, no, on and off too: loadEnv
// rewrites them in the environment to true or false, which envconfig reads.
func loadEnv(spec any) error {
	settings.NormalizeBools(envPrefix, spec)
	if err := envconfig.Process(envPrefix, spec); err != nil {
		return &usageError{settings.EnvError(err)}
	}
	return nil
}

// warnUnknownSettings writes a line to c.stderr for each CGIRUN_* variable
// of the environment that no command reads, naming the closest setting of
// spec (a pointer to the command's config struct): a mistyped name is
// otherwise ignored without a word. The names of passEnv are the scripts'
// (a cgirun program's settings), and another command's settings are no
// typos: an environment file may serve fcgi and its probe alike.
func (c *cli) warnUnknownSettings(name string, spec any, passEnv []string) {
	environ := os.Environ()
	if !slices.ContainsFunc(environ, func(kv string) bool { return strings.HasPrefix(kv, envPrefix+"_") }) {
		return
	}
	others := make(map[string]bool)
	for _, n := range passEnv {
		others[n] = true
	}
	for _, other := range []any{&fcgiConfig{}, &httpConfig{}, &proxyConfig{}, &probeConfig{}} {
		for n := range settings.Names(envPrefix, other) {
			others[n] = true
		}
	}
	known := settings.Names(envPrefix, spec)
	environ = slices.DeleteFunc(environ, func(kv string) bool {
		n, _, _ := strings.Cut(kv, "=")
		_, own := known[n]
		return others[n] && !own
	})
	for _, w := range settings.Unknown(environ, known) {
		fmt.Fprintf(c.stderr, "cgirun %s: %s\n", name, w)
	}
}

// newFlagSet returns a flag set that prints nothing: run prints one line
// for an error and the whole help for -h or --help.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("cgirun "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// parse parses args into fs and returns the positional arguments, which
// may come before, between or after the flags ("probe ADDR --timeout 1s").
// After "--" every argument is positional. On -h or --help it writes help
// to stdout and returns errHelp.
func parse(fs *flag.FlagSet, args []string, stdout io.Writer, help func(io.Writer)) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				help(stdout)
				return nil, errHelp
			}
			return nil, &usageError{flagError(fs, err)}
		}
		rest := fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// flagErrorRE matches the flag package's errors that name a flag.
var flagErrorRE = regexp.MustCompile(`^(?:invalid (?:boolean )?value (".*") for (?:flag )?-(\S+): (.*)|flag provided but not defined: -+(\S+)|flag needs an argument: -+(\S+))$`)

// flagError rewrites an error of fs.Parse in the words of loadEnv: the
// flag and its value, what was wrong and an example of a right value
// (`--timeout "5": not a duration: ...`, not "invalid value ... parse
// error"); an unknown flag gets the closest one.
func flagError(fs *flag.FlagSet, err error) error {
	m := flagErrorRE.FindStringSubmatch(err.Error())
	switch {
	case m == nil:
		return err
	case m[4] != "":
		best := settings.Closest(m[4], func(yield func(string) bool) {
			fs.VisitAll(func(f *flag.Flag) { yield(f.Name) })
		})
		if best == "" || len(m[4]) == 1 {
			return fmt.Errorf("unknown flag %s", dashed(m[4]))
		}
		return fmt.Errorf("unknown flag %s; did you mean %s?", dashed(m[4]), dashed(best))
	case m[5] != "":
		return fmt.Errorf("%s needs a value", dashed(m[5]))
	}
	value, name, what := m[1], m[2], m[3]
	var v any
	if f := fs.Lookup(name); f != nil {
		if g, ok := f.Value.(flag.Getter); ok {
			v = g.Get()
		}
	}
	switch v.(type) {
	case time.Duration:
		what = "not a duration: want a number with a unit, such as 30s"
	case bool:
		what = "not a boolean: want true or false"
	case int, int64:
		if strings.Contains(what, "out of range") {
			what = "out of range: want a smaller whole number, such as 100"
		} else {
			what = "not a whole number: want digits, such as 100"
		}
	}
	return fmt.Errorf("%s %s: %s", dashed(name), value, what)
}

// dashed returns a flag's name as the help writes it: -c, --timeout.
func dashed(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// listFlag is a repeatable flag for a list that the environment may have
// filled: the first use on the command line replaces that list.
type listFlag struct {
	list *[]string
	set  bool
}

func (f *listFlag) String() string {
	if f.list == nil {
		return ""
	}
	return strings.Join(*f.list, ",")
}

func (f *listFlag) Set(v string) error {
	if !f.set {
		*f.list, f.set = nil, true
	}
	*f.list = append(*f.list, v)
	return nil
}

// writeHelp writes a command's help: text, then its flags, then the
// environment variables of spec (a pointer to its config struct). To a
// helpPages it hands the three over instead, for the man page.
func writeHelp(w io.Writer, text string, fs *flag.FlagSet, spec any) {
	if p, ok := w.(*helpPages); ok {
		p.pages = append(p.pages, helpPage{text, fs, spec})
		return
	}
	io.WriteString(w, strings.TrimLeft(text, "\n"))
	if fs != nil {
		io.WriteString(w, "\nFlags:\n")
		fs.VisitAll(func(f *flag.Flag) {
			name, usage := flag.UnquoteUsage(f)
			dash := "--"
			if len(f.Name) == 1 {
				dash = "-"
			}
			if name != "" {
				name = " " + name
			}
			fmt.Fprintf(w, "  %s%s%s\n    \t%s", dash, f.Name, name, usage)
			switch f.DefValue {
			case "", "0", "0s", "false":
			default:
				fmt.Fprintf(w, " (default %s)", f.DefValue)
			}
			io.WriteString(w, "\n")
		})
	}
	if spec != nil {
		io.WriteString(w, "\nEnvironment (the flags override it; lists are comma-separated):\n")
		tw := tabwriter.NewWriter(w, 1, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  VARIABLE\tTYPE\tDEFAULT\tMEANING")
		vars, _ := settings.Vars(envPrefix, spec)
		for _, v := range vars {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", v.Key, v.Type, v.Default, v.Desc)
		}
		tw.Flush()
	}
}

// ScriptConfig holds the settings of running CGI executables, shared by
// fcgi and http. It is exported so that envconfig reads it embedded.
type ScriptConfig struct {
	Children           int           `desc:"-c: most scripts running at once, others wait up to 10s then get 503 (fcgiwrap's -c counted preforked processes); default: 16 per CPU (GOMAXPROCS); 0: no bound"`
	ScriptTimeout      time.Duration `split_words:"true" default:"60s" desc:"--timeout: bound on one script run (504 or a cut response past it); 0: none"`
	KillGrace          time.Duration `split_words:"true" default:"5s" desc:"--kill-grace: wait between SIGTERM and SIGKILL for a script past its time"`
	MaxBody            int64         `split_words:"true" desc:"--max-body: bound on a request body in bytes (413 past it); 0: none"`
	MaxStderr          int64         `split_words:"true" default:"65536" desc:"--max-stderr: bytes of one script's stderr that reach the logs; the rest is read and dropped; 0: none"`
	PassEnv            []string      `split_words:"true" default:"PATH" desc:"--pass-env: the runner's own variables that scripts get"`
	AllowEnv           []string      `split_words:"true" desc:"--allow-env: request variables that scripts may get although dropped by default (LD_*, BASH_ENV, PYTHONPATH, ...)"`
	User               string        `desc:"--user: run scripts as USER[:GROUP] (the runner must be root)"`
	StrictScripts      bool          `split_words:"true" desc:"--strict-scripts: check scripts as under --user (suEXEC's checks, no_new_privs), the target user being the runner's"`
	UnsafeScripts      []string      `split_words:"true" desc:"--unsafe-scripts: checks of --user and --strict-scripts to skip: setid, writable, owner"`
	AllowPrivilegeGain bool          `split_words:"true" desc:"--allow-privilege-gain: under --user or --strict-scripts, let scripts gain privileges through setuid programs (no no_new_privs)"`
	RlimitCPU          int64         `envconfig:"RLIMIT_CPU" desc:"--rlimit-cpu: CPU seconds of each script (SIGXCPU past them, SIGKILL a second later); 0: no limit"`
	RlimitAS           int64         `envconfig:"RLIMIT_AS" desc:"--rlimit-as: address space of each script in bytes (allocations past it fail); 0: no limit"`
	RlimitNproc        int64         `envconfig:"RLIMIT_NPROC" desc:"--rlimit-nproc: processes of the scripts' user (forks past it fail; not for root); 0: no limit"`
	RlimitNofile       int64         `envconfig:"RLIMIT_NOFILE" desc:"--rlimit-nofile: open files of each script; 0: no limit"`
	StatusPath         string        `split_words:"true" desc:"--status-path: the path of the runner's status page (text, ?json, ?openmetrics), matched against SCRIPT_NAME over FastCGI and the URL path over HTTP; empty: off"`
}

// childrenPerCPU is how many scripts may run at once per CPU by default:
// enough to keep the CPUs busy with scripts that mostly wait (on a
// database, the network, the disk), few enough that a burst of requests
// cannot start processes without bound. php-fpm's pm.max_children is 5
// and Apache's MaxRequestWorkers 150 or 256, whatever the machine.
const childrenPerCPU = 16

// defaultChildren is the default of -c: childrenPerCPU per CPU the runner
// may use (GOMAXPROCS, which follows the CPU affinity and cgroup quota).
func defaultChildren() int {
	return childrenPerCPU * runtime.GOMAXPROCS(0)
}

// flags defines the flags of s, whose values so far are the
// environment's. -c, whose default is derived from the CPUs, gets it here
// when CGIRUN_CHILDREN is not set: -c 0 and CGIRUN_CHILDREN=0 still mean
// no bound.
func (s *ScriptConfig) flags(fs *flag.FlagSet) {
	if _, set := os.LookupEnv(envPrefix + "_CHILDREN"); !set {
		s.Children = defaultChildren()
	}
	fs.IntVar(&s.Children, "c", s.Children, "run at most `N` scripts at once, others wait up to 10s then get 503 (not fcgiwrap's prefork count); the default is 16 per CPU; 0: no bound")
	fs.DurationVar(&s.ScriptTimeout, "timeout", s.ScriptTimeout, "end a script running longer than `DURATION` (SIGTERM, then SIGKILL); 0: never")
	fs.DurationVar(&s.KillGrace, "kill-grace", s.KillGrace, "wait `DURATION` between SIGTERM and SIGKILL")
	fs.Int64Var(&s.MaxBody, "max-body", s.MaxBody, "refuse request bodies over `BYTES` with 413; 0: no bound")
	fs.Int64Var(&s.MaxStderr, "max-stderr", s.MaxStderr, "log at most `BYTES` of one script's stderr; the rest is dropped")
	fs.Var(&listFlag{list: &s.PassEnv}, "pass-env", "pass the runner's variable `NAME` to scripts (repeatable; the operator's own, never filtered)")
	fs.Var(&listFlag{list: &s.AllowEnv}, "allow-env", "let the request variable `NAME` reach scripts although it is dropped by default, such as TMPDIR (repeatable; LD_*, BASH_ENV, BASH_FUNC_*, PYTHONPATH, PERL5LIB, http_proxy, names that are not CGI names, ...)")
	fs.StringVar(&s.User, "user", s.User, "run scripts as `USER[:GROUP]`, a name or a number (needs root); a script is then refused (403) when setuid or setgid, writable by group or others, in a directory writable by group or others, or not owned by USER, and no script gains privileges through exec (no_new_privs)")
	fs.BoolVar(&s.StrictScripts, "strict-scripts", s.StrictScripts, "check scripts and set no_new_privs as --user does, without --user: the scripts must be owned by the runner's user")
	fs.Var(&listFlag{list: &s.UnsafeScripts}, "unsafe-scripts", "skip one check of --user and --strict-scripts: `CHECK` is setid, writable or owner (repeatable or comma-separated, such as setid,owner)")
	fs.Int64Var(&s.RlimitCPU, "rlimit-cpu", s.RlimitCPU, "limit each script to `SECONDS` of CPU (Apache's RLimitCPU); 0: none")
	fs.Int64Var(&s.RlimitAS, "rlimit-as", s.RlimitAS, "limit each script's address space to `BYTES` (Apache's RLimitMEM); 0: none")
	fs.Int64Var(&s.RlimitNproc, "rlimit-nproc", s.RlimitNproc, "limit the scripts' user to `N` processes (Apache's RLimitNPROC; the kernel exempts root); 0: none")
	fs.Int64Var(&s.RlimitNofile, "rlimit-nofile", s.RlimitNofile, "limit each script to `N` open files; 0: none")
	fs.BoolVar(&s.AllowPrivilegeGain, "allow-privilege-gain", s.AllowPrivilegeGain, "under --user or --strict-scripts, let scripts gain privileges through setuid or setgid programs (leave no_new_privs off)")
	fs.StringVar(&s.StatusPath, "status-path", s.StatusPath, "answer the requests for `PATH`, such as /cgirun-status, with the runner's status page, never a script: its counts of scripts and requests as text, JSON (?json) or OpenMetrics (?openmetrics); the path is SCRIPT_NAME over FastCGI, the URL path over HTTP")
}

func (s *ScriptConfig) validate() error {
	counts := []struct {
		what  string
		value int64
	}{{"-c (CGIRUN_CHILDREN)", int64(s.Children)}, {"--max-body (CGIRUN_MAX_BODY)", s.MaxBody}, {"--max-stderr (CGIRUN_MAX_STDERR)", s.MaxStderr},
		{"--rlimit-cpu (CGIRUN_RLIMIT_CPU)", s.RlimitCPU}, {"--rlimit-as (CGIRUN_RLIMIT_AS)", s.RlimitAS},
		{"--rlimit-nproc (CGIRUN_RLIMIT_NPROC)", s.RlimitNproc}, {"--rlimit-nofile (CGIRUN_RLIMIT_NOFILE)", s.RlimitNofile}}
	for _, c := range counts {
		if c.value < 0 {
			return usagef("%s = %d: want 0 or more", c.what, c.value)
		}
	}
	if s.ScriptTimeout < 0 {
		return usagef("--timeout (CGIRUN_SCRIPT_TIMEOUT) = %v: want 0 or more", s.ScriptTimeout)
	}
	if s.KillGrace <= 0 {
		return usagef("--kill-grace (CGIRUN_KILL_GRACE) = %v: want more than 0", s.KillGrace)
	}
	s.PassEnv = slices.DeleteFunc(s.PassEnv, func(n string) bool { return n == "" })
	for _, n := range s.PassEnv {
		if strings.ContainsAny(n, "=\x00") {
			return usagef("--pass-env (CGIRUN_PASS_ENV) %q: not a variable name", n)
		}
	}
	var unsafe []string
	for _, c := range s.UnsafeScripts {
		unsafe = append(unsafe, strings.Split(c, ",")...)
	}
	s.UnsafeScripts = slices.DeleteFunc(unsafe, func(c string) bool { return c == "" })
	for _, c := range s.UnsafeScripts {
		if c != "setid" && c != "writable" && c != "owner" {
			return usagef("--unsafe-scripts (CGIRUN_UNSAFE_SCRIPTS) %q: not a check; want setid, writable or owner, such as --unsafe-scripts setid,owner", c)
		}
	}
	if s.StatusPath != "" && !strings.HasPrefix(s.StatusPath, "/") {
		return usagef("--status-path (CGIRUN_STATUS_PATH) = %q: want a path starting with /, such as /cgirun-status", s.StatusPath)
	}
	s.AllowEnv = slices.DeleteFunc(s.AllowEnv, func(n string) bool { return n == "" })
	for _, n := range s.AllowEnv {
		if strings.ContainsAny(n, "=\x00") {
			return usagef("--allow-env (CGIRUN_ALLOW_ENV) %q: not a variable name; want a name such as TMPDIR", n)
		}
	}
	return nil
}

// executor returns the Executor for roots with these settings, checked.
func (s *ScriptConfig) executor(roots []string, log *slog.Logger) (*cgi.Executor, error) {
	if s.MaxStderr == 0 {
		s.MaxStderr = -1 // none, where the executor's 0 is its default
	}
	cred, err := credential(s.User)
	if err != nil {
		return nil, usagef("--user (CGIRUN_USER) %q: %v", s.User, err)
	}
	for _, root := range roots {
		if err := checkAccess(root, cred); err != nil {
			return nil, usagef("--user (CGIRUN_USER) %q cannot read and search --root %s: %v; give the user access (such as chmod o+rx) or choose another user", s.User, root, err)
		}
	}
	e := &cgi.Executor{
		Roots:              roots,
		Env:                append([]string{}, s.PassEnv...), // never nil: empty means none
		AllowEnv:           s.AllowEnv,
		Timeout:            s.ScriptTimeout,
		KillGrace:          s.KillGrace,
		MaxChildren:        s.Children,
		MaxBodyBytes:       s.MaxBody,
		MaxStderrBytes:     s.MaxStderr,
		Credential:         cred,
		StrictScripts:      s.StrictScripts,
		AllowSetID:         slices.Contains(s.UnsafeScripts, "setid"),
		AllowWritable:      slices.Contains(s.UnsafeScripts, "writable"),
		AllowAnyOwner:      slices.Contains(s.UnsafeScripts, "owner"),
		AllowPrivilegeGain: s.AllowPrivilegeGain,
		Limits: cgi.Limits{CPUSeconds: uint64(s.RlimitCPU), AddressSpace: uint64(s.RlimitAS),
			Processes: uint64(s.RlimitNproc), OpenFiles: uint64(s.RlimitNofile)},
		// The runner starts no children but scripts and an upgrade's
		// new runner: it can end what scripts leave behind.
		EndOrphans: runtime.GOOS == "linux",
		Logger:     log,
	}
	return e, nil
}

// checkAccess returns an error when the user of cred cannot read and
// search dir, or search a directory above it, by their permission bits
// (ACLs aside): the scripts would fail at every request otherwise. cred
// nil (no --user) and root can.
func checkAccess(dir string, cred *syscall.Credential) error {
	if cred == nil || cred.Uid == 0 {
		return nil
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	need := uint32(0o5) // read and search dir itself
	for d := dir; ; d = filepath.Dir(d) {
		var st syscall.Stat_t
		if err := syscall.Stat(d, &st); err != nil {
			return err
		}
		if permBits(&st, cred)&need != need {
			return fmt.Errorf("%s is mode %v, owner %d, group %d", d, os.FileMode(st.Mode&0o777), st.Uid, st.Gid)
		}
		if d == filepath.Dir(d) {
			return nil
		}
		need = 0o1 // search the directories above
	}
}

// permBits returns the permission bits of st that apply to the user of
// cred, owner's, group's or other's, as the low three bits.
func permBits(st *syscall.Stat_t, cred *syscall.Credential) uint32 {
	bits := uint32(st.Mode) // other's; Mode is a uint16 on the BSDs and macOS
	switch {
	case st.Uid == cred.Uid:
		bits >>= 6
	case st.Gid == cred.Gid || slices.Contains(cred.Groups, st.Gid):
		bits >>= 3
	}
	return bits & 0o7
}

// credential looks up USER[:GROUP], each a name or a number. The scripts
// get the user's supplementary groups, as after initgroups.
func credential(spec string) (*syscall.Credential, error) {
	if spec == "" {
		return nil, nil
	}
	name, group, hasGroup := strings.Cut(spec, ":")
	u, err := user.Lookup(name)
	if err != nil {
		if _, nerr := strconv.ParseUint(name, 10, 32); nerr != nil {
			return nil, err
		}
		if u, err = user.LookupId(name); err != nil {
			return nil, err
		}
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("user %s has a uid %q that is not a number", name, u.Uid)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("user %s has a gid %q that is not a number", name, u.Gid)
	}
	if hasGroup {
		g, err := user.LookupGroup(group)
		if err != nil {
			if _, nerr := strconv.ParseUint(group, 10, 32); nerr != nil {
				return nil, err
			}
			if g, err = user.LookupGroupId(group); err != nil {
				return nil, err
			}
		}
		if gid, err = strconv.ParseUint(g.Gid, 10, 32); err != nil {
			return nil, fmt.Errorf("group %s has a gid %q that is not a number", group, g.Gid)
		}
	}
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	ids, err := u.GroupIds()
	if err != nil {
		return nil, fmt.Errorf("groups of %s: %w", name, err)
	}
	for _, id := range ids {
		if n, err := strconv.ParseUint(id, 10, 32); err == nil {
			cred.Groups = append(cred.Groups, uint32(n))
		}
	}
	return cred, nil
}

// fastcgiAddr checks a FastCGI address and returns it in the form
// package fastcgi takes. fcgiwrap's "tcp6:[::1]:9000" and "tcp4:" are
// accepted too.
func fastcgiAddr(addr string) (normal, network, address string, err error) {
	for _, p := range []string{"tcp6:", "tcp4:"} {
		if rest, ok := strings.CutPrefix(addr, p); ok {
			addr = "tcp:" + rest
		}
	}
	network, address, err = fastcgi.ParseAddr(addr)
	return addr, network, address, err
}

// checkHTTPAddr checks a host:port to listen on.
func checkHTTPAddr(what, addr string) error {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return usagef("%s = %q: want host:port, such as 127.0.0.1:8000", what, addr)
	}
	return nil
}

func checkLogFormat(f string) error {
	if f != "text" && f != "json" {
		return usagef("--log-format (CGIRUN_LOG_FORMAT) = %q: want text or json", f)
	}
	return nil
}

// absDir returns dir as an absolute path and checks that it is a
// directory.
func absDir(what, dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", usagef("%s %q: %v", what, dir, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return "", usagef("%s %q: %v", what, dir, err)
	}
	if !fi.IsDir() {
		return "", usagef("%s %q: not a directory", what, dir)
	}
	return abs, nil
}
