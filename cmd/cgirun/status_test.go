package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cgirun/cgirun/internal/testenv"
)

// statusClient asks a runner for its pages over HTTP or FastCGI.
type statusClient struct {
	t     *testing.T
	mode  string
	root  string
	addr  string // host:port, or the unix socket's path
	sPath string
}

// get asks for path (a script's, or the status page's) with query and an
// Accept header, as a browser through nginx would.
func (c *statusClient) get(path, query, accept string) (int, http.Header, string) {
	c.t.Helper()
	if c.mode == "http" {
		u := "http://" + c.addr + path
		if query != "" {
			u += "?" + query
		}
		h := http.Header{}
		if accept != "" {
			h.Set("Accept", accept)
		}
		return get(c.t, "GET", u, "", h)
	}
	uri := path
	if query != "" {
		uri += "?" + query
	}
	params := map[string]string{
		"GATEWAY_INTERFACE": "CGI/1.1", "REQUEST_METHOD": "GET", "SERVER_PROTOCOL": "HTTP/1.1",
		"SERVER_NAME": "localhost", "SERVER_PORT": "80", "REMOTE_ADDR": "127.0.0.1",
		"DOCUMENT_ROOT": c.root, "SCRIPT_NAME": path, "SCRIPT_FILENAME": filepath.Join(c.root, path),
		"REQUEST_URI": uri, "QUERY_STRING": query,
	}
	if accept != "" {
		params["HTTP_ACCEPT"] = accept
	}
	rec := fcgiDo(c.t, "unix", c.addr, params, "")
	return rec.Code, rec.Header(), rec.Body.String()
}

// report reads the JSON page.
func (c *statusClient) report() runnerReport {
	c.t.Helper()
	code, _, body := c.get(c.sPath, "json", "")
	var st runnerReport
	if err := json.Unmarshal([]byte(body), &st); code != 200 || err != nil {
		c.t.Fatalf("status page ?json = %d %q: %v", code, body, err)
	}
	return st
}

