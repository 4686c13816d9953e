package cgi

import (
	"os"
	"runtime"
	"sync"
	"syscall"
)

// prSetNoNewPrivs is prctl(2)'s PR_SET_NO_NEW_PRIVS.
const prSetNoNewPrivs = 38

// spawnJob is one fork and exec for the spawner thread.
type spawnJob struct {
	start func()
	done  chan struct{}
}

// noNewPrivsThread is a goroutine locked to an OS thread, never unlocked,
// that set no_new_privs on that thread: the flag is per thread and every
// child forked from it inherits it, so no exec in a script's process tree
// gains privileges. The Go runtime never starts new threads from a locked
// thread (it asks its template thread), so the runner's other threads stay
// as they are. It is started on first use and lives as long as the
// process.
var noNewPrivsThread = sync.OnceValues(func() (chan<- spawnJob, error) {
	return spawnThread(func() error {
		if _, _, errno := syscall.RawSyscall6(syscall.SYS_PRCTL, prSetNoNewPrivs, 1, 0, 0, 0, 0); errno != 0 {
			return os.NewSyscallError("prctl(PR_SET_NO_NEW_PRIVS)", errno)
		}
		return nil
	})
})

// tracerThread is a goroutine locked to an OS thread, as noNewPrivsThread
// but without no_new_privs: the thread that forks and traces the scripts
// that get Limits, when they may gain privileges.
var tracerThread = sync.OnceValues(func() (chan<- spawnJob, error) {
	return spawnThread(func() error { return nil })
})

// spawnThread starts a goroutine locked to its OS thread for good, runs
// setup on it, then every job sent.
func spawnThread(setup func() error) (chan<- spawnJob, error) {
	jobs := make(chan spawnJob)
	ready := make(chan error)
	go func() {
		runtime.LockOSThread()
		if err := setup(); err != nil {
			ready <- err
			return // the locked thread ends with the goroutine
		}
		ready <- nil
		for j := range jobs {
			j.start()
			close(j.done)
		}
	}()
	if err := <-ready; err != nil {
		return nil, err
	}
	return jobs, nil
}

// spawn runs start, a fork and exec, on the no_new_privs thread when the
// executor's scripts must not gain privileges, on the tracer thread when
// they get Limits (start sets them: the tracer must be the thread that
// forked), and on the calling thread otherwise.
func (e *Executor) spawn(start func()) error {
	nnp := e.strict() && !e.AllowPrivilegeGain
	if !nnp && !e.Limits.set() {
		start()
		return nil
	}
	thread := noNewPrivsThread
	if !nnp {
		thread = tracerThread
	}
	jobs, err := thread()
	if err != nil {
		return err
	}
	done := make(chan struct{})
	jobs <- spawnJob{start, done}
	<-done
	return nil
}
