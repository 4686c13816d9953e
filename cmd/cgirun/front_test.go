package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kelseyhightower/envconfig"

	"github.com/cgirun/cgirun"
)

// frontEnds starts "cgirun http" and "cgirun proxy" with args (and the
// environment env), each serving GET /ok with 200 "ok\n", and returns
// their addresses by command.
func frontEnds(t *testing.T, args []string, env map[string]string) map[string]string {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	root := t.TempDir()
	writeScript(t, filepath.Join(root, "ok"), "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nok\\n'\n")
	sock := startFastCGI(t, app(nil))
	h := start(t, nil, append([]string{"http", "--root", root, "--addr", "127.0.0.1:0"}, args...)...)
	p := start(t, nil, append([]string{"proxy", "--to", "unix:" + sock, "--addr", "127.0.0.1:0"}, args...)...)
	return map[string]string{"http": h.httpAddr(), "proxy": p.httpAddr()}
}

// closeLimit bounds the wait for the server to close a connection: 50
// times the bounds the tests set, and half the default --header-timeout,
// so that the default cannot pass for the bound the test set.
const closeLimit = 5 * time.Second

// closedByServer reads rd, c's reader, until the server closes c, and
// fails t if that does not happen within closeLimit.
func closedByServer(t *testing.T, c net.Conn, rd io.Reader) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(closeLimit))
	rest, err := io.ReadAll(rd)
	if err != nil {
		t.Fatalf("reading until the server closes the connection: %v (read %q); want EOF", err, rest)
	}
	if len(rest) > 0 {
		t.Errorf("the server wrote %q before closing, want nothing", rest)
	}
}

// TestFrontTimeouts: "cgirun http" and "cgirun proxy" close a connection
// that sends nothing past --header-timeout (CGIRUN_HEADER_TIMEOUT) and a
// kept-alive one past --idle-timeout (CGIRUN_IDLE_TIMEOUT); they kept
// both forever.
func TestFrontTimeouts(t *testing.T) {
	ways := []struct {
		name string
		args []string
		env  map[string]string
	}{
		{name: "flags", args: []string{"--header-timeout", "100ms", "--idle-timeout", "100ms"}},
		{name: "environment", env: map[string]string{"CGIRUN_HEADER_TIMEOUT": "100ms", "CGIRUN_IDLE_TIMEOUT": "100ms"}},
	}
	for _, way := range ways {
		t.Run(way.name, func(t *testing.T) {
			for cmd, addr := range frontEnds(t, way.args, way.env) {
				t.Run(cmd+" silent connections", func(t *testing.T) {
					var conns []net.Conn
					for range 5 {
						c, err := net.Dial("tcp", addr)
						if err != nil {
							t.Fatal(err)
						}
						defer c.Close()
						conns = append(conns, c)
					}
					for _, c := range conns {
						closedByServer(t, c, c)
					}
				})
				t.Run(cmd+" idle kept-alive connection", func(t *testing.T) {
					c, err := net.Dial("tcp", addr)
					if err != nil {
						t.Fatal(err)
					}
					defer c.Close()
					c.SetDeadline(time.Now().Add(waitLimit))
					if _, err := io.WriteString(c, "GET /ok HTTP/1.1\r\nHost: test\r\n\r\n"); err != nil {
						t.Fatal(err)
					}
					br := bufio.NewReader(c)
					resp, err := http.ReadResponse(br, nil)
					if err != nil {
						t.Fatal(err)
					}
					body, err := io.ReadAll(resp.Body)
					if resp.StatusCode != 200 || string(body) != "ok\n" || resp.Close {
						t.Fatalf("GET /ok = %d %q (%v), close %v; want 200 \"ok\\n\" on a kept-alive connection", resp.StatusCode, body, err, resp.Close)
					}
					closedByServer(t, c, br)
				})
			}
		})
	}
}

// TestFrontMaxHeaderBytes: a header block well over --max-header-bytes
// gets 431 (net/http reads a few KiB past the bound before it refuses);
// one under it is served.
func TestFrontMaxHeaderBytes(t *testing.T) {
	for cmd, addr := range frontEnds(t, []string{"--max-header-bytes", "1024"}, nil) {
		for _, tt := range []struct {
			size, status int
		}{{size: 512, status: 200}, {size: 32 << 10, status: 431}} {
			t.Run(fmt.Sprintf("%s %d bytes", cmd, tt.size), func(t *testing.T) {
				status, _, body := get(t, "GET", "http://"+addr+"/ok", "", http.Header{"X-Big": {strings.Repeat("x", tt.size)}})
				if status != tt.status {
					t.Errorf("GET /ok with a %d-byte header = %d %q, want %d", tt.size, status, body, tt.status)
				}
			})
		}
	}
}

// TestFrontServerSettingsAsRun: the variables of HTTPServerConfig are
// cgirun.Config's, with the same defaults.
func TestFrontServerSettingsAsRun(t *testing.T) {
	var lib cgirun.Config
	var cmd HTTPServerConfig
	for _, spec := range []any{&lib, &cmd} {
		if err := envconfig.Process(envPrefix, spec); err != nil {
			t.Fatal(err)
		}
	}
	got := []any{cmd.IdleTimeout, cmd.HeaderTimeout, cmd.ReadTimeout, cmd.WriteTimeout, cmd.MaxHeaderBytes}
	want := []any{lib.IdleTimeout, lib.HeaderTimeout, lib.ReadTimeout, lib.WriteTimeout, lib.MaxHeaderBytes}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("HTTPServerConfig defaults = %v, want cgirun.Config's %v", got, want)
	}
}

