// Package fastcgi is a FastCGI 1.0 application server (the FastCGI
// Specification, Open Market, 1996) that answers the web server's requests
// through package bridge, so any http.Handler runs behind nginx
// (fastcgi_pass) or Apache (mod_proxy_fcgi, mod_fcgid, mod_authnz_fcgi)
// unchanged.
//
// Server has net/http.Server's shape: Serve, Shutdown, Close,
// ErrServerClosed. It serves the three roles: a handler tells which through
// bridge.RequestOf(r).Role, a Filter reads FCGI_DATA from
// bridge.RequestOf(r).Data, and an Authorizer passes Variable-NAME headers
// back with bridge.SetVariable. It multiplexes request ids on a connection,
// one goroutine each, honours FCGI_KEEP_CONN, answers FCGI_GET_VALUES with
// its real limits, and cancels a request's context on FCGI_ABORT_REQUEST or
// when the connection drops (nginx and Apache abort by closing); the
// request's body reads fail then too. Writes to bridge.RequestOf(r).Stderr
// reach the web server's error log. A web server that breaks the protocol
// loses its connection and a log line says why, while the other
// connections go on.
//
// # Limits
//
// Every limit is a Server field with a documented default:
//
//   - MaxConns: none. Connections past it wait in the listen backlog.
//   - MaxRequests: none. A request past it gets 503 with Retry-After (not
//     FCGI_OVERLOADED, which nginx turns into a 502), or waits for a slot
//     with QueueRequests.
//   - MaxRequestsPerConn: 100. A request id past it gets FCGI_OVERLOADED;
//     with 1, FCGI_MPXS_CONNS is 0 and a second request gets
//     FCGI_CANT_MPX_CONN.
//   - MaxParamsBytes: 128 KiB of a request's header block, and
//     MaxConnParamsBytes: 1 MiB of the header blocks of a connection's
//     requests together. A request past either gets 431 Request Header
//     Fields Too Large.
//   - InputBuffer: 64 KiB of a request's body not read yet. Past it the
//     connection waits for the handler, FastCGI's only flow control.
//   - ReadHeaderTimeout: 10 s from a new connection's first byte or a
//     request's FCGI_BEGIN_REQUEST to the end of its FCGI_PARAMS.
//     ReadTimeout: 60 s for each body record. IdleTimeout: 2 min for a kept
//     connection with no request. WriteTimeout: 60 s for each write. Past
//     any of them the connection closes.
//   - HandlerTimeout: none. Past it the request's context is cancelled and
//     the client gets 503 if nothing was sent yet.
//   - WebServerAddrs: FCGI_WEB_SERVER_ADDRS. TCP peers not listed are
//     refused.
//
// What one connection makes the server hold is bounded by these figures,
// however many request ids it uses: MaxConnParamsBytes of header blocks,
// InputBuffer of unread body for each of its at most MaxRequestsPerConn
// requests, one read buffer and one write buffer.
//
// # Buffers
//
// A connection that waits for the web server holds no read buffer: on a
// socket, a read that finds nothing waits for the poller with none. When
// bytes are there, records are read into a buffer from a pool: 4 KiB, which
// holds a header block and a bodiless request whole, or 64 KiB, which holds
// the largest record and takes several body records in one read. The
// buffer goes back to the pool once its bytes are consumed, so an idle
// connection, or one whose handler is busy, costs little more than its
// goroutine.
//
// Records are written from a pooled buffer that starts at 4 KiB and that a
// connection holds only while it writes. A larger response grows it. It is
// written out when it holds 64 KiB, when the handler flushes and when the
// response ends. Every record of a connection leaves through that one
// writer.
//
// # The lent reader
//
// While the handler of a connection's only request waits for body bytes,
// the serve loop lends it the connection's reader: the handler's Read
// reads the records itself, as net/http's handlers read their bodies, with
// no hand-over between goroutines for every record. The serve loop waits
// meanwhile. The reader comes back to it at the end of the body or at its
// CONTENT_LENGTH, on an abort, a handler timeout or a closed body, and with
// the first record that concerns anything else. The serve loop then reads
// on, so it sees an abort or a closed connection while the handler works.
// The reader is never lent to an Authorizer or a Filter, nor with an
// InputBuffer smaller than a record.
//
// A bodiless request that arrives whole, as nginx sends a GET, starts its
// handler with a nil bridge.Request.Body, known to be empty: its
// http.Request has http.NoBody, and the runner gives such a CGI script
// /dev/null rather than a pipe.
//
// # Authorizers (Apache mod_authnz_fcgi)
//
// Apache's mod_authnz_fcgi is the one web server module that sends the
// Authorizer role. Its contract, as a handler sees it:
//
//   - It connects over TCP only (fcgi://127.0.0.1:9001/ in
//     AuthnzFcgiDefineProvider): listen on tcp:127.0.0.1:PORT, not on a
//     unix socket.
//   - It asks up to twice per client request, each time on a new
//     connection: first with FCGI_APACHE_ROLE=AUTHENTICATOR, REMOTE_USER
//     and REMOTE_PASSWD (the password of the client's Basic credentials,
//     in clear: never log it), then with FCGI_APACHE_ROLE=AUTHORIZER and
//     REMOTE_USER. A client without credentials gets 401 from Apache
//     before the application is asked.
//   - bridge.RequestOf(r).Role is bridge.RoleAuthorizer. There is no body,
//     and no PATH_INFO, SCRIPT_NAME, CONTENT_LENGTH nor Authorization
//     header.
//   - Status 200 lets the request through; any other answer of the
//     authenticator goes to the client, status and body; any other answer
//     of the authorizer becomes 403 with AuthzSendForbiddenOnFailure (401
//     without it).
//   - A 200's Variable-NAME headers, set with bridge.SetVariable (which
//     keeps the name's case), become the variable NAME of the request that
//     follows: an application behind mod_proxy_fcgi or mod_cgid receives
//     it as a CGI variable, the client never sees it.
//
// examples/deploy/apache-authnz-fcgi.conf is a working configuration, and
// bridge's ExampleRequestOf a handler.
//
// # Listeners
//
// Listen("unix:/run/app.sock", 0660) removes a stale socket file only when
// nothing listens on it. InheritedListener(0) and SystemdListeners take the
// sockets that mod_fcgid and systemd pass.
//
// The wire format (records, name-value pairs) lives in wire.go and knows
// nothing of connections.
//
// Not supported: FCGI_GET_VALUES names other than FCGI_MAX_CONNS,
// FCGI_MAX_REQS and FCGI_MPXS_CONNS (others are left out of the answer, as
// the spec says); the application status of FCGI_END_REQUEST, which web
// servers ignore, is always 0; a response cut short after its first bytes
// closes the connection, the only signal FastCGI has for it.
package fastcgi
