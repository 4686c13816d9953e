package fastcgi

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

// FuzzRecordReader checks that every record read is exactly the bytes of
// the input, that reading byte by byte gives the same records, and that
// the input ends only in the ways next documents.
func FuzzRecordReader(f *testing.F) {
	good := rawRecord(typeParams, 7, []byte{5, 2, 'H', 'T', 'T', 'P', 'S', 'o', 'n'}, 7)
	for _, seed := range [][]byte{
		nil,
		good,
		good[:3],
		slices.Concat(good, good[:7]),
		good[:headerLen+4],
		good[:headerLen+9],
		good[:len(good)-1],
		slices.Concat([]byte{2}, good[1:]),
		slices.Concat(good, []byte{0}, good[1:]),
		rawRecord(typeStdin, 1, []byte("hello, world"), 255),
		rawRecord(typeStdin, 1, nil, 0),
		[]byte("GET / HTTP/1.1\r\n\r\n"),
		appendEndRequest(appendUnknownType(nil, 42), 1, 0, statusOverloaded),
		benchRecords(),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rr := newRecordReader(bytes.NewReader(data))
		slow := newRecordReader(iotest.OneByteReader(bytes.NewReader(data)))
		off := 0
		for {
			h, content, err := rr.next()
			sh, scontent, serr := slow.next()
			if sh != h || !bytes.Equal(scontent, content) || readErrClass(serr) != readErrClass(err) {
				t.Fatalf("at %d: byte by byte next() = %+v, %q, %v, want %+v, %q, %v", off, sh, scontent, serr, h, content, err)
			}
			rest := data[off:]
			if err != nil {
				switch {
				case err == io.EOF:
					if len(rest) != 0 {
						t.Fatalf("at %d: next() = io.EOF with %d bytes left", off, len(rest))
					}
				case errors.Is(err, io.ErrUnexpectedEOF):
					if len(rest) == 0 {
						t.Fatalf("at %d: next() = %v at the end of the input, want io.EOF", off, err)
					}
				case errors.Is(err, errBadVersion):
					if rest[0] == version1 {
						t.Fatalf("at %d: next() = %v for version %d", off, err, rest[0])
					}
				default:
					t.Fatalf("at %d: next() = unexpected error %v", off, err)
				}
				return
			}
			n := headerLen + len(content) + int(h.PaddingLength)
			if n > len(rest) {
				t.Fatalf("at %d: next() returned a %d-byte record from %d bytes", off, n, len(rest))
			}
			enc := appendHeader(nil, h.Type, h.ID, len(content), int(h.PaddingLength))
			if !bytes.Equal(enc[:headerLen-1], rest[:headerLen-1]) {
				t.Fatalf("at %d: header %+v encodes to %x, input has %x", off, h, enc, rest[:headerLen])
			}
			if !bytes.Equal(content, rest[headerLen:headerLen+len(content)]) {
				t.Fatalf("at %d: content %q is not the input's", off, content)
			}
			off += n
		}
	})
}

// readErrClass sorts the errors of recordReader.next.
func readErrClass(err error) string {
	switch {
	case err == nil:
		return "nil"
	case err == io.EOF:
		return "EOF"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "unexpected EOF"
	case errors.Is(err, errBadVersion):
		return "bad version"
	}
	return "other: " + err.Error()
}

// FuzzPairs checks that decoding a stream byte by byte gives what decoding
// it whole gives, and that what decodes encodes back to the same pairs.
func FuzzPairs(f *testing.F) {
	for _, seed := range [][]byte{
		nil,
		{5, 2, 'H', 'T', 'T', 'P', 'S', 'o', 'n'},
		{0, 0},
		{0x80, 0, 0, 1, 0x80, 0, 0, 2, 'a', 'b', 'c'},
		slices.Concat([]byte{1, 0x80, 0, 1, 0x2c, 'C'}, bytes.Repeat([]byte{'v'}, 300)),
		{1, 1, 0, 0xff},
		{5},
		{0x80, 0},
		{1, 0x80, 0, 0},
		{5, 2, 'H', 'T'},
		{1, 1, 'a', 'b', 3, 0, 'x'},
		{0xff, 0xff, 0xff, 0xff, 0},
		{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		encodePairs([][2]string{{"A", "1"}, {strings.Repeat("B", 130), "2"}, {"C", strings.Repeat("3", 140)}}),
		encodePairs(sampleParams()),
	} {
		f.Add(seed, uint16(len(seed)))
		f.Add(seed, uint16(len(seed)/2))
	}
	f.Fuzz(func(t *testing.T, data []byte, limit uint16) {
		lim := int(limit)
		whole, err := decodeChunks(data, lim, 0)
		bytewise, berr := decodeChunks(data, lim, 1)
		for _, sentinel := range []error{errParamsTooLarge, errTruncatedPair} {
			if errors.Is(err, sentinel) != errors.Is(berr, sentinel) {
				t.Fatalf("decoding %x with limit %d: byte by byte error = %v, whole %v", data, lim, berr, err)
			}
		}
		if (err == nil) != (berr == nil) {
			t.Fatalf("decoding %x with limit %d: byte by byte error = %v, whole %v", data, lim, berr, err)
		}
		if len(data) <= lim && !slices.Equal(bytewise, whole) {
			t.Fatalf("decoding %x byte by byte = %q, whole %q", data, bytewise, whole)
		}
		if err != nil {
			return
		}
		enc := encodePairs(whole)
		if len(enc) > len(data) {
			t.Fatalf("encoding %q gives %d bytes, more than the %d decoded", whole, len(enc), len(data))
		}
		again, err := decodeChunks(enc, len(enc), 0)
		if err != nil || !slices.Equal(again, whole) {
			t.Fatalf("decode(encode(%q)) = %q, %v", whole, again, err)
		}
		if re := encodePairs(again); !bytes.Equal(re, enc) {
			t.Fatalf("encode(decode(%x)) = %x, want the same bytes", enc, re)
		}
	})
}
