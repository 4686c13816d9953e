package serve

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/cgirun/cgirun/fastcgi"
)

// Server is what Loop runs: *fastcgi.Server, *http.Server and Multi are
// each one.
type Server interface {
	Serve(l net.Listener) error
	Shutdown(ctx context.Context) error
	Close() error
}

// Loop serves a Server on its listeners for the life of a process.
type Loop struct {
	Server    Server
	Listeners []net.Listener
	Log       *slog.Logger
	// Grace bounds a graceful shutdown: past it, Close cuts what is left.
	Grace time.Duration
	// Ready, when set, is called once every listener is served: it tells
	// the process this one replaces that this one serves.
	Ready func() error
	// Hup asks for an upgrade (SIGHUP); nil never does.
	Hup <-chan os.Signal
	// Upgrade starts the process that takes the listeners over and
	// returns its pid once it serves them. Nil: Hup is ignored.
	Upgrade func(ctx context.Context) (pid int, err error)
}

// Run serves every listener until ctx ends, an upgrade succeeds or one of
// them stops serving; then it shuts the server down, giving the requests
// in flight Grace to finish before Close cuts them, and returns once every
// listener's Serve has returned. A failed upgrade is logged, and serving
// goes on.
//
// It returns the first error other than the server being closed: nil after
// ctx ended or an upgrade, the error of the listener that failed
// otherwise. When a Serve returns because the server was closed by someone
// else (its Shutdown or Close was called), Run leaves the shutdown to them
// and waits for the other listeners.
func (lp *Loop) Run(ctx context.Context) error {
	n := len(lp.Listeners)
	errc := make(chan error, n)
	for _, l := range lp.Listeners {
		go func() { errc <- lp.Server.Serve(l) }()
	}
	if lp.Ready != nil {
		if err := lp.Ready(); err != nil {
			lp.Log.Warn("cgirun: upgrade: the old process was not told", "err", err)
		}
	}
	hup := lp.Hup
	if lp.Upgrade == nil {
		hup = nil
	}
	var first error
	shutdown := true
wait:
	for n > 0 {
		select {
		case <-ctx.Done():
			lp.Log.Info("cgirun: shutting down", "grace", lp.Grace)
			break wait
		case <-hup:
			lp.Log.Info("cgirun: SIGHUP: starting a new process on the same sockets")
			pid, err := lp.Upgrade(ctx)
			if err != nil {
				lp.Log.Error("cgirun: upgrade failed; still serving", "err", err)
				continue
			}
			lp.Log.Info("cgirun: upgraded: the new process serves; shutting down", "pid", pid, "grace", lp.Grace)
			break wait
		case err := <-errc:
			n--
			if IsClosed(err) {
				shutdown = false
				break wait
			}
			first = err
			lp.Log.Error("cgirun: serving failed; shutting down", "err", err)
			break wait
		}
	}
	if shutdown {
		sctx, cancel := context.WithTimeout(context.Background(), lp.Grace)
		defer cancel()
		if err := lp.Server.Shutdown(sctx); err != nil {
			lp.Log.Warn("cgirun: grace period over; closing the remaining connections", "err", err)
			lp.Server.Close()
		}
	}
	for range n {
		if err := <-errc; first == nil && !IsClosed(err) {
			first = err
		}
	}
	return first
}

// IsClosed reports whether err is a Serve's return after Shutdown or
// Close, of a *fastcgi.Server, a *http.Server or a Multi.
func IsClosed(err error) bool {
	return errors.Is(err, fastcgi.ErrServerClosed) || errors.Is(err, http.ErrServerClosed) || errors.Is(err, ErrServerClosed)
}
