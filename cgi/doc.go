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
// Not supported: NPH ("nph-") programs, which write a raw HTTP response.
package cgi
