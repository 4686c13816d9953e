package cgi

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cgirun/cgirun/bridge"
	"github.com/cgirun/cgirun/internal/defaults"
	"github.com/cgirun/cgirun/internal/proc"
)

// Defaults of the Executor's settings.
const (
	DefaultKillGrace    = 5 * time.Second
	DefaultQueueTimeout = 10 * time.Second
	// DefaultMaxStderrBytes bounds what one script's stderr puts in the
	// logs.
	DefaultMaxStderrBytes = 64 << 10
)

// Executor is the bridge.Responder that runs a CGI executable for each
// request (RFC 3875), the back end of the cgirun runner: fcgiwrap's job,
// done safely.
//
// The script is SCRIPT_FILENAME, or DOCUMENT_ROOT+SCRIPT_NAME when the web
// server sent none. It must resolve, symlinks followed, to a regular
// executable file inside one of Roots, or inside the request's
// DOCUMENT_ROOT under RootFromRequest (and be one of Allow when that is
// set): otherwise the client gets 404 (missing) or 403 (anything else) and
// nothing runs. The child is started with execve directly (no shell), in
// the script's directory and its own process group, with the request's
// CGI variables and only the runner's own variables named in Env.
//
// A request's variable that could change what runs before the script's
// first line, or how, is dropped, unless AllowEnv names it: HTTP_PROXY and
// http_proxy in any case (httpoxy); LD_*, MALLOC_* and the rest of what
// glibc's loader ignores in secure mode (GCONV_PATH, LOCPATH, NLSPATH,
// TMPDIR, ...); BASH_ENV, ENV, BASH_FUNC_*, IFS, SHELLOPTS, BASHOPTS, PS4
// and CDPATH; PERL5LIB, PERL5OPT, PERLLIB, PYTHONPATH, PYTHONSTARTUP,
// PYTHONHOME, PYTHONINSPECT, RUBYOPT, RUBYLIB, NODE_OPTIONS, NODE_PATH and
// the JVM's option variables; and any name that is not a CGI
// meta-variable name (letters, digits and '_', not starting with a digit),
// so no exported bash function. nginx and Apache never send such names
// from a client's headers (HTTP_* only), but any process that can reach
// the runner's socket can. The dropped names are logged at debug level,
// once per request.
//
// On Linux the script is opened once (O_PATH, symlinks followed) and what
// is checked is the opened file: its path as the kernel reports it
// (/proc/self/fd/N) and its fstat. What runs is that file: a binary is
// executed as /proc/self/fd/N, a descriptor that is close-on-exec, so the
// script never holds it; for a "#!" script the runner reads the "#!" line
// from the opened file and executes the interpreter it names as the kernel
// would, with argv [interpreter, optional argument, real path]. Swapping a
// directory of the root for a symlink after the check thus never changes
// which program runs. What remains: the interpreter opens the script by
// its checked real path, so whoever can write a directory on that path
// inside the root can change what the interpreter reads, not which
// program runs. argv and $0 are those of an execve of the real path; the
// process name (/proc/PID/comm) is the descriptor's number for a binary
// and the interpreter's name for a "#!" script. A "#!" script on a file
// system mounted noexec is refused, as the kernel refuses it. The working
// directory is the directory of the real path, entered by path. Where
// /proc/self/fd is missing, and on other systems, the script is checked
// by path (symlinks resolved, then stat) and executed by that path: a
// swap between the two is not caught there.
//
// The script's stdin is the request body, written while its stdout is
// read, so a large body and a large response cannot deadlock. A request
// whose Body is nil, a body known to be empty (see bridge.Request.Body),
// gives the script /dev/null, opened once and shared, and no pipe; any
// other Body goes through a pipe, also one that turns out to be empty. Its
// stdout is parsed with bridge.ReadResponse (a script that dies before its
// header block, or writes a bad one, gets 502) and its body streams to the
// client as it comes. Once stdout ends, the script's exit status decides:
// one that died on a signal or exited with a status other than 0 has its
// answer cut short (Respond returns an error wrapping bridge.ErrCutShort)
// and is logged with its status. A script that is exiting as its stdout
// ends, as most do, is waited for (up to KillGrace); one that closed
// stdout and runs on is not, and its answer is whole. Its stderr goes to
// the log, and to the web server's error log when StderrToWebServer is
// set. Respond's goroutine reads stdout and stderr and waits for the exit
// at once, through the poller (on Linux one epoll set holding the pipes
// and the script's pidfd): a script costs no goroutine of its own unless
// it has a body to read (stdin's copy) or is not done with by the time its
// answer is (the grace, then its end). So stderr is read while the
// answer waits for the script, and not while it waits for the client.
//
// A request that runs past Timeout, or whose client goes away, has its
// process group sent SIGTERM, then SIGKILL after KillGrace. Every child is
// waited for: none is left a zombie. The request ends with its script:
// once the script has exited, or was ended, the runner's ends of its
// pipes are closed, at the latest KillGrace after its exit, also when a
// process it started in a session of its own still holds them (the answer
// is then cut short); see EndOrphans for ending such processes.
type Executor struct {
	// Roots are the directories that hold the scripts. Required unless
	// RootFromRequest is set.
	Roots []string
	// RootFromRequest confines each request's script to the request's
	// DOCUMENT_ROOT, symlinks resolved, as fcgiwrap does: a runner given
	// no root serves what the web server's configuration points at
	// (nginx's root, Apache's DocumentRoot). The root then comes from the
	// web server, so any process that can reach the runner's socket
	// chooses it, and runs any executable file it can name under a
	// directory it also names: keep the socket to the web server alone.
	// A request whose DOCUMENT_ROOT is missing, relative, not a directory
	// or the file system's root / gets 403 (404 when it does not exist)
	// and nothing runs. When Roots is set too, DOCUMENT_ROOT must be one
	// of them or lie inside one.
	RootFromRequest bool
	// Allow, when not empty, lists the only scripts that may run, by
	// path (fcgiwrap's -p).
	Allow []string
	// Env names the runner's own environment variables passed to every
	// script; nil means just PATH. The runner's environment is never
	// passed whole (php-fpm's clear_env). These are the operator's: they
	// are passed as they are, whatever their names.
	Env []string
	// AllowEnv names the request variables that a script may get although
	// they are dropped by default (see Executor), exactly as written, such
	// as "TMPDIR".
	AllowEnv []string
	// Timeout bounds one request; 0 means none.
	Timeout time.Duration
	// KillGrace is the wait between SIGTERM and SIGKILL; 0 means
	// DefaultKillGrace.
	KillGrace time.Duration
	// MaxChildren bounds the scripts running at once; 0 means no bound.
	// A request past it waits up to QueueTimeout for a slot, then gets 503.
	// A script holds its slot until it has exited, also when it runs on
	// after its answer.
	MaxChildren int
	// QueueTimeout is how long a request waits for a slot; 0 means
	// DefaultQueueTimeout.
	QueueTimeout time.Duration
	// MaxBodyBytes bounds a request body; 0 means no bound. A declared
	// CONTENT_LENGTH past it gets 413 before anything runs; a body of
	// unknown length that passes it is cut, and the script sees its stdin
	// end early.
	MaxBodyBytes int64
	// MaxHeaderBytes bounds a script's response header block; 0 means
	// bridge.MaxHeaderBytes.
	MaxHeaderBytes int
	// StderrToWebServer sends what scripts write to stderr to the web
	// server's error log too (fcgiwrap's -f).
	StderrToWebServer bool
	// MaxStderrBytes bounds what one script's stderr puts in the logs
	// (ours and the web server's); 0 means DefaultMaxStderrBytes, less
	// than 0 means nothing. Past
	// it, stderr is still read, so the script never blocks on it, but
	// dropped, and one line at the end says how much was.
	MaxStderrBytes int64
	// Credential, when set, runs the scripts as that user and group. It
	// needs the runner to run as root; Validate refuses it otherwise.
	// With it the script checks of Apache's suEXEC apply and no script
	// gains privileges through exec: see StrictScripts.
	Credential *syscall.Credential
	// EndOrphans makes the process a child subreaper (Linux's
	// PR_SET_CHILD_SUBREAPER) when the Executor is validated, and has
	// the Executor end, each time a script is done with, every process
	// that became the program's child without being started by it: the
	// processes scripts left behind in a session or group of their own
	// ("setsid daemon &", a double fork), which no signal to a script's
	// group reaches. Each is sent SIGKILL and reaped. Set it only in a
	// program that starts no child processes other than the Executor's
	// scripts and the upgrade package's new process: any other child
	// would be killed. Validate fails where the platform has no child
	// subreapers. The cgirun runner sets it on Linux.
	EndOrphans bool
	// StrictScripts applies without Credential what applies with it,
	// the target user being the runner's own: a script is refused (403,
	// logged with the reason) when it is setuid or setgid, writable by
	// group or others, in a directory writable by group or others (the
	// directory of its real path), or not owned by the target user; and
	// scripts run with no_new_privs (Linux), so that no exec gains
	// privileges (a setuid program runs with the script's own uid). The
	// checks are made on the opened file (see Executor); the directory's
	// by path.
	StrictScripts bool
	// AllowSetID, AllowWritable and AllowAnyOwner each relax one check of
	// StrictScripts: setuid and setgid scripts, scripts and directories
	// writable by group or others, scripts of another owner.
	AllowSetID, AllowWritable, AllowAnyOwner bool
	// AllowPrivilegeGain leaves no_new_privs off under Credential or
	// StrictScripts: a script may then gain privileges through a setuid
	// or setgid program, or file capabilities.
	AllowPrivilegeGain bool
	// Limits are the resource limits of each script; none by default.
	Limits Limits
	// Logger receives the log lines; nil means slog.Default().
	Logger *slog.Logger

	initOnce sync.Once
	initErr  error
	roots    []string // Roots, absolute and with symlinks resolved
	allow    map[string]bool
	allowEnv map[string]bool // AllowEnv
	slots    chan struct{}
	// running counts the scripts started and not yet done with: waited
	// for, their stderr logged, their group sent its last SIGKILL.
	running sync.WaitGroup
	stats   counters
}

