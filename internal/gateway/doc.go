// Package gateway is what the module's gateway servers (fastcgi, scgi,
// uwsgi) share, so that it lives in one place: listening on unix: and
// tcp: addresses with a socket mode, owner and group (php-fpm's listen.*
// settings), the sockets a process inherits on fd 0 (mod_fcgid,
// spawn-fcgi) or from systemd socket activation, the web-server address
// allowlist (the FastCGI specification's FCGI_WEB_SERVER_ADDRS), and a
// server's bookkeeping: its accept loops, its open connections bounded by
// MaxConns, the requests answered at once bounded by MaxRequests, and
// graceful shutdown in net/http.Server's shape.
//
// It knows no protocol: a server gives the Tracker a function that makes
// a Conn of each accepted connection, and the Tracker serves, drains and
// closes them. The servers meet nowhere else: each answers through
// package bridge.
//
// Errors start with the prefix a caller gives, the name of the server
// package that returns them ("fastcgi", "scgi"), so that each keeps its
// own wording.
package gateway
