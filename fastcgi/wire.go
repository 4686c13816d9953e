package fastcgi

// This file holds the FastCGI 1.0 wire format only: record headers, record
// framing and name-value pairs. It parses and appends to byte slices and
// knows nothing of connections, goroutines or locks; reader.go reads records.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
)

// Record layout (spec section 3.3).
const (
	version1       = 1     // FCGI_VERSION_1, the only version there is
	headerLen      = 8     // FCGI_HEADER_LEN
	maxContent     = 65535 // largest contentLength
	maxPad         = 255   // largest paddingLength
	maxStreamChunk = 65528 // largest multiple of 8 that fits in a record
	maxPairLen     = 1<<31 - 1
)

// flagKeepConn is FCGI_KEEP_CONN, the only flag of FCGI_BEGIN_REQUEST: the
// web server keeps the connection open after the request.
const flagKeepConn uint8 = 1

// Roles of FCGI_BEGIN_REQUEST.
const (
	roleResponder  uint16 = 1 // FCGI_RESPONDER
	roleAuthorizer uint16 = 2 // FCGI_AUTHORIZER
	roleFilter     uint16 = 3 // FCGI_FILTER
)

// recType is a record's type (spec section 8).
type recType uint8

const (
	typeBeginRequest    recType = 1
	typeAbortRequest    recType = 2
	typeEndRequest      recType = 3
	typeParams          recType = 4
	typeStdin           recType = 5
	typeStdout          recType = 6
	typeStderr          recType = 7
	typeData            recType = 8
	typeGetValues       recType = 9
	typeGetValuesResult recType = 10
	typeUnknownType     recType = 11
)

var recTypeNames = [...]string{
	typeBeginRequest:    "FCGI_BEGIN_REQUEST",
	typeAbortRequest:    "FCGI_ABORT_REQUEST",
	typeEndRequest:      "FCGI_END_REQUEST",
	typeParams:          "FCGI_PARAMS",
	typeStdin:           "FCGI_STDIN",
	typeStdout:          "FCGI_STDOUT",
	typeStderr:          "FCGI_STDERR",
	typeData:            "FCGI_DATA",
	typeGetValues:       "FCGI_GET_VALUES",
	typeGetValuesResult: "FCGI_GET_VALUES_RESULT",
	typeUnknownType:     "FCGI_UNKNOWN_TYPE",
}

// String returns the spec's name of t, or FCGI_TYPE(n) for a type the spec
// does not define.
func (t recType) String() string {
	if int(t) < len(recTypeNames) && recTypeNames[t] != "" {
		return recTypeNames[t]
	}
	return "FCGI_TYPE(" + strconv.Itoa(int(t)) + ")"
}

// protocolStatus is the protocolStatus of FCGI_END_REQUEST.
type protocolStatus uint8

const (
	statusRequestComplete protocolStatus = 0
	statusCantMultiplex   protocolStatus = 1
	statusOverloaded      protocolStatus = 2
	statusUnknownRole     protocolStatus = 3
)

var protocolStatusNames = [...]string{
	statusRequestComplete: "FCGI_REQUEST_COMPLETE",
	statusCantMultiplex:   "FCGI_CANT_MPX_CONN",
	statusOverloaded:      "FCGI_OVERLOADED",
	statusUnknownRole:     "FCGI_UNKNOWN_ROLE",
}

// String returns the spec's name of s, or FCGI_STATUS(n) for a status the
// spec does not define.
func (s protocolStatus) String() string {
	if int(s) < len(protocolStatusNames) {
		return protocolStatusNames[s]
	}
	return "FCGI_STATUS(" + strconv.Itoa(int(s)) + ")"
}

var (
	errBadVersion      = errors.New("fastcgi: unsupported record version")
	errBadBeginRequest = errors.New("fastcgi: malformed FCGI_BEGIN_REQUEST body")
	errTruncatedPair   = errors.New("fastcgi: truncated name-value pair")
	errParamsTooLarge  = errors.New("fastcgi: params too large")
)

// header is a record header without its version and reserved bytes.
type header struct {
	Type          recType
	ID            uint16
	ContentLength uint16
	PaddingLength uint8
}

// parseHeader decodes a record header; b must be headerLen bytes long.
func parseHeader(b []byte) (header, error) {
	if len(b) != headerLen {
		return header{}, fmt.Errorf("fastcgi: record header of %d bytes, want %d", len(b), headerLen)
	}
	if b[0] != version1 {
		return header{}, fmt.Errorf("%w %d", errBadVersion, b[0])
	}
	return header{
		Type:          recType(b[1]),
		ID:            binary.BigEndian.Uint16(b[2:]),
		ContentLength: binary.BigEndian.Uint16(b[4:]),
		PaddingLength: b[6],
	}, nil
}

