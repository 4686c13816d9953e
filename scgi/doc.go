// Package scgi is an SCGI application server (the SCGI protocol, Neil
// Schemenauer, python.ca/scgi/protocol.txt) that answers the web server's
// requests through package bridge, so any http.Handler runs behind nginx
// (scgi_pass), Apache (mod_proxy_scgi) or lighttpd (mod_scgi) unchanged,
// exactly as it does over FastCGI and CGI: the same deferral of the
// header block, the same clean 500 for a panic, the same path rule and
// byte-transparent variables.
//
// Server has net/http.Server's shape (Serve, Shutdown, Close,
// ErrServerClosed) and fastcgi.Server's fields where they apply.
//
// # The protocol
//
// SCGI has one request per connection and no keep-alive. The web server
// sends a header block, a netstring: its length in decimal, ':', then
// NUL-terminated names and values, CONTENT_LENGTH first and SCGI with the
// value 1 among them, then ','. The body follows, CONTENT_LENGTH bytes of
// it. The answer is a CGI response stream written to the connection as it
// is: a Status line, header fields, an empty line and the body, which
// nginx, Apache and lighttpd all read. The connection closes after it.
//
// A header block is parsed strictly, in wire.go, which knows nothing of
// connections: a length with a leading zero or a character other than a
// digit, no ':' or no ',', an odd number of strings, a first variable
// other than CONTENT_LENGTH, a CONTENT_LENGTH that is not a length, no
// SCGI=1, a name sent twice: each is answered with 400 and a log line
// that says what was wrong, and the server goes on. A request header
// sent twice (HTTP_*), as nginx before 1.23 sends a header its client
// repeated, is joined with ", " ("; " for HTTP_COOKIE) instead. A
// CONTENT_LENGTH of 0 gives the handler an empty body, and a Responder a
// nil bridge.Request.Body: the runner gives such a CGI script /dev/null.
// A negative CONTENT_LENGTH, which lighttpd sends for a body it streams
// without knowing its length, makes the body run to the end of what the
// web server sends (its half-close).
//
// # Limits
//
// Every limit is a Server field with a documented default, fastcgi's:
//
//   - MaxConns: none. Connections past it wait in the listen backlog.
//   - MaxRequests: none. A request past it gets 503 with Retry-After: 1,
//     or waits for a slot with QueueRequests.
//   - MaxParamsBytes: 128 KiB, the netstring's length. A request past it
//     gets 431 Request Header Fields Too Large as soon as its length is
//     read.
//   - ReadHeaderTimeout: 10 s from accepting a connection to the end of
//     its header block. ReadTimeout: 60 s for each read of the body.
//     WriteTimeout: 60 s for each write. Past any of them the connection
//     closes and a log line says why.
//   - HandlerTimeout: none. Past it the request's context is cancelled and
//     the client gets 503 if nothing was sent yet.
//   - WebServerAddrs: FCGI_WEB_SERVER_ADDRS, the same variable as
//     fastcgi's, so that one setting guards a socket whatever protocol it
//     serves. TCP peers not listed are refused.
//
// # What a connection costs
//
// A connection waiting for its header block holds no read buffer: the
// first read waits for the poller with none, and takes a 4 KiB buffer
// from a pool once bytes are there (a larger header block, up to
// MaxParamsBytes, gets a buffer of its size). The buffer goes back once
// the header block and the body bytes that came with it are consumed.
// The answer is written from a pooled buffer that starts at 4 KiB and is
// written out at 64 KiB, when the handler flushes, and at the end, so
// that a streamed response reaches the web server as it is flushed.
// Besides, a connection costs its goroutine and, once its body is read,
// the goroutine of the abort watcher below.
//
// # Body and abort
//
// The body is read from the connection as the handler reads it, each read
// bounded by ReadTimeout; a body shorter than CONTENT_LENGTH ends in
// io.ErrUnexpectedEOF. Once the body is read whole (at once for a
// bodiless request), a read waits on the connection, as net/http's
// background read does: when the web server closes it (nginx and Apache
// do when their client leaves), the request's context is cancelled with
// ErrConnClosed as its cause. A web server that half-closes its side
// after the request is taken for one that left. Shutdown and Close cancel
// with ErrServerClosed, HandlerTimeout with ErrHandlerTimeout.
//
// Not supported: a response cut short after its first bytes cannot be
// told from a complete one over a unix socket, unless it declared its
// Content-Length (over TCP the connection is reset); SCGI has no other
// signal for it.
package scgi
