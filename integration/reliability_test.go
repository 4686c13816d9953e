//go:build linux

package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Bounds of the reliability tests: the load is paced, so that a scenario
// takes about relPhase/relRate seconds between two of its events whatever
// the machine, and bounded in requests and in time.
const (
	relClients     = 8                // concurrent clients of the load
	relRate        = 300              // requests a second, all clients together
	relPhase       = 600              // requests answered between two events
	relMaxRequests = 20000            // no scenario sends more
	relLoadTimeout = 60 * time.Second // no scenario's load lasts longer
	relSlowEvery   = 5                // every relSlowEvery-th request takes relSlow
	relSlow        = 100 * time.Millisecond
	relGrace       = 5 * time.Second // the backends' CGIRUN_SHUTDOWN_GRACE
	relSettle      = 10 * time.Second
	relShowFailed  = 10 // failures quoted in a failure message
)

// relStartApp starts the testapp bin serving FastCGI on the unix socket
// sock (0666, for nginx's www-data worker) with extra in its environment,
// its stdout and stderr appended to output, and waits until the socket
// accepts. The harness stops it by PID in a cleanup.
func relStartApp(t *testing.T, name, bin, sock, output string, extra ...string) *process {
	t.Helper()
	checkSocketPath(t, sock)
	env := append([]string{
		serverPath, "LANG=C",
		"CGIRUN_FASTCGI=unix:" + sock,
		"CGIRUN_SOCKET_MODE=0666",
		"CGIRUN_SHUTDOWN_GRACE=" + relGrace.String(),
	}, extra...)
	p := startProcess(t, name, []string{bin}, env, output, false)
	if err := p.waitReady(nginxSocketReady(sock)); err != nil {
		t.Fatalf("%v\n--- %s output ---\n%s", err, name, p.Output())
	}
	return p
}

// relBuild builds integration/testapp into dst with main.version set.
func relBuild(t *testing.T, dst, version string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBinary(t), "build", "-ldflags", "-X main.version="+version, "-o", dst, "./integration/testapp")
	cmd.Dir = moduleRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
}

// relUpstream is an upstream block "cgirun" of the unix sockets, with
// idle connections kept as in nginx-upstream.conf. max_fails=0: a backend
// refusing connections while it restarts is not to be shunned for
// fail_timeout (10 s), or with both restarted in turn nginx would find
// none live. fastcgi_next_upstream keeps its default, "error timeout".
func relUpstream(socks ...string) string {
	var b strings.Builder
	b.WriteString("upstream cgirun {\n")
	for _, s := range socks {
		fmt.Fprintf(&b, "    server unix:%s max_fails=0;\n", s)
	}
	b.WriteString("    keepalive 16;\n}\n")
	return b.String()
}

// relLocations is the deployed snippet nginx-fastcgi.conf, connections
// kept, and /debug/counts on connections of its own, so that measuring
// leaves no connection open behind it.
func relLocations(t *testing.T) string {
	return "include " + filepath.Join(moduleRoot(t), nginxSnippetLocation) + ";\n" +
		"location = /debug/counts {\n    include " + nginxFastCGIParams + ";\n    fastcgi_pass cgirun;\n}\n"
}

// relLoad is a paced load of GET requests through nginx: request I must be
// answered 200 "I PID VERSION\n", which tells which process and build
// answered; every relSlowEvery-th one takes relSlow in its handler, so
// that a backend stopped or upgraded has requests in flight.
type relLoad struct {
	base   string
	path   func(i int, slow bool) string // request i's path and query
	client *http.Client
	stop   chan struct{}
	wg     sync.WaitGroup
	ctx    context.Context
	cancel context.CancelFunc

	mu        sync.Mutex
	next      int // the next request's number
	done      int // requests answered or failed
	ok        int
	failures  []string
	byPID     map[int]int
	byVersion map[string]int
	waiters   []relWaiter
}

type relWaiter struct {
	n  int
	ch chan struct{}
}

// relTestappPath is the testapp's /pid for relLoad.
func relTestappPath(i int, slow bool) string {
	if slow {
		return fmt.Sprintf("/pid?echo=%d&sleep=%s", i, relSlow)
	}
	return fmt.Sprintf("/pid?echo=%d", i)
}