// counters are the Executor's statistics, read by Stats.
type counters struct {
	started       atomic.Uint64
	exitsOK       atomic.Uint64
	exitsFailed   atomic.Uint64
	exitsSignaled atomic.Uint64
	timeouts      atomic.Uint64
	kills         atomic.Uint64
	running       atomic.Int64
	waiting       atomic.Int64
	refused       atomic.Uint64
}

// Stats is a snapshot of an Executor's counters, for a status page. The
// counts of scripts are kept once a script is done with: waited for, its
// group sent its last signal.
type Stats struct {
	Started       uint64 // scripts started since start
	ExitsOK       uint64 // scripts done with that exited with status 0
	ExitsFailed   uint64 // ... that exited with another status, or whose exit could not be read
	ExitsSignaled uint64 // ... that died on a signal (SIGTERM and SIGKILL of Timeout included)
	Timeouts      uint64 // scripts whose request ran past Timeout
	Kills         uint64 // scripts whose group was sent SIGKILL: still running KillGrace after SIGTERM, or, exited, leaving processes that held its output
	Running       int64  // scripts started and not yet done with, each holding a slot of MaxChildren
	Waiting       int64  // requests waiting now for a slot of MaxChildren
	Refused       uint64 // requests answered 503 for want of a slot within QueueTimeout
}

