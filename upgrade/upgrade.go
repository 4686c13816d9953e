// Package upgrade hands a server's listening sockets to a new copy of the
// program without refusing a connection, as nginx's binary upgrade and
// cloudflare/tableflip do: Start runs the new process with the sockets,
// and Inherit, in the new process, takes them and tells the old one when it
// serves. cgirun.Run and "cgirun fcgi" upgrade this way on SIGHUP.
//
// The hand-over is two environment variables (EnvInheritFDs, EnvReadyFD),
// read only with their CGIRUN_ prefix and unset once read. systemd's
// LISTEN_FDS cannot serve: its LISTEN_PID must be the new process's pid,
// which the old one cannot know before exec.
//
// Not supported: passing anything but listening sockets (open connections
// stay with the old process, which finishes them), and platforms without
// fcntl's F_DUPFD_CLOEXEC.
package upgrade

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cgirun/cgirun/fastcgi"
	"github.com/cgirun/cgirun/internal/defaults"
	"github.com/cgirun/cgirun/internal/proc"
)

// The environment of a process started by Start.
const (
	// EnvInheritFDs names the inherited listening sockets, as descriptor
	// numbers: "3,4".
	EnvInheritFDs = "CGIRUN_INHERIT_FDS"
	// EnvReadyFD names the write end of a pipe: the new process writes
	// one byte to it, and closes it, once it serves.
	EnvReadyFD = "CGIRUN_READY_FD"
)

// DefaultTimeout bounds the wait for a new process to serve when Start is
// given no timeout.
const DefaultTimeout = 30 * time.Second

// upgradeStopGrace is how long a new process that failed to become ready
// has between SIGTERM and SIGKILL.
const upgradeStopGrace = 5 * time.Second

// readyByte is what a new process writes to the pipe of EnvReadyFD.
const readyByte = '1'

// Start starts a new copy of the program's binary to replace it:
// os.Executable() (the file now at the path the program was started from,
// such as a newly installed version) with the same arguments and
// environment, stdout and stderr (stdin is /dev/null), and passes it the
// listening sockets lns (see EnvInheritFDs) as descriptors 3, 4, ..., and
// the pipe of EnvReadyFD after them; descriptors that the program itself
// inherited without close-on-exec pass on as with any exec. It returns the
// new process's pid once that process serves them (Inherit's ready says
// so); the caller then stops accepting, lets its requests in flight finish
// and exits, while connections waiting in the sockets' backlog go to the
// new process. A unix socket's file is left in place when lns close: it is
// the new process's.
//
// If the new process exits, or does not serve within timeout (0 means
// DefaultTimeout) or before ctx ends, Start stops it (SIGTERM, SIGKILL
// after 5 s) and returns why: the caller keeps serving.
func Start(ctx context.Context, lns []net.Listener, timeout time.Duration) (pid int, err error) {
	if len(lns) == 0 {
		return 0, errors.New("upgrade: no listening socket to pass on")
	}
	exe, err := os.Executable()
	if err != nil {
		return 0, fmt.Errorf("upgrade: finding the program's binary: %w", err)
	}
	files := make([]*os.File, 0, len(lns)+1)
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	fds := make([]string, len(lns))
	for i, l := range lns {
		f, err := listenerFile(l)
		if err != nil {
			return 0, fmt.Errorf("upgrade: %w", err)
		}
		files = append(files, f)
		fds[i] = strconv.Itoa(3 + i) // ExtraFiles start at fd 3
	}
	ready, w, err := os.Pipe()
	if err != nil {
		return 0, fmt.Errorf("upgrade: %w", err)
	}
	defer ready.Close()
	files = append(files, w)

	cmd := &exec.Cmd{
		Path:   exe,
		Args:   os.Args,
		Env:    upgradeEnv(os.Environ(), strings.Join(fds, ","), 3+len(lns)),
		Stdout: os.Stdout,
		Stderr: os.Stderr,
		// Stdin is /dev/null: a listening socket on fd 0 was passed
		// like the others, and fd 0 may have been closed and reused.
		ExtraFiles: files,
	}
	// Registered with proc: a runner that ends its scripts' orphans
	// (proc.EndOrphans) leaves the new process to cmd.Wait.
	if _, err := proc.Start(func() (int, error) {
		if err := cmd.Start(); err != nil {
			return 0, err
		}
		return cmd.Process.Pid, nil
	}); err != nil {
		return 0, fmt.Errorf("upgrade: starting %s: %w", exe, err)
	}
	// Only the new process holds the write end now: its exit ends the
	// read below.
	for _, f := range files {
		f.Close()
	}
	files = nil
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait() // reaps the new process if it fails
		proc.Waited(cmd.Process.Pid)
		close(exited)
	}()

	pid = cmd.Process.Pid
	err = waitReady(ctx, ready, defaults.Or(timeout, DefaultTimeout))
	if err == nil {
		for _, l := range lns {
			if ul, ok := l.(*net.UnixListener); ok {
				ul.SetUnlinkOnClose(false)
			}
		}
		return pid, nil
	}
	select {
	case <-exited:
	default:
		cmd.Process.Signal(syscall.SIGTERM)
		t := time.NewTimer(upgradeStopGrace)
		select {
		case <-exited:
		case <-t.C:
			cmd.Process.Kill()
			<-exited
		}
		t.Stop()
	}
	return 0, fmt.Errorf("upgrade: new process %s (pid %d) %w; it ended with %v", exe, pid, err, proc.ExitReason(waitErr))
}