func TestFrontServerSettingsErrors(t *testing.T) {
	root := t.TempDir()
	for _, cmd := range [][]string{{"http", "--root", root}, {"proxy", "--to", "unix:/nowhere.sock"}} {
		for _, tt := range []struct {
			flag, value, want string
		}{
			{"--idle-timeout", "-1s", "--idle-timeout (CGIRUN_IDLE_TIMEOUT) = -1s: want 0 or more, such as 30s"},
			{"--header-timeout", "-1s", "--header-timeout (CGIRUN_HEADER_TIMEOUT) = -1s: want 0 or more"},
			{"--read-timeout", "-1s", "--read-timeout (CGIRUN_READ_TIMEOUT) = -1s: want 0 or more"},
			{"--write-timeout", "-1s", "--write-timeout (CGIRUN_WRITE_TIMEOUT) = -1s: want 0 or more"},
			{"--max-header-bytes", "-1", "--max-header-bytes (CGIRUN_MAX_HEADER_BYTES) = -1: want 0 or more, such as 65536"},
			{"--idle-timeout", "5", `--idle-timeout "5": not a duration`},
		} {
			args := append(append([]string{}, cmd...), tt.flag, tt.value)
			t.Run(strings.Join(args[:1], " ")+" "+tt.flag+" "+tt.value, func(t *testing.T) {
				code, _, stderr := runCmd(t, nil, args...)
				if code != exitUsage || !strings.Contains(stderr, tt.want) {
					t.Errorf("run(%q) = %d, stderr %q; want %d and %q", args, code, stderr, exitUsage, tt.want)
				}
			})
		}
	}
}

// TestWarnsBeyondLoopback: "cgirun fcgi" on a TCP address beyond loopback
// with no FCGI_WEB_SERVER_ADDRS, and "cgirun http" beyond loopback, serve
// any host that reaches them: one warning at start names the address and
// the fix. The test binds 0.0.0.0 and connects over 127.0.0.1 only.
func TestWarnsBeyondLoopback(t *testing.T) {
	root := t.TempDir()
	writeScript(t, filepath.Join(root, "ok"), "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nok\\n'\n")
	sock := "unix:" + filepath.Join(socketDir(t), "s.sock")
	tests := []struct {
		name     string
		args     []string
		allow    string // FCGI_WEB_SERVER_ADDRS
		wantWarn string // a regexp; "" for none
	}{
		{name: "fcgi on every interface", args: []string{"fcgi", "-s", "tcp:0.0.0.0:0"},
			wantWarn: `level=WARN msg="cgirun: FastCGI listens beyond loopback and FCGI_WEB_SERVER_ADDRS is empty: any host that reaches it is served; listen on 127\.0\.0\.1 \(such as -s tcp:127\.0\.0\.1:9000\) or a unix socket, or set FCGI_WEB_SERVER_ADDRS to the web server's addresses \(such as 127\.0\.0\.1,10\.0\.0\.2\)" addr=\S+:\d+\n`},
		{name: "fcgi on a bare host:port", args: []string{"fcgi", "-s", "0.0.0.0:0"}, wantWarn: `level=WARN msg="cgirun: FastCGI listens beyond loopback.* addr=\S+:\d+\n`},
		{name: "fcgi on loopback", args: []string{"fcgi", "-s", "tcp:127.0.0.1:0"}},
		{name: "fcgi with an allowlist", args: []string{"fcgi", "-s", "tcp:0.0.0.0:0"}, allow: "127.0.0.1"},
		{name: "fcgi on a unix socket", args: []string{"fcgi", "-s", sock}},
		{name: "http on every interface", args: []string{"http", "--addr", "0.0.0.0:0"},
			wantWarn: `level=WARN msg="cgirun: HTTP listens beyond loopback: any host that reaches it runs the scripts; listen on 127\.0\.0\.1 \(such as --addr 127\.0\.0\.1:8000\) unless that is meant" addr=\S+:\d+\n`},
		{name: "http with FCGI_WEB_SERVER_ADDRS, which is FastCGI's", args: []string{"http", "--addr", "0.0.0.0:0"}, allow: "127.0.0.1",
			wantWarn: `level=WARN msg="cgirun: HTTP listens beyond loopback.* addr=\S+:\d+\n`},
		{name: "http on loopback", args: []string{"http", "--addr", "127.0.0.1:0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("FCGI_WEB_SERVER_ADDRS", tt.allow)
			r := start(t, nil, append(tt.args, "--root", root)...)
			serving := r.waitLog(`msg="cgirun: serving (?:FastCGI|HTTP)" (?:addr|on)=(\S+)`)
			// The warning comes before the "serving" line.
			logs := r.logs.String()
			before, _, _ := strings.Cut(logs, `msg="cgirun: serving`)
			if tt.wantWarn == "" {
				if strings.Contains(logs, "beyond loopback") {
					t.Errorf("run(%q) logged %q, want no warning", tt.args, logs)
				}
			} else if !regexp.MustCompile(tt.wantWarn).MatchString(before) {
				t.Errorf("run(%q) logged %q before serving, want a line matching %q", tt.args, before, tt.wantWarn)
			}
			if tt.args[0] == "http" {
				// Still served, over loopback.
				_, port, err := net.SplitHostPort(serving[1])
				if err != nil {
					t.Fatal(err)
				}
				if status, _, body := get(t, "GET", "http://127.0.0.1:"+port+"/ok", "", nil); status != 200 {
					t.Errorf("GET /ok = %d %q, want 200", status, body)
				}
			}
			if code := r.stop(); code != exitOK {
				t.Errorf("run(%q) after SIGTERM = %d, want 0; stderr:\n%s", tt.args, code, r.logs)
			}
		})
	}
}
