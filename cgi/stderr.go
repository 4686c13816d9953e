package cgi

import (
	"bytes"
	"log/slog"

	"github.com/cgirun/cgirun/bridge"
)

// stderrLog turns a script's stderr into log lines, one a line, and copies
// them to the web server's error log when asked, up to room bytes.
type stderrLog struct {
	log         *slog.Logger
	req         *bridge.Request
	toWebServer bool
	partial     []byte // a line without its end yet
	room        int64  // bytes that may still be logged
	dropped     int64  // bytes read past room
}

// maxStderrLine bounds a logged line; the rest of a longer line is dropped.
const maxStderrLine = 4 << 10

func (s *stderrLog) Write(p []byte) (int, error) {
	n := len(p)
	if int64(len(p)) > s.room {
		s.dropped += int64(len(p)) - s.room
		p = p[:s.room]
	}
	s.room -= int64(len(p))
	if s.toWebServer && s.req.Stderr != nil && len(p) > 0 {
		// Best effort: the web server's error log may be gone with the
		// request; the line still reaches our log below.
		s.req.Stderr.Write(p)
	}
	rest := p
	for len(rest) > 0 {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			if room := maxStderrLine - len(s.partial); room > 0 {
				s.partial = append(s.partial, rest[:min(room, len(rest))]...)
			}
			break
		}
		if room := maxStderrLine - len(s.partial); room > 0 {
			s.partial = append(s.partial, rest[:min(room, i)]...)
		}
		s.flush()
		rest = rest[i+1:]
	}
	return n, nil
}

// flush logs the line held, if any.
func (s *stderrLog) flush() {
	if len(s.partial) > 0 {
		s.log.Warn("cgi: script stderr", "line", string(s.partial))
		s.partial = s.partial[:0]
	}
}

// end logs the line held and, if stderr went past its bound, how much of it
// was dropped.
func (s *stderrLog) end() {
	s.flush()
	if s.dropped > 0 {
		s.log.Warn("cgi: script stderr over its bound; the rest was dropped", "dropped_bytes", s.dropped)
	}
}