func startRelLoad(t *testing.T, base string, path func(i int, slow bool) string) *relLoad {
	ctx, cancel := context.WithTimeout(context.Background(), relLoadTimeout)
	l := &relLoad{
		base: base,
		path: path,
		client: &http.Client{
			Timeout:   clientTimeout,
			Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: relClients},
		},
		stop:      make(chan struct{}),
		ctx:       ctx,
		cancel:    cancel,
		byPID:     map[int]int{},
		byVersion: map[string]int{},
	}
	tokens := make(chan struct{})
	l.wg.Add(1)
	go func() { // the pace
		defer l.wg.Done()
		tick := time.NewTicker(time.Second / relRate)
		defer tick.Stop()
		for {
			select {
			case <-l.stop:
				close(tokens)
				return
			case <-ctx.Done():
				close(tokens)
				return
			case <-tick.C:
			}
			select {
			case tokens <- struct{}{}:
			case <-l.stop:
			case <-ctx.Done():
			}
		}
	}()
	for range relClients {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for range tokens {
				l.mu.Lock()
				i := l.next
				l.next++
				l.mu.Unlock()
				if i >= relMaxRequests {
					return
				}
				l.record(i, l.get(i))
			}
		}()
	}
	t.Cleanup(func() { l.finish() })
	return l
}

// relAnswer is one request's outcome: the process and build that answered,
// or why it failed.
type relAnswer struct {
	pid     int
	version string
	err     error
}

func (l *relLoad) get(i int) relAnswer {
	url := l.base + l.path(i, i%relSlowEvery == 0)
	req, err := http.NewRequestWithContext(l.ctx, http.MethodGet, url, nil)
	if err != nil {
		return relAnswer{err: err}
	}
	resp, err := l.client.Do(req)
	if err != nil {
		return relAnswer{err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return relAnswer{err: fmt.Errorf("%d, body cut after %q: %w", resp.StatusCode, body, err)}
	}
	f := strings.Fields(string(body))
	if resp.StatusCode != http.StatusOK || len(f) != 3 || f[0] != strconv.Itoa(i) || !strings.HasSuffix(string(body), "\n") {
		return relAnswer{err: fmt.Errorf("%d %q, want 200 \"%d PID VERSION\\n\"", resp.StatusCode, body, i)}
	}
	pid, err := strconv.Atoi(f[1])
	if err != nil {
		return relAnswer{err: fmt.Errorf("%d %q: pid: %w", resp.StatusCode, body, err)}
	}
	return relAnswer{pid: pid, version: f[2]}
}

func (l *relLoad) record(i int, a relAnswer) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.done++
	if a.err != nil {
		l.failures = append(l.failures, fmt.Sprintf("request %d at %s: %v", i, time.Now().Format("15:04:05.000"), a.err))
	} else {
		l.ok++
		l.byPID[a.pid]++
		l.byVersion[a.version]++
	}
	l.waiters = slices.DeleteFunc(l.waiters, func(w relWaiter) bool {
		if l.done >= w.n {
			close(w.ch)
			return true
		}
		return false
	})
}

// await waits until n more requests than now have been answered (or have
// failed); it fails the test when the load ends or relLoadTimeout passes
// first.
func (l *relLoad) await(t *testing.T, n int, logs func() string) {
	t.Helper()
	l.mu.Lock()
	w := relWaiter{n: l.done + n, ch: make(chan struct{})}
	l.waiters = append(l.waiters, w)
	l.mu.Unlock()
	select {
	case <-w.ch:
	case <-l.ctx.Done():
		l.mu.Lock()
		done := l.done
		l.mu.Unlock()
		t.Fatalf("the load ended (%v) after %d requests, before %d\n%s", context.Cause(l.ctx), done, w.n, logs())
	}
}

// relTotals is what a load did.
type relTotals struct {
	sent, ok  int
	failures  []string
	byPID     map[int]int
	byVersion map[string]int
}

func (r relTotals) failed() int { return len(r.failures) }

// finish stops the load, waits for the requests in flight, and returns the
// totals. Once is enough; later calls return the same.
func (l *relLoad) finish() relTotals {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
	l.cancel()
	l.client.CloseIdleConnections()
	l.mu.Lock()
	defer l.mu.Unlock()
	return relTotals{sent: l.done, ok: l.ok, failures: l.failures, byPID: l.byPID, byVersion: l.byVersion}
}

