package bridge

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// recorder is an Output that keeps what it was given and counts flushes.
type recorder struct {
	bytes.Buffer
	flushes int
	// flushed is the length of the buffer at each flush.
	flushed []int
}

func (r *recorder) Flush() error {
	r.flushes++
	r.flushed = append(r.flushed, r.Len())
	return nil
}

// respond runs h for a GET of / (or the given env) and returns the stream,
// Respond's error and the log lines.
func respond(t *testing.T, env []string, debug bool, h http.HandlerFunc) (string, error, string) {
	t.Helper()
	if env == nil {
		env = []string{"REQUEST_METHOD=GET", "REQUEST_URI=/", "SERVER_PROTOCOL=HTTP/1.1"}
	}
	var logs bytes.Buffer
	out := new(recorder)
	hr := &HandlerResponder{Handler: h, Logger: slog.New(slog.NewTextHandler(&logs, nil)), Debug: debug}
	err := hr.Respond(context.Background(), newReq(env, ""), out)
	return out.String(), err, logs.String()
}

func TestResponseStream(t *testing.T) {
	big := strings.Repeat("x", BufferSize+1)
	tests := []struct {
		name    string
		env     []string
		h       http.HandlerFunc
		want    string
		wantLog string // a substring of the logs; "" means no log line
	}{
		{
			name: "hello",
			h: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/plain; charset=utf-8")
				io.WriteString(w, "Hello, World!\n")
			},
			want: "Status: 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 14\r\n\r\nHello, World!\n",
		},
		{
			name: "nothing written is an empty 200",
			h:    func(w http.ResponseWriter, r *http.Request) {},
			want: "Status: 200 OK\r\nContent-Length: 0\r\n\r\n",
		},
		{
			name: "http.Error 404",
			h:    func(w http.ResponseWriter, r *http.Request) { http.Error(w, "Not Found", http.StatusNotFound) },
			want: "Status: 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nContent-Length: 10\r\n\r\nNot Found\n",
		},
		{
			name: "content type sniffed",
			h:    func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "<html><body>hi</body></html>") },
			want: "Status: 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: 28\r\n\r\n<html><body>hi</body></html>",
		},
		{
			name: "sniffing suppressed by a nil Content-Type",
			h: func(w http.ResponseWriter, r *http.Request) {
				w.Header()["Content-Type"] = nil
				io.WriteString(w, "<html>")
			},
			want: "Status: 200 OK\r\nContent-Length: 6\r\n\r\n<html>",
		},
		{
			name: "fields sorted, repeated fields on their own lines, unknown status text",
			h: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Add("Set-Cookie", "a=1")
				w.Header().Add("Set-Cookie", "b=2")
				w.Header().Set("Cache-Control", "no-store")
				w.Header().Set("Content-Type", "text/plain")
				w.WriteHeader(599)
			},
			want: "Status: 599 status code 599\r\nCache-Control: no-store\r\nContent-Type: text/plain\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 0\r\n\r\n",
		},
		{
			name: "non-UTF-8 header value leaves byte for byte",
			h: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/plain")
				w.Header().Set("X-Raw", "caf\xe9\xff")
			},
			want: "Status: 200 OK\r\nContent-Type: text/plain\r\nX-Raw: caf\xe9\xff\r\nContent-Length: 0\r\n\r\n",
		},
		{
			name: "header injection with CR LF refused and logged",
			h: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/plain")
				w.Header().Set("X-Evil", "a\r\nSet-Cookie: owned=1")
			},
			want:    "Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 0\r\n\r\n",
			wantLog: "CR, LF or NUL",
		},
		{
			name: "bare LF and NUL in a value refused",
			h: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/plain")
				w.Header().Set("X-A", "a\nb")
				w.Header().Set("X-B", "a\x00b")
			},
			want:    "Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 0\r\n\r\n",
			wantLog: "CR, LF or NUL",
		},
		{
			name: "header name with a newline refused",
			h: func(w http.ResponseWriter, r *http.Request) {
				w.Header()["X-A\r\nX-Injected"] = []string{"1"}
				w.WriteHeader(http.StatusNoContent)
			},
			want:    "Status: 204 No Content\r\n\r\n",
			wantLog: "invalid name",
		},
		{
			name: "a Status header cannot add a second status line",
			h: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Status", "302 Found")
				w.WriteHeader(http.StatusNoContent)
			},
			want:    "Status: 204 No Content\r\n\r\n",
			wantLog: "refused a Status response header",
		},
		{
			name: "1xx is not the final status",
			h: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Link", "</s.css>; rel=preload")
				w.WriteHeader(http.StatusEarlyHints)
				w.Header().Set("Content-Type", "text/plain")
				w.WriteHeader(http.StatusCreated)
				io.WriteString(w, "made")
			},
			want: "Status: 201 Created\r\nContent-Type: text/plain\r\nLink: </s.css>; rel=preload\r\nContent-Length: 4\r\n\r\nmade",
		},
		{
			name: "headers fixed at WriteHeader, as in net/http",
			h: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/plain")
				w.WriteHeader(http.StatusOK)
				w.Header().Set("X-Late", "ignored")
				io.WriteString(w, "ok")
			},
			want: "Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok",
		},
		{
			name: "superfluous WriteHeader logged",
			h: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusAccepted)
				w.WriteHeader(http.StatusTeapot)
			},
			want:    "Status: 202 Accepted\r\nContent-Length: 0\r\n\r\n",
			wantLog: "superfluous WriteHeader",
		},
		{
			name: "204 refuses a body and has no length",
			h: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusNoContent)
				if _, err := io.WriteString(w, "x"); err != http.ErrBodyNotAllowed {
					panic("Write on 204 did not return ErrBodyNotAllowed")
				}
			},
			want: "Status: 204 No Content\r\n\r\n",
		},
		{
			name: "HEAD: body dropped, length kept",
			env:  []string{"REQUEST_METHOD=HEAD", "REQUEST_URI=/"},
			h: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/plain")
				io.WriteString(w, "twelve bytes")
			},
			want: "Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\n",
		},
		{
			name: "declared length kept, no second one",
			h: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/plain")
				w.Header().Set("Content-Length", "3")
				io.WriteString(w, "abc")
				if _, err := io.WriteString(w, "d"); err != http.ErrContentLength {
					panic("write past Content-Length did not return ErrContentLength")
				}
			},
			want: "Status: 200 OK\r\nContent-Length: 3\r\nContent-Type: text/plain\r\n\r\nabc",
		},
		{
			name: "a body over the buffer streams without a length",
			h: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/plain")
				io.WriteString(w, big)
			},
			want: "Status: 200 OK\r\nContent-Type: text/plain\r\n\r\n" + big,
		},
		{
			name: "Flush sends the header block at once, without a length",
			h: func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "first ")
				w.(http.Flusher).Flush()
				io.WriteString(w, "second")
			},
			want: "Status: 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nfirst second",
		},
		{
			name:    "bad environment gets 400",
			env:     []string{"REQUEST_URI=/"},
			h:       func(w http.ResponseWriter, r *http.Request) { panic("not reached") },
			want:    "Status: 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nContent-Length: 16\r\n\r\n400 Bad Request\n",
			wantLog: "no REQUEST_METHOD",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err, logs := respond(t, tt.env, false, tt.h)
			if err != nil {
				t.Errorf("Respond error: %v", err)
			}
			if got != tt.want {
				t.Errorf("stream =\n%q\nwant\n%q", got, tt.want)
			}
			if tt.wantLog == "" && logs != "" {
				t.Errorf("unexpected log: %s", logs)
			}
			if !strings.Contains(logs, tt.wantLog) {
				t.Errorf("log = %q, want it to hold %q", logs, tt.wantLog)
			}
			// Every stream we write must parse as a CGI response.
			resp, perr := ReadResponse(bufio.NewReader(strings.NewReader(got)), 0)
			if perr != nil {
				t.Fatalf("ReadResponse(stream) error: %v", perr)
			}
			if resp.Status < 200 {
				t.Errorf("ReadResponse(stream).Status = %d", resp.Status)
			}
		})
	}
}