// waitReady reads the new process's ready byte, up to timeout or ctx's
// end.
func waitReady(ctx context.Context, r *os.File, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if d, ok := ctx.Deadline(); ok {
		r.SetReadDeadline(d)
	}
	// An end of ctx other than its deadline (a SIGTERM meanwhile).
	stop := context.AfterFunc(ctx, func() { r.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	start := time.Now()
	var b [1]byte
	n, err := r.Read(b[:])
	switch {
	case n == 1 && b[0] == readyByte:
		return nil
	case n == 1:
		return fmt.Errorf("wrote %q to %s, not the ready byte", b[0], EnvReadyFD)
	case errors.Is(err, io.EOF):
		return errors.New("exited (or closed " + EnvReadyFD + ") before it served")
	case errors.Is(err, os.ErrDeadlineExceeded):
		// The read deadline is ctx's, which may not have ended yet.
		if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.DeadlineExceeded) {
			return fmt.Errorf("was given up: %w", cause)
		}
		return fmt.Errorf("did not serve within %v", time.Since(start).Round(time.Millisecond))
	}
	return fmt.Errorf("reading %s: %w", EnvReadyFD, err)
}

// upgradeEnv returns env for a new process: the variables of an earlier
// upgrade and of systemd's socket activation replaced by the new
// process's.
func upgradeEnv(env []string, fds string, readyFD int) []string {
	drop := []string{EnvInheritFDs, EnvReadyFD, "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"}
	env = slices.DeleteFunc(slices.Clone(env), func(kv string) bool {
		name, _, _ := strings.Cut(kv, "=")
		return slices.Contains(drop, name)
	})
	return append(env, EnvInheritFDs+"="+fds, EnvReadyFD+"="+strconv.Itoa(readyFD))
}

// listenerFile returns a close-on-exec duplicate of l's descriptor. Not
// l.File(): exec puts a descriptor from it in blocking mode, and the
// duplicate shares that mode with l, which would then block in accept.
func listenerFile(l net.Listener) (*os.File, error) {
	sc, ok := l.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("listener %s (%T) has no descriptor to pass on", l.Addr(), l)
	}
	fd, err := proc.DupCloseOnExec(sc)
	if err != nil {
		return nil, fmt.Errorf("listener %s: %w", l.Addr(), err)
	}
	return os.NewFile(uintptr(fd), "listener "+l.Addr().String()), nil
}

