package cgi

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestExecutorRlimits shows each limit in force in the script from its
// start: a process it forks at once (grep, reading its own
// /proc/self/limits) has them; and the runner's own limits untouched.
// Both ways of forking: from the tracer thread, and from the no_new_privs
// thread (StrictScripts).
func TestExecutorRlimits(t *testing.T) {
	root := t.TempDir()
	script := "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\ngrep -E '^Max (cpu time|address space|processes|open files) ' /proc/self/limits\n"
	if err := os.WriteFile(filepath.Join(root, "ulimit.sh"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	var before [4]string
	for i, r := range []int{0, 9, 6, 7} { // CPU, AS, NPROC, NOFILE
		before[i] = rlimitOf(t, r)
	}
	for _, strict := range []bool{false, true} {
		e, logs := newExecutor(t, root, func(e *Executor) {
			e.Limits = Limits{CPUSeconds: 7, AddressSpace: 512 << 20, Processes: 4321, OpenFiles: 37}
			e.StrictScripts = strict
		})
		resp, body, err := respondScript(t, e, cgiEnv(root, "ulimit.sh"), nil)
		if err != nil || resp.Status != 200 {
			t.Fatalf("StrictScripts %v: ulimit.sh = %d %q, %v\n%s", strict, resp.Status, body, err, logs)
		}
		for _, want := range []string{
			`Max cpu time +7 +8 +seconds`,
			`Max processes +4321 +4321 +processes`,
			`Max open files +37 +37 +files`,
			`Max address space +536870912 +536870912 +bytes`,
		} {
			if !regexp.MustCompile(want).MatchString(body) {
				t.Errorf("StrictScripts %v: the limits of the script's first child:\n%s\nwant a line matching %q", strict, body, want)
			}
		}
	}
	for i, r := range []int{0, 9, 6, 7} {
		if got := rlimitOf(t, r); got != before[i] {
			t.Errorf("the runner's limit %d is now %s, was %s", r, got, before[i])
		}
	}
}

// rlimitOf returns this process's soft and hard limit of resource.
func rlimitOf(t *testing.T, resource int) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/limits")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(string(b), "\n")[1+resource]
}

// TestExecutorRlimitsCrossed: a script past its CPU seconds is killed and
// its request ends, long before the timeout; one past its open files
// cannot open more; one past its address space cannot allocate.
func TestExecutorRlimitsCrossed(t *testing.T) {
	root := t.TempDir()
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(root, name), []byte(text), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write("spin.sh", "#!/bin/sh\nwhile :; do :; done\n")
	spin, logs := newExecutor(t, root, func(e *Executor) {
		e.Limits = Limits{CPUSeconds: 1}
		e.Timeout = time.Minute
	})
	resp, body, _ := respondScript(t, spin, cgiEnv(root, "spin.sh"), nil)
	if resp.Status != 502 || !strings.Contains(logs.String(), "CPU time limit exceeded") && !strings.Contains(logs.String(), "killed") {
		t.Errorf("spin.sh over 1 CPU second = %d %q, want 502 and its signal logged\n%s", resp.Status, body, logs)
	}

	perl, err := exec.LookPath("perl")
	if err != nil {
		t.Skip("no perl for the open-files script")
	}
	write("files.pl", "#!"+perl+"\nprint \"Content-Type: text/plain\\n\\n\";\nmy ($n, @f);\nfor (1..100) { open(my $f, '<', '/dev/null') or last; push @f, $f; $n++ }\nprint \"$n\\n\";\n")
	files, logs := newExecutor(t, root, func(e *Executor) { e.Limits = Limits{OpenFiles: 16} })
	resp, body, _ = respondScript(t, files, cgiEnv(root, "files.pl"), nil)
	n, err := strconv.Atoi(strings.TrimSpace(body))
	if resp.Status != 200 || err != nil || n <= 0 || n >= 16 {
		t.Errorf("files.pl opening 100 files under 16 = %d %q, want 200 and a count below 16\n%s", resp.Status, body, logs)
	}
	// 512 MiB wanted under an address space of 256 MiB: perl cannot have it.
	write("alloc.pl", "#!"+perl+"\nmy $x = 'x' x (512 << 20);\nprint \"Content-Type: text/plain\\n\\nallocated\\n\";\n")
	alloc, logs := newExecutor(t, root, func(e *Executor) { e.Limits = Limits{AddressSpace: 256 << 20} })
	resp, body, _ = respondScript(t, alloc, cgiEnv(root, "alloc.pl"), nil)
	if resp.Status != 502 || strings.Contains(body, "allocated") {
		t.Errorf("alloc.pl taking 512 MiB under 256 = %d %q, want 502\n%s", resp.Status, body, logs)
	}
	unbound, _ := newExecutor(t, root, nil)
	if resp, body, _ = respondScript(t, unbound, cgiEnv(root, "alloc.pl"), nil); resp.Status != 200 || body != "allocated\n" {
		t.Errorf("alloc.pl without limits = %d %q, want 200: the test cannot tell the limit's effect", resp.Status, body)
	}
}
