// Package serve is what cgirun.Run and the cgirun command share to run a
// server process: finding the sockets to serve (ListenerSet), the loop
// that serves them until a signal, a failure or an upgrade ends it (Loop),
// the log set-up (NewLogger) and the access log's view of a response
// (StatusRecorder). It knows no protocol: a *fastcgi.Server and a
// *http.Server are both a Server.
package serve