// Stats returns the Executor's counters. It takes no lock: each count is
// read on its own, so that counts read at one time may not add up (a
// script counted in Started and in none of the exits, as it ends).
func (e *Executor) Stats() Stats {
	c := &e.stats
	return Stats{
		Started:       c.started.Load(),
		ExitsOK:       c.exitsOK.Load(),
		ExitsFailed:   c.exitsFailed.Load(),
		ExitsSignaled: c.exitsSignaled.Load(),
		Timeouts:      c.timeouts.Load(),
		Kills:         c.kills.Load(),
		Running:       c.running.Load(),
		Waiting:       c.waiting.Load(),
		Refused:       c.refused.Load(),
	}
}

// countExit counts how a script that is done with ended.
func (c *counters) countExit(err error) {
	ee, ok := err.(*exitError) // as waitError made it: never wrapped
	switch {
	case err == nil:
		c.exitsOK.Add(1)
	case ok && ee.status.Signaled():
		c.exitsSignaled.Add(1)
	default:
		c.exitsFailed.Add(1)
	}
}

var _ bridge.Responder = (*Executor)(nil)

// Validate checks the settings; Respond calls it once and answers 500 to
// every request while it fails.
func (e *Executor) Validate() error {
	e.initOnce.Do(func() { e.initErr = e.init() })
	return e.initErr
}