// TestRunnerStatusPage runs three known scripts through "cgirun fcgi" and
// "cgirun http" with --status-path (one exits 0, one exits 3, one runs
// past --timeout) and reads the counts back in the three formats, the
// OpenMetrics and Prometheus ones through Prometheus's own parser. An
// executable at the status page's path is never run.
func TestRunnerStatusPage(t *testing.T) {
	for _, mode := range []string{"fastcgi", "http"} {
		t.Run(mode, func(t *testing.T) {
			root := t.TempDir()
			marker := filepath.Join(t.TempDir(), "ran")
			writeScript(t, filepath.Join(root, "ok.cgi"), "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nok'\n")
			writeScript(t, filepath.Join(root, "exit3.cgi"), "#!/bin/sh\nexit 3\n")
			writeScript(t, filepath.Join(root, "slow.cgi"), "#!/bin/sh\nexec sleep 30\n")
			// A script where the status page is: the page answers, and it
			// never runs.
			writeScript(t, filepath.Join(root, "cgirun-status"), "#!/bin/sh\ntouch "+marker+"\nprintf 'Content-Type: text/plain\\r\\n\\r\\nscript'\n")
			c := &statusClient{t: t, mode: mode, root: root, sPath: "/cgirun-status"}
			args := []string{"--root", root, "--timeout", "300ms", "--kill-grace", "5s"}
			if mode == "http" {
				// The status path comes from the environment here, from
				// the flag for fcgi.
				t.Setenv("CGIRUN_STATUS_PATH", c.sPath)
				r := start(t, nil, append([]string{"http", "--addr", "127.0.0.1:0"}, args...)...)
				c.addr = r.httpAddr()
			} else {
				c.addr = filepath.Join(socketDir(t), "s.sock")
				r := start(t, nil, append([]string{"fcgi", "-s", "unix:" + c.addr, "--status-path", c.sPath}, args...)...)
				r.waitLog(`serving FastCGI`)
			}

			for _, s := range []struct {
				path string
				code int
			}{{"/ok.cgi", 200}, {"/exit3.cgi", 502}, {"/slow.cgi", 504}} {
				if code, _, body := c.get(s.path, "", ""); code != s.code {
					t.Errorf("GET %s = %d %q, want %d", s.path, code, body, s.code)
				}
			}
			// A script's counts change once it is done with, which can be
			// after its answer.
			deadline := time.Now().Add(waitLimit)
			st := c.report()
			for ; st.Scripts.Running != 0 || st.Scripts.Exits["status_0"]+st.Scripts.Exits["status_other"]+st.Scripts.Exits["signal"] != 3; st = c.report() {
				if time.Now().After(deadline) {
					t.Fatalf("the status page never showed the three scripts done with: %+v", st)
				}
				time.Sleep(5 * time.Millisecond) // polling, with the deadline above
			}
			if _, err := os.Stat(marker); err == nil {
				t.Errorf("the script at the status page's path ran")
			}
			want := scriptsReport{Started: 3, Exits: map[string]uint64{"status_0": 1, "status_other": 1, "signal": 1}, Timeouts: 1}
			if got := st.Scripts; got.Started != want.Started || got.Timeouts != want.Timeouts || got.Kills != 0 || got.Waiting != 0 || got.Refused != 0 ||
				got.Exits["status_0"] != 1 || got.Exits["status_other"] != 1 || got.Exits["signal"] != 1 {
				t.Errorf("?json scripts = %+v, want %+v", got, want)
			}
			if st.Mode != mode || st.PID != os.Getpid() || st.Requests != 3 || st.Responses["2xx"] != 1 || st.Responses["5xx"] != 2 || st.RequestDuration.Count != 3 {
				t.Errorf("?json = %+v; want mode %s, pid %d, 3 requests, 1 2xx, 2 5xx, 3 durations", st, mode, os.Getpid())
			}

			for _, f := range []struct{ query, accept, contentType string }{
				{"openmetrics", "", "application/openmetrics-text"},
				{"", "application/openmetrics-text; version=1.0.0", "application/openmetrics-text"},
				{"", "text/plain; version=0.0.4", "text/plain; version=0.0.4"},
			} {
				code, header, body := c.get(c.sPath, f.query, f.accept)
				if code != 200 || !strings.HasPrefix(header.Get("Content-Type"), f.contentType) {
					t.Fatalf("status page ?%s Accept %q = %d, Content-Type %q; want 200, %s", f.query, f.accept, code, header.Get("Content-Type"), f.contentType)
				}
				fams := testenv.Families(t, []byte(body), header)
				for _, s := range []struct {
					name  string
					label []string
					want  float64
				}{
					{"cgirun_build_info", []string{"mode", mode}, 1},
					{"cgirun_requests", nil, 3},
					{"cgirun_responses", []string{"class", "2xx"}, 1},
					{"cgirun_responses", []string{"class", "5xx"}, 2},
					{"cgirun_request_duration_seconds", nil, 3},
					{"cgirun_scripts_started", nil, 3},
					{"cgirun_script_exits", []string{"exit", "status_0"}, 1},
					{"cgirun_script_exits", []string{"exit", "status_other"}, 1},
					{"cgirun_script_exits", []string{"exit", "signal"}, 1},
					{"cgirun_script_timeouts", nil, 1},
					{"cgirun_script_kills", nil, 0},
					{"cgirun_scripts_running", nil, 0},
					{"cgirun_requests_waiting", nil, 0},
					{"cgirun_requests_rejected", []string{"reason", "no_slot"}, 0},
				} {
					if got := testenv.Sample(t, fams, s.name, s.label...); got != s.want {
						t.Errorf("?%s Accept %q: %s%v = %v, want %v", f.query, f.accept, s.name, s.label, got, s.want)
					}
				}
				if v := testenv.Sample(t, fams, "cgirun_start_time_seconds"); v <= 0 {
					t.Errorf("cgirun_start_time_seconds = %v, want a time", v)
				}
			}

			code, header, text := c.get(c.sPath, "", "")
			if code != 200 || header.Get("Content-Type") != "text/plain; charset=utf-8" {
				t.Errorf("text page = %d %q", code, header.Get("Content-Type"))
			}
			for _, line := range []string{`mode: +` + mode, `scripts started: +3`, `exits status 0: +1`, `exits status other: +1`, `exits signal: +1`,
				`script timeouts: +1`, `script kills: +0`, `responses 5xx: +2`, `duration count: +3`} {
				if !regexp.MustCompile(`(?m)^` + line + `$`).MatchString(text) {
					t.Errorf("text page lacks a line %q:\n%s", line, text)
				}
			}
		})
	}
}

