package fastcgi

import (
	"fmt"
	"strconv"
	"syscall"
)

func (c *conn) handleManagement(h header, content []byte) error {
	if h.Type != typeGetValues {
		c.writeRecords(func(b []byte) []byte { return appendUnknownType(b, h.Type) })
		return nil
	}
	pairs, err := parsePairs(content)
	if err != nil {
		return fmt.Errorf("FCGI_GET_VALUES: %w", err)
	}
	var body []byte
	for _, p := range pairs {
		if v, ok := c.srv.value(p[0], c.maxReqs); ok {
			body = appendPair(body, p[0], v)
		}
	}
	c.writeRecords(func(b []byte) []byte { return appendRecord(b, typeGetValuesResult, 0, body) })
	return nil
}

// value answers one FCGI_GET_VALUES name with the server's real limits.
func (s *Server) value(name string, maxReqsPerConn int) (string, bool) {
	maxConns := s.MaxConns
	if maxConns <= 0 {
		maxConns = fileLimit()
	}
	switch name {
	case "FCGI_MAX_CONNS":
		return strconv.Itoa(maxConns), true
	case "FCGI_MAX_REQS":
		if s.MaxRequests > 0 {
			return strconv.Itoa(s.MaxRequests), true
		}
		return strconv.Itoa(maxConns * maxReqsPerConn), true
	case "FCGI_MPXS_CONNS":
		if maxReqsPerConn > 1 {
			return "1", true
		}
		return "0", true
	}
	return "", false
}

// fileLimit is the open-file limit: the most connections the process can
// hold when MaxConns sets none.
func fileLimit() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur > 1<<20 {
		return 1 << 20
	}
	return int(rl.Cur)
}