func TestHandlerFailures(t *testing.T) {
	plain500 := "Status: 500 Internal Server Error\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nContent-Length: 26\r\n\r\n500 Internal Server Error\n"
	tests := []struct {
		name       string
		debug      bool
		h          http.HandlerFunc
		want       string // exact stream, or prefix when wantPrefix
		wantPrefix bool
		wantCut    bool
		wantLog    string
		notInBody  string
	}{
		{
			name: "panic before any body: clean 500, internals only in the log",
			h: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Partial", "1")
				panic("secret database password")
			},
			want: plain500, wantLog: "secret database password", notInBody: "secret",
		},
		{
			name: "panic with a held body: still a clean 500",
			h: func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "half of a page")
				panic("boom")
			},
			want: plain500, wantLog: "boom", notInBody: "half",
		},
		{
			name:       "debug shows the panic and the stack",
			debug:      true,
			h:          func(w http.ResponseWriter, r *http.Request) { panic("visible") },
			want:       "Status: 500 Internal Server Error\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nContent-Length: ",
			wantPrefix: true, wantLog: "visible",
		},
		{
			name: "panic after a flush: cut short and logged",
			h: func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "streaming")
				w.(http.Flusher).Flush()
				panic("late")
			},
			want: "Status: 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nstreaming", wantCut: true, wantLog: "response cut short",
		},
		{
			name: "invalid status code becomes 500",
			h:    func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(42) },
			want: plain500, wantLog: "invalid WriteHeader code 42",
		},
		{
			name: "ErrAbortHandler before the body: 500, no log",
			h:    func(w http.ResponseWriter, r *http.Request) { panic(http.ErrAbortHandler) },
			want: plain500,
		},
		{
			name: "ErrAbortHandler after a flush: cut, no log",
			h: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusOK)
				w.(http.Flusher).Flush()
				panic(http.ErrAbortHandler)
			},
			want: "Status: 200 OK\r\n\r\n", wantCut: true,
		},
		{
			name: "short of the declared length: cut",
			h: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", "10")
				io.WriteString(w, "abc")
			},
			want: "Status: 200 OK\r\nContent-Length: 10\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nabc", wantCut: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err, logs := respond(t, nil, tt.debug, tt.h)
			if tt.wantPrefix {
				if !strings.HasPrefix(got, tt.want) {
					t.Errorf("stream =\n%q\nwant prefix\n%q", got, tt.want)
				}
			} else if got != tt.want {
				t.Errorf("stream =\n%q\nwant\n%q", got, tt.want)
			}
			if cut := errors.Is(err, ErrCutShort); cut != tt.wantCut {
				t.Errorf("Respond error = %v, want cut short %v", err, tt.wantCut)
			}
			if tt.wantLog == "" && logs != "" {
				t.Errorf("unexpected log: %s", logs)
			}
			if !strings.Contains(logs, tt.wantLog) {
				t.Errorf("log = %q, want it to hold %q", logs, tt.wantLog)
			}
			if tt.notInBody != "" && strings.Contains(got, tt.notInBody) {
				t.Errorf("stream %q shows %q to the client", got, tt.notInBody)
			}
			if tt.debug && (!strings.Contains(got, "visible") || !strings.Contains(got, "goroutine")) {
				t.Errorf("debug stream %q lacks the panic value or the stack", got)
			}
		})
	}
}

