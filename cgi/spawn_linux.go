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
	jobs := make(chan spawnJob)
	ready := make(chan error)
	go func() {
		runtime.LockOSThread()
		if _, _, errno := syscall.RawSyscall6(syscall.SYS_PRCTL, prSetNoNewPrivs, 1, 0, 0, 0, 0); errno != 0 {
			ready <- os.NewSyscallError("prctl(PR_SET_NO_NEW_PRIVS)", errno)
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
})

// spawn runs start, a fork and exec, on the no_new_privs thread when the
// executor's scripts must not gain privileges, and on the calling thread
// otherwise.
func (e *Executor) spawn(start func()) error {
	if !e.strict() || e.AllowPrivilegeGain {
		start()
		return nil
	}
	jobs, err := noNewPrivsThread()
	if err != nil {
		return err
	}
	done := make(chan struct{})
	jobs <- spawnJob{start, done}
	<-done
	return nil
}