// relReport logs the totals, with the name of each process that answered,
// prints the RELIABILITY row, and fails the test on any failed request.
func relReport(t *testing.T, scenario string, r relTotals, names map[int]string, logs func() string) {
	t.Helper()
	var per []string
	for _, pid := range slices.Sorted(maps.Keys(r.byPID)) {
		per = append(per, fmt.Sprintf("%s (pid %d) %d", names[pid], pid, r.byPID[pid]))
	}
	t.Logf("%s: sent %d, ok %d, failed %d; answered by %s", scenario, r.sent, r.ok, r.failed(), strings.Join(per, ", "))
	reliabilityRow(t, scenario, r.sent, r.failed(), 0, "-", "-")
	if r.failed() > 0 {
		t.Errorf("%d of %d requests failed; the first:\n%s\n%s", r.failed(), r.sent,
			strings.Join(r.failures[:min(len(r.failures), relShowFailed)], "\n"), logs())
	}
	if r.ok+r.failed() != r.sent {
		t.Errorf("sent %d, but %d ok and %d failed", r.sent, r.ok, r.failed())
	}
	for pid := range r.byPID {
		if names[pid] == "" {
			t.Errorf("process %d answered %d requests; it is none of the test's", pid, r.byPID[pid])
		}
	}
}

// relNginxRetries counts the lines of nginx's error log where it gave up
// on an upstream connection and tried again: what the scenarios make
// happen, and nginx hides from clients.
func relNginxRetries(srv *nginxServer) map[string]int {
	counts := map[string]int{}
	for _, line := range strings.Split(readFile(filepath.Join(srv.Prefix, "logs", "error.log")), "\n") {
		_, msg, ok := strings.Cut(line, "] ") // after the level
		if !ok || !strings.Contains(line, "upstream") || !strings.Contains(line, " [error] ") && !strings.Contains(line, " [crit] ") {
			continue
		}
		// "PID#TID: *12 connect() to unix:/a.sock failed (2: No such file
		// or directory) while connecting to upstream, client: ...": the
		// reason, without the connection's number and the rest.
		if _, rest, ok := strings.Cut(msg, " *"); ok {
			if _, after, ok := strings.Cut(rest, " "); ok {
				msg = after
			}
		}
		msg, _, _ = strings.Cut(msg, ", client:")
		counts[msg]++
	}
	return counts
}

// TestReliabilityRestartUnderLoad puts two testapp backends behind one
// nginx upstream, connections kept, and while a paced load runs stops
// each in turn with SIGTERM and starts it again on the same socket. Not
// one request may fail: a backend stops accepting at once and answers
// everything it accepted, and nginx sends what never reached a backend
// (a connection refused, or a kept connection closed under it) to the
// other one.
func TestReliabilityRestartUnderLoad(t *testing.T) {
	bin := nginxTestappBin(t)
	dir := sharedTempDir(t)
	type backend struct {
		name, sock, output string
		proc               *process
	}
	backends := []*backend{{name: "A"}, {name: "B"}}
	names := map[int]string{}
	var socks []string
	for _, b := range backends {
		b.sock = filepath.Join(dir, strings.ToLower(b.name)+".sock")
		b.output = filepath.Join(dir, strings.ToLower(b.name)+".log")
		b.proc = relStartApp(t, "testapp "+b.name, bin, b.sock, b.output)
		names[b.proc.cmd.Process.Pid] = b.name
		socks = append(socks, b.sock)
	}
	srv := startNginx(t, nginxConfig{HTTP: relUpstream(socks...), Server: relLocations(t)})
	logs := func() string {
		s := srv.ErrorLog()
		for _, b := range backends {
			s += "\n--- testapp " + b.name + " ---\n" + readFile(b.output)
		}
		return s
	}

	load := startRelLoad(t, srv.URL(""), relTestappPath)
	load.await(t, relPhase, logs)
	for _, b := range backends {
		nginxTerminate(t, b.proc)
		runWaitExit(t, b.proc, logs)
		b.proc = relStartApp(t, "testapp "+b.name+" again", bin, b.sock, b.output)
		names[b.proc.cmd.Process.Pid] = b.name + " restarted"
		load.await(t, relPhase, logs)
	}
	totals := load.finish()
	relReport(t, "nginx, 2 backends, each restarted (SIGTERM) under load", totals, names, logs)
	t.Logf("nginx retried after: %v", relNginxRetries(srv))
	for pid, name := range names {
		if totals.byPID[pid] == 0 {
			t.Errorf("%s (pid %d) answered nothing", name, pid)
		}
	}
}

