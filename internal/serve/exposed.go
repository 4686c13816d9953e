package serve

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"

	"github.com/cgirun/cgirun/internal/gateway"
)

// envWebServerAddrs is the FastCGI specification's allowlist of the web
// servers' addresses, which package fastcgi applies to TCP peers.
const envWebServerAddrs = "FCGI_WEB_SERVER_ADDRS"

// beyondLoopback reports whether l is a TCP listener whose address is not
// a loopback one: a host other than this one may connect. An unspecified
// address (0.0.0.0, ::, a bare ":9000") is every interface's.
func beyondLoopback(l net.Listener) bool {
	ta, ok := l.Addr().(*net.TCPAddr)
	if !ok {
		return false
	}
	ip, ok := netip.AddrFromSlice(ta.IP)
	return !ok || !ip.Unmap().IsLoopback()
}

// warnExposedFastCGI logs a warning for each TCP listener of lns beyond
// loopback while FCGI_WEB_SERVER_ADDRS is empty: any host that reaches it
// may send FastCGI requests, which for the runner means running its
// scripts. what names the setting of the address, for the advice.
func warnExposedFastCGI(log *slog.Logger, lns []net.Listener, what string) {
	warnExposed(log, lns, what, "FastCGI")
}

// warnExposed is warnExposedFastCGI for a socket that serves proto, the
// name of a protocol or of several, for the log.
func warnExposed(log *slog.Logger, lns []net.Listener, what, proto string) {
	if os.Getenv(envWebServerAddrs) != "" {
		return
	}
	for _, l := range lns {
		if beyondLoopback(l) {
			log.Warn("cgirun: "+proto+" listens beyond loopback and "+envWebServerAddrs+" is empty: any host that reaches it is served; "+
				"listen on 127.0.0.1 (such as "+setting(what, "tcp:127.0.0.1:9000")+") or a unix socket, or set "+envWebServerAddrs+" to the web server's addresses (such as 127.0.0.1,10.0.0.2)",
				"addr", l.Addr().String())
		}
	}
}

// WarnExposedHTTP logs a warning when l, the HTTP listener of a server
// that runs a program for every request, listens beyond loopback: any host
// that reaches it runs them. what names the setting of the address, for
// the advice.
func WarnExposedHTTP(log *slog.Logger, l net.Listener, what string) {
	if beyondLoopback(l) {
		log.Warn("cgirun: HTTP listens beyond loopback: any host that reaches it runs the scripts; listen on 127.0.0.1 (such as "+setting(what, "127.0.0.1:8000")+") unless that is meant",
			"addr", l.Addr().String())
	}
}

// setting returns what, a flag or a variable, set to value as a command
// line or an environment writes it: "-s ADDR", "CGIRUN_FASTCGI=ADDR".
func setting(what, value string) string {
	if strings.HasPrefix(what, "-") {
		return what + " " + value
	}
	return what + "=" + value
}

// PeerAllowed returns whether a connection's TCP peer is one of the web
// servers FCGI_WEB_SERVER_ADDRS lists (any peer when it is empty; a unix
// socket's peers always), as the gateway servers check them. The error
// names the variable and the address that is not one.
func PeerAllowed() (func(net.Conn) bool, error) {
	allowed, err := gateway.AllowedPeers("cgirun", nil)
	if err != nil {
		return nil, fmt.Errorf("%w: want addresses such as 127.0.0.1,10.0.0.2", err)
	}
	return func(c net.Conn) bool { return gateway.PeerAllowed(c, allowed) }, nil
}
