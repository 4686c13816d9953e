// Package cgi runs a Go http.Handler as a CGI/1.1 program (RFC 3875): Serve
// reads the request from the process environment and standard input,
// answers it through package bridge, and writes the CGI response stream to
// standard output. A binary built on it can be copied into Apache's cgi-bin
// and works unchanged.
//
// The handler sees the path below the program's URL in r.URL.Path (see
// bridge.NewHTTPRequest), so the same handler also runs at the root of a
// FastCGI or HTTP server. Every meta-variable stays readable through
// bridge.EnvironOf.
//
// Logs go to standard error, which web servers put in their error log;
// nothing but the response is ever written to standard output.
//
// The other direction, Executor, is the bridge.Responder that runs a CGI
// executable for a request: the back end of the cgirun runner, which serves
// any language's CGI scripts over FastCGI or HTTP. It confines scripts to
// their roots, runs them in their own process group with a clean
// environment, streams both ways at once, bounds time, concurrency, body
// and header sizes, and waits for every child. Handler puts it behind
// net/http: an http.Handler that serves a directory of CGI executables, as
// Apache's mod_cgi serves a cgi-bin, local redirects included.
//
// Not supported: NPH ("nph-") programs, which write a raw HTTP response,
// on either side.
package cgi