func (e *Executor) init() error {
	if len(e.Roots) == 0 && !e.RootFromRequest {
		return errors.New("cgi: Executor needs at least one root directory, or RootFromRequest")
	}
	for _, r := range e.Roots {
		abs, err := filepath.Abs(r)
		if err == nil {
			abs, err = filepath.EvalSymlinks(abs)
		}
		if err != nil {
			return fmt.Errorf("cgi: root %s: %w", r, err)
		}
		if fi, err := os.Stat(abs); err != nil || !fi.IsDir() {
			return fmt.Errorf("cgi: root %s is not a directory", r)
		}
		e.roots = append(e.roots, abs)
	}
	if len(e.Allow) > 0 {
		e.allow = make(map[string]bool, len(e.Allow))
		for _, a := range e.Allow {
			abs, err := filepath.Abs(a)
			if err == nil {
				abs, err = filepath.EvalSymlinks(abs)
			}
			if err != nil {
				return fmt.Errorf("cgi: allowed script %s: %w", a, err)
			}
			e.allow[abs] = true
		}
	}
	for _, name := range e.AllowEnv {
		if name == "" || strings.ContainsAny(name, "=\x00") {
			return fmt.Errorf("cgi: AllowEnv %q is not a variable name; want a name such as TMPDIR", name)
		}
		if e.allowEnv == nil {
			e.allowEnv = make(map[string]bool, len(e.AllowEnv))
		}
		e.allowEnv[name] = true
	}
	if e.Credential != nil && os.Geteuid() != 0 {
		return fmt.Errorf("cgi: running scripts as uid %d needs the runner to run as root (it runs as uid %d)", e.Credential.Uid, os.Geteuid())
	}
	if e.EndOrphans {
		if err := proc.BecomeSubreaper(); err != nil {
			return fmt.Errorf("cgi: EndOrphans: %w", err)
		}
	}
	if e.Limits.set() && runtime.GOOS != "linux" {
		return errors.New("cgi: per-script Limits need Linux")
	}
	if e.MaxChildren > 0 {
		e.slots = make(chan struct{}, e.MaxChildren)
	}
	return nil
}

func (e *Executor) logger(req *bridge.Request) *slog.Logger {
	switch {
	case req.Log != nil:
		return req.Log
	case e.Logger != nil:
		return e.Logger
	}
	return slog.Default()
}

