package scgi

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/cgirun/cgirun/bridge"
	"github.com/cgirun/cgirun/internal/gateway"
)

// The SCGI header block (python.ca/scgi protocol.txt) is a netstring:
//
//	LEN ":" NAME NUL VALUE NUL ... "," BODY
//
// where LEN is the decimal length of the NUL-terminated strings, without
// leading zeros, the first pair is CONTENT_LENGTH and one pair is SCGI
// with the value 1.

// frame returns the length of the header block at the start of b, prefix
// and comma included, or 0 when b does not hold its length yet. A length
// past limit wraps gateway.ErrHeaderTooLarge.
func frame(b []byte, limit int) (int, error) {
	n := 0
	for i, ch := range b {
		switch {
		case ch == ':' && i == 0:
			return 0, errors.New("netstring without a length before ':', such as 70:")
		case ch == ':':
			return i + 1 + n + 1, nil
		case ch < '0' || ch > '9':
			return 0, fmt.Errorf("netstring length: %q is not a digit: want LEN:, such as 70:", ch)
		case i == 1 && b[0] == '0':
			return 0, errors.New("netstring length with a leading zero: want LEN:, such as 70:")
		}
		n = n*10 + int(ch-'0')
		if n > limit {
			return 0, fmt.Errorf("%w: the netstring's length passes MaxParamsBytes, %d bytes", gateway.ErrHeaderTooLarge, limit)
		}
	}
	return 0, nil
}

// decode parses a whole header block, as frame measured it, into env:
// every pair, CONTENT_LENGTH first with a length (a negative one means
// a body that runs to the end of what the web server sends), and SCGI=1.
func decode(block string, env *bridge.Environ) error {
	colon := strings.IndexByte(block, ':')
	if colon < 1 {
		return errors.New("netstring without a length before ':', such as 70:")
	}
	n, err := strconv.Atoi(block[:colon])
	if err != nil || n < 0 || (colon > 1 && block[0] == '0') {
		return fmt.Errorf("netstring length %q: want LEN:, such as 70:", block[:colon])
	}
	if len(block) != colon+1+n+1 {
		return fmt.Errorf("netstring of %d bytes in a block of %d", n, len(block)-colon-2)
	}
	if block[len(block)-1] != ',' {
		return fmt.Errorf("netstring ends in %q, not ','", block[len(block)-1])
	}
	content := block[colon+1 : colon+1+n]
	if content == "" {
		return errors.New("empty header block: want CONTENT_LENGTH first")
	}
	if content[len(content)-1] != 0 {
		return errors.New("header block does not end with NUL")
	}
	for i := 0; content != ""; i++ {
		// content ends with NUL: every Cut finds one.
		name, rest, _ := strings.Cut(content, "\x00")
		if rest == "" {
			return fmt.Errorf("variable %q has no value: the header block holds an odd number of strings", name)
		}
		value, rest, _ := strings.Cut(rest, "\x00")
		if i == 0 {
			if name != "CONTENT_LENGTH" {
				return fmt.Errorf("first variable is %q: want CONTENT_LENGTH first", name)
			}
			if !gateway.ValidLength(value) {
				return fmt.Errorf("CONTENT_LENGTH %q is not a length, such as 0 or 1024", value)
			}
		}
		if err := gateway.AddVar(env, name, value); err != nil {
			return err
		}
		content = rest
	}
	if v, ok := env.Lookup("SCGI"); !ok || v != "1" {
		return fmt.Errorf("SCGI = %q: want SCGI=1 in the header block", v)
	}
	return nil
}
