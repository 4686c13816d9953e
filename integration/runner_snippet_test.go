//go:build linux

package integration

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cgirun/cgirun/internal/testenv"
)

// The runner's deploy snippet, and what the tests replace in it: the
// directory above cgi-bin and the runner's socket.
const (
	runnerSnippet       = "examples/deploy/nginx-cgi-bin.conf"
	runnerSnippetRoot   = "fastcgi_param SCRIPT_FILENAME /usr/lib$fastcgi_script_name;"
	runnerSnippetSocket = "fastcgi_pass unix:/run/cgirun/cgi.sock;"
)

// TestRunnerSnippet runs examples/cgi-bin through `cgirun fcgi` behind
// nginx configured with examples/deploy/nginx-cgi-bin.conf, with only its
// directory and socket replaced: what the README tells users to copy. The
// runner's status page (--status-path) is given nginx's exact location of
// the README, and its OpenMetrics page counts the scripts run.
func TestRunnerSnippet(t *testing.T) {
	requireBinary(t, "nginx")
	requireBinary(t, "python3")
	requireFile(t, nginxFastCGIParams)
	dir := sharedTempDir(t)
	lib, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	cgiDir := filepath.Join(lib, "cgi-bin")
	mkdirs(t, cgiDir)
	for _, name := range []string{"hello.sh", "wsgi.py"} {
		b, err := os.ReadFile(filepath.Join(moduleRoot(t), "examples", "cgi-bin", name))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(cgiDir, name), string(b), 0o755)
	}

	snippet, err := os.ReadFile(filepath.Join(moduleRoot(t), runnerSnippet))
	if err != nil {
		t.Fatal(err)
	}
	conf := string(snippet)
	sock := filepath.Join(dir, "cgi.sock")
	checkSocketPath(t, sock)
	for _, r := range []struct{ old, new string }{
		{runnerSnippetRoot, "fastcgi_param SCRIPT_FILENAME " + lib + "$fastcgi_script_name;"},
		{runnerSnippetSocket, "fastcgi_pass unix:" + sock + ";"},
	} {
		if n := strings.Count(conf, r.old); n != 1 {
			t.Fatalf("%s holds %q %d times, want once", runnerSnippet, r.old, n)
		}
		conf = strings.Replace(conf, r.old, r.new, 1)
	}

	bin := filepath.Join(t.TempDir(), "cgirun")
	buildExample(t, "./cmd/cgirun", bin)
	// --socket-mode 0666: nginx's worker runs as www-data when the test
	// runs as root.
	argv := []string{bin, "fcgi", "--root", cgiDir, "-s", "unix:" + sock, "--socket-mode", "0666", "--status-path", "/cgirun-status"}
	conf += "\nlocation = /cgirun-status {\n    allow 127.0.0.1;\n    deny all;\n    include " + nginxFastCGIParams + ";\n    fastcgi_pass unix:" + sock + ";\n}\n"
	runner := startProcess(t, "cgirun", argv, []string{serverPath, "LANG=C"}, filepath.Join(dir, "cgirun.log"), false)
	if err := runner.waitReady(nginxSocketReady(sock)); err != nil {
		t.Fatalf("%v\n--- cgirun log ---\n%s", err, runner.Output())
	}
	srv := startNginx(t, nginxConfig{Server: conf})

	for _, tt := range []struct {
		path   string
		status int
		body   string
	}{
		{"/cgi-bin/hello.sh", 200, "Hello, World!\nPATH_INFO= QUERY_STRING=\n"},
		{"/cgi-bin/hello.sh/users/7?x=1", 200, "Hello, World!\nPATH_INFO=/users/7 QUERY_STRING=x=1\n"},
		{"/cgi-bin/wsgi.py", 200, "Hello from WSGI\n"},
		{"/cgi-bin/wsgi.py/env/SCRIPT_NAME", 200, "/cgi-bin/wsgi.py"},
		{"/cgi-bin/wsgi.py/env/SCRIPT_FILENAME", 200, filepath.Join(cgiDir, "wsgi.py")},
		{"/cgi-bin/missing.sh", http.StatusNotFound, ""},
	} {
		resp, body := get(t, srv.URL(tt.path), nil)
		if resp.StatusCode != tt.status || tt.status == 200 && string(body) != tt.body {
			t.Errorf("GET %s = %d %q, want %d %q\n%s\n--- cgirun log ---\n%s",
				tt.path, resp.StatusCode, body, tt.status, tt.body, srv.ErrorLog(), runner.Output())
		}
	}

	// Five scripts ran (missing.sh runs none); a script's exit is counted
	// once it is done with, which can be after its answer, whatever the
	// exit.
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, body := get(t, srv.URL("/cgirun-status?openmetrics"), nil)
		if resp.StatusCode != 200 {
			t.Fatalf("GET /cgirun-status?openmetrics = %d %q\n%s", resp.StatusCode, body, srv.ErrorLog())
		}
		fams := testenv.Families(t, body, resp.Header)
		exits := 0.0
		for _, kind := range []string{"status_0", "status_other", "signal"} {
			exits += testenv.Sample(t, fams, "cgirun_script_exits", "exit", kind)
		}
		if testenv.Sample(t, fams, "cgirun_scripts_started") == 5 && exits == 5 && testenv.Sample(t, fams, "cgirun_responses", "class", "2xx") == 5 &&
			testenv.Sample(t, fams, "cgirun_responses", "class", "4xx") == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the runner's status page through nginx never counted 5 scripts started and done with, 5 2xx and one 404:\n%s", body)
		}
		time.Sleep(10 * time.Millisecond) // polling, with the deadline above
	}
}
