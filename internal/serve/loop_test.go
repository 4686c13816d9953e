package serve

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cgirun/cgirun/fastcgi"

	"github.com/cgirun/cgirun/internal/testlog"
)

// waitLimit bounds a wait for something that should happen at once.
const waitLimit = 10 * time.Second

// fakeServer serves each listener until Shutdown or Close; a listener
// named in fail returns its error once failNow is closed. It counts what
// the loop asks of it.
type fakeServer struct {
	fail    map[net.Listener]error
	failNow chan struct{}
	hold    chan struct{} // Shutdown waits on it: requests still in flight

	mu        sync.Mutex
	stopped   chan struct{}
	stopOnce  sync.Once
	shutdowns int
	closes    int
}

func newFakeServer() *fakeServer {
	return &fakeServer{stopped: make(chan struct{}), failNow: make(chan struct{}), fail: map[net.Listener]error{}}
}

func (s *fakeServer) Serve(l net.Listener) error {
	if err, ok := s.fail[l]; ok {
		select {
		case <-s.failNow:
			return err
		case <-s.stopped:
		}
	}
	<-s.stopped
	return fastcgi.ErrServerClosed
}

func (s *fakeServer) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.shutdowns++
	s.mu.Unlock()
	s.stopOnce.Do(func() { close(s.stopped) })
	if s.hold != nil {
		select {
		case <-s.hold:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (s *fakeServer) Close() error {
	s.mu.Lock()
	s.closes++
	s.mu.Unlock()
	s.stopOnce.Do(func() { close(s.stopped) })
	return nil
}

func (s *fakeServer) calls() (shutdowns, closes int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.shutdowns, s.closes
}

// fakeListener is a listener the fake server only tells apart.
type fakeListener struct{ net.Listener }

// syncBuffer is a log destination safe for a server's goroutines.
type syncBuffer = testlog.Buffer

// runLoop runs lp in the background; its result arrives on the channel.
func runLoop(ctx context.Context, lp *Loop) <-chan error {
	done := make(chan error, 1)
	go func() { done <- lp.Run(ctx) }()
	return done
}

func waitDone(t *testing.T, done <-chan error, logs *syncBuffer) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(waitLimit):
		t.Fatalf("Run still running %v later; log:\n%s", waitLimit, logs)
	}
	return nil
}

// TestLoopUpgrade: on SIGHUP the loop upgrades; once the new process
// serves it shuts down and returns nil, and when the upgrade fails it logs
// why and serves on until ctx ends.
func TestLoopUpgrade(t *testing.T) {
	tests := []struct {
		name    string
		upgrade error // what the upgrade returns
		wantLog string
	}{
		{name: "new process serves", wantLog: `msg="cgirun: upgraded: the new process serves; shutting down" pid=4242`},
		{name: "new process fails", upgrade: errors.New("upgrade: new process exited"), wantLog: `upgrade failed; still serving`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs := new(syncBuffer)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			srv := newFakeServer()
			hup := make(chan os.Signal, 1)
			readies, upgrades := 0, make(chan struct{}, 1)
			lp := &Loop{
				Server: srv, Listeners: []net.Listener{fakeListener{}, fakeListener{}},
				Log: slog.New(slog.NewTextHandler(logs, nil)), Grace: time.Second,
				Ready: func() error { readies++; return nil },
				Hup:   hup,
				Upgrade: func(context.Context) (int, error) {
					upgrades <- struct{}{}
					if tt.upgrade != nil {
						return 0, tt.upgrade
					}
					return 4242, nil
				},
			}
			done := runLoop(ctx, lp)
			hup <- syscall.SIGHUP
			<-upgrades
			if tt.upgrade != nil {
				// Still serving: only the end of ctx stops it.
				select {
				case <-srv.stopped:
					t.Fatalf("shut down after a failed upgrade; log:\n%s", logs)
				case err := <-done:
					t.Fatalf("returned %v after a failed upgrade; log:\n%s", err, logs)
				default:
				}
				cancel()
			}
			if err := waitDone(t, done, logs); err != nil {
				t.Errorf("Run = %v, want nil", err)
			}
			if readies != 1 {
				t.Errorf("ready called %d times, want once", readies)
			}
			if !strings.Contains(logs.String(), tt.wantLog) {
				t.Errorf("log lacks %q:\n%s", tt.wantLog, logs)
			}
		})
	}
}

// TestLoopListenerFails: when one listener's Serve fails, the loop shuts
// the server down (the other listeners with it) and returns that error;
// nothing is left waiting for a loop that nothing stops.
func TestLoopListenerFails(t *testing.T) {
	logs := new(syncBuffer)
	srv := newFakeServer()
	bad := fakeListener{}
	lns := []net.Listener{&fakeListener{}, &bad}
	failure := errors.New("accept: invalid argument")
	srv.fail[lns[1]] = failure
	done := runLoop(context.Background(), &Loop{Server: srv, Listeners: lns, Log: slog.New(slog.NewTextHandler(logs, nil)), Grace: time.Second})
	close(srv.failNow)
	if err := waitDone(t, done, logs); !errors.Is(err, failure) {
		t.Errorf("Run = %v, want the failed listener's %v", err, failure)
	}
	if shutdowns, _ := srv.calls(); shutdowns != 1 {
		t.Errorf("Shutdown called %d times, want once", shutdowns)
	}
	if !strings.Contains(logs.String(), "serving failed; shutting down") {
		t.Errorf("log lacks the failure:\n%s", logs)
	}
}

// TestLoopServerClosedElsewhere: when the server was shut down by someone
// else (its own Shutdown), the loop leaves the shutdown to them, waits for
// every listener and returns nil.
func TestLoopServerClosedElsewhere(t *testing.T) {
	logs := new(syncBuffer)
	srv := newFakeServer()
	done := runLoop(context.Background(), &Loop{Server: srv, Listeners: []net.Listener{&fakeListener{}, &fakeListener{}}, Log: slog.New(slog.NewTextHandler(logs, nil)), Grace: time.Second})
	srv.Shutdown(context.Background())
	if err := waitDone(t, done, logs); err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
	if shutdowns, closes := srv.calls(); shutdowns != 1 || closes != 0 {
		t.Errorf("Shutdown, Close called %d, %d times, want 1, 0 (the caller's own)", shutdowns, closes)
	}
}

// TestLoopGraceOver: a shutdown that outlasts Grace is cut by Close.
func TestLoopGraceOver(t *testing.T) {
	logs := new(syncBuffer)
	srv := newFakeServer()
	srv.hold = make(chan struct{}) // never released: a request that does not end
	ctx, cancel := context.WithCancel(context.Background())
	done := runLoop(ctx, &Loop{Server: srv, Listeners: []net.Listener{&fakeListener{}}, Log: slog.New(slog.NewTextHandler(logs, nil)), Grace: 10 * time.Millisecond})
	cancel()
	if err := waitDone(t, done, logs); err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
	if shutdowns, closes := srv.calls(); shutdowns != 1 || closes != 1 {
		t.Errorf("Shutdown, Close called %d, %d times, want 1, 1", shutdowns, closes)
	}
	if !strings.Contains(logs.String(), "grace period over") {
		t.Errorf("log lacks the cut:\n%s", logs)
	}
}

// discardWriter is an http.ResponseWriter that keeps nothing.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header {
	if w.h == nil {
		w.h = http.Header{}
	}
	return w.h
}
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(int)             {}