// Respond implements bridge.Responder: it runs the request's script.
func (e *Executor) Respond(ctx context.Context, req *bridge.Request, out bridge.Output) error {
	log := e.logger(req)
	if err := e.Validate(); err != nil {
		log.Error("cgi: executor misconfigured", "err", err)
		return bridge.WriteError(out, http.StatusInternalServerError, "")
	}
	script, se := e.resolve(&req.Env)
	if se != nil {
		log.Warn("cgi: script refused", "status", se.status, "err", se.msg, "uri", req.Env.Get("REQUEST_URI"))
		return bridge.WriteError(out, se.status, "")
	}
	log = log.With("script", script.path)
	if e.MaxBodyBytes > 0 {
		if n, err := strconv.ParseInt(req.Env.Get("CONTENT_LENGTH"), 10, 64); err == nil && n > e.MaxBodyBytes {
			script.close()
			log.Warn("cgi: request body over the limit", "content_length", n, "limit", e.MaxBodyBytes)
			return bridge.WriteError(out, http.StatusRequestEntityTooLarge, "")
		}
	}
	if !e.acquire(ctx) {
		e.stats.refused.Add(1)
		script.close()
		log.Warn("cgi: no free slot for a script", "max_children", e.MaxChildren)
		return bridge.WriteError(out, http.StatusServiceUnavailable, "")
	}
	// The slot is the script's until it has exited, after its answer if
	// it lingers: MaxChildren bounds processes, not answers.
	return e.run(ctx, script, req, out, log)
}

func (e *Executor) acquire(ctx context.Context) bool {
	if e.slots == nil {
		return true
	}
	select {
	case e.slots <- struct{}{}:
		return true
	default:
	}
	e.stats.waiting.Add(1)
	defer e.stats.waiting.Add(-1)
	t := time.NewTimer(defaults.Or(e.QueueTimeout, DefaultQueueTimeout))
	defer t.Stop()
	select {
	case e.slots <- struct{}{}:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}

func (e *Executor) release() {
	if e.slots != nil {
		<-e.slots
	}
}

// errTimeout is the cause of a script's context when it ran too long.
var errTimeout = errors.New("cgi: script timed out")

// bufPool holds the buffers that copy a script's stdin, stdout and stderr.
var bufPool = sync.Pool{New: func() any { return new([copyBufSize]byte) }}

// copyBufSize is the size of one copy buffer: a pipe's capacity.
const copyBufSize = 64 << 10

// readerPool holds the readers that read scripts' stdout, whose header
// block most often fits their buffer.
var readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}

// smallBufPool holds the buffers that read scripts' stderr, and the first
// read of a request body: most scripts write little or nothing to stderr,
// and each holds one for its whole run; most bodies are empty.
var smallBufPool = sync.Pool{New: func() any { return new([smallBufSize]byte) }}

const smallBufSize = 4 << 10

// devNull is the stdin of scripts whose request has no body, opened once
// and shared: a child only ever reads it.
var devNull = sync.OnceValues(func() (*os.File, error) { return os.Open(os.DevNull) })

