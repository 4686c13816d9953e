package cgi

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/cgirun/cgirun/bridge"
	"github.com/cgirun/cgirun/internal/proc"
)

// start starts the script with execve (no shell) in its directory and its
// own process group. Its stdin is copied from the request body by a
// goroutine of its own while run reads stdout, and its stderr is read
// into the log by whoever waits for its stdout (see watch): a large body
// and a large answer cannot deadlock.
//
// It does os.StartProcess's work without its detours: the pipes are made
// close-on-exec by pipe2, the child's ends stay plain descriptors (os.Pipe
// would make them non-blocking and register them with the poller, then
// StartProcess would make them blocking again), and the script is waited
// for through its pidfd, by the poller (see watch).
//
// What runs is the file that resolve checked, through its descriptor (see
// scriptFile.command); start closes that descriptor.
func (e *Executor) start(script *scriptFile, req *bridge.Request, log *slog.Logger) (*child, error) {
	defer script.close()
	// Every descriptor made here is close-on-exec: the child gets only
	// its own three, as 0, 1 and 2.
	var fds [3]int // the child's stdin, stdout, stderr
	stdinW := -1
	body := e.body(req)
	if body == nil {
		null, err := devNull()
		if err != nil {
			return nil, err
		}
		fds[0] = int(null.Fd())
	} else {
		r, w, err := pipe()
		if err != nil {
			return nil, err
		}
		fds[0], stdinW = r, w
	}
	outR, outW, err := pipe()
	if err != nil {
		closeFDs(stdinW, pipeEnd(fds[0], body))
		return nil, err
	}
	errR, errW, err := pipe()
	if err != nil {
		closeFDs(stdinW, pipeEnd(fds[0], body), outR, outW)
		return nil, err
	}
	fds[1], fds[2] = outW, errW
	if err := script.clearOfForkFDs(max(fds[0], fds[1], fds[2])); err != nil {
		closeFDs(stdinW, pipeEnd(fds[0], body), outR, outW, errR, errW)
		return nil, err
	}
	prog, argv, err := script.command()
	if err != nil {
		closeFDs(stdinW, pipeEnd(fds[0], body), outR, outW, errR, errW)
		return nil, err
	}
	env, dropped := e.childEnv(&req.Env)
	if dropped != nil {
		log.Debug("cgi: request variables kept from the script", "names", dropped)
	}
	// Registered with proc: EndOrphans leaves the script alone, it is
	// waited for here. Forked by spawn: from the no_new_privs thread when
	// the scripts must not gain privileges.
	pidfd := -1
	pid, err := proc.Start(func() (pid int, err error) {
		sys := &syscall.SysProcAttr{Setpgid: true, Credential: e.Credential, Ptrace: e.Limits.set()}
		if pidfdWorks() {
			sys.PidFD = &pidfd
		}
		serr := e.spawn(func() {
			pid, _, err = syscall.StartProcess(prog, argv, &syscall.ProcAttr{
				Dir:   filepath.Dir(script.path),
				Env:   env,
				Files: []uintptr{uintptr(fds[0]), uintptr(fds[1]), uintptr(fds[2])},
				Sys:   sys,
			})
			if err == nil && sys.Ptrace {
				// Stopped by its exec: its limits are set before it runs.
				if err = e.Limits.apply(pid); err != nil && pidfd >= 0 {
					syscall.Close(pidfd)
					pidfd = -1
				}
			}
		})
		if serr != nil {
			err = serr
		}
		return pid, err
	})
	// The child holds its own copies.
	closeFDs(pipeEnd(fds[0], body), outW, errW)
	if err != nil {
		closeFDs(stdinW, outR, errR)
		return nil, &os.PathError{Op: "fork/exec", Path: script.path, Err: err}
	}

	w, err := newWatch(pid, pidfd, outR, errR)
	if err != nil {
		closeFDs(stdinW)
		return nil, err
	}
	p := e.newChild(pid, w, req, log)
	if stdinW >= 0 {
		p.stdin = &stdinPipe{fd: stdinW}
		go copyStdin(p.stdin, body)
	}
	return p, nil
}