func TestHandlerGoexit(t *testing.T) {
	var logs bytes.Buffer
	out := new(recorder)
	hr := &HandlerResponder{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { runtime.Goexit() }),
		Logger:  slog.New(slog.NewTextHandler(&logs, nil)),
	}
	done := make(chan bool)
	go func() {
		returned := false
		defer func() { done <- returned }()
		hr.Respond(context.Background(), newReq([]string{"REQUEST_METHOD=GET"}, ""), out)
		returned = true
	}()
	if <-done {
		t.Errorf("Respond returned after runtime.Goexit; want the goroutine to end")
	}
	if !strings.HasPrefix(out.String(), "Status: 500 Internal Server Error\r\n") {
		t.Errorf("stream after Goexit = %q, want a 500", out.String())
	}
	if !strings.Contains(logs.String(), "runtime.Goexit") {
		t.Errorf("log = %q, want it to name runtime.Goexit", logs.String())
	}
}

func TestWriteAfterReturn(t *testing.T) {
	var kept http.ResponseWriter
	got, err, _ := respond(t, nil, false, func(w http.ResponseWriter, r *http.Request) {
		kept = w
		io.WriteString(w, "ok")
	})
	if err != nil || !strings.HasSuffix(got, "\r\n\r\nok") {
		t.Fatalf("Respond = %q, %v", got, err)
	}
	if _, err := kept.Write([]byte("late")); err == nil {
		t.Errorf("Write after the handler returned = nil error, want one")
	}
	if err := http.NewResponseController(kept).Flush(); err == nil {
		t.Errorf("Flush after the handler returned = nil error, want one")
	}
}

