//go:build linux

package integration

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	neturl "net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cgirun/cgirun/scgi"
	"github.com/cgirun/cgirun/uwsgi"
)

// gatewaySnippetSocket is the socket path that the SCGI and uwsgi deploy
// snippets name; the tests replace it with a temporary one.
const gatewaySnippetSocket = "/run/cgirun/app.sock"

// gatewayFront is a web server passing requests to the test application.
type gatewayFront interface {
	URL(path string) string
	ErrorLog() string
}

// startGatewayFront starts front ("nginx", "apache" or "lighttpd") passing
// every request over proto ("scgi" or "uwsgi") to the unix socket sock,
// configured with that front end's snippet in examples/deploy.
func startGatewayFront(t *testing.T, front, proto, sock string) gatewayFront {
	t.Helper()
	switch front {
	case "nginx":
		requireFile(t, "/etc/nginx/"+proto+"_params")
		return startNginx(t, nginxConfig{
			// The 10 MB upload: nginx's own bound is 1m.
			Server: "client_max_body_size 32m;\n" +
				snippetWith(t, "examples/deploy/nginx-"+proto+".conf", "unix:"+gatewaySnippetSocket+";", "unix:"+sock+";"),
		})
	case "apache":
		return startApache(t, apacheConfig{
			Modules: []string{"proxy", "proxy_" + proto},
			Defines: map[string]string{"CGIRUN_SOCKET": sock},
			Config:  apacheInclude(t, "apache-proxy-"+proto+".conf"),
		})
	case "lighttpd":
		return startLighttpd(t, snippetWith(t, "examples/deploy/lighttpd-"+proto+".conf", `"`+gatewaySnippetSocket+`"`, `"`+sock+`"`))
	}
	t.Fatalf("startGatewayFront: front end %q, want nginx, apache or lighttpd", front)
	return nil
}

// gatewayUpload is the body of the upload tests: 10 MB of random bytes,
// and what /upload answers for it.
func gatewayUpload() ([]byte, string) {
	b := make([]byte, 10<<20)
	rand.NewChaCha8([32]byte{'s', 'c', 'g', 'i'}).Read(b)
	return b, fmt.Sprintf("%d %x", len(b), sha256.Sum256(b))
}

// TestGatewaysSCGIAndUWSGI puts the test application behind nginx
// (scgi_pass, uwsgi_pass), Apache (mod_proxy_scgi, mod_proxy_uwsgi) and
// lighttpd (mod_scgi, both protocols), each configured with its snippet
// in examples/deploy, the application serving the protocol on its own
// socket (CGIRUN_SCGI, CGIRUN_UWSGI) and on a socket that answers every
// protocol (CGIRUN_LISTEN). Each front end gets the same requests: a GET
// with a query and raw bytes in its path and a header, a 10 MB upload, a
// chunked one, a streamed answer, a panic, and a client that leaves.
func TestGatewaysSCGIAndUWSGI(t *testing.T) {
	bin := apacheTestappBin(t)
	upload, uploadWant := gatewayUpload()
	for _, proto := range []string{"scgi", "uwsgi"} {
		for _, variable := range []string{"CGIRUN_" + strings.ToUpper(proto), "CGIRUN_LISTEN"} {
			t.Run(proto+"/"+variable, func(t *testing.T) {
				app := startAppOn(t, bin, variable, "unix")
				sock := strings.TrimPrefix(app.Addr, "unix:")
				for _, front := range []string{"nginx", "apache", "lighttpd"} {
					t.Run(front, func(t *testing.T) {
						srv := startGatewayFront(t, front, proto, sock)
						logs := func() string {
							return srv.ErrorLog() + "\n--- testapp stderr ---\n" + app.Log()
						}
						checkGateway(t, srv, front, proto, upload, uploadWant, logs)
					})
				}
			})
		}
	}
}

