// Package uwsgi is a uwsgi application server (uWSGI's docs, "The uwsgi
// protocol") that answers the web server's requests through package
// bridge, so any http.Handler runs behind nginx (uwsgi_pass), Apache
// (mod_proxy_uwsgi) or lighttpd (mod_scgi with "proto" => "uwsgi")
// unchanged, exactly as it does over FastCGI, SCGI and CGI: the same
// deferral of the header block, the same clean 500 for a panic, the same
// path rule and byte-transparent variables.
//
// Server has net/http.Server's shape (Serve, Shutdown, Close,
// ErrServerClosed) and fastcgi.Server's fields where they apply. It is
// package scgi's server with another wire format.
//
// # The protocol
//
// uwsgi has one request per connection and no keep-alive. The web server
// sends a packet: a 4-byte header (modifier1, the size of the variables
// as a little-endian uint16, modifier2), then each key and value after
// its 2-byte little-endian length, then the body, CONTENT_LENGTH bytes of
// it (none when CONTENT_LENGTH is absent or empty, as nginx's
// uwsgi_params send it for a bodiless request). Only modifier1 0 with
// modifier2 0, a request with CGI variables, is served: another packet
// (a uWSGI cluster or signal packet, or bytes of another protocol) has
// its connection closed with a log line that names the modifier.
//
// The answer is the CGI response stream with its leading "Status: "
// turned into "HTTP/1.1 ": Apache's mod_proxy_uwsgi reads an HTTP status
// line only (it answers 502 to a Status header), and nginx and lighttpd
// read either. The rest, header fields, an empty line and the body, is
// written as it is, and the connection closes after it.
//
// A packet is parsed strictly, in wire.go, which knows nothing of
// connections: a key or value whose length runs past the packet's size,
// a name sent twice, a CONTENT_LENGTH that is not a length: each is
// answered with 400 and a log line that says what was wrong, and the
// server goes on. A request header sent twice (HTTP_*), as nginx before
// 1.23 sends a header its client repeated, is joined with ", " ("; " for
// HTTP_COOKIE) instead. A bodiless request gives a Responder a nil
// bridge.Request.Body: the runner gives such a CGI script /dev/null. A
// negative CONTENT_LENGTH, which lighttpd sends for a body it streams
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
//   - MaxParamsBytes: 128 KiB, so that the protocol's own bound, 65535
//     bytes of variables, is the one that holds unless it is set lower. A
//     packet past it gets 431 Request Header Fields Too Large as soon as
//     its header is read.
//   - ReadHeaderTimeout: 10 s from accepting a connection to the end of
//     its variables. ReadTimeout: 60 s for each read of the body.
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
// A connection waiting for its packet holds no read buffer: the first
// read waits for the poller with none, and takes a 4 KiB buffer from a
// pool once bytes are there (larger variables get a buffer of their
// size, at most 64 KiB). The buffer goes back once the variables and the
// body bytes that came with them are consumed. The answer is written from
// a pooled buffer that starts at 4 KiB and is written out at 64 KiB, when
// the handler flushes, and at the end, so that a streamed response
// reaches the web server as it is flushed. Besides, a connection costs
// its goroutine and, once its body is read, the goroutine of the abort
// watcher below.
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
// Not supported: packets with another modifier1 (uWSGI's PSGI, Rack,
// spooler or cluster packets), and uWSGI's own extensions. A response
// cut short after its first bytes cannot be told from a complete one over
// a unix socket unless it declared its Content-Length (over TCP the
// connection is reset); uwsgi has no other signal for it.
package uwsgi