// appendHeader appends a record header. It panics when contentLen or padLen
// does not fit in its field: that is a bug in the caller, and truncating it
// would desynchronise the stream.
func appendHeader(dst []byte, t recType, id uint16, contentLen int, padLen int) []byte {
	if contentLen < 0 || contentLen > maxContent || padLen < 0 || padLen > maxPad {
		panic(fmt.Sprintf("fastcgi: record of %d content and %d padding bytes", contentLen, padLen))
	}
	dst = append(dst, version1, byte(t))
	dst = binary.BigEndian.AppendUint16(dst, id)
	dst = binary.BigEndian.AppendUint16(dst, uint16(contentLen))
	return append(dst, byte(padLen), 0)
}

// appendRecord appends one record holding content, padded with zero bytes
// to a multiple of 8. content must fit in one record (maxContent bytes);
// appendStream splits longer ones.
func appendRecord(dst []byte, t recType, id uint16, content []byte) []byte {
	pad := -len(content) & 7
	dst = appendHeader(dst, t, id, len(content), pad)
	dst = append(dst, content...)
	return append(dst, make([]byte, pad)...)
}

// appendStream appends p as records of stream type t, each holding at most
// maxStreamChunk bytes so that no padding is needed but on the last. An
// empty p appends one empty record: the end of the stream.
func appendStream(dst []byte, t recType, id uint16, p []byte) []byte {
	n := max(1, (len(p)+maxStreamChunk-1)/maxStreamChunk)
	dst = slices.Grow(dst, len(p)+n*(headerLen+7))
	for len(p) > maxStreamChunk {
		dst = appendRecord(dst, t, id, p[:maxStreamChunk])
		p = p[maxStreamChunk:]
	}
	return appendRecord(dst, t, id, p)
}

// appendEndRequest appends an FCGI_END_REQUEST record.
func appendEndRequest(dst []byte, id uint16, appStatus uint32, ps protocolStatus) []byte {
	dst = appendHeader(dst, typeEndRequest, id, 8, 0)
	dst = binary.BigEndian.AppendUint32(dst, appStatus)
	return append(dst, byte(ps), 0, 0, 0)
}

// appendUnknownType appends the FCGI_UNKNOWN_TYPE answer to a management
// record of type t.
func appendUnknownType(dst []byte, t recType) []byte {
	dst = appendHeader(dst, typeUnknownType, 0, 8, 0)
	return append(dst, byte(t), 0, 0, 0, 0, 0, 0, 0)
}

// parseBeginRequest decodes the body of FCGI_BEGIN_REQUEST, which is 8
// bytes long.
func parseBeginRequest(content []byte) (role uint16, flags uint8, err error) {
	if len(content) != 8 {
		return 0, 0, fmt.Errorf("%w: %d bytes, want 8", errBadBeginRequest, len(content))
	}
	return binary.BigEndian.Uint16(content), content[2], nil
}

// appendPair appends a name-value pair. A length field holds at most
// 2^31-1; appendPair panics on a longer name or value, which no real
// program builds (and which a 32-bit platform cannot hold).
func appendPair(dst []byte, name, value string) []byte {
	dst = appendPairLen(dst, len(name))
	dst = appendPairLen(dst, len(value))
	dst = append(dst, name...)
	return append(dst, value...)
}

func appendPairLen(dst []byte, n int) []byte {
	switch {
	case n < 0x80:
		return append(dst, byte(n))
	case n <= maxPairLen:
		return binary.BigEndian.AppendUint32(dst, uint32(n)|1<<31)
	}
	panic("fastcgi: name-value pair field longer than 2^31-1 bytes")
}

// pairDecoder decodes a stream of name-value pairs (FCGI_PARAMS) fed record
// by record; a pair may straddle records.
type pairDecoder struct {
	max  int    // bytes the stream may hold
	n    int    // bytes fed so far
	tail []byte // start of a pair whose end has not arrived
	err  error  // sticky
}

// newPairDecoder returns a decoder for a stream of at most maxBytes bytes.
func newPairDecoder(maxBytes int) pairDecoder {
	return pairDecoder{max: maxBytes}
}

