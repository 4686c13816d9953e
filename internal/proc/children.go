package proc

import "sync"

// waited holds the children of this process that their starters wait for
// themselves (the CGI executor's scripts, the upgrade's new process):
// EndOrphans never signals nor reaps one of them. A child is registered
// under starting's read lock as it is started, so that EndOrphans, which
// decides under the write lock, never takes a child just forked for one
// nobody waits for.
var waited struct {
	starting sync.RWMutex
	mu       sync.Mutex
	pids     map[int]int // pid: how many starters registered it
}

// Start runs start, which starts a child process and returns its pid, and
// registers that pid as one its caller waits for itself, so that
// EndOrphans leaves it alone; Waited ends that once the caller has waited
// for it. start may run at the same time as other calls of Start.
func Start(start func() (pid int, err error)) (int, error) {
	waited.starting.RLock()
	defer waited.starting.RUnlock()
	pid, err := start()
	if err != nil {
		return pid, err
	}
	waited.mu.Lock()
	if waited.pids == nil {
		waited.pids = make(map[int]int)
	}
	waited.pids[pid]++
	waited.mu.Unlock()
	return pid, nil
}

// Waited says that the child pid, registered by Start, was waited for
// (reaped): its pid may now be another process's.
func Waited(pid int) {
	waited.mu.Lock()
	if waited.pids[pid]--; waited.pids[pid] <= 0 {
		delete(waited.pids, pid)
	}
	waited.mu.Unlock()
}

func isWaited(pid int) bool {
	waited.mu.Lock()
	defer waited.mu.Unlock()
	return waited.pids[pid] > 0
}