// relUpgradedRE is the old process's log line naming the new one.
var relUpgradedRE = regexp.MustCompile(`msg="cgirun: upgraded: the new process serves; shutting down" pid=(\d+)`)

// relWaitUpgraded waits until the log at output holds n upgrade lines,
// and returns the pid the n-th names. The processes write to the file
// with nothing to notify us: poll, bounded by relSettle.
func relWaitUpgraded(t *testing.T, output string, n int, logs func() string) int {
	t.Helper()
	deadline := time.Now().Add(relSettle)
	for {
		log := readFile(output)
		if m := relUpgradedRE.FindAllStringSubmatch(log, -1); len(m) >= n {
			pid, _ := strconv.Atoi(m[n-1][1])
			return pid
		}
		if strings.Contains(log, "upgrade failed") || time.Now().After(deadline) {
			t.Fatalf("upgrade %d: no line saying the new process serves\n%s", n, logs())
		}
		time.Sleep(pollMax / 10)
	}
}

// TestReliabilityUpgradeUnderLoad runs one testapp backend behind nginx,
// connections kept, and while a paced load runs installs a new build over
// its binary and sends SIGHUP, twice: each time a new process (the new
// build) takes over the listening socket and the old one drains and exits
// 0. Not one request may fail.
func TestReliabilityUpgradeUnderLoad(t *testing.T) {
	requireBinary(t, "nginx")
	requireFile(t, nginxFastCGIParams)
	dir := sharedTempDir(t)
	bin := filepath.Join(dir, "testapp")
	versions := []string{"v1", "v2", "v3"}
	for _, v := range versions {
		relBuild(t, bin+"."+v, v)
	}
	if err := os.Rename(bin+".v1", bin); err != nil {
		t.Fatal(err)
	}
	sock, output := filepath.Join(dir, "app.sock"), filepath.Join(dir, "testapp.log")
	first := relStartApp(t, "testapp", bin, sock, output)
	current := first.cmd.Process.Pid
	names := map[int]string{current: "v1"}
	stopUpgradedAtCleanup(t, "the last testapp", first.cmd.Process.Pid, &current)
	srv := startNginx(t, nginxConfig{HTTP: relUpstream(sock), Server: relLocations(t)})
	logs := func() string { return srv.ErrorLog() + "\n--- testapp ---\n" + readFile(output) }

	load := startRelLoad(t, srv.URL(""), relTestappPath)
	load.await(t, relPhase, logs)
	for n, v := range versions[1:] {
		if err := os.Rename(bin+"."+v, bin); err != nil { // as a package manager installs
			t.Fatal(err)
		}
		old := current
		if err := syscall.Kill(old, syscall.SIGHUP); err != nil {
			t.Fatalf("SIGHUP to %d: %v", old, err)
		}
		current = relWaitUpgraded(t, output, n+1, logs)
		names[current] = v
		if current == old {
			t.Fatalf("upgrade %d: the new process has the old pid %d", n+1, old)
		}
		if old == first.cmd.Process.Pid {
			runWaitExit(t, first, logs) // our child: its exit status is ours to see
		} else if left := deadOrGone(old, os.Getpid()); left != "" {
			t.Fatalf("upgrade %d: the old process %d is still there: %s\n%s", n+1, old, left, logs())
		}
		load.await(t, relPhase, logs)
	}
	totals := load.finish()
	relReport(t, "nginx, 1 backend, upgraded twice (SIGHUP) under load", totals, names, logs)
	t.Logf("nginx retried after: %v", relNginxRetries(srv))
	for _, v := range versions {
		if totals.byVersion[v] == 0 {
			t.Errorf("build %s answered nothing (answers by build: %v)", v, totals.byVersion)
		}
	}
	if log := readFile(output); strings.Contains(log, "grace period over") || strings.Contains(log, "upgrade failed") {
		t.Errorf("the log tells of a failed upgrade or drain:\n%s", log)
	}
}

