package cgi

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	stdcgi "net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cgirun/cgirun/bridge"
)

// BenchmarkServeCGI serves one GET with a browser's headers from the process
// environment to /dev/null, through this package and through net/http/cgi,
// so the two compare in one run. Allocation budget: fewer per request than
// net/http/cgi.
func BenchmarkServeCGI(b *testing.B) {
	env := map[string]string{
		"GATEWAY_INTERFACE": "CGI/1.1", "REQUEST_METHOD": "GET", "SERVER_PROTOCOL": "HTTP/1.1",
		"SERVER_NAME": "localhost", "SERVER_PORT": "80", "SCRIPT_NAME": "/cgi-bin/hello",
		"PATH_INFO": "/", "REQUEST_URI": "/cgi-bin/hello/", "QUERY_STRING": "",
		"REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "40000", "HTTP_HOST": "localhost",
		"HTTP_USER_AGENT":      "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0",
		"HTTP_ACCEPT":          "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
		"HTTP_ACCEPT_LANGUAGE": "en-US,en;q=0.5", "HTTP_ACCEPT_ENCODING": "gzip, deflate, br",
		"HTTP_CONNECTION": "keep-alive", "HTTP_COOKIE": "session=abc123; theme=dark",
	}
	for k, v := range env {
		b.Setenv(k, v)
	}
	devNull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer devNull.Close()
	stdout, stdin := os.Stdout, os.Stdin
	os.Stdout, os.Stdin = devNull, devNull
	defer func() { os.Stdout, os.Stdin = stdout, stdin }()

	hello := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "Hello, World!\n")
	})
	b.Run("impl=cgirun", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := Serve(hello); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("impl=net-http-cgi", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := stdcgi.Serve(hello); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkExecutor runs examples/cgi-bin/hello.c, compiled with the
// system's cc, for one GET with an empty body: through Executor, through
// net/http/cgi.Handler (the standard library's CGI host), and with a bare
// os/exec call that only starts the program and reads its output (the
// floor: no CGI at all). The figures are the parent's; the child's own
// start-up is the same for all three.
func BenchmarkExecutor(b *testing.B) {
	cc, err := exec.LookPath("cc")
	if err != nil {
		b.Skip("no C compiler (cc) to build examples/cgi-bin/hello.c")
	}
	root := b.TempDir()
	hello := filepath.Join(root, "hello-c")
	if out, err := exec.Command(cc, "-O2", "-o", hello, "../examples/cgi-bin/hello.c").CombinedOutput(); err != nil {
		b.Fatalf("cc: %v\n%s", err, out)
	}
	const want = "Hello, World!\n"
	env := bridge.EnvironFromList([]string{
		"GATEWAY_INTERFACE=CGI/1.1", "REQUEST_METHOD=GET", "SERVER_PROTOCOL=HTTP/1.1",
		"SCRIPT_NAME=/hello-c", "SCRIPT_FILENAME=" + hello, "DOCUMENT_ROOT=" + root,
		"REQUEST_URI=/hello-c", "QUERY_STRING=", "CONTENT_LENGTH=", "REMOTE_ADDR=127.0.0.1",
		"HTTP_HOST=localhost", "HTTP_USER_AGENT=bench",
	})
	b.Run("impl=cgirun", func(b *testing.B) {
		e := &Executor{Roots: []string{root}, Logger: slog.New(slog.DiscardHandler)}
		b.ReportAllocs()
		defer reportCPU(b)()
		for b.Loop() {
			if err := respondHello(e, env, want); err != nil {
				b.Fatal(err)
			}
		}
	})
	// With StrictScripts: the suEXEC checks, and every fork from the
	// no_new_privs spawner thread.
	b.Run("impl=cgirun/strict", func(b *testing.B) {
		e := &Executor{Roots: []string{root}, StrictScripts: true, Logger: slog.New(slog.DiscardHandler)}
		b.ReportAllocs()
		defer reportCPU(b)()
		for b.Loop() {
			if err := respondHello(e, env, want); err != nil {
				b.Fatal(err)
			}
		}
	})
	// As the runner runs under load: -c 8, 8 requests at once, a body
	// reader and a timeout, as the FastCGI front end gives them.
	b.Run("impl=cgirun/parallel=8", func(b *testing.B) {
		e := &Executor{Roots: []string{root}, MaxChildren: 8, Timeout: time.Minute, Logger: slog.New(slog.DiscardHandler)}
		b.ReportAllocs()
		b.SetParallelism(max(1, 8/runtime.GOMAXPROCS(0)))
		defer reportCPU(b)()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := respondHello(e, env, want); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	// As the cgirun runner runs behind nginx: parallel=8, a GET whose
	// body is known to be empty (nil: /dev/null, no pipe), and EndOrphans,
	// which makes this process a subreaper and looks for orphans after
	// each script; runner-serial is the same one at a time, as the
	// runner's -c 1.
	// They come after the others, and wait for their last scripts to be
	// done with, so that no sweep for orphans meets another's child.
	defer b.Run("impl=cgirun/runner-serial", func(b *testing.B) {
		e := &Executor{Roots: []string{root}, MaxChildren: 1, Timeout: time.Minute, EndOrphans: true, Logger: slog.New(slog.DiscardHandler)}
		defer e.running.Wait()
		b.ReportAllocs()
		defer reportCPU(b)()
		for b.Loop() {
			if err := respondBodiless(e, env, want); err != nil {
				b.Fatal(err)
			}
		}
	})
	defer b.Run("impl=cgirun/runner", func(b *testing.B) {
		e := &Executor{Roots: []string{root}, MaxChildren: 8, Timeout: time.Minute, EndOrphans: true, Logger: slog.New(slog.DiscardHandler)}
		defer e.running.Wait()
		b.ReportAllocs()
		b.SetParallelism(max(1, 8/runtime.GOMAXPROCS(0)))
		defer reportCPU(b)()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := respondBodiless(e, env, want); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("impl=net-http-cgi", func(b *testing.B) {
		h := &stdcgi.Handler{Path: hello, Root: "/hello-c", Logger: log.New(io.Discard, "", 0)}
		b.ReportAllocs()
		defer reportCPU(b)()
		for b.Loop() {
			r := httptest.NewRequest("GET", "/hello-c", nil)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != 200 || w.Body.String() != want {
				b.Fatalf("net/http/cgi: %d %q", w.Code, w.Body.String())
			}
		}
	})
	// The floor for Go: pipe2, syscall.ForkExec from the calling thread,
	// a blocking read of stdout to its end and wait4, with no poller, no
	// goroutine and no check; stdin and stderr are /dev/null.
	b.Run("impl=fork-exec", func(b *testing.B) {
		null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
		if err != nil {
			b.Fatal(err)
		}
		defer null.Close()
		argv, envv := []string{hello}, env.List()
		buf := make([]byte, 4096)
		b.ReportAllocs()
		defer reportCPU(b)()
		for b.Loop() {
			out, err := forkExecRead(hello, argv, envv, int(null.Fd()), buf)
			if err != nil || !strings.HasSuffix(string(out), want) {
				b.Fatalf("fork-exec: %v %q", err, out)
			}
		}
	})
	// The same floor, 8 at once, as the runner's -c 8.
	b.Run("impl=fork-exec/parallel=8", func(b *testing.B) {
		null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
		if err != nil {
			b.Fatal(err)
		}
		defer null.Close()
		argv, envv := []string{hello}, env.List()
		b.ReportAllocs()
		b.SetParallelism(max(1, 8/runtime.GOMAXPROCS(0)))
		defer reportCPU(b)()
		b.RunParallel(func(pb *testing.PB) {
			buf := make([]byte, 4096)
			for pb.Next() {
				out, err := forkExecRead(hello, argv, envv, int(null.Fd()), buf)
				if err != nil || !strings.HasSuffix(string(out), want) {
					b.Errorf("fork-exec: %v %q", err, out)
					return
				}
			}
		})
	})
	b.Run("impl=os-exec", func(b *testing.B) {
		b.ReportAllocs()
		defer reportCPU(b)()
		for b.Loop() {
			out, err := exec.Command(hello).Output()
			if err != nil || !strings.HasSuffix(string(out), want) {
				b.Fatalf("os/exec: %v %q", err, out)
			}
		}
	})
}

// forkExecRead starts prog with a pipe as its stdout and null as its
// stdin and stderr, reads the pipe to its end into buf and waits for it.
func forkExecRead(prog string, argv, env []string, null int, buf []byte) ([]byte, error) {
	var p [2]int
	if err := cloexecPipe(p[:]); err != nil {
		return nil, err
	}
	pid, err := syscall.ForkExec(prog, argv, &syscall.ProcAttr{
		Env: env, Files: []uintptr{uintptr(null), uintptr(p[1]), uintptr(null)},
	})
	syscall.Close(p[1])
	if err != nil {
		syscall.Close(p[0])
		return nil, err
	}
	n := 0
	for n < len(buf) {
		m, err := syscall.Read(p[0], buf[n:])
		if m <= 0 || err != nil {
			break
		}
		n += m
	}
	syscall.Close(p[0])
	var ws syscall.WaitStatus
	if _, err := syscall.Wait4(pid, &ws, 0, nil); err != nil {
		return nil, err
	}
	if ws.ExitStatus() != 0 {
		return nil, fmt.Errorf("%v", ws)
	}
	return buf[:n], nil
}

// respondHello runs hello-c through e for one GET with an empty body and
// checks its answer.
func respondHello(e *Executor, env bridge.Environ, want string) error {
	return respond(e, &bridge.Request{Env: env, Body: strings.NewReader("")}, want)
}

// respondBodiless is respondHello for a request whose body is known to be
// empty, as the FastCGI server gives nginx's GET.
func respondBodiless(e *Executor, env bridge.Environ, want string) error {
	return respond(e, &bridge.Request{Env: env}, want)
}

func respond(e *Executor, req *bridge.Request, want string) error {
	out := new(flushRecorder)
	err := e.Respond(context.Background(), req, out)
	if err != nil || !strings.HasSuffix(out.String(), want) {
		return fmt.Errorf("Respond = %v, stream %q", err, out.String())
	}
	return nil
}

// reportCPU starts counting this process's CPU time (user and system, its
// threads only: the children's own time is not in it) and the times its
// threads went to sleep (voluntary context switches: a thread blocked in a
// system call, or parked for want of work); the function it returns
// reports both per iteration, as cpu-ns/op and sleeps/op. CPU time is what
// a request costs the runner when other work shares the machine.
func reportCPU(b *testing.B) func() {
	start := rusage(b)
	return func() {
		end := rusage(b)
		cpu := end.Utime.Nano() + end.Stime.Nano() - start.Utime.Nano() - start.Stime.Nano()
		b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/op")
		b.ReportMetric(float64(end.Nvcsw-start.Nvcsw)/float64(b.N), "sleeps/op")
	}
}

func rusage(b *testing.B) syscall.Rusage {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return ru
}
