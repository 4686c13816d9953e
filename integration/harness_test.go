//go:build linux

package integration

import (
	"maps"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Shell CGI scripts shared by the harness tests. echo.sh answers
// "$QUERY_STRING $PATH_INFO" with no newline; env.sh answers its whole
// environment, one NAME=value a line. /bin/sh (dash) adds PWD itself.
const (
	echoScript = "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\nprintf '%s %s' \"$QUERY_STRING\" \"$PATH_INFO\"\n"
	envScript  = "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\nexec /usr/bin/env\n"
)

// cgiBin returns a world-readable document root and its cgi-bin
// directory, which holds echo.sh and env.sh.
func cgiBin(t *testing.T) (root, dir string) {
	t.Helper()
	root = sharedTempDir(t)
	dir = filepath.Join(root, "cgi-bin")
	mkdirs(t, dir)
	writeFile(t, filepath.Join(dir, "echo.sh"), echoScript, 0o755)
	writeFile(t, filepath.Join(dir, "env.sh"), envScript, 0o755)
	return root, dir
}

// parseEnv parses env's output; an empty variable maps to "", an absent
// one is not in the map.
func parseEnv(body []byte) map[string]string {
	env := map[string]string{}
	for _, line := range strings.Split(strings.TrimSuffix(string(body), "\n"), "\n") {
		if name, value, ok := strings.Cut(line, "="); ok {
			env[name] = value
		}
	}
	return env
}

func formatEnv(env map[string]string) string {
	var b strings.Builder
	for _, name := range slices.Sorted(maps.Keys(env)) {
		b.WriteString("\t" + name + "=" + env[name] + "\n")
	}
	return b.String()
}

// envWant is what one variable must be; absent means it must not be set.
type envWant struct {
	value  string
	absent bool
}

func checkEnv(t *testing.T, env map[string]string, want map[string]envWant) {
	t.Helper()
	for _, name := range slices.Sorted(maps.Keys(want)) {
		w := want[name]
		got, ok := env[name]
		switch {
		case w.absent && ok:
			t.Errorf("%s = %q, want it absent", name, got)
		case !w.absent && !ok:
			t.Errorf("%s absent, want %q", name, w.value)
		case !w.absent && got != w.value:
			t.Errorf("%s = %q, want %q", name, got, w.value)
		}
	}
}

func TestApacheServesShellCGI(t *testing.T) {
	_, dir := cgiBin(t)
	srv := startApache(t, apacheConfig{
		Modules: []string{"cgid", "alias"},
		Defines: map[string]string{"CGI_DIR": dir},
		Config: `ScriptAlias /cgi-bin/ "${CGI_DIR}/"
<Directory "${CGI_DIR}">
    Options +ExecCGI
    Require all granted
</Directory>
`,
	})

	resp, body := get(t, srv.URL("/cgi-bin/echo.sh/extra?x=1"), nil)
	if resp.StatusCode != http.StatusOK || string(body) != "x=1 /extra" {
		t.Fatalf("GET /cgi-bin/echo.sh/extra?x=1 = %d %q, want 200 %q\n%s", resp.StatusCode, body, "x=1 /extra", srv.ErrorLog())
	}

	// What Apache 2.4 (mod_cgid) tells a script about its path: with no
	// path info PATH_INFO is absent (not empty), and so is PATH_TRANSLATED.
	tests := []struct {
		name string
		path string
		want map[string]envWant
	}{
		{
			name: "no path info",
			path: "/cgi-bin/env.sh",
			want: map[string]envWant{
				"PATH_INFO":       {absent: true},
				"PATH_TRANSLATED": {absent: true},
				"SCRIPT_NAME":     {value: "/cgi-bin/env.sh"},
				"SCRIPT_FILENAME": {value: filepath.Join(dir, "env.sh")},
				"REQUEST_URI":     {value: "/cgi-bin/env.sh"},
				"QUERY_STRING":    {value: ""},
			},
		},
		{
			name: "trailing slash",
			path: "/cgi-bin/env.sh/",
			want: map[string]envWant{
				"PATH_INFO":       {value: "/"},
				"PATH_TRANSLATED": {value: filepath.Join(srv.Root, "htdocs") + "/"},
				"SCRIPT_NAME":     {value: "/cgi-bin/env.sh"},
				"REQUEST_URI":     {value: "/cgi-bin/env.sh/"},
			},
		},
		{
			name: "encoded path info and query",
			path: "/cgi-bin/env.sh/a%20b?q=1",
			want: map[string]envWant{
				"PATH_INFO":       {value: "/a b"},
				"PATH_TRANSLATED": {value: filepath.Join(srv.Root, "htdocs", "a b")},
				"SCRIPT_NAME":     {value: "/cgi-bin/env.sh"},
				"REQUEST_URI":     {value: "/cgi-bin/env.sh/a%20b?q=1"},
				"QUERY_STRING":    {value: "q=1"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := get(t, srv.URL(tt.path), nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET %s = %d %q, want 200\n%s", tt.path, resp.StatusCode, body, srv.ErrorLog())
			}
			env := parseEnv(body)
			t.Logf("Apache CGI environment for GET %s:\n%s", tt.path, formatEnv(env))
			checkEnv(t, env, tt.want)
		})
	}
}

func TestNginxReturn(t *testing.T) {
	srv := startNginx(t, nginxConfig{Server: `location / { return 200 "ok\n"; }`})
	resp, body := get(t, srv.URL("/"), nil)
	if resp.StatusCode != http.StatusOK || string(body) != "ok\n" {
		t.Fatalf("GET / = %d %q, want 200 %q\n%s", resp.StatusCode, body, "ok\n", srv.ErrorLog())
	}
}

func TestNginxFastCGIToFcgiwrap(t *testing.T) {
	requireBinary(t, "nginx") // before starting fcgiwrap for nothing
	root, dir := cgiBin(t)
	fw := startFcgiwrap(t, filepath.Join(sharedTempDir(t), "fcgiwrap.sock"), 2)
	srv := startNginx(t, nginxConfig{Server: `
        location /cgi-bin/ {
            fastcgi_split_path_info ^(/cgi-bin/[^/]+)(/.*)$;
            include ` + nginxFastCGIParams + `;
            fastcgi_param SCRIPT_FILENAME ` + root + `$fastcgi_script_name;
            fastcgi_param PATH_INFO $fastcgi_path_info;
            fastcgi_pass unix:` + fw.Socket + `;
        }
`})
	failLogs := func() string { return srv.ErrorLog() + "\n--- fcgiwrap ---\n" + fw.Log() }

	resp, body := get(t, srv.URL("/cgi-bin/echo.sh/extra?x=1"), nil)
	if resp.StatusCode != http.StatusOK || string(body) != "x=1 /extra" {
		t.Fatalf("GET /cgi-bin/echo.sh/extra?x=1 = %d %q, want 200 %q\n%s", resp.StatusCode, body, "x=1 /extra", failLogs())
	}

	// nginx decodes $uri, so PATH_INFO and SCRIPT_NAME are decoded while
	// REQUEST_URI stays raw; with no path info the split regex does not
	// match and PATH_INFO is sent empty (fastcgi_param without if_not_empty).
	// Not asserted, as it follows Debian's point releases: nginx-common
	// 1.22.1-9+deb12u11's fastcgi_params sets HTTP_HOST to $host, which
	// drops the port ("127.0.0.1"). LANG, PATH and FCGI_ROLE come from
	// fcgiwrap, which passes its own environment on to scripts.
	tests := []struct {
		name string
		path string
		want map[string]envWant
	}{
		{
			name: "encoded path info and query",
			path: "/cgi-bin/env.sh/a%20b?q=1",
			want: map[string]envWant{
				"PATH_INFO":       {value: "/a b"},
				"SCRIPT_NAME":     {value: "/cgi-bin/env.sh"},
				"SCRIPT_FILENAME": {value: filepath.Join(dir, "env.sh")},
				"REQUEST_URI":     {value: "/cgi-bin/env.sh/a%20b?q=1"},
				"DOCUMENT_URI":    {value: "/cgi-bin/env.sh/a b"},
				"QUERY_STRING":    {value: "q=1"},
				"CONTENT_LENGTH":  {value: ""},
				"PATH_TRANSLATED": {absent: true},
			},
		},
		{
			name: "no path info",
			path: "/cgi-bin/env.sh",
			want: map[string]envWant{
				"PATH_INFO":   {value: ""},
				"SCRIPT_NAME": {value: "/cgi-bin/env.sh"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := get(t, srv.URL(tt.path), nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET %s = %d %q, want 200\n%s", tt.path, resp.StatusCode, body, failLogs())
			}
			env := parseEnv(body)
			t.Logf("nginx+fastcgi_params+fcgiwrap environment for GET %s:\n%s", tt.path, formatEnv(env))
			checkEnv(t, env, tt.want)
		})
	}
}
