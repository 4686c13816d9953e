// Package serve is what cgirun.Run and the cgirun command share to run a
// server process: finding the sockets to serve (ListenerSet), the loop
// that serves them until a signal, a failure or an upgrade ends it (Loop),
// the log set-up (NewLogger), the access log's view of a response
// (StatusRecorder) and the split of one socket into one listener per
// protocol by each connection's first byte (Sniff). It serves no protocol
// itself: a *fastcgi.Server and a *http.Server are both a Server.
package serve
