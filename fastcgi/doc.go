// Package fastcgi is a FastCGI 1.0 application server (the FastCGI
// Specification, Open Market, 1996) that answers the web server's requests
// through package bridge, so any http.Handler runs behind nginx
// (fastcgi_pass) or Apache (mod_proxy_fcgi, mod_fcgid, mod_authnz_fcgi)
// unchanged.
//
// Server has net/http.Server's shape: Serve, Shutdown, Close,
// ErrServerClosed. It serves the three roles (a handler tells which through
// bridge.RequestOf(r).Role), multiplexes request ids on a connection, one
// goroutine each, honours FCGI_KEEP_CONN, answers FCGI_GET_VALUES with its
// real limits, and cancels a request's context on FCGI_ABORT_REQUEST or when
// the connection drops (nginx and Apache abort by closing). Every limit is a
// field with a documented default; a web server that breaks the protocol
// loses its connection and a log line says why, while the other
// connections go on.
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