// Inherit returns the listening sockets that the process this one
// replaces passed on (see Start), and ready, which tells that process
// that this one serves them; started any other way, it returns no
// listeners and a ready that does nothing. Calls of ready after the first
// do nothing. addr is where the program
// would listen otherwise (CGIRUN_FASTCGI, such as "unix:/run/app.sock"):
// an inherited unix socket bound to that path has its file removed when
// it closes, as one that Listen created would.
//
// Inherit unsets EnvInheritFDs and EnvReadyFD and keeps the descriptors
// from child processes, so that neither a second call nor a CGI script
// finds them. A descriptor that is not what the variables say is an
// error.
func Inherit(addr string) (lns []net.Listener, ready func() error, err error) {
	fdList, hasFDs := os.LookupEnv(EnvInheritFDs)
	readyVar, hasReady := os.LookupEnv(EnvReadyFD)
	os.Unsetenv(EnvInheritFDs)
	os.Unsetenv(EnvReadyFD)
	ready = func() error { return nil }
	if !hasFDs && !hasReady {
		return nil, ready, nil
	}
	defer func() {
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			lns = nil
		}
	}()
	var fds []int
	if hasFDs {
		for s := range strings.SplitSeq(fdList, ",") {
			fd, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || fd < 3 || slices.Contains(fds, fd) {
				return nil, ready, fmt.Errorf("upgrade: %s=%q: want distinct descriptor numbers of 3 or more, such as 3,4", EnvInheritFDs, fdList)
			}
			fds = append(fds, fd)
		}
	}
	var readyFile *os.File
	if hasReady {
		fd, err := strconv.Atoi(strings.TrimSpace(readyVar))
		if err != nil || fd < 3 || slices.Contains(fds, fd) {
			return nil, ready, fmt.Errorf("upgrade: %s=%q: want a descriptor number of 3 or more, not one of %s", EnvReadyFD, readyVar, EnvInheritFDs)
		}
		var st syscall.Stat_t
		if err := syscall.Fstat(fd, &st); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFIFO {
			return nil, ready, fmt.Errorf("upgrade: %s=%d: not a pipe", EnvReadyFD, fd)
		}
		syscall.CloseOnExec(fd)
		readyFile = os.NewFile(uintptr(fd), EnvReadyFD)
		defer func() {
			if err != nil {
				readyFile.Close() // the old process learns at once
			}
		}()
	}
	for _, fd := range fds {
		if !fastcgi.IsListeningSocket(fd) {
			// Nothing is closed: fd may be anything of this process's.
			return nil, ready, fmt.Errorf("upgrade: %s=%s: fd %d is not a listening socket", EnvInheritFDs, fdList, fd)
		}
	}
	for i, fd := range fds {
		l, err := fastcgi.InheritedListener(fd) // a close-on-exec duplicate; fd is closed
		if err != nil {
			for _, rest := range fds[i+1:] {
				syscall.Close(rest)
			}
			return lns, ready, fmt.Errorf("upgrade: %s: %w", EnvInheritFDs, err)
		}
		lns = append(lns, l)
	}
	if network, path, err := fastcgi.ParseAddr(addr); err == nil && network == "unix" {
		for _, l := range lns {
			if ul, ok := l.(*net.UnixListener); ok && ul.Addr().String() == path {
				ul.SetUnlinkOnClose(true)
			}
		}
	}
	if readyFile != nil {
		var once sync.Once
		ready = func() error {
			var err error
			once.Do(func() {
				_, err = readyFile.Write([]byte{readyByte})
				if cerr := readyFile.Close(); err == nil {
					err = cerr
				}
				if err != nil {
					err = fmt.Errorf("upgrade: telling the process this one replaces that it serves: %w", err)
				}
			})
			return err
		}
	}
	return lns, ready, nil
}
