package cgi

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/cgirun/cgirun/bridge"
)

// childMarker, set in the environment, makes the test binary run as the CGI
// program of these tests instead of running them.
const childMarker = "CGIRUN_TEST_CGI_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childMarker) == "1" {
		if err := Serve(testHandler()); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func testHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "Hello, World!\n")
	})
	mux.HandleFunc("/echo/", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("X-Echo-Raw", r.Header.Get("X-Raw"))
		fmt.Fprintf(w, "%s|%s|%s|%s|%s", r.Method, r.URL.Path, r.URL.RawQuery, bridge.ScriptName(r), body)
	})
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "first\n")
		w.(http.Flusher).Flush()
		// Wait for the test to have read the first line.
		if _, err := io.ReadFull(r.Body, make([]byte, 1)); err != nil {
			panic(err)
		}
		io.WriteString(w, "second\n")
	})
	mux.HandleFunc("/panic", func(w http.ResponseWriter, r *http.Request) {
		panic("child secret")
	})
	return mux
}

// startChild runs the test binary as a CGI program with env.
func startChild(t *testing.T, env []string) (cmd *exec.Cmd, stdin io.WriteCloser, stdout io.Reader, stderr *bytes.Buffer) {
	t.Helper()
	cmd = exec.Command(os.Args[0])
	cmd.Env = append([]string{childMarker + "=1", "GATEWAY_INTERFACE=CGI/1.1", "SERVER_PROTOCOL=HTTP/1.1",
		"SERVER_NAME=127.0.0.1", "SERVER_PORT=80", "SCRIPT_NAME=/cgi-bin/app"}, env...)
	stderr = new(bytes.Buffer)
	cmd.Stderr = stderr
	var err error
	if stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if stdout, err = cmd.StdoutPipe(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, stdin, stdout, stderr
}

func TestServeAsChildProcess(t *testing.T) {
	tests := []struct {
		name       string
		env        []string
		body       string
		status     int
		header     http.Header
		wantBody   string
		wantStderr string
	}{
		{"hello", []string{"REQUEST_METHOD=GET", "PATH_INFO=/", "REQUEST_URI=/cgi-bin/app/"}, "",
			200, http.Header{"Content-Type": {"text/plain; charset=utf-8"}, "Content-Length": {"14"}}, "Hello, World!\n", ""},
		{"empty path info is /", []string{"REQUEST_METHOD=GET", "PATH_INFO=", "REQUEST_URI=/cgi-bin/app"}, "",
			200, nil, "Hello, World!\n", ""},
		{"absent path info is / (Apache)", []string{"REQUEST_METHOD=GET", "REQUEST_URI=/cgi-bin/app"}, "",
			200, nil, "Hello, World!\n", ""},
		{"404", []string{"REQUEST_METHOD=GET", "PATH_INFO=/nope", "REQUEST_URI=/cgi-bin/app/nope"}, "",
			404, nil, "404 page not found\n", ""},
		{"POST body", []string{"REQUEST_METHOD=POST", "PATH_INFO=/echo/x", "CONTENT_LENGTH=5", "CONTENT_TYPE=text/plain", "QUERY_STRING=a=1"}, "hello",
			200, nil, "POST|/echo/x|a=1|/cgi-bin/app|hello", ""},
		{"body longer than CONTENT_LENGTH is cut", []string{"REQUEST_METHOD=POST", "PATH_INFO=/echo/", "CONTENT_LENGTH=3"}, "hello",
			200, nil, "POST|/echo/||/cgi-bin/app|hel", ""},
		{"non-UTF-8 path, query and header byte for byte", []string{"REQUEST_METHOD=GET", "PATH_INFO=/echo/\xff\xfe", "QUERY_STRING=q=\xe9", "HTTP_X_RAW=caf\xe9"}, "",
			200, http.Header{"X-Echo-Raw": {"caf\xe9"}}, "GET|/echo/\xff\xfe|q=\xe9|/cgi-bin/app|", ""},
		{"panic: clean 500, log on stderr only", []string{"REQUEST_METHOD=GET", "PATH_INFO=/panic"}, "",
			500, nil, "500 Internal Server Error\n", "child secret"},
		{"bad environment: 400", []string{"REQUEST_METHOD=G E T", "PATH_INFO=/"}, "",
			400, nil, "400 Bad Request\n", "not a token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd, stdin, stdout, stderr := startChild(t, tt.env)
			go func() {
				io.WriteString(stdin, tt.body)
				stdin.Close()
			}()
			br := bufio.NewReader(stdout)
			resp, err := bridge.ReadResponse(br, 0)
			if err != nil {
				cmd.Wait()
				t.Fatalf("child output does not parse: %v; stderr: %s", err, stderr)
			}
			body, _ := io.ReadAll(br)
			if err := cmd.Wait(); err != nil {
				t.Errorf("child exit: %v; stderr: %s", err, stderr)
			}
			if resp.Status != tt.status || string(body) != tt.wantBody {
				t.Errorf("child answered %d %q, want %d %q", resp.Status, body, tt.status, tt.wantBody)
			}
			for k, v := range tt.header {
				if got := resp.Header[k]; strings.Join(got, ",") != strings.Join(v, ",") {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
			if tt.wantStderr == "" && stderr.Len() > 0 {
				t.Errorf("unexpected stderr: %s", stderr)
			}
			if !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("stderr = %q, want it to hold %q", stderr, tt.wantStderr)
			}
			if strings.Contains(string(body), "child secret") {
				t.Errorf("the panic value reached the client: %q", body)
			}
		})
	}
}

// TestServeStreams shows that a Flush reaches the web server while the
// program is still running: the child waits for a byte that the test sends
// only after it has read the first line.
func TestServeStreams(t *testing.T) {
	cmd, stdin, stdout, stderr := startChild(t, []string{"REQUEST_METHOD=POST", "PATH_INFO=/stream"})
	br := bufio.NewReader(stdout)
	resp, err := bridge.ReadResponse(br, 0)
	if err != nil {
		t.Fatalf("header: %v; stderr: %s", err, stderr)
	}
	first, err := br.ReadString('\n')
	if err != nil || first != "first\n" {
		t.Fatalf("first line = %q, %v", first, err)
	}
	if _, ok := resp.Header["Content-Length"]; ok {
		t.Errorf("streamed response has a Content-Length")
	}
	io.WriteString(stdin, "x")
	stdin.Close()
	rest, _ := io.ReadAll(br)
	if string(rest) != "second\n" {
		t.Errorf("rest = %q, want %q", rest, "second\n")
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("child exit: %v; stderr: %s", err, stderr)
	}
}

func TestIsCGI(t *testing.T) {
	t.Setenv("GATEWAY_INTERFACE", "")
	if IsCGI() {
		t.Errorf("IsCGI() with GATEWAY_INTERFACE empty = true")
	}
	t.Setenv("GATEWAY_INTERFACE", "CGI/1.1")
	if !IsCGI() {
		t.Errorf("IsCGI() with GATEWAY_INTERFACE=CGI/1.1 = false")
	}
}

// writeLog records every Write it gets.
type writeLog struct{ writes []string }

func (w *writeLog) Write(p []byte) (int, error) {
	w.writes = append(w.writes, string(p))
	return len(p), nil
}

// TestServeWrites: a response that fits bridge.BufferSize reaches stdout in
// one Write, header block and body together; a longer one arrives whole,
// in large writes.
func TestServeWrites(t *testing.T) {
	big := strings.Repeat("b", bridge.BufferSize+100)
	tests := []struct {
		name      string
		handler   http.HandlerFunc
		wantBody  string
		maxWrites int
	}{
		{"small: one write", func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "Hello, ")
			io.WriteString(w, "World!\n")
		}, "Hello, World!\n", 1},
		{"past BufferSize: header block, then the body", func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, big)
		}, big, 2},
		{"small writes after a Flush are gathered", func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "a")
			w.(http.Flusher).Flush()
			for range 100 {
				io.WriteString(w, "b")
			}
		}, "a" + strings.Repeat("b", 100), 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := new(writeLog)
			c := Child{Handler: tt.handler}
			environ := []string{"GATEWAY_INTERFACE=CGI/1.1", "REQUEST_METHOD=GET", "SERVER_PROTOCOL=HTTP/1.1", "SCRIPT_NAME=/cgi-bin/app"}
			if err := c.Serve(t.Context(), environ, strings.NewReader(""), out, io.Discard); err != nil {
				t.Fatalf("Serve = %v", err)
			}
			all := strings.Join(out.writes, "")
			_, body, _ := strings.Cut(all, "\r\n\r\n")
			if body != tt.wantBody || len(out.writes) > tt.maxWrites {
				t.Errorf("Serve wrote %d pieces, body of %d bytes; want at most %d, body of %d bytes", len(out.writes), len(body), tt.maxWrites, len(tt.wantBody))
			}
		})
	}
}
