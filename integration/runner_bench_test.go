//go:build linux

package integration

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// runnerBenchClients is both the back ends' -c and the number of client
// goroutines of BenchmarkRunnerVsFcgiwrap.
const runnerBenchClients = 8

// BenchmarkRunnerVsFcgiwrap drives GET /hello-c (examples/cgi-bin/hello.c)
// through nginx to `cgirun fcgi -c 8` and to `fcgiwrap -c 8` in turn, from
// 8 client goroutines keeping their connections to nginx, and reports
// requests per second and the back end's resident memory before and after.
// Run it as
//
//	go test -run '^$' -bench RunnerVsFcgiwrap -benchtime 2000x -count 3 ./integration
//
// It asserts answers, never speed.
func BenchmarkRunnerVsFcgiwrap(b *testing.B) {
	rig := startRunnerRig(b, runnerBenchClients)
	tr := &http.Transport{Proxy: nil, MaxIdleConns: 2 * runnerBenchClients, MaxIdleConnsPerHost: 2 * runnerBenchClients}
	b.Cleanup(tr.CloseIdleConnections)
	c := &http.Client{Transport: tr, Timeout: clientTimeout}

	for _, impl := range []string{runnerImpl, fcgiwrapImpl} {
		b.Run("impl="+impl, func(b *testing.B) {
			url := rig.URL(impl, "/hello-c")
			pid := rig.PID(impl)
			rssStart, err := runnerRSS(pid)
			if err != nil {
				b.Fatalf("%s (pid %d): %v", impl, pid, err)
			}
			// RunParallel starts parallelism × GOMAXPROCS goroutines: 8
			// on 1, 2, 4 or 8 CPUs.
			b.SetParallelism(max(1, runnerBenchClients/runtime.GOMAXPROCS(0)))
			b.ReportAllocs() // the client's side
			var once sync.Once
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := runnerBenchGet(c, url); err != nil {
						once.Do(func() { b.Errorf("%s: %v\n%s", impl, err, rig.Logs()) })
						return
					}
				}
			})
			b.StopTimer()
			rssEnd, err := runnerRSS(pid)
			if err != nil {
				b.Fatalf("%s (pid %d): %v", impl, pid, err)
			}
			// After ResetTimer, which clears the metrics reported before.
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
			b.ReportMetric(float64(rssStart), "rss-start-KB")
			b.ReportMetric(float64(rssEnd), "rss-end-KB")
		})
	}
}

// runnerBenchGet sends GET url and checks the answer, reading the body to
// its end so that the connection to nginx is kept.
func runnerBenchGet(c *http.Client, url string) error {
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return fmt.Errorf("GET %s: reading body: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK || string(body) != "Hello, World!\n" {
		return fmt.Errorf("GET %s = %d %q, want 200 %q", url, resp.StatusCode, body, "Hello, World!\n")
	}
	return nil
}

// runnerRSS returns the resident memory in KiB (VmRSS) of process pid and
// of its children: fcgiwrap's preforked processes. At rest the runner has
// none (it starts one process per request).
func runnerRSS(pid int) (int64, error) {
	total, err := runnerVmRSS(pid)
	if err != nil {
		return 0, err
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range ents {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		p, err := runnerStat(child)
		if err != nil || p.ppid != pid || p.state == "Z" {
			continue // gone meanwhile, another's, or holding no memory
		}
		kb, err := runnerVmRSS(child)
		if err != nil {
			continue // exited meanwhile
		}
		total += kb
	}
	return total, nil
}

// runnerVmRSS reads VmRSS from /proc/pid/status, in KiB.
func runnerVmRSS(pid int) (int64, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/%d/status: VmRSS %q: %w", pid, v, err)
			}
			return kb, nil
		}
	}
	return 0, errors.New("no VmRSS line in /proc/" + strconv.Itoa(pid) + "/status")
}