// run starts the script and relays its answer; start closes the script's
// descriptor.
func (e *Executor) run(parent context.Context, s *scriptFile, req *bridge.Request, out bridge.Output, log *slog.Logger) error {
	script := s.path
	p, err := e.start(s, req, log)
	if err != nil {
		e.release()
		log.Error("cgi: cannot start the script", "err", err)
		return bridge.WriteError(out, http.StatusBadGateway, "")
	}
	e.running.Add(1)
	e.stats.started.Add(1)
	e.stats.running.Add(1)
	// Once run returns, the script has nothing more to say: it is done
	// with at once if it is gone, else given the grace to exit, then
	// ended (see answer). run does not wait for that, so a script that
	// closes stdout and goes on running does not hold its response.
	defer e.answer(p)
	// The script is ended early on timeout, when the client goes, or
	// when run gives up on it (end).
	p.stop = context.AfterFunc(parent, func() { e.end(p, context.Cause(parent)) })
	if e.Timeout > 0 {
		t := time.AfterFunc(e.Timeout, func() { e.end(p, errTimeout) })
		defer t.Stop()
	}

	// cut tells whether the answer was cut short rather than complete.
	cut := func() bool {
		return p.ended() != nil || parent.Err() != nil || p.strays.Load()
	}
	buf := bufPool.Get().(*[copyBufSize]byte)
	defer bufPool.Put(buf)
	br := readerPool.Get().(*bufio.Reader)
	br.Reset(p)
	defer func() {
		br.Reset(nil)
		readerPool.Put(br)
	}()
	resp, err := bridge.ReadResponse(br, e.MaxHeaderBytes)
	if err != nil {
		// Whatever the script did, it is over: end it, then say why.
		timedOut := errors.Is(p.ended(), errTimeout)
		e.end(p, err)
		exit := proc.ExitReason(e.wait(p))
		switch {
		case timedOut:
			log.Warn("cgi: script timed out before its header block", "timeout", e.Timeout, "exit", exit)
			return bridge.WriteError(out, http.StatusGatewayTimeout, "")
		case parent.Err() != nil:
			log.Info("cgi: request ended before the script answered", "cause", context.Cause(parent), "exit", exit)
			return bridge.WriteError(out, http.StatusServiceUnavailable, "")
		}
		log.Warn("cgi: bad answer from the script", "err", err, "exit", exit)
		return bridge.WriteError(out, http.StatusBadGateway, "")
	}
	// The header block goes out in the bridge's own form: what the
	// script sent, checked, fields sorted. A local redirect keeps its
	// missing Status for the front end to follow.
	if _, err := out.Write(resp.AppendHeader(buf[:0])); err != nil {
		e.end(p, err)
		return err
	}
	// whole reports whether the client has had every byte of a body whose
	// length the script declared: a request ended after that (a client
	// that closes once it has them, as curl does) cut nothing.
	declared, sent := int64(-1), int64(0)
	if v := resp.Header.Get("Content-Length"); v != "" {
		declared, _ = strconv.ParseInt(v, 10, 64) // checked by ReadResponse
	}
	whole := func() bool { return declared >= 0 && sent >= declared }
	// The body, as it comes: each read is passed on, and what was passed
	// on is flushed once the script has nothing more ready, as the read
	// is about to wait for it (see read): the end of a body that comes
	// with the script's end leaves with the end of the answer.
	p.out = out
	for {
		n, rerr := br.Read(buf[:])
		sent += int64(n)
		werr := error(nil)
		if n > 0 {
			_, werr = out.Write(buf[:n])
			p.unflushed = true
		}
		if f, ok := rerr.(flushError); ok {
			werr = f.err
		}
		if werr != nil {
			e.end(p, werr)
			return werr // the client is gone: nothing to tell it
		}
		if rerr == io.EOF && !cut() {
			// The answer is whole only if the script that wrote it
			// did not fail.
			if err := e.exitStatus(p); err != nil {
				log.Warn("cgi: script failed after its header block; response cut short", "exit", proc.ExitReason(err))
				p.flush()
				return fmt.Errorf("%w: script %s: %v", bridge.ErrCutShort, script, err)
			}
			return nil
		}
		if (rerr != nil || cut()) && whole() && parent.Err() != nil {
			log.Debug("cgi: the client left once it had the whole answer", "bytes", sent)
			return nil
		}
		if rerr != nil || cut() {
			// Read failed, or stdout was given up on because the
			// script was ended (timeout, client gone) or what it left
			// holds it.
			cause := p.ended()
			if cause == nil {
				cause = context.Cause(parent)
			}
			if cause == nil || rerr != nil && rerr != io.EOF && rerr != errEnded {
				cause = rerr
			}
			if p.strays.Load() {
				cause = errors.New("processes the script left held its stdout past the grace")
			}
			log.Warn("cgi: response cut short", "cause", cause)
			p.flush()
			return fmt.Errorf("%w: script %s: %v", bridge.ErrCutShort, script, cause)
		}
	}
}

// body is the script's stdin: the request body, bounded by MaxBodyBytes;
// nil when the body is known to be empty.
func (e *Executor) body(req *bridge.Request) io.Reader {
	if req.Body == nil {
		return nil
	}
	if e.MaxBodyBytes > 0 {
		return io.LimitReader(req.Body, e.MaxBodyBytes)
	}
	return req.Body
}