// feed decodes the pairs completed by p and calls fn with each, in stream
// order; the pairs completed by one call share one allocation. A pair left
// incomplete is kept for the next call. feed fails with an error wrapping errParamsTooLarge when
// the stream passes its limit, or as soon as a pair's length fields claim
// more than the limit leaves; an error from fn is returned as is. Errors are
// sticky.
func (d *pairDecoder) feed(p []byte, fn func(name, value string) error) error {
	if d.err != nil {
		return d.err
	}
	if len(p) > d.max-d.n {
		d.err = fmt.Errorf("%w: more than %d bytes", errParamsTooLarge, d.max)
		return d.err
	}
	off := d.n // stream offset of p[0]
	d.n += len(p)
	if len(d.tail) > 0 {
		// Complete the pending pair, taking from p no more than it needs.
		start := off - len(d.tail)
		for {
			want, hn, nameLen, ok := d.pairLen(d.tail, start)
			if d.err != nil {
				return d.err
			}
			if ok && len(d.tail) >= want {
				if err := d.emit(d.tail[hn:want], nameLen, fn); err != nil {
					return err
				}
				break
			}
			if len(p) == 0 {
				return nil
			}
			k := min(want-len(d.tail), len(p))
			d.tail = append(d.tail, p[:k]...)
			p = p[k:]
			off += k
		}
		d.tail = d.tail[:0]
	}
	// The pairs complete in p share one string: one allocation a record
	// rather than one a pair.
	end := 0
	for end < len(p) {
		want, _, _, ok := d.pairLen(p[end:], off+end)
		if d.err != nil || !ok || len(p)-end < want {
			break
		}
		end += want
	}
	// An oversize pair further on is reported after the pairs before it,
	// as when the stream comes a byte at a time.
	scanErr := d.err
	whole := string(p[:end])
	for i := 0; i < end; {
		want, hn, nameLen, _ := d.pairLen(p[i:], off+i)
		pair := whole[i+hn : i+want]
		if err := fn(pair[:nameLen], pair[nameLen:]); err != nil {
			d.err = err
			return err
		}
		i += want
	}
	if scanErr != nil {
		return scanErr
	}
	d.tail = append(d.tail, p[end:]...)
	return nil
}

// pairLen decodes the length fields at the start of b, a pair beginning at
// stream offset off. When both fields are in b, ok is true, want is the
// pair's whole length and hn that of its length fields; otherwise want is
// the least length b must reach to tell more. A pair too long for the limit
// sets d.err.
func (d *pairDecoder) pairLen(b []byte, off int) (want, hn, nameLen int, ok bool) {
	if len(b) == 0 {
		return 1, 0, 0, false
	}
	hn = lenWidth(b[0])
	if len(b) <= hn {
		return hn + 1, 0, 0, false
	}
	hn += lenWidth(b[hn])
	if len(b) < hn {
		return hn, 0, 0, false
	}
	nameLen = decodeLen(b)
	valueLen := decodeLen(b[lenWidth(b[0]):])
	size := int64(hn) + int64(nameLen) + int64(valueLen)
	if size > int64(d.max-off) {
		d.err = fmt.Errorf("%w: a name-value pair of %d bytes at offset %d passes the limit of %d bytes",
			errParamsTooLarge, size, off, d.max)
		return 0, 0, 0, false
	}
	return int(size), hn, nameLen, true
}

// emit calls fn with the pair whose name and value are b.
func (d *pairDecoder) emit(b []byte, nameLen int, fn func(name, value string) error) error {
	s := string(b)
	if err := fn(s[:nameLen], s[nameLen:]); err != nil {
		d.err = err
		return err
	}
	return nil
}

// finish ends the stream: it fails if a pair is incomplete.
func (d *pairDecoder) finish() error {
	if d.err != nil {
		return d.err
	}
	if len(d.tail) > 0 {
		d.err = fmt.Errorf("%w: %d bytes at the end of the stream", errTruncatedPair, len(d.tail))
	}
	d.tail = nil
	return d.err
}

// lenWidth is the width of the length field that begins with byte b0.
func lenWidth(b0 byte) int {
	if b0&0x80 != 0 {
		return 4
	}
	return 1
}

// decodeLen decodes the length field at the start of b, which holds it whole.
func decodeLen(b []byte) int {
	if b[0]&0x80 == 0 {
		return int(b[0])
	}
	return int(binary.BigEndian.Uint32(b) & maxPairLen)
}

// parsePairs decodes content, a whole block of name-value pairs such as
// the body of FCGI_GET_VALUES.
func parsePairs(content []byte) ([][2]string, error) {
	d := newPairDecoder(max(len(content), maxContent))
	var pairs [][2]string
	err := d.feed(content, func(name, value string) error {
		pairs = append(pairs, [2]string{name, value})
		return nil
	})
	if err == nil {
		err = d.finish()
	}
	if err != nil {
		return nil, err
	}
	return pairs, nil
}