// relCounts is the testapp's /debug/counts.
type relCounts struct {
	Goroutines  int `json:"goroutines"`
	Started     int `json:"started"`
	Completed   int `json:"completed"`
	Cancelled   int `json:"cancelled"`
	Uncancelled int `json:"uncancelled"`
}

func relGetCounts(t *testing.T, base string, logs func() string) relCounts {
	t.Helper()
	resp, body := nginxGet(t, base+"/debug/counts", nil, logs)
	var c relCounts
	if err := json.Unmarshal(body, &c); resp.StatusCode != http.StatusOK || err != nil {
		t.Fatalf("GET /debug/counts = %d %q: %v\n%s", resp.StatusCode, body, err, logs())
	}
	return c
}

// relAborts sends n GET path requests through nginx from relClients
// clients; every third is cut by its client after the first line, the
// others must be answered with exactly lines lines "line I\n". It
// returns how many were cut and the failures.
func relAborts(t *testing.T, base, path string, n, lines int) (cut int, failures []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), relLoadTimeout)
	defer cancel()
	client := &http.Client{Timeout: clientTimeout, Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: relClients}}
	defer client.CloseIdleConnections()
	var want strings.Builder
	for i := range lines {
		fmt.Fprintf(&want, "line %d\n", i)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	next := 0
	for range relClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= n {
					return
				}
				err := relAbortOne(ctx, client, base+path, i%3 == 0, want.String())
				mu.Lock()
				if err != nil {
					failures = append(failures, fmt.Sprintf("request %d: %v", i, err))
				} else if i%3 == 0 {
					cut++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return cut, failures
}

func relAbortOne(ctx context.Context, client *http.Client, url string, cut bool, want string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%d %q, want 200", resp.StatusCode, b)
	}
	if cut {
		// Close before the end: the transport drops the connection.
		line, err := bufio.NewReader(resp.Body).ReadString('\n')
		if err != nil || line != "line 0\n" {
			return fmt.Errorf("first line %q, %v", line, err)
		}
		return nil
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil || string(body) != want {
		return fmt.Errorf("body %q, %v; want %d lines", body, err, strings.Count(want, "\n"))
	}
	return nil
}

// relSettleTo waits, bounded by relSettle, until measure returns at most
// want, and returns its last value. Nothing notifies the test when a
// process has closed its connections: poll.
func relSettleTo(want int, measure func() int) int {
	deadline := time.Now().Add(relSettle)
	for {
		got := measure()
		if got <= want || time.Now().After(deadline) {
			return got
		}
		time.Sleep(pollMax)
	}
}

// Client aborts of the testapp: requests, and the lines of each. A cut
// stream would end by itself after (relAbortLines-1)*relAbortEvery: long
// enough for nginx to notice its client left first.
const (
	relAbortRequests = 180
	relAbortLines    = 20
	relAbortEvery    = 10 * time.Millisecond
)

// TestReliabilityClientAbortsTestapp sends the testapp, behind nginx with
// connections kept, streams of relAbortLines lines of which the clients
// cut a third after the first line. Afterwards every cut handler's
// context was cancelled and every other handler completed; the
// goroutines and descriptors of the testapp come back to what they were
// before the load (its idle timeout closes the kept connections).
func TestReliabilityClientAbortsTestapp(t *testing.T) {
	bin := nginxTestappBin(t)
	dir := sharedTempDir(t)
	sock, output := filepath.Join(dir, "app.sock"), filepath.Join(dir, "testapp.log")
	app := relStartApp(t, "testapp", bin, sock, output, "CGIRUN_IDLE_TIMEOUT=1s")
	pid := app.cmd.Process.Pid
	srv := startNginx(t, nginxConfig{HTTP: relUpstream(sock), Server: relLocations(t)})
	logs := func() string { return srv.ErrorLog() + "\n--- testapp ---\n" + readFile(output) }

	before := relGetCounts(t, srv.URL(""), logs)
	// The baseline once the connection of /debug/counts has closed.
	relSettleTo(0, func() int { return len(nginxAppConns(t, "unix:"+sock)) })
	fdsBefore, _ := openFDs(pid)
	path := fmt.Sprintf("/drip?n=%d&every=%s", relAbortLines, relAbortEvery)
	cut, failures := relAborts(t, srv.URL(""), path, relAbortRequests, relAbortLines)
	fdsLoaded, _ := openFDs(pid)
	loaded := relGetCounts(t, srv.URL(""), logs)

	// The cut handlers end as nginx notices; then the idle connections
	// close (CGIRUN_IDLE_TIMEOUT). Wait for both.
	var after relCounts
	relSettleTo(0, func() int {
		after = relGetCounts(t, srv.URL(""), logs)
		if after.Completed+after.Cancelled+after.Uncancelled < after.Started {
			return 1
		}
		return max(0, after.Goroutines-before.Goroutines)
	})
	fdsAfter := relSettleTo(fdsBefore, func() int { n, _ := openFDs(pid); return n })
	t.Logf("testapp: %d requests, %d cut by the client, %d failed; handlers started %d, completed %d, cancelled %d, not cancelled %d",
		relAbortRequests, cut, len(failures), after.Started, after.Completed, after.Cancelled, after.Uncancelled)
	t.Logf("testapp: goroutines %d before, %d just after the load, %d after; descriptors %d before, %d just after the load, %d after",
		before.Goroutines, loaded.Goroutines, after.Goroutines, fdsBefore, fdsLoaded, fdsAfter)
	reliabilityRow(t, "nginx, testapp, a third of streams cut by the client", relAbortRequests, len(failures), 0,
		strconv.Itoa(after.Goroutines-before.Goroutines), strconv.Itoa(fdsAfter-fdsBefore))
	if len(failures) > 0 {
		t.Errorf("%d requests failed; the first:\n%s\n%s", len(failures), strings.Join(failures[:min(len(failures), relShowFailed)], "\n"), logs())
	}
	if after.Started != relAbortRequests || after.Cancelled != cut || after.Completed != relAbortRequests-cut || after.Uncancelled != 0 {
		t.Errorf("handlers: started %d, cancelled %d, completed %d, ended by a failed write with their context still live %d; want %d, %d (the cut ones), %d and 0",
			after.Started, after.Cancelled, after.Completed, after.Uncancelled, relAbortRequests, cut, relAbortRequests-cut)
	}
	if after.Goroutines > before.Goroutines {
		t.Errorf("goroutines: %d after the load, %d before", after.Goroutines, before.Goroutines)
	}
	if fdsAfter > fdsBefore {
		t.Errorf("descriptors: %d after the load, %d before", fdsAfter, fdsBefore)
	}
}

// relMarked lists the live processes whose environment holds mark.
func relMarked(mark string) []string {
	ents, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil || !slices.Contains(strings.Split(string(env), "\x00"), mark) {
			continue
		}
		if p, err := runnerStat(mustAtoi(e.Name())); err == nil && p.state != "Z" {
			out = append(out, fmt.Sprintf("%s[%s]", p.comm, e.Name()))
		}
	}
	return out
}

func mustAtoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// Client aborts of the runner: requests, and the lines of each. Every
// line costs the script a fork (sleep): fewer than the testapp's.
const (
	relRunnerRequests = 90
	relRunnerLines    = 10
)

// relDripScript streams its lines, one every 20 ms, unbuffered, then
// leaves a file named after its pid in $RELIABILITY_DONE: a script that
// its client cut must have been killed before.
var relDripScript = fmt.Sprintf(`#!/bin/sh
printf 'Content-Type: text/plain\r\nX-Accel-Buffering: no\r\n\r\n'
i=0
while [ $i -lt %d ]; do
	echo "line $i"
	i=$((i+1))
	[ $i -lt %d ] && sleep 0.02
done
: > "$RELIABILITY_DONE/$$"
`, relRunnerLines, relRunnerLines)

// relStartRunner builds cmd/cgirun and starts `cgirun fcgi` on the unix
// socket sock serving root, with the extra arguments.
func relStartRunner(t *testing.T, root, sock, output string, extra ...string) (string, *process) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "cgirun")
	buildExample(t, "./cmd/cgirun", bin)
	checkSocketPath(t, sock)
	argv := append([]string{bin, "fcgi", "--root", root, "-s", "unix:" + sock, "--socket-mode", "0666",
		"--shutdown-grace", relGrace.String()}, extra...)
	p := startProcess(t, "cgirun", argv, []string{serverPath, "LANG=C"}, output, false)
	if err := p.waitReady(nginxSocketReady(sock)); err != nil {
		t.Fatalf("%v\n--- cgirun log ---\n%s", err, p.Output())
	}
	return bin, p
}

