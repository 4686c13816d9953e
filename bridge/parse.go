package bridge

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// MaxHeaderBytes is the default bound on a CGI response's header block,
// line endings included.
const MaxHeaderBytes = 64 << 10

// Errors of ReadResponse that callers test for. Every other error is a
// malformed header block.
var (
	// ErrHeaderTooLarge: the header block exceeds the bound given to
	// ReadResponse.
	ErrHeaderTooLarge = errors.New("bridge: CGI response header block too large")
	// ErrNoHeader: the stream ended before the empty line that closes the
	// header block (a script that died or printed nothing).
	ErrNoHeader = errors.New("bridge: CGI response ended before its header block did")
)

// Response is the header block of a CGI response (RFC 3875 section 6). The
// body is what remains in the reader given to ReadResponse.
type Response struct {
	// Status is the HTTP status: from the Status field, else 302 for a
	// client redirect, else 200. It is 0 for a local redirect.
	Status int
	// Reason is the reason phrase of the Status field, possibly empty.
	Reason string
	// Header holds every field but Status, with canonical names, values
	// byte for byte.
	Header http.Header
	// LocalRedirect is true for a local redirect response (section
	// 6.2.2): a Location that is a path ("/..."), and no Status. The
	// server should answer the request for that path instead.
	LocalRedirect bool
}

// ReadResponse reads a CGI response header block from br, which is left at
// the first byte of the body. Lines may end in CRLF or a bare LF. It is
// strict about everything else: a line without a colon, a field name that
// is not a token, a folded continuation line, a NUL or a CR inside a value,
// a Status that is not three digits from 200 to 999, a reason phrase with a
// control character (other than HTAB), Status given twice, a Content-Length
// that is not a decimal number, Content-Length values that differ (in
// several fields or a comma list: a script must not leave the choice to the
// next hop), or a block with none of Content-Type, Location and Status is
// an error. Identical Content-Length values are collapsed into one field, as
// net/http does for requests. A
// block larger than maxBytes (MaxHeaderBytes when maxBytes <= 0) gives
// ErrHeaderTooLarge; an end of stream before the empty line gives ErrNoHeader.
func ReadResponse(br *bufio.Reader, maxBytes int) (*Response, error) {
	if maxBytes <= 0 {
		maxBytes = MaxHeaderBytes
	}
	resp := &Response{Header: make(http.Header)}
	total := 0
	var long []byte // a line longer than br's buffer, being assembled
	hasStatus := false
	for {
		frag, err := br.ReadSlice('\n')
		total += len(frag)
		if total > maxBytes {
			return nil, fmt.Errorf("%w: over %d bytes", ErrHeaderTooLarge, maxBytes)
		}
		switch {
		case err == bufio.ErrBufferFull:
			long = append(long, frag...)
			continue
		case err == io.EOF:
			return nil, fmt.Errorf("%w (after %d bytes)", ErrNoHeader, total)
		case err != nil:
			return nil, fmt.Errorf("bridge: reading CGI response header: %w", err)
		}
		line := frag
		if long != nil {
			line = append(long, frag...)
			long = nil
		}
		line = bytes.TrimSuffix(line[:len(line)-1], []byte("\r"))
		if len(line) == 0 {
			break
		}
		name, value, err := parseField(line)
		if err != nil {
			return nil, err
		}
		if strings.EqualFold(name, "Status") {
			if hasStatus {
				return nil, errors.New("bridge: CGI response has two Status fields")
			}
			hasStatus = true
			if resp.Status, resp.Reason, err = parseStatus(value); err != nil {
				return nil, err
			}
			continue
		}
		key := http.CanonicalHeaderKey(name)
		resp.Header[key] = append(resp.Header[key], value)
	}

	if cl, ok := resp.Header["Content-Length"]; ok {
		n, err := responseContentLength(cl)
		if err != nil {
			return nil, err
		}
		resp.Header["Content-Length"] = []string{n}
	}

	location := resp.Header.Get("Location")
	switch {
	case location != "" && !hasStatus && strings.HasPrefix(location, "/") && !strings.HasPrefix(location, "//"):
		resp.LocalRedirect = true
	case location != "" && !hasStatus:
		resp.Status = http.StatusFound
	case !hasStatus && resp.Header.Get("Content-Type") == "":
		return nil, errors.New("bridge: CGI response has none of Content-Type, Location and Status")
	case !hasStatus:
		resp.Status = http.StatusOK
	}
	return resp, nil
}

func parseField(line []byte) (name, value string, err error) {
	if line[0] == ' ' || line[0] == '\t' {
		return "", "", fmt.Errorf("bridge: CGI response header has a folded line %q", truncate(line))
	}
	n, v, ok := bytes.Cut(line, []byte(":"))
	if !ok {
		return "", "", fmt.Errorf("bridge: CGI response header line %q has no colon", truncate(line))
	}
	name = string(n)
	if !isToken(name) {
		return "", "", fmt.Errorf("bridge: CGI response header name %q is not a token", truncate(n))
	}
	v = bytes.Trim(v, " \t")
	if bytes.IndexByte(v, 0) >= 0 || bytes.IndexByte(v, '\r') >= 0 {
		return "", "", fmt.Errorf("bridge: CGI response header %q has a NUL or CR in its value", name)
	}
	return name, string(v), nil
}

// responseContentLength checks the values of the Content-Length fields, each
// possibly a comma list, and returns the one length they all give.
func responseContentLength(values []string) (string, error) {
	first := ""
	for _, v := range values {
		for n := range strings.SplitSeq(v, ",") {
			n = strings.Trim(n, " \t")
			if _, err := strconv.ParseInt(n, 10, 64); err != nil || n[0] < '0' || n[0] > '9' {
				return "", fmt.Errorf("bridge: CGI response Content-Length %q is not a decimal number", truncate([]byte(v)))
			}
			if first == "" {
				first = n
			} else if n != first {
				return "", fmt.Errorf("bridge: CGI response has conflicting Content-Length values %q and %q", first, truncate([]byte(n)))
			}
		}
	}
	return first, nil
}

// parseStatus parses a Status value: three digits, then optionally a space
// and a reason phrase.
func parseStatus(v string) (int, string, error) {
	if len(v) < 3 || (len(v) > 3 && v[3] != ' ') {
		return 0, "", fmt.Errorf("bridge: CGI response Status %q is not a three-digit code", v)
	}
	code := 0
	for i := range 3 {
		if v[i] < '0' || v[i] > '9' {
			return 0, "", fmt.Errorf("bridge: CGI response Status %q is not a three-digit code", v)
		}
		code = code*10 + int(v[i]-'0')
	}
	if code < 200 {
		return 0, "", fmt.Errorf("bridge: CGI response Status %d is not a final status", code)
	}
	reason := strings.TrimLeft(v[3:], " ")
	for i := 0; i < len(reason); i++ {
		if c := reason[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return 0, "", fmt.Errorf("bridge: CGI response Status reason %q has a control character", truncate([]byte(reason)))
		}
	}
	return code, reason, nil
}

// truncate keeps error messages short when a script prints megabytes.
func truncate(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}
