package gateway

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
)

// PeersVar is the environment variable that lists the web servers'
// addresses when a server's WebServerAddrs is nil: the FastCGI
// specification's, read by every gateway server of the module, so that
// one setting guards every protocol a socket serves.
const PeersVar = "FCGI_WEB_SERVER_ADDRS"

// AllowedPeers returns the addresses allowed to connect over TCP: list,
// else the addresses in PeersVar, else nil (any peer). An error starts
// with prefix.
func AllowedPeers(prefix string, list []string) ([]netip.Addr, error) {
	if list == nil {
		env := os.Getenv(PeersVar)
		if env == "" {
			return nil, nil
		}
		list = strings.Split(env, ",")
	}
	addrs := make([]netip.Addr, 0, len(list))
	for _, a := range list {
		ip, err := netip.ParseAddr(strings.TrimSpace(a))
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %q is not an IP address", prefix, PeersVar, a)
		}
		addrs = append(addrs, ip.Unmap())
	}
	return addrs, nil
}

// PeerAllowed reports whether c's peer may talk to the server: allowed
// nil lets any in. Only TCP peers are checked.
func PeerAllowed(c net.Conn, allowed []netip.Addr) bool {
	if allowed == nil {
		return true
	}
	ta, ok := c.RemoteAddr().(*net.TCPAddr)
	if !ok {
		return true
	}
	ip, ok := netip.AddrFromSlice(ta.IP)
	if !ok {
		return false
	}
	ip = ip.Unmap()
	for _, a := range allowed {
		if a == ip {
			return true
		}
	}
	return false
}
