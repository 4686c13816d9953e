package serve

import (
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cgirun/cgirun/bridge"
)

// AppendCombined appends the access log line of r, answered as rec says
// at time at, as Apache's combined format writes it, `%h %l %u %t "%r" %>s
// %b "%{Referer}i" "%{User-agent}i"`, so that goaccess and other readers
// of Apache's logs read it: "-" for what is empty, a byte count of 0
// included (%b), and the bytes Apache escapes escaped as it does. The
// remote user is r.URL.User's, or the web server's REMOTE_USER. client
// (%h) loses its spaces ("a, b" from X-Forwarded-For is "a,b"): it is one
// field. No newline ends the line.
func AppendCombined(b []byte, r *http.Request, rec *StatusRecorder, client string, at time.Time) []byte {
	user := ""
	if r.URL.User != nil {
		user = r.URL.User.Username()
	}
	if user == "" {
		if env := bridge.EnvironOf(r); env != nil {
			user = env.Get("REMOTE_USER")
		}
	}
	b = appendLogItem(b, strings.ReplaceAll(client, " ", ""))
	b = append(b, " - "...)
	b = appendLogItem(b, user)
	b = at.AppendFormat(append(b, " ["...), "02/Jan/2006:15:04:05 -0700")
	b = append(b, "] \""...)
	b = appendLogItem(b, r.Method+" "+r.RequestURI+" "+r.Proto)
	b = strconv.AppendInt(append(b, "\" "...), int64(rec.Status), 10)
	b = append(b, ' ')
	if rec.Bytes == 0 {
		b = append(b, '-')
	} else {
		b = strconv.AppendInt(b, rec.Bytes, 10)
	}
	b = append(b, " \""...)
	b = appendLogItem(b, r.Referer())
	b = append(b, "\" \""...)
	b = appendLogItem(b, r.UserAgent())
	return append(b, '"')
}

// WriteLine writes line, which has no newline, as one raw line on the
// writer below log when NewLogger made it (see Writer): one line between
// slog's. Any other logger gets the line as the message of an Info record
// without attributes, and its handler decides how to write it.
func WriteLine(log *slog.Logger, line []byte) {
	w := Writer(log)
	if w == nil {
		log.Info(string(line))
		return
	}
	if _, err := w.Write(append(line, '\n')); err != nil {
		log.Warn("cgirun: writing the access log", "err", err)
	}
}

// appendLogItem appends s to b as Apache's ap_escape_logitem writes a log
// item: "-" when s is empty; '"' and '\\' after a backslash; \b, \n, \r,
// \t and \v as in C; other bytes outside printable ASCII as \xhh.
func appendLogItem(b []byte, s string) []byte {
	if s == "" {
		return append(b, '-')
	}
	const hex = "0123456789abcdef"
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c == '\b':
			b = append(b, `\b`...)
		case c == '\n':
			b = append(b, `\n`...)
		case c == '\r':
			b = append(b, `\r`...)
		case c == '\t':
			b = append(b, `\t`...)
		case c == '\v':
			b = append(b, `\v`...)
		case c < 0x20 || c > 0x7e:
			b = append(b, '\\', 'x', hex[c>>4], hex[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return b
}

// ClientIP returns the host of a request's RemoteAddr, or RemoteAddr
// whole when it has no port.
func ClientIP(remote string) string {
	if host, _, err := net.SplitHostPort(remote); err == nil {
		return host
	}
	return remote
}
