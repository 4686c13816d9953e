package uwsgi

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"

	"github.com/cgirun/cgirun/bridge"
	"github.com/cgirun/cgirun/internal/gateway"
)

// The uwsgi packet (uWSGI's docs, "The uwsgi protocol") is a 4-byte
// header, then datasize bytes of variables:
//
//	modifier1 (uint8) datasize (uint16, little-endian) modifier2 (uint8)
//	key length (uint16 LE) key value length (uint16 LE) value ...
//
// then the body, CONTENT_LENGTH bytes of it. modifier1 0 with modifier2 0
// is a WSGI-style request, the only kind nginx, Apache and lighttpd send
// for a CGI-like application.
const headerLen = 4

// modifier is a uwsgi packet's modifier1.
type modifier uint8

// modWSGI is modifier1 0: a request with CGI variables.
const modWSGI modifier = 0

func (m modifier) String() string {
	if m == modWSGI {
		return "0 (WSGI request)"
	}
	return strconv.Itoa(int(m))
}

// frame returns the length of the packet header and its variables at the
// start of b, or 0 when b holds fewer than 4 bytes. A packet that is no
// request (modifier1 or modifier2 not 0) wraps gateway.ErrNotRequest, one
// past limit gateway.ErrHeaderTooLarge.
func frame(b []byte, limit int) (int, error) {
	if len(b) < headerLen {
		return 0, nil
	}
	if m := modifier(b[0]); m != modWSGI {
		return 0, fmt.Errorf("%w: modifier1 %s: only %s is served", gateway.ErrNotRequest, m, modWSGI)
	}
	if b[3] != 0 {
		return 0, fmt.Errorf("%w: modifier2 %d with modifier1 0: want 0", gateway.ErrNotRequest, b[3])
	}
	size := int(binary.LittleEndian.Uint16(b[1:3]))
	if size > limit {
		return 0, fmt.Errorf("%w: datasize %d passes MaxParamsBytes, %d bytes", gateway.ErrHeaderTooLarge, size, limit)
	}
	return headerLen + size, nil
}

// decode parses a packet header and its variables, as frame measured
// them, into env: pairs that fill datasize exactly, and a CONTENT_LENGTH,
// when present, that is a length (negative: a body that runs to the end
// of what the web server sends; absent or empty: none).
func decode(block string, env *bridge.Environ) error {
	if len(block) < headerLen {
		return errors.New("packet shorter than its 4-byte header")
	}
	if block[0] != 0 || block[3] != 0 {
		return fmt.Errorf("%w: modifier1 %d, modifier2 %d: want 0 and 0", gateway.ErrNotRequest, block[0], block[3])
	}
	size := int(block[1]) | int(block[2])<<8
	if len(block) != headerLen+size {
		return fmt.Errorf("datasize %d in a packet of %d bytes of variables", size, len(block)-headerLen)
	}
	vars := block[headerLen:]
	for off := 0; off < len(vars); {
		name, next, err := str(vars, off)
		if err != nil {
			return fmt.Errorf("key %w", err)
		}
		value, next, err := str(vars, next)
		if err != nil {
			return fmt.Errorf("value of %q %w", name, err)
		}
		if err := gateway.AddVar(env, name, value); err != nil {
			return err
		}
		off = next
	}
	if v := env.Get("CONTENT_LENGTH"); v != "" && !gateway.ValidLength(v) {
		return fmt.Errorf("CONTENT_LENGTH %q is not a length, such as 0 or 1024", v)
	}
	return nil
}

// str reads the length-prefixed string at off in vars, and returns it
// and the offset after it; the error follows the name of what was read.
func str(vars string, off int) (string, int, error) {
	if len(vars)-off < 2 {
		return "", 0, fmt.Errorf("at byte %d: its 2-byte length runs past datasize", off)
	}
	n := int(vars[off]) | int(vars[off+1])<<8
	off += 2
	if len(vars)-off < n {
		return "", 0, fmt.Errorf("at byte %d: %d bytes run past datasize", off-2, n)
	}
	return vars[off : off+n], off + n, nil
}