// checkGateway sends the requests of TestGatewaysSCGIAndUWSGI through srv.
func checkGateway(t *testing.T, srv gatewayFront, front, proto string, upload []byte, uploadWant string, logs func() string) {
	t.Run("hello", func(t *testing.T) {
		resp, body := nginxGet(t, srv.URL("/"), nil, logs)
		if resp.StatusCode != http.StatusOK || string(body) != "Hello, World!\n" {
			t.Fatalf("GET / = %d %q, want 200 %q\n%s", resp.StatusCode, body, "Hello, World!\n", logs())
		}
	})

	t.Run("what the front end sends", func(t *testing.T) {
		resp, body := nginxGet(t, srv.URL("/env?x=%E9"), nil, logs)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /env = %d %q, want 200\n%s", resp.StatusCode, body, logs())
		}
		env := parseEnv(body)
		t.Logf("%s's variables for GET /env?x=%%E9:\n%s", front, formatEnv(env))
		checkEnv(t, env, map[string]envWant{
			"REQUEST_METHOD": {value: "GET"},
			"REQUEST_URI":    {value: "/env?x=%E9"},
			"QUERY_STRING":   {value: "x=%E9"},
		})
	})

	t.Run("raw bytes", func(t *testing.T) {
		path, want := "/echo/caf%E9/%FF?q=%E9", "GET|/echo/caf\xe9/\xff|q=%E9|caf\xe9|"
		if front == "lighttpd" {
			// lighttpd answers 400 itself for a path holding %FF.
			path, want = "/echo/caf%E9/%E8?q=%E9", "GET|/echo/caf\xe9/\xe8|q=%E9|caf\xe9|"
		}
		checkRawBytes(t, srv.URL, path, want, logs)
	})

	t.Run("upload 10 MB", func(t *testing.T) {
		resp, body := nginxPostBytes(t, srv.URL("/upload"), upload, true, logs)
		if resp.StatusCode != http.StatusOK || string(body) != uploadWant {
			t.Fatalf("POST /upload (10 MB) = %d %q, want 200 %q\n%s", resp.StatusCode, body, uploadWant, logs())
		}
	})

	t.Run("chunked upload", func(t *testing.T) {
		resp, body := nginxPostBytes(t, srv.URL("/upload"), upload, false, logs)
		if front == "apache" {
			// mod_proxy_scgi and mod_proxy_uwsgi need a length and say
			// so themselves: the request never reaches the application.
			if resp.StatusCode != http.StatusLengthRequired {
				t.Fatalf("POST /upload chunked through Apache = %d %q, want 411\n%s", resp.StatusCode, body, logs())
			}
			return
		}
		// nginx and lighttpd read the body whole and send its length.
		if resp.StatusCode != http.StatusOK || string(body) != uploadWant {
			t.Fatalf("POST /upload chunked (10 MB) = %d %q, want 200 %q\n%s", resp.StatusCode, body, uploadWant, logs())
		}
	})

	t.Run("stream", func(t *testing.T) {
		checkStream(t, srv.URL, logs)
	})

	t.Run("panic", func(t *testing.T) {
		resp, body := nginxGet(t, srv.URL("/panic"), nil, logs)
		if resp.StatusCode != http.StatusInternalServerError || bytes.Contains(body, []byte("testapp: /panic")) {
			t.Errorf("GET /panic = %d %q, want 500 without the panic's text\n%s", resp.StatusCode, body, logs())
		}
		resp, body = nginxGet(t, srv.URL("/"), nil, logs)
		if resp.StatusCode != http.StatusOK || string(body) != "Hello, World!\n" {
			t.Fatalf("GET / after a panic = %d %q, want 200 %q\n%s", resp.StatusCode, body, "Hello, World!\n", logs())
		}
	})

	t.Run("client gone", func(t *testing.T) {
		want := scgi.ErrConnClosed.Error()
		if proto == "uwsgi" {
			want = uwsgi.ErrConnClosed.Error()
		}
		checkClientGone(t, srv.URL, want, logs)
	})
}

