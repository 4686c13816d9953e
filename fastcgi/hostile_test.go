package fastcgi

// Hostile and broken input on the FastCGI socket (issue 7): slow clients,
// and, in the other hostile_*_test.go files, oversize input, handler
// faults and access control.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/yookoala/gofast"
	"go.uber.org/goleak"
)

// startServerOn serves h on a fresh listener of network ("unix" or
// "tcp", on 127.0.0.1) and stops the server at the end of the test.
func startServerOn(t *testing.T, network string, h http.Handler, configure func(*Server)) (s *Server, addr string, logs *syncBuffer) {
	t.Helper()
	logs = new(syncBuffer)
	s = &Server{Handler: h, Logger: slog.New(slog.NewTextHandler(logs, nil))}
	if configure != nil {
		configure(s)
	}
	listenAddr := "tcp:127.0.0.1:0"
	if network == "unix" {
		listenAddr = "unix:" + filepath.Join(t.TempDir(), "fcgi.sock")
	}
	l, err := Listen(listenAddr, 0)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve = %v, want ErrServerClosed", err)
		}
	})
	return s, l.Addr().String(), logs
}

// gofastGet sends GET uri through gofast on a connection of its own and
// returns the status and body.
func gofastGet(network, addr, uri string) (int, string, error) {
	client, err := gofast.SimpleClientFactory(gofast.SimpleConnFactory(network, addr))()
	if err != nil {
		return 0, "", err
	}
	defer client.Close()
	req := gofast.NewRequest(nil)
	req.Params = map[string]string{
		"REQUEST_METHOD": "GET", "SERVER_PROTOCOL": "HTTP/1.1", "REQUEST_URI": uri,
		"SERVER_NAME": "localhost", "SERVER_PORT": "80", "CONTENT_LENGTH": "",
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	rec := httptest.NewRecorder()
	var stderr bytes.Buffer
	if err := resp.WriteTo(rec, &stderr); err != nil {
		return 0, "", fmt.Errorf("gofast: %w (stderr %q)", err, stderr.String())
	}
	if stderr.Len() > 0 {
		return 0, "", fmt.Errorf("gofast: stderr %q", stderr.String())
	}
	return rec.Code, rec.Body.String(), nil
}

// waitForBaseline waits until the goroutines started since base have
// ended and s holds no connection, and fails the test if that does not
// happen within a generous bound.
func waitForBaseline(t *testing.T, s *Server, base goleak.Option) {
	t.Helper()
	waitForConns(t, s, 0, base)
}

// waitForConns waits until s holds conns connections and the goroutines
// started since base are their read loops, and fails the test if that
// does not happen within a generous bound.
func waitForConns(t *testing.T, s *Server, conns int, base goleak.Option) {
	t.Helper()
	opts := []goleak.Option{base}
	if conns > 0 {
		opts = append(opts, goleak.IgnoreAnyFunction("github.com/cgirun/cgirun/fastcgi.(*conn).serve"))
	}
	var err error
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); {
		// goleak.Find itself retries for about half a second.
		if err = goleak.Find(opts...); err == nil && s.Stats().OpenConns == conns {
			return
		}
	}
	t.Errorf("goroutines did not return to their baseline (%d open conns, want %d): %v", s.Stats().OpenConns, conns, err)
}

// reliabilityRow prints a row of the summary of integration/reliability.sh:
// the scenario, requests sent ("-" for a scenario that is no count of
// requests), failed, peak RSS in KiB (0: not measured), leaked goroutines
// and descriptors ("-": not measured).
func reliabilityRow(t *testing.T, scenario, sent string, failed int, peakKB int64, goroutines, fds string) {
	t.Helper()
	t.Logf("RELIABILITY\t%s\t%s\t%d\t%d\t%s\t%s", scenario, sent, failed, peakKB, goroutines, fds)
}

// hostileMux is the handler the hostile tests serve: a small page for
// the well-behaved client, a body reader, and a response that never ends.
func hostileMux() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/hello/", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, helloBody(strings.TrimPrefix(r.URL.Path, "/hello/")))
	})
	mux.HandleFunc("/body", func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			return // the connection is gone: nobody to answer
		}
		fmt.Fprintf(w, "%d", len(b))
	})
	mux.HandleFunc("/flood", func(w http.ResponseWriter, r *http.Request) {
		chunk := bytes.Repeat([]byte("f"), 64<<10)
		for {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})
	return mux
}

// helloBody is what /hello/name answers: a few KiB that depend on name.
func helloBody(name string) string {
	return "hello " + name + "\n" + strings.Repeat(name+".", 4096/(len(name)+1))
}

