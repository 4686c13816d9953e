package cgi

// Limits are resource limits for each script, as Apache's RLimitCPU,
// RLimitMEM and RLimitNPROC: setrlimit(2)'s, set on the script's process
// before its first instruction runs, inherited by what it starts. A zero
// field sets nothing. Where they are set, the runner's own limits are
// untouched.
//
// On Linux the script is started traced (PTRACE_TRACEME): it stops as its
// exec completes, the limits are set with prlimit(2) from the thread that
// forked it, and it is let go; so a script cannot fork or allocate before
// its limits hold. Where ptrace is not permitted (a seccomp profile,
// Yama's ptrace_scope 3), every script fails to start and says why.
// Elsewhere Validate refuses limits.
type Limits struct {
	// CPUSeconds is RLIMIT_CPU: past it the script gets SIGXCPU, and
	// SIGKILL one second later.
	CPUSeconds uint64
	// AddressSpace is RLIMIT_AS, in bytes: an allocation past it fails.
	AddressSpace uint64
	// Processes is RLIMIT_NPROC: a fork fails once the script's user
	// (its real uid: --user's, or the runner's) has that many processes,
	// all of them counted, not only the script's. The kernel does not
	// apply it to root.
	Processes uint64
	// OpenFiles is RLIMIT_NOFILE: an open past it fails.
	OpenFiles uint64
}

// set reports whether any limit is set.
func (l Limits) set() bool { return l != Limits{} }
