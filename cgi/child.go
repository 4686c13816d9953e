package cgi

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"

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
		log = slog.New(slog.NewTextHandler(stderr, nil))
	}
	req := &bridge.Request{
		Env:    bridge.EnvironFromList(environ),
		Body:   stdin,
		Stderr: stderr,
	}
	// Room for the largest header block and held body the bridge writes
	// at once, so that a small response leaves in one write.
	out := bufio.NewWriterSize(stdout, 2*bridge.BufferSize)
	responder := bridge.HandlerResponder{Handler: c.Handler, Logger: log, Debug: c.Debug}
	err := responder.Respond(ctx, req, out)
	if ferr := out.Flush(); err == nil {
		err = ferr
	}
	return err
}
