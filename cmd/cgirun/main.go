// Command cgirun runs CGI executables over FastCGI (a drop-in for
// fcgiwrap) or plain HTTP, puts an HTTP front on any FastCGI server, and
// probes FastCGI servers for health checks. Run "cgirun help" for the
// subcommands, and "cgirun SUBCOMMAND --help" for their flags and CGIRUN_*
// environment variables.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	go func() {
		// After the first signal starts a graceful shutdown, a second one
		// kills at once, as usual.
		<-ctx.Done()
		stop()
	}()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr))
}