func TestResponseControllerFlush(t *testing.T) {
	out := new(recorder)
	hr := &HandlerResponder{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: 1\n\n")
		if err := http.NewResponseController(w).Flush(); err != nil {
			panic(err)
		}
		io.WriteString(w, "data: 2\n\n")
	})}
	if err := hr.Respond(context.Background(), newReq([]string{"REQUEST_METHOD=GET"}, ""), out); err != nil {
		t.Fatal(err)
	}
	want := "Status: 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: 1\n\n"
	if out.flushes != 1 || out.String()[:out.flushed[0]] != want {
		t.Errorf("flushes = %d, stream at the flush = %q, want 1 and %q", out.flushes, out.String()[:out.flushed[0]], want)
	}
}

// failingOutput fails every write, like a client that hung up.
type failingOutput struct{ writes int }

func (f *failingOutput) Write(p []byte) (int, error) { f.writes++; return 0, errors.New("broken pipe") }
func (f *failingOutput) Flush() error                { return errors.New("broken pipe") }

func TestOutputErrorsReachTheHandler(t *testing.T) {
	var writeErr error
	out := new(failingOutput)
	hr := &HandlerResponder{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.(http.Flusher).Flush()
		_, writeErr = io.WriteString(w, "x")
	}), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	err := hr.Respond(context.Background(), newReq([]string{"REQUEST_METHOD=GET"}, ""), out)
	if writeErr == nil || err == nil {
		t.Errorf("handler's Write error = %v, Respond = %v; want both to report the broken output", writeErr, err)
	}
	if out.writes != 1 {
		t.Errorf("writes to a broken output = %d, want 1 (errors are sticky)", out.writes)
	}
}

func TestAppendError(t *testing.T) {
	tests := []struct {
		name   string
		status int
		detail string
		want   string
	}{
		{"plain", 503, "", "Status: 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nContent-Length: 24\r\n\r\n503 Service Unavailable\n"},
		{"with detail", 400, "no REQUEST_METHOD", "Status: 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nContent-Length: 35\r\n\r\n400 Bad Request\n\nno REQUEST_METHOD\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(AppendError([]byte("x"), tt.status, tt.detail))
			if got != "x"+tt.want {
				t.Errorf("AppendError(%d, %q) = %q, want %q", tt.status, tt.detail, got, "x"+tt.want)
			}
			var out recorder
			if err := WriteError(&out, tt.status, tt.detail); err != nil || out.String() != tt.want {
				t.Errorf("WriteError(%d, %q) = %q, %v; want %q, nil", tt.status, tt.detail, out.String(), err, tt.want)
			}
			// The Content-Length is the body's.
			br := bufio.NewReader(strings.NewReader(got[1:]))
			resp, err := ReadResponse(br, 0)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(br)
			if cl := resp.Header.Get("Content-Length"); cl != strconv.Itoa(len(body)) {
				t.Errorf("Content-Length = %s, want the body's length %d", cl, len(body))
			}
		})
	}
}

func TestAppendUnavailable(t *testing.T) {
	want := "Status: 503 Service Unavailable\r\nRetry-After: 7\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nContent-Length: 24\r\n\r\n503 Service Unavailable\n"
	if got := string(AppendUnavailable([]byte("x"), 7)); got != "x"+want {
		t.Errorf("AppendUnavailable(7) = %q, want %q", got, "x"+want)
	}
}