// TestReliabilityClientAbortsRunner sends `cgirun fcgi`, behind nginx, a
// slow CGI script's streams, of which the clients cut a third after the
// first line. Afterwards no process of the script's is left (found by a
// marker in their environment), the runner has no child, and its
// descriptors are back to what they were.
func TestReliabilityClientAbortsRunner(t *testing.T) {
	requireBinary(t, "nginx")
	requireFile(t, nginxFastCGIParams)
	dir := sharedTempDir(t)
	root := filepath.Join(dir, "root")
	mkdirs(t, root)
	writeFile(t, filepath.Join(root, "drip.sh"), relDripScript, 0o755)
	writeFile(t, filepath.Join(root, "warm.sh"), "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nwarm\\n'\n", 0o755)
	sock, output := filepath.Join(dir, "cgirun.sock"), filepath.Join(dir, "cgirun.log")
	_, runner := relStartRunner(t, root, sock, output)
	pid := runner.cmd.Process.Pid
	done := filepath.Join(dir, "done")
	mkdirs(t, done)
	markValue := filepath.Base(dir)
	mark := "RELIABILITY_MARK=" + markValue
	srv := startNginx(t, nginxConfig{Server: fmt.Sprintf(`location = /drip.sh {
    include %s;
    fastcgi_param SCRIPT_FILENAME %s/drip.sh;
    fastcgi_param RELIABILITY_MARK %s;
    fastcgi_param RELIABILITY_DONE %s;
    fastcgi_pass unix:%s;
}
location = /warm.sh {
    include %s;
    fastcgi_param SCRIPT_FILENAME %s/warm.sh;
    fastcgi_pass unix:%s;
}
`, nginxFastCGIParams, root, markValue, done, sock, nginxFastCGIParams, root, sock)})
	logs := func() string { return srv.ErrorLog() + "\n--- cgirun ---\n" + readFile(output) }

	// One request first: the runner opens the /dev/null it shares between
	// the scripts of bodiless requests once, at the first of them.
	if resp, body := get(t, srv.URL("/warm.sh"), nil); resp.StatusCode != 200 || string(body) != "warm\n" {
		t.Fatalf("warm-up request: %d %q\n%s", resp.StatusCode, body, logs())
	}
	fdsBefore, _ := openFDs(pid)
	// How many of the script's processes run at once, sampled while the
	// load runs: that there were some to kill.
	sampled := make(chan int)
	stopSampling := make(chan struct{})
	go func() {
		most := 0
		for {
			most = max(most, len(relMarked(mark)))
			select {
			case <-stopSampling:
				sampled <- most
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	cut, failures := relAborts(t, srv.URL(""), "/drip.sh", relRunnerRequests, relRunnerLines)
	close(stopSampling)
	most := <-sampled
	fdsLoaded, _ := openFDs(pid)
	var left []string
	relSettleTo(0, func() int { left = relMarked(mark); return len(left) })
	children, fdsAfter := settle(pid, fdsBefore)
	finished, err := os.ReadDir(done)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cgirun fcgi: %d requests, %d cut by the client, %d failed; scripts run to their end %d; script processes at most %d at once during the load, %d left after; children of the runner %d; descriptors %d before, %d just after the load, %d after",
		relRunnerRequests, cut, len(failures), len(finished), most, len(left), children, fdsBefore, fdsLoaded, fdsAfter)
	if len(finished) != relRunnerRequests-cut {
		t.Errorf("%d scripts ran to their end, want %d: those whose client left must have been killed", len(finished), relRunnerRequests-cut)
	}
	reliabilityRow(t, "nginx, cgirun fcgi, a third of CGI streams cut by the client", relRunnerRequests, len(failures), 0,
		"-", strconv.Itoa(fdsAfter-fdsBefore))
	if len(failures) > 0 {
		t.Errorf("%d requests failed; the first:\n%s\n%s", len(failures), strings.Join(failures[:min(len(failures), relShowFailed)], "\n"), logs())
	}
	if len(left) > 0 {
		t.Errorf("script processes left after the load: %v", left)
	}
	if children > 0 {
		t.Errorf("the runner has %d children after the load", children)
	}
	if fdsAfter > fdsBefore {
		t.Errorf("descriptors of the runner: %d after the load, %d before", fdsAfter, fdsBefore)
	}
}

// relPIDScript answers "I PPID runner\n" for the query "I", after relSlow
// for "I&slow": the load's answer, with the pid of the runner that ran it.
var relPIDScript = fmt.Sprintf(`#!/bin/sh
n=${QUERY_STRING%%%%&*}
[ "$n" != "$QUERY_STRING" ] && sleep %g
printf 'Content-Type: text/plain\r\n\r\n%%s %%s runner\n' "$n" "$PPID"
`, relSlow.Seconds())

// TestReliabilityRunnerUpgrade runs `cgirun fcgi` behind nginx,
// connections kept, and while a paced load of CGI requests runs sends it
// SIGHUP: a new runner takes over the socket, the old one drains and
// exits 0, and not one request fails.
func TestReliabilityRunnerUpgrade(t *testing.T) {
	requireBinary(t, "nginx")
	requireFile(t, nginxFastCGIParams)
	dir := sharedTempDir(t)
	root := filepath.Join(dir, "root")
	mkdirs(t, root)
	writeFile(t, filepath.Join(root, "pid.sh"), relPIDScript, 0o755)
	sock, output := filepath.Join(dir, "cgirun.sock"), filepath.Join(dir, "cgirun.log")
	_, first := relStartRunner(t, root, sock, output)
	old := first.cmd.Process.Pid
	current := old
	stopUpgradedAtCleanup(t, "the new runner", old, &current)
	srv := startNginx(t, nginxConfig{
		HTTP: relUpstream(sock),
		Server: fmt.Sprintf(`location = /pid.sh {
    include %s;
    fastcgi_param SCRIPT_FILENAME %s/pid.sh;
    fastcgi_pass cgirun;
    fastcgi_keep_conn on;
}
`, nginxFastCGIParams, root),
	})
	logs := func() string { return srv.ErrorLog() + "\n--- cgirun ---\n" + readFile(output) }

	load := startRelLoad(t, srv.URL(""), func(i int, slow bool) string {
		if slow {
			return fmt.Sprintf("/pid.sh?%d&slow", i)
		}
		return fmt.Sprintf("/pid.sh?%d", i)
	})
	load.await(t, relPhase, logs)
	if err := syscall.Kill(old, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	current = relWaitUpgraded(t, output, 1, logs)
	runWaitExit(t, first, logs)
	if _, err := os.Stat(sock); err != nil {
		t.Errorf("the socket after the old runner exited: %v; want it kept for the new one", err)
	}
	load.await(t, relPhase, logs)
	totals := load.finish()
	relReport(t, "nginx, cgirun fcgi upgraded (SIGHUP) under load", totals, map[int]string{old: "cgirun", current: "cgirun upgraded"}, logs)
	t.Logf("nginx retried after: %v", relNginxRetries(srv))
	if totals.byPID[old] == 0 || totals.byPID[current] == 0 {
		t.Errorf("answers by runner: %v; want both the old (%d) and the new (%d)", totals.byPID, old, current)
	}
}

// stopUpgradedAtCleanup stops, as the test ends, what replaced the process
// first through upgrades: *current, once it is no longer first; name says
// what it is in the error when it outlives SIGTERM. Registered after
// startProcess's cleanup, it runs before it: the harness then finds the
// process group empty.
func stopUpgradedAtCleanup(t *testing.T, name string, first int, current *int) {
	t.Cleanup(func() {
		if *current == first {
			return
		}
		syscall.Kill(*current, syscall.SIGTERM)
		if left := deadOrGone(*current, os.Getpid()); left != "" {
			syscall.Kill(*current, syscall.SIGKILL)
			t.Errorf("%s: still there after SIGTERM: %s", name, left)
		}
	})
}
