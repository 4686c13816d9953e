//go:build !linux

package cgi

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"

	"github.com/cgirun/cgirun/bridge"
)

// start starts the script with execve (no shell) in its directory and its
// own process group. Its stdin is copied from the request body by a
// goroutine of its own while run reads stdout, and its stderr is read into
// the log (see watch): a large body and a large answer cannot deadlock.
func (e *Executor) start(s *scriptFile, req *bridge.Request, log *slog.Logger) (*child, error) {
	script := s.path
	// Every descriptor made here is close-on-exec: the child gets only
	// its own three, as 0, 1 and 2.
	var stdin, stdinW *os.File
	body := e.body(req)
	if body == nil {
		null, err := devNull()
		if err != nil {
			return nil, err
		}
		stdin = null
	} else {
		r, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		stdin, stdinW = r, w
	}
	stdout, stdoutW, err := os.Pipe()
	if err != nil {
		closeAll(stdin, stdinW)
		return nil, err
	}
	stderr, stderrW, err := os.Pipe()
	if err != nil {
		closeAll(stdin, stdinW, stdout, stdoutW)
		return nil, err
	}
	env, dropped := e.childEnv(&req.Env)
	if dropped != nil {
		log.Debug("cgi: request variables kept from the script", "names", dropped)
	}
	proc, err := os.StartProcess(script, []string{script}, &os.ProcAttr{
		Dir:   filepath.Dir(script),
		Env:   env,
		Files: []*os.File{stdin, stdoutW, stderrW},
		Sys:   &syscall.SysProcAttr{Setpgid: true, Credential: e.Credential},
	})
	// The child holds its own copies.
	stdoutW.Close()
	stderrW.Close()
	if stdinW != nil {
		stdin.Close()
	}
	if err != nil {
		closeAll(stdinW, stdout, stderr)
		return nil, err
	}

	p := e.newChild(proc.Pid, nil, req, log)
	p.w = newWatch(p, proc, stdout, stderr)
	if stdinW != nil {
		go copyStdin(stdinW, body)
	}
	return p, nil
}

// copyStdin writes the request body to the script's stdin and closes it.
// A script that exits without reading its stdin ends the copy (EPIPE).
func copyStdin(w *os.File, body io.Reader) {
	buf := bufPool.Get().(*[copyBufSize]byte)
	io.CopyBuffer(struct{ io.Writer }{w}, struct{ io.Reader }{body}, buf[:])
	bufPool.Put(buf)
	w.Close()
}

func closeAll(files ...*os.File) {
	for _, f := range files {
		if f != nil {
			f.Close()
		}
	}
}

// stdinPipe is the runner's end of a script's stdin pipe; on this
// platform copyStdin closes it.
type stdinPipe struct{}

func (*stdinPipe) close() {}