// TestRunnerStatusPageOff: without --status-path, its path is a script's
// like any other.
func TestRunnerStatusPageOff(t *testing.T) {
	root := t.TempDir()
	writeScript(t, filepath.Join(root, "cgirun-status"), "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nscript'\n")
	r := start(t, nil, "http", "--root", root, "--addr", "127.0.0.1:0")
	if code, _, body := get(t, "GET", "http://"+r.httpAddr()+"/cgirun-status?json", "", nil); code != 200 || body != "script" {
		t.Errorf("GET /cgirun-status = %d %q, want the script's answer", code, body)
	}
}

// TestRunnerStatusPageSlots: with -c 1 and a script holding the slot, the
// page shows the script running and a second request waiting, then, once
// that request's client leaves, the request refused with 503.
func TestRunnerStatusPageSlots(t *testing.T) {
	root := t.TempDir()
	flag := filepath.Join(t.TempDir(), "go-on")
	writeScript(t, filepath.Join(root, "hold.cgi"), "#!/bin/sh\nwhile [ ! -e "+flag+" ]; do sleep 0.01; done\nprintf 'Content-Type: text/plain\\r\\n\\r\\nheld'\n")
	writeScript(t, filepath.Join(root, "ok.cgi"), "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nok'\n")
	r := start(t, nil, "http", "--root", root, "--addr", "127.0.0.1:0", "-c", "1", "--status-path", "/st")
	c := &statusClient{t: t, mode: "http", root: root, addr: r.httpAddr(), sPath: "/st"}
	wait := func(what string, ok func(scriptsReport) bool) {
		t.Helper()
		deadline := time.Now().Add(waitLimit)
		for st := c.report(); !ok(st.Scripts); st = c.report() {
			if time.Now().After(deadline) {
				t.Fatalf("the status page never showed %s: %+v", what, st.Scripts)
			}
			time.Sleep(5 * time.Millisecond) // polling, with the deadline above
		}
	}

	held := make(chan int, 1)
	go func() {
		resp, err := http.Get("http://" + c.addr + "/hold.cgi")
		if err != nil {
			held <- 0
			return
		}
		// Read to its end: a client that leaves early ends the script.
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		held <- resp.StatusCode
	}()
	wait("hold.cgi running", func(s scriptsReport) bool { return s.Running == 1 })

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	second := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+c.addr+"/ok.cgi", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		second <- err
	}()
	wait("a request waiting for the slot", func(s scriptsReport) bool { return s.Waiting == 1 })
	code, header, body := c.get(c.sPath, "openmetrics", "")
	fams := testenv.Families(t, []byte(body), header)
	for _, s := range []struct {
		name string
		want float64
	}{{"cgirun_scripts_running", 1}, {"cgirun_requests_waiting", 1}, {"cgirun_scripts_started", 1}} {
		if got := testenv.Sample(t, fams, s.name); code != 200 || got != s.want {
			t.Errorf("?openmetrics %d: %s = %v, want %v", code, s.name, got, s.want)
		}
	}
	cancel()
	if err := <-second; err == nil {
		t.Errorf("the second request, whose client left, got an answer")
	}
	wait("the request refused", func(s scriptsReport) bool { return s.Refused == 1 && s.Waiting == 0 })

	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if code := <-held; code != 200 {
		t.Errorf("GET /hold.cgi = %d, want 200", code)
	}
	wait("hold.cgi done with", func(s scriptsReport) bool { return s.Running == 0 && s.Exits["status_0"] == 1 && s.Started == 1 })
	_, header, body = c.get(c.sPath, "", "application/openmetrics-text")
	if got := testenv.Sample(t, testenv.Families(t, []byte(body), header), "cgirun_requests_rejected", "reason", "no_slot"); got != 1 {
		t.Errorf("cgirun_requests_rejected{reason=no_slot} = %v, want 1", got)
	}
}