// pipe returns a new pipe, both ends close-on-exec and blocking.
func pipe() (r, w int, err error) {
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC); err != nil {
		return -1, -1, os.NewSyscallError("pipe2", err)
	}
	return p[0], p[1], nil
}

// pipeEnd is fd when it is the child's end of a pipe of this request, and
// -1 when it is the shared /dev/null (body is nil), which stays open.
func pipeEnd(fd int, body io.Reader) int {
	if body == nil {
		return -1
	}
	return fd
}

func closeFDs(fds ...int) {
	for _, fd := range fds {
		if fd >= 0 {
			syscall.Close(fd)
		}
	}
}

// pollable makes fd, the runner's end of a pipe, non-blocking and returns
// it as an *os.File that the runtime's poller serves: a read waiting for
// the script parks its goroutine, not a thread, and Close ends that read.
func pollable(fd int, name string) *os.File {
	// F_SETFL without F_GETFL first: the pipe has no other status flag
	// to keep. Should it fail, the file still works, with blocking reads.
	syscall.RawSyscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_SETFL, syscall.O_NONBLOCK)
	return os.NewFile(uintptr(fd), name)
}

// stdinPipe is the runner's end of a script's stdin pipe: copyStdin
// writes the body to it, and supervise closes it once the script is done
// with, which ends a write that a process the script left behind would
// hold up.
type stdinPipe struct {
	mu     sync.Mutex
	fd     int      // the descriptor, until f holds it
	f      *os.File // fd made pollable, once the body has bytes
	closed bool
}

// file returns the pipe as a file the poller serves, or nil once it is
// closed.
func (s *stdinPipe) file() *os.File {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil && !s.closed {
		s.f = pollable(s.fd, "|0")
	}
	return s.f
}

// close closes the pipe, once; a write in progress ends.
func (s *stdinPipe) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
	case s.f != nil:
		s.f.Close()
	default:
		syscall.Close(s.fd)
	}
	s.closed = true
}

// copyStdin writes the request body to s, the script's stdin, and closes
// it. s joins the poller only once the body has bytes: an empty body
// costs only a close, and a script that does not read a large one holds
// up a parked goroutine, not a thread blocked in write. A script that
// exits without reading its stdin ends the copy (EPIPE).
func copyStdin(s *stdinPipe, body io.Reader) {
	// The first read goes to a small buffer; a pipe-sized one is taken
	// only for a body that has bytes.
	small := smallBufPool.Get().(*[smallBufSize]byte)
	defer smallBufPool.Put(small)
	var big *[copyBufSize]byte
	buf := small[:]
	var w *os.File
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			if w == nil {
				if w = s.file(); w == nil {
					break // the script is done with
				}
			}
			if _, err := w.Write(buf[:n]); err != nil {
				break
			}
			if big == nil {
				big = bufPool.Get().(*[copyBufSize]byte)
				defer bufPool.Put(big)
				buf = big[:]
			}
		}
		if rerr != nil {
			break
		}
	}
	s.close()
}

// clearOfForkFDs moves the script's descriptor, which the child execs
// through /proc/self/fd, out of the numbers that syscall.StartProcess
// gives its own descriptors in the child: the child's Files go to 0, 1
// and 2, and the fork moves its error pipe (and any File numbered below
// its index) to the numbers right above the highest File, maxFile, over
// whatever the child held there. A script descriptor there would be
// replaced by that pipe before the exec (EACCES: not a regular file).
func (s *scriptFile) clearOfForkFDs(maxFile int) error {
	const used = 4 // the error pipe, and at most the three Files
	if s.fd < 0 || s.fd <= maxFile || s.fd > maxFile+used {
		return nil
	}
	fd, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(s.fd), syscall.F_DUPFD_CLOEXEC, uintptr(maxFile+used+1))
	if errno != 0 {
		return os.NewSyscallError("fcntl(F_DUPFD_CLOEXEC)", errno)
	}
	syscall.Close(s.fd)
	s.fd = int(fd)
	return nil
}