// TestGatewaysListenSwitch serves the test application once with
// CGIRUN_LISTEN and puts nginx in front of that one process with
// fastcgi_pass, scgi_pass, uwsgi_pass and proxy_pass in turn: each answers,
// from the same process, without a restart.
func TestGatewaysListenSwitch(t *testing.T) {
	bin := apacheTestappBin(t)
	app := startAppOn(t, bin, "CGIRUN_LISTEN", "unix")
	sock := strings.TrimPrefix(app.Addr, "unix:")
	fronts := []struct {
		name   string
		params string // Debian's params file, included
		pass   string
	}{
		{"fastcgi_pass", nginxFastCGIParams, "fastcgi_pass unix:" + sock + ";"},
		{"scgi_pass", "/etc/nginx/scgi_params", "scgi_pass unix:" + sock + ";"},
		{"uwsgi_pass", "/etc/nginx/uwsgi_params", "uwsgi_pass unix:" + sock + ";"},
		{"proxy_pass", "", "proxy_pass http://unix:" + sock + ":;"},
	}
	var pids []string
	for _, f := range fronts {
		t.Run(f.name, func(t *testing.T) {
			include := ""
			if f.params != "" {
				requireFile(t, f.params)
				include = "    include " + f.params + ";\n"
			}
			srv := startNginx(t, nginxConfig{Server: "location / {\n" + include + "    " + f.pass + "\n}\n"})
			logs := func() string { return srv.ErrorLog() + "\n--- testapp stderr ---\n" + app.Log() }
			resp, body := nginxGet(t, srv.URL("/pid?echo="+f.name), nil, logs)
			fields := strings.Fields(string(body))
			if resp.StatusCode != http.StatusOK || len(fields) != 3 || fields[0] != f.name {
				t.Fatalf("GET /pid?echo=%s through %s = %d %q, want 200 %q\n%s", f.name, f.name, resp.StatusCode, body, f.name+" PID VERSION", logs())
			}
			pids = append(pids, fields[1])
		})
	}
	// A failed subtest left fewer pids and said why.
	if one := slices.Compact(slices.Clone(pids)); len(pids) == len(fronts) && len(one) != 1 {
		t.Errorf("pids that answered through %d front ends = %v, want one process", len(fronts), pids)
	}
}

// checkRawBytes sends GET path (whose path and query hold bytes that are
// not UTF-8) with such an X-Raw header, through a front end at url, and
// wants testapp's /echo answer want and the header echoed byte for byte.
func checkRawBytes(t *testing.T, url func(string) string, path, want string, logs func() string) {
	t.Helper()
	resp, body := nginxGet(t, url(path), http.Header{"X-Raw": {"caf\xe9"}}, logs)
	if resp.StatusCode != http.StatusOK || string(body) != want {
		t.Errorf("GET %s = %d %q, want 200 %q\n%s", path, resp.StatusCode, body, want, logs())
	}
	if got := resp.Header.Values("X-Echo-Raw"); !slices.Equal(got, []string{"caf\xe9"}) {
		t.Errorf("GET %s: X-Echo-Raw = %q, want %q\n%s", path, got, []string{"caf\xe9"}, logs())
	}
}

// checkStream gets testapp's /stream through a front end at url: the
// handler sends its second line once the test, having read the first,
// creates a file, so the first line went through the front end while the
// handler still ran.
func checkStream(t *testing.T, url func(string) string, logs func() string) {
	t.Helper()
	flag := filepath.Join(t.TempDir(), "go-on")
	path := "/stream?wait=" + neturl.QueryEscape(flag)
	resp, br, first := nginxFirstLine(t, url(path), logs)
	defer resp.Body.Close()
	if first != "first\n" {
		t.Fatalf("GET %s: first line = %q, want %q\n%s", path, first, "first\n", logs())
	}
	writeFile(t, flag, "", 0o644)
	rest, err := io.ReadAll(br)
	if err != nil || string(rest) != "second\n" {
		t.Errorf("GET %s: rest = %q, %v; want %q\n%s", path, rest, err, "second\n", logs())
	}
}

// checkClientGone leaves testapp's /slow through a front end at url after
// its first line: the front end closes its connection to the application
// (it has no other way to abort a request), and the handler's context
// must end with the cause want. The front end's next request is answered.
func checkClientGone(t *testing.T, url func(string) string, want string, logs func() string) {
	t.Helper()
	mark := filepath.Join(t.TempDir(), "cause")
	path := "/slow?mark=" + neturl.QueryEscape(mark)
	resp, _, first := nginxFirstLine(t, url(path), logs)
	if first != "line 0\n" {
		t.Errorf("GET %s: first line = %q, want %q\n%s", path, first, "line 0\n", logs())
	}
	resp.Body.Close() // no keep-alive: this closes the connection
	cause, err := nginxWaitForFile(mark)
	if err != nil {
		t.Fatalf("after the client left GET %s: %v\n%s", path, err, logs())
	}
	if cause != want {
		t.Errorf("context.Cause after the client left = %q, want %q\n%s", cause, want, logs())
	}
	resp, body := nginxGet(t, url("/"), nil, logs)
	if resp.StatusCode != http.StatusOK || string(body) != "Hello, World!\n" {
		t.Fatalf("GET / after a client left = %d %q, want 200 %q\n%s", resp.StatusCode, body, "Hello, World!\n", logs())
	}
}
