package cgi

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"

	"github.com/cgirun/cgirun/bridge"
)

// IsCGI reports whether the process was started as a CGI program, that is
// whether the web server set GATEWAY_INTERFACE.
func IsCGI() bool {
	return os.Getenv("GATEWAY_INTERFACE") != ""
}

// Serve runs h once as a CGI program: the request comes from the process
// environment and standard input, the response goes to standard output, logs
// go to standard error. A nil h means http.DefaultServeMux. It returns an
// error when the environment is not a CGI request's, or when the response
// could not be written whole; the program should then exit with a non-zero
// status.
func Serve(h http.Handler) error {
	c := Child{Handler: h}
	return c.Serve(context.Background(), os.Environ(), os.Stdin, os.Stdout, os.Stderr)
}

// Child is a CGI program's settings, for when Serve's defaults do not fit.
type Child struct {
	// Handler answers the request; nil means http.DefaultServeMux.
	Handler http.Handler
	// Logger receives errors; nil means text lines on the stderr given to
	// Serve.
	Logger *slog.Logger
	// Debug shows a panic's value and stack to the client. Off by default.
	Debug bool
}

// Serve answers the one request described by environ (NAME=value strings,
// as os.Environ returns them) and stdin, writing the CGI response stream to
// stdout. Only the response is written to stdout; logs go to c.Logger.
func (c *Child) Serve(ctx context.Context, environ []string, stdin io.Reader, stdout, stderr io.Writer) error {
	log := c.Logger
	if log == nil {
		log = slog.New(&lazyText{w: stderr})
	}
	req := &bridge.Request{
		Env:      bridge.EnvironFromList(environ),
		Body:     stdin,
		Stderr:   stderr,
		IsScript: true,
	}
	out := &output{w: stdout}
	responder := bridge.HandlerResponder{Handler: c.Handler, Logger: log, Debug: c.Debug}
	err := responder.Respond(ctx, req, out)
	if ferr := out.Flush(); err == nil {
		err = ferr
	}
	return err
}

// output is the Output of a CGI response. The bridge hands it the header
// block and the body it held in one Write, which goes straight to w: a
// response that fits bridge.BufferSize leaves in one write(2), with no copy.
// Only a response that goes on after that write (a stream, or a body past
// BufferSize) gets a bufio.Writer, which gathers its small writes.
type output struct {
	w     io.Writer
	buf   *bufio.Writer
	wrote bool
}

func (o *output) Write(p []byte) (int, error) {
	if o.buf == nil {
		if !o.wrote {
			o.wrote = true
			return o.w.Write(p)
		}
		o.buf = bufio.NewWriter(o.w)
	}
	return o.buf.Write(p)
}

func (o *output) Flush() error {
	if o.buf == nil {
		return nil
	}
	return o.buf.Flush()
}

// lazyText is a slog text handler on w that is built on first use: most
// requests log nothing, and a CGI program pays its start-up on every
// request.
type lazyText struct {
	w    io.Writer
	once sync.Once
	h    slog.Handler
}

func (l *lazyText) handler() slog.Handler {
	l.once.Do(func() { l.h = slog.NewTextHandler(l.w, nil) })
	return l.h
}

func (l *lazyText) Enabled(_ context.Context, level slog.Level) bool { return level >= slog.LevelInfo }
func (l *lazyText) Handle(ctx context.Context, r slog.Record) error {
	return l.handler().Handle(ctx, r)
}
func (l *lazyText) WithAttrs(as []slog.Attr) slog.Handler { return l.handler().WithAttrs(as) }
func (l *lazyText) WithGroup(name string) slog.Handler    { return l.handler().WithGroup(name) }