// slowloris is one way a client ties up a connection.
type slowloris struct {
	name string
	// bound is how long the server may take to close the connection by
	// its timeouts; the test allows ten times as much.
	bound time.Duration
	// answered: the server sends something before it closes.
	answered bool
	// neverReads: the client reads nothing; otherwise the test reads what
	// comes until the server closes the connection, and closes closed.
	neverReads bool
	// attack runs on a new connection until the server closed it. A
	// client that never reads finds that out itself, and returns whether
	// the server closed the connection (rather than the client's own
	// deadline ending the attack).
	attack func(c net.Conn, closed <-chan struct{}) bool
}

// slowPace is the pause between the bytes a trickling client sends.
const slowPace = 10 * time.Millisecond

// trickle sends b a byte at a time until the connection closes.
func trickle(c net.Conn, b []byte, closed <-chan struct{}) {
	t := time.NewTicker(slowPace)
	defer t.Stop()
	for i := range b {
		select {
		case <-closed:
			return
		case <-t.C:
		}
		if _, err := c.Write(b[i : i+1]); err != nil {
			return
		}
	}
}

// probeUntilClosed is how a client that never reads finds its connection
// closed: it writes records the server ignores (a request id not in use)
// until a write fails. It reports false when the client's own deadline
// ended the wait.
func probeUntilClosed(c net.Conn) bool {
	probe := appendRecord(nil, typeStdin, 999, nil)
	t := time.NewTicker(slowPace)
	defer t.Stop()
	for range t.C {
		if _, err := c.Write(probe); err != nil {
			return !errors.Is(err, net.ErrClosed) && !isTimeout(err)
		}
	}
	return false
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestSlowloris: clients that trickle their header block, stall or trickle
// their body, never read their answer or never send anything keep their
// connection no longer than the server's timeouts allow, over and over,
// while a well-behaved client gets every answer; the server's goroutines
// return to their baseline once the attack stops.
func TestSlowloris(t *testing.T) {
	// Short, yet long enough that a client sending a request at once is
	// never cut off on a loaded machine.
	const timeout = 500 * time.Millisecond
	const attackers = 50
	const requests, workers = 200, 4
	longParams := paramsRecords(1, "REQUEST_METHOD=GET", "REQUEST_URI=/hello/x", "HTTP_X_PAD="+strings.Repeat("p", 300))
	bodyHead := beginRecord(1, roleResponder, true)
	bodyHead = append(bodyHead, paramsRecords(1, "REQUEST_METHOD=POST", "REQUEST_URI=/body", "CONTENT_LENGTH=1000")...)
	kinds := []slowloris{
		{
			name:  "header block trickled a byte at a time",
			bound: 2 * timeout, // to the first record, then to the end of PARAMS
			attack: func(c net.Conn, closed <-chan struct{}) bool {
				trickle(c, append(beginRecord(1, roleResponder, true), longParams...), closed)
				<-closed
				return true
			},
		},
		{
			name:  "body that stops coming",
			bound: timeout,
			attack: func(c net.Conn, closed <-chan struct{}) bool {
				c.Write(appendStream(bodyHead, typeStdin, 1, []byte("the first bytes of 1000")))
				<-closed
				return true
			},
		},
		{
			name:  "body record trickled a byte at a time",
			bound: timeout,
			attack: func(c net.Conn, closed <-chan struct{}) bool {
				c.Write(bodyHead)
				trickle(c, appendRecord(nil, typeStdin, 1, bytes.Repeat([]byte("b"), 500)), closed)
				<-closed
				return true
			},
		},
		{
			name:       "never reads an answer that never ends",
			bound:      timeout,
			neverReads: true,
			attack: func(c net.Conn, _ <-chan struct{}) bool {
				c.Write(requestRecords(1, true, "", "REQUEST_METHOD=GET", "REQUEST_URI=/flood"))
				return probeUntilClosed(c)
			},
		},
		{
			name:  "connects and sends nothing",
			bound: timeout,
			attack: func(c net.Conn, closed <-chan struct{}) bool {
				<-closed
				return true
			},
		},
		{
			name:     "kept connection left idle after a request",
			bound:    timeout,
			answered: true,
			attack: func(c net.Conn, closed <-chan struct{}) bool {
				c.Write(requestRecords(1, true, "", "REQUEST_METHOD=GET", "REQUEST_URI=/hello/idle"))
				<-closed
				return true
			},
		},
	}

	for _, network := range []string{"unix", "tcp"} {
		t.Run(network, func(t *testing.T) {
			s, addr, logs := startServerOn(t, network, hostileMux(), func(s *Server) {
				s.ReadHeaderTimeout, s.ReadTimeout, s.IdleTimeout, s.WriteTimeout = timeout, timeout, timeout, timeout
			})
			base := goleak.IgnoreCurrent()

			type result struct {
				cycles, notClosed, unexpected int
				longest                       time.Duration
			}
			var mu sync.Mutex
			results := make([]result, len(kinds))
			stop := make(chan struct{})
			// connected: every attacker has its first connection open;
			// warm: every attacker has been cut off once.
			var attacking, connected, warm sync.WaitGroup
			connected.Add(attackers)
			warm.Add(attackers)
			warmed := make(chan struct{})
			go func() { warm.Wait(); close(warmed) }()
			for i := range attackers {
				k := i % len(kinds)
				attacking.Add(1)
				go func() {
					defer attacking.Done()
					first, cycles := true, 0
					for {
						start := time.Now()
						c, err := net.Dial(network, addr)
						if first {
							connected.Done()
							first = false
						}
						if err != nil {
							t.Errorf("%s: dial: %v", kinds[k].name, err)
							return
						}
						c.SetDeadline(start.Add(10 * kinds[k].bound))
						closed := make(chan struct{})
						var got int64
						var byServer bool
						var closedByServer bool
						if kinds[k].neverReads {
							closedByServer = kinds[k].attack(c, nil)
						} else {
							go func() {
								n, err := io.Copy(io.Discard, c)
								got, byServer = n, !isTimeout(err)
								close(closed)
							}()
							kinds[k].attack(c, closed)
							<-closed
							closedByServer = byServer
						}
						elapsed := time.Since(start)
						c.Close()
						mu.Lock()
						if cycles++; cycles == 1 {
							warm.Done()
						}
						r := &results[k]
						r.cycles++
						r.longest = max(r.longest, elapsed)
						if !closedByServer {
							r.notClosed++
						}
						if got > 0 && !kinds[k].answered {
							r.unexpected++
						}
						mu.Unlock()
						select {
						case <-stop:
							return
						default:
						}
					}
				}()
			}
			connected.Wait()

			// The well-behaved client, as nginx without fastcgi_keep_conn:
			// a connection a request, at least `requests` of them and until
			// the server has cut every attacker off.
			var ok, failed int
			var firstErr error
			start := time.Now()
			var wg sync.WaitGroup
			for w := range workers {
				wg.Go(func() {
					for i := w; ; i += workers {
						if i >= requests {
							select {
							case <-warmed:
								return
							default:
							}
						}
						name := strconv.Itoa(i)
						status, body, err := gofastGet(network, addr, "/hello/"+name)
						if err == nil && (status != http.StatusOK || body != helloBody(name)) {
							err = fmt.Errorf("request %d answered %d %.40q", i, status, body)
						}
						mu.Lock()
						if err != nil {
							failed++
							if firstErr == nil {
								firstErr = err
							}
						} else {
							ok++
						}
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			took := time.Since(start)
			close(stop)
			attacking.Wait()

			t.Logf("%s: %d requests ok, %d failed in %v alongside %d slow connections", network, ok, failed, took.Round(time.Millisecond), attackers)
			if failed > 0 || ok < requests {
				t.Errorf("%d of %d requests failed; first: %v", failed, ok+failed, firstErr)
			}
			for k, r := range results {
				t.Logf("%s: %-42s %4d connections, each closed within %v (allowed %v)", network, kinds[k].name, r.cycles, r.longest.Round(time.Millisecond), 10*kinds[k].bound)
				if r.notClosed > 0 {
					t.Errorf("%s: %d of %d connections not closed by the server within %v", kinds[k].name, r.notClosed, r.cycles, 10*kinds[k].bound)
				}
				if r.unexpected > 0 {
					t.Errorf("%s: %d connections got bytes back", kinds[k].name, r.unexpected)
				}
			}
			for _, want := range []string{"read timeout", "write failed"} {
				if !strings.Contains(logs.String(), want) {
					t.Errorf("log lacks %q", want)
				}
			}
			waitForBaseline(t, s, base)
			st := s.Stats()
			t.Logf("%s: server stats after the attack: %+v", network, st)
			leaked := "0"
			if t.Failed() {
				leaked = "see the test's log"
			}
			reliabilityRow(t, fmt.Sprintf("FastCGI slowloris over %s: clients served beside %d slow connections", network, attackers),
				strconv.Itoa(ok+failed), failed, 0, leaked, "-")
		})
	}
}
