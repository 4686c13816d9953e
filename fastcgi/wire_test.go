package fastcgi

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// rawRecord builds a record byte by byte, independently of appendHeader,
// with pad bytes of padding filled with 0xaa (padding content is ignored).
func rawRecord(t recType, id uint16, content []byte, pad int) []byte {
	b := []byte{1, byte(t), byte(id >> 8), byte(id), byte(len(content) >> 8), byte(len(content)), byte(pad), 0}
	b = append(b, content...)
	return append(b, bytes.Repeat([]byte{0xaa}, pad)...)
}

// sampleParams is a typical FCGI_PARAMS stream from nginx.
func sampleParams() [][2]string {
	return [][2]string{
		{"SCRIPT_FILENAME", "/srv/www/index.php"},
		{"QUERY_STRING", "q=fastcgi&page=2"},
		{"REQUEST_METHOD", "GET"},
		{"CONTENT_TYPE", ""},
		{"CONTENT_LENGTH", ""},
		{"SCRIPT_NAME", "/index.php"},
		{"REQUEST_URI", "/index.php?q=fastcgi&page=2"},
		{"DOCUMENT_URI", "/index.php"},
		{"DOCUMENT_ROOT", "/srv/www"},
		{"SERVER_PROTOCOL", "HTTP/1.1"},
		{"REQUEST_SCHEME", "https"},
		{"HTTPS", "on"},
		{"GATEWAY_INTERFACE", "CGI/1.1"},
		{"SERVER_SOFTWARE", "nginx/1.24.0"},
		{"REMOTE_ADDR", "192.0.2.10"},
		{"REMOTE_PORT", "53412"},
		{"SERVER_ADDR", "192.0.2.1"},
		{"SERVER_PORT", "443"},
		{"SERVER_NAME", "example.com"},
		{"REDIRECT_STATUS", "200"},
		{"HTTP_HOST", "example.com"},
		{"HTTP_USER_AGENT", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"},
		{"HTTP_ACCEPT", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"},
		{"HTTP_ACCEPT_LANGUAGE", "en-GB,en;q=0.5"},
		{"HTTP_ACCEPT_ENCODING", "gzip, deflate, br"},
		{"HTTP_COOKIE", "session=" + strings.Repeat("x", 200)},
	}
}

func encodePairs(pairs [][2]string) []byte {
	var b []byte
	for _, p := range pairs {
		b = appendPair(b, p[0], p[1])
	}
	return b
}

// decodeChunks feeds b to a decoder with the given limit in chunks of at
// most size bytes (the whole of b when size <= 0) and returns the pairs
// seen before any error.
func decodeChunks(b []byte, limit, size int) ([][2]string, error) {
	d := newPairDecoder(limit)
	var pairs [][2]string
	fn := func(name, value string) error {
		pairs = append(pairs, [2]string{name, value})
		return nil
	}
	if size <= 0 {
		size = max(len(b), 1)
	}
	for c := range slices.Chunk(b, size) {
		if err := d.feed(c, fn); err != nil {
			return pairs, err
		}
	}
	return pairs, d.finish()
}

func TestRecTypeString(t *testing.T) {
	tests := []struct {
		t    recType
		want string
	}{
		{1, "FCGI_BEGIN_REQUEST"},
		{2, "FCGI_ABORT_REQUEST"},
		{3, "FCGI_END_REQUEST"},
		{4, "FCGI_PARAMS"},
		{5, "FCGI_STDIN"},
		{6, "FCGI_STDOUT"},
		{7, "FCGI_STDERR"},
		{8, "FCGI_DATA"},
		{9, "FCGI_GET_VALUES"},
		{10, "FCGI_GET_VALUES_RESULT"},
		{11, "FCGI_UNKNOWN_TYPE"},
		{0, "FCGI_TYPE(0)"},
		{12, "FCGI_TYPE(12)"},
		{42, "FCGI_TYPE(42)"},
		{255, "FCGI_TYPE(255)"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := tt.t.String(); got != tt.want {
				t.Errorf("recType(%d).String() = %q, want %q", uint8(tt.t), got, tt.want)
			}
		})
	}
}

func TestProtocolStatusString(t *testing.T) {
	tests := []struct {
		s    protocolStatus
		want string
	}{
		{0, "FCGI_REQUEST_COMPLETE"},
		{1, "FCGI_CANT_MPX_CONN"},
		{2, "FCGI_OVERLOADED"},
		{3, "FCGI_UNKNOWN_ROLE"},
		{4, "FCGI_STATUS(4)"},
		{200, "FCGI_STATUS(200)"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := tt.s.String(); got != tt.want {
				t.Errorf("protocolStatus(%d).String() = %q, want %q", uint8(tt.s), got, tt.want)
			}
		})
	}
}

func TestParseHeader(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		want    header
		wantErr error // nil: success; errAny: any error
	}{
		{"begin request", []byte{1, 1, 0, 1, 0, 8, 0, 0}, header{typeBeginRequest, 1, 8, 0}, nil},
		{"stdin max", []byte{1, 5, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, header{typeStdin, 65535, 65535, 255}, nil},
		{"management", []byte{1, 9, 0, 0, 0x01, 0x02, 6, 0}, header{typeGetValues, 0, 0x0102, 6}, nil},
		{"reserved ignored", []byte{1, 6, 0, 7, 0, 0, 0, 0xee}, header{typeStdout, 7, 0, 0}, nil},
		{"unknown type", []byte{1, 42, 0, 1, 0, 0, 0, 0}, header{recType(42), 1, 0, 0}, nil},
		{"version 0", []byte{0, 1, 0, 1, 0, 8, 0, 0}, header{}, errBadVersion},
		{"version 2", []byte{2, 1, 0, 1, 0, 8, 0, 0}, header{}, errBadVersion},
		{"http request", []byte("GET / HT"), header{}, errBadVersion},
		{"short", []byte{1, 1, 0, 1, 0, 8, 0}, header{}, errAny},
		{"long", []byte{1, 1, 0, 1, 0, 8, 0, 0, 0}, header{}, errAny},
		{"empty", nil, header{}, errAny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseHeader(tt.in)
			if !matchErr(err, tt.wantErr) {
				t.Fatalf("parseHeader(%x) error = %v, want %v", tt.in, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("parseHeader(%x) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

// errAny in a table means "some error".
var errAny = errors.New("any error")

func matchErr(err, want error) bool {
	switch want {
	case nil:
		return err == nil
	case errAny:
		return err != nil
	}
	return errors.Is(err, want)
}

func TestParseHeaderVersionInMessage(t *testing.T) {
	_, err := parseHeader([]byte{71, 69, 84, 32, 47, 32, 72, 84})
	if err == nil || !strings.Contains(err.Error(), "71") || !strings.HasPrefix(err.Error(), "fastcgi: ") {
		t.Errorf("parseHeader(GET / HT) error = %v, want a fastcgi: error naming version 71", err)
	}
}

func TestAppendHeader(t *testing.T) {
	tests := []struct {
		name       string
		t          recType
		id         uint16
		contentLen int
		padLen     int
		want       []byte
	}{
		{"empty", typeStdout, 1, 0, 0, []byte{1, 6, 0, 1, 0, 0, 0, 0}},
		{"end request", typeEndRequest, 0x0102, 8, 0, []byte{1, 3, 1, 2, 0, 8, 0, 0}},
		{"max", typeStderr, 0xffff, 65535, 255, []byte{1, 7, 0xff, 0xff, 0xff, 0xff, 0xff, 0}},
		{"management", typeGetValuesResult, 0, 300, 4, []byte{1, 10, 0, 0, 1, 44, 4, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := []byte("xy")
			got := appendHeader(prefix, tt.t, tt.id, tt.contentLen, tt.padLen)
			want := append([]byte("xy"), tt.want...)
			if !bytes.Equal(got, want) {
				t.Errorf("appendHeader(%q, %v, %d, %d, %d) = %x, want %x", prefix, tt.t, tt.id, tt.contentLen, tt.padLen, got, want)
			}
		})
	}
}

func TestAppendHeaderPanics(t *testing.T) {
	tests := []struct {
		name               string
		contentLen, padLen int
	}{
		{"content too long", 65536, 0},
		{"negative content", -1, 0},
		{"padding too long", 0, 256},
		{"negative padding", 0, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("appendHeader(nil, FCGI_STDOUT, 1, %d, %d) did not panic", tt.contentLen, tt.padLen)
				}
			}()
			appendHeader(nil, typeStdout, 1, tt.contentLen, tt.padLen)
		})
	}
}

func TestAppendRecord(t *testing.T) {
	big := bytes.Repeat([]byte{'z'}, maxContent)
	tests := []struct {
		name    string
		content []byte
		want    []byte
	}{
		{"empty", nil, []byte{1, 6, 0, 3, 0, 0, 0, 0}},
		{"one byte", []byte("a"), []byte{1, 6, 0, 3, 0, 1, 7, 0, 'a', 0, 0, 0, 0, 0, 0, 0}},
		{"seven bytes", []byte("abcdefg"), []byte{1, 6, 0, 3, 0, 7, 1, 0, 'a', 'b', 'c', 'd', 'e', 'f', 'g', 0}},
		{"eight bytes", []byte("abcdefgh"), []byte{1, 6, 0, 3, 0, 8, 0, 0, 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'}},
		{"nine bytes", []byte("abcdefghi"), []byte{1, 6, 0, 3, 0, 9, 7, 0, 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 0, 0, 0, 0, 0, 0, 0}},
		{"max content", big, slices.Concat([]byte{1, 6, 0, 3, 0xff, 0xff, 1, 0}, big, []byte{0})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := appendRecord(nil, typeStdout, 3, tt.content)
			if !bytes.Equal(got, tt.want) {
				t.Errorf("appendRecord(nil, FCGI_STDOUT, 3, %.20q) = %.40x, want %.40x", tt.content, got, tt.want)
			}
			if len(got)%8 != 0 {
				t.Errorf("len(appendRecord(nil, FCGI_STDOUT, 3, %.20q)) = %d, want a multiple of 8", tt.content, len(got))
			}
		})
	}
}

func TestAppendStream(t *testing.T) {
	data := make([]byte, 3*maxStreamChunk+3)
	for i := range data {
		data[i] = byte(i * 7)
	}
	tests := []struct {
		name   string
		p      []byte
		chunks []int // content lengths of the records, in order
	}{
		{"nil is end of stream", nil, []int{0}},
		{"empty is end of stream", []byte{}, []int{0}},
		{"small", data[:5], []int{5}},
		{"one full chunk", data[:maxStreamChunk], []int{maxStreamChunk}},
		{"chunk plus one", data[:maxStreamChunk+1], []int{maxStreamChunk, 1}},
		{"max content splits", data[:maxContent], []int{maxStreamChunk, 7}},
		{"three chunks and a bit", data, []int{maxStreamChunk, maxStreamChunk, maxStreamChunk, 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var want []byte
			rest := tt.p
			for _, n := range tt.chunks {
				want = append(want, rawRecordZero(typeStderr, 9, rest[:n])...)
				rest = rest[n:]
			}
			got := appendStream([]byte("x"), typeStderr, 9, tt.p)
			if !bytes.Equal(got[1:], want) {
				t.Errorf("appendStream(FCGI_STDERR, 9, %d bytes) = %d bytes %.32x..., want %d bytes %.32x...", len(tt.p), len(got)-1, got[1:], len(want), want)
			}
		})
	}
}

// rawRecordZero is rawRecord with zero padding to a multiple of 8, as
// appendRecord writes it.
func rawRecordZero(t recType, id uint16, content []byte) []byte {
	b := rawRecord(t, id, content, -len(content)&7)
	clear(b[headerLen+len(content):])
	return b
}

func TestAppendEndRequest(t *testing.T) {
	tests := []struct {
		name      string
		id        uint16
		appStatus uint32
		ps        protocolStatus
		want      []byte
	}{
		{"complete", 1, 0, statusRequestComplete, []byte{1, 3, 0, 1, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"app status", 0x0102, 0x01020304, statusRequestComplete, []byte{1, 3, 1, 2, 0, 8, 0, 0, 1, 2, 3, 4, 0, 0, 0, 0}},
		{"cant multiplex", 2, 0, statusCantMultiplex, []byte{1, 3, 0, 2, 0, 8, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0}},
		{"overloaded", 3, 0, statusOverloaded, []byte{1, 3, 0, 3, 0, 8, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0}},
		{"unknown role", 0xffff, 0xffffffff, statusUnknownRole, []byte{1, 3, 0xff, 0xff, 0, 8, 0, 0, 0xff, 0xff, 0xff, 0xff, 3, 0, 0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := appendEndRequest(nil, tt.id, tt.appStatus, tt.ps)
			if !bytes.Equal(got, tt.want) {
				t.Errorf("appendEndRequest(nil, %d, %d, %v) = %x, want %x", tt.id, tt.appStatus, tt.ps, got, tt.want)
			}
		})
	}
}

func TestAppendUnknownType(t *testing.T) {
	tests := []struct {
		name string
		t    recType
		want []byte
	}{
		{"stdin on id 0", typeStdin, []byte{1, 11, 0, 0, 0, 8, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0}},
		{"undefined type", recType(200), []byte{1, 11, 0, 0, 0, 8, 0, 0, 200, 0, 0, 0, 0, 0, 0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := appendUnknownType(nil, tt.t)
			if !bytes.Equal(got, tt.want) {
				t.Errorf("appendUnknownType(nil, %v) = %x, want %x", tt.t, got, tt.want)
			}
		})
	}
}

func TestParseBeginRequest(t *testing.T) {
	tests := []struct {
		name      string
		in        []byte
		wantRole  uint16
		wantFlags uint8
		wantErr   error
	}{
		{"responder keep conn", []byte{0, 1, 1, 0, 0, 0, 0, 0}, roleResponder, flagKeepConn, nil},
		{"authorizer", []byte{0, 2, 0, 0, 0, 0, 0, 0}, roleAuthorizer, 0, nil},
		{"filter reserved set", []byte{0, 3, 0, 9, 9, 9, 9, 9}, roleFilter, 0, nil},
		{"unknown role parses", []byte{0x12, 0x34, 0xfe, 0, 0, 0, 0, 0}, 0x1234, 0xfe, nil},
		{"short", []byte{0, 1, 1, 0, 0, 0, 0}, 0, 0, errBadBeginRequest},
		{"long", []byte{0, 1, 1, 0, 0, 0, 0, 0, 0}, 0, 0, errBadBeginRequest},
		{"empty", nil, 0, 0, errBadBeginRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			role, flags, err := parseBeginRequest(tt.in)
			if !matchErr(err, tt.wantErr) {
				t.Fatalf("parseBeginRequest(%x) error = %v, want %v", tt.in, err, tt.wantErr)
			}
			if role != tt.wantRole || flags != tt.wantFlags {
				t.Errorf("parseBeginRequest(%x) = %d, %d, want %d, %d", tt.in, role, flags, tt.wantRole, tt.wantFlags)
			}
		})
	}
}

func TestAppendPair(t *testing.T) {
	n127 := strings.Repeat("n", 127)
	n128 := strings.Repeat("n", 128)
	v300 := strings.Repeat("v", 300)
	tests := []struct {
		name, pname, value string
		wantLens           []byte // the length fields; name and value follow
	}{
		{"empty", "", "", []byte{0, 0}},
		{"short", "HTTPS", "on", []byte{5, 2}},
		{"empty value", "CONTENT_TYPE", "", []byte{12, 0}},
		{"127 one byte", n127, "x", []byte{127, 1}},
		{"128 four bytes", n128, "x", []byte{0x80, 0, 0, 128, 1}},
		{"value 300", "COOKIE", v300, []byte{6, 0x80, 0, 1, 0x2c}},
		{"both long", n128, v300, []byte{0x80, 0, 0, 128, 0x80, 0, 1, 0x2c}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := appendPair([]byte("x"), tt.pname, tt.value)
			want := slices.Concat([]byte("x"), tt.wantLens, []byte(tt.pname), []byte(tt.value))
			if !bytes.Equal(got, want) {
				t.Errorf("appendPair(%.10q, %.10q) = %.24x, want %.24x", tt.pname, tt.value, got, want)
			}
		})
	}
}

func TestPairsRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want [][2]string
	}{
		{"empty stream", nil, nil},
		{"one pair", []byte{5, 2, 'H', 'T', 'T', 'P', 'S', 'o', 'n'}, [][2]string{{"HTTPS", "on"}}},
		{"empty name and value", []byte{0, 0}, [][2]string{{"", ""}}},
		{"four-byte short lengths", []byte{0x80, 0, 0, 1, 0x80, 0, 0, 2, 'a', 'b', 'c'}, [][2]string{{"a", "bc"}}},
		{"long value", slices.Concat([]byte{1, 0x80, 0, 1, 0x2c, 'C'}, bytes.Repeat([]byte{'v'}, 300)), [][2]string{{"C", strings.Repeat("v", 300)}}},
		{"binary", []byte{1, 1, 0, 0xff}, [][2]string{{"\x00", "\xff"}}},
		{"nginx params", encodePairs(sampleParams()), sampleParams()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parsePairs(tt.in)
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("parsePairs(%.32x) = %q, %v, want %q", tt.in, got, err, tt.want)
			}
			enc := encodePairs(got)
			again, err := parsePairs(enc)
			if err != nil || !slices.Equal(again, got) {
				t.Errorf("parsePairs(encodePairs(%q)) = %q, %v, want the same", got, again, err)
			}
		})
	}
}

func TestPairDecoderStraddle(t *testing.T) {
	pairs := append(sampleParams(),
		[2]string{strings.Repeat("N", 200), strings.Repeat("V", 70000)},
		[2]string{"", ""},
		[2]string{"LAST", "1"})
	stream := encodePairs(pairs)
	tests := []struct {
		name string
		size int
	}{
		{"one byte at a time", 1},
		{"two bytes", 2},
		{"three bytes", 3},
		{"seven bytes", 7},
		{"record sized", maxStreamChunk},
		{"whole", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeChunks(stream, len(stream), tt.size)
			if err != nil || !slices.Equal(got, pairs) {
				t.Errorf("decodeChunks(stream, %d, %d) = %d pairs, %v, want %d pairs", len(stream), tt.size, len(got), err, len(pairs))
			}
		})
	}
	// Every split into two records.
	small := encodePairs([][2]string{{"A", "1"}, {strings.Repeat("B", 130), "2"}, {"C", strings.Repeat("3", 140)}})
	for i := range len(small) + 1 {
		d := newPairDecoder(len(small))
		var got [][2]string
		fn := func(n, v string) error { got = append(got, [2]string{n, v}); return nil }
		err := d.feed(small[:i], fn)
		if err == nil {
			err = d.feed(small[i:], fn)
		}
		if err == nil {
			err = d.finish()
		}
		if err != nil || len(got) != 3 || got[1][0] != strings.Repeat("B", 130) || got[2][1] != strings.Repeat("3", 140) {
			t.Errorf("feed split at %d = %.20q, %v, want the 3 pairs", i, got, err)
		}
	}
}

func TestPairDecoderTruncated(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want int // pairs decoded before the truncation
	}{
		{"one length byte", []byte{5}, 0},
		{"partial four-byte name length", []byte{0x80, 0}, 0},
		{"partial four-byte value length", []byte{1, 0x80, 0, 0}, 0},
		{"name cut", []byte{5, 2, 'H', 'T'}, 0},
		{"value cut", []byte{5, 2, 'H', 'T', 'T', 'P', 'S', 'o'}, 0},
		{"after a good pair", []byte{1, 1, 'a', 'b', 3, 0, 'x'}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, size := range []int{0, 1} {
				got, err := decodeChunks(tt.in, 1000, size)
				if !errors.Is(err, errTruncatedPair) || len(got) != tt.want {
					t.Errorf("decodeChunks(%x, 1000, %d) = %q, %v, want %d pairs, %v", tt.in, size, got, err, tt.want, errTruncatedPair)
				}
			}
			if got, err := parsePairs(tt.in); !errors.Is(err, errTruncatedPair) || got != nil {
				t.Errorf("parsePairs(%x) = %q, %v, want nil, %v", tt.in, got, err, errTruncatedPair)
			}
		})
	}
}

func TestPairDecoderOversizeLength(t *testing.T) {
	tests := []struct {
		name  string
		limit int
		in    []byte // a pair's length fields only: nothing else arrives
	}{
		{"max name length", DefaultMaxParamsBytes, []byte{0xff, 0xff, 0xff, 0xff, 0}},
		{"max value length", DefaultMaxParamsBytes, []byte{1, 0xff, 0xff, 0xff, 0xff}},
		{"both max", DefaultMaxParamsBytes, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
		{"just past the limit", 100, []byte{0x80, 0, 0, 50, 0x80, 0, 0, 43}},
		{"past what is left", 100, slices.Concat(appendPair(nil, "A", strings.Repeat("b", 80)), []byte{10, 10})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, size := range []int{0, 1} {
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				d := newPairDecoder(tt.limit)
				var err error
				chunk := len(tt.in)
				if size > 0 {
					chunk = size
				}
				for c := range slices.Chunk(tt.in, chunk) {
					if err = d.feed(c, func(string, string) error { return nil }); err != nil {
						break
					}
				}
				runtime.ReadMemStats(&after)
				if !errors.Is(err, errParamsTooLarge) {
					t.Errorf("feed(%x) in chunks of %d, limit %d = %v, want %v", tt.in, size, tt.limit, err, errParamsTooLarge)
				}
				if n := after.TotalAlloc - before.TotalAlloc; n > 64<<10 {
					t.Errorf("feed(%x) allocated %d bytes, want < 64 KiB", tt.in, n)
				}
				if cap(d.tail) > 256 {
					t.Errorf("feed(%x) kept a %d-byte tail, want at most 256", tt.in, cap(d.tail))
				}
			}
		})
	}
}

func TestPairDecoderLimit(t *testing.T) {
	pair := appendPair(nil, "NAME", "value")             // 11 bytes
	big := appendPair(nil, "A", strings.Repeat("b", 80)) // 83 bytes
	tests := []struct {
		name    string
		limit   int
		feeds   [][]byte
		want    int // pairs delivered
		wantErr error
	}{
		{"at the limit", 22, [][]byte{pair, pair}, 2, nil},
		{"one byte over", 21, [][]byte{pair, pair}, 1, errParamsTooLarge},
		{"over in one record", 21, [][]byte{slices.Concat(pair, pair)}, 0, errParamsTooLarge},
		{"claim past the limit after a straddling pair", 100, [][]byte{big[:82], slices.Concat(big[82:], []byte{10, 6})}, 1, errParamsTooLarge},
		{"claim at the limit after a straddling pair", 101, [][]byte{big[:82], slices.Concat(big[82:], []byte{10, 6})}, 1, errTruncatedPair},
		{"empty stream, zero limit", 0, nil, 0, nil},
		{"zero limit", 0, [][]byte{{0}}, 0, errParamsTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newPairDecoder(tt.limit)
			n := 0
			var err error
			for _, f := range tt.feeds {
				if err = d.feed(f, func(string, string) error { n++; return nil }); err != nil {
					break
				}
			}
			if err == nil {
				err = d.finish()
			}
			if !matchErr(err, tt.wantErr) || n != tt.want {
				t.Fatalf("decode with limit %d = %d pairs, %v, want %d, %v", tt.limit, n, err, tt.want, tt.wantErr)
			}
			if err != nil {
				if again := d.feed(pair, func(string, string) error { n++; return nil }); again != err || n != tt.want {
					t.Errorf("feed after %v = %v, %d pairs, want the same error, %d", err, again, n, tt.want)
				}
				if fin := d.finish(); fin != err {
					t.Errorf("finish() after %v = %v, want the same error", err, fin)
				}
			}
		})
	}
}

func TestPairDecoderCallbackError(t *testing.T) {
	stop := errors.New("stop")
	d := newPairDecoder(100)
	calls := 0
	fn := func(name, value string) error {
		calls++
		if name == "B" {
			return stop
		}
		return nil
	}
	in := encodePairs([][2]string{{"A", "1"}, {"B", "2"}, {"C", "3"}})
	if err := d.feed(in, fn); err != stop || calls != 2 {
		t.Errorf("feed(A, B, C) = %v after %d calls, want %v after 2", err, calls, stop)
	}
	if err := d.finish(); err != stop {
		t.Errorf("finish() = %v, want %v", err, stop)
	}
}

func TestRecordReaderPadding(t *testing.T) {
	content := []byte("hello, world")
	for pad := range maxPad + 1 {
		in := slices.Concat(rawRecord(typeStdin, 1, content, pad), rawRecord(typeStdin, 1, nil, pad))
		rr := newRecordReader(bytes.NewReader(in))
		h, got, err := rr.next()
		if err != nil || h != (header{typeStdin, 1, uint16(len(content)), uint8(pad)}) || !bytes.Equal(got, content) {
			t.Fatalf("next() with %d padding bytes = %+v, %q, %v, want %q", pad, h, got, err, content)
		}
		h, got, err = rr.next()
		if err != nil || h != (header{typeStdin, 1, 0, uint8(pad)}) || len(got) != 0 {
			t.Fatalf("second next() with %d padding bytes = %+v, %q, %v, want an empty record", pad, h, got, err)
		}
		if _, _, err := rr.next(); err != io.EOF {
			t.Fatalf("third next() with %d padding bytes error = %v, want io.EOF", pad, err)
		}
	}
}

func TestRecordReader(t *testing.T) {
	good := rawRecord(typeParams, 7, []byte{5, 2, 'H', 'T', 'T', 'P', 'S', 'o', 'n'}, 7)
	type rec struct {
		h       header
		content string
	}
	goodRec := rec{header{typeParams, 7, 9, 7}, "\x05\x02HTTPSon"}
	tests := []struct {
		name    string
		in      []byte
		want    []rec
		wantErr error // after the records in want
	}{
		{"clean EOF at once", nil, nil, io.EOF},
		{"clean EOF after a record", good, []rec{goodRec}, io.EOF},
		{"max record", rawRecord(typeStdin, 0xffff, bytes.Repeat([]byte{'m'}, maxContent), maxPad),
			[]rec{{header{typeStdin, 0xffff, maxContent, maxPad}, strings.Repeat("m", maxContent)}}, io.EOF},
		{"truncated header", good[:3], nil, io.ErrUnexpectedEOF},
		{"truncated second header", slices.Concat(good, good[:7]), []rec{goodRec}, io.ErrUnexpectedEOF},
		{"truncated content", good[:headerLen+4], nil, io.ErrUnexpectedEOF},
		{"content, no padding", good[:headerLen+9], nil, io.ErrUnexpectedEOF},
		{"truncated padding", good[:len(good)-1], nil, io.ErrUnexpectedEOF},
		{"bad version", slices.Concat([]byte{2}, good[1:]), nil, errBadVersion},
		{"bad version second", slices.Concat(good, []byte{0}, good[1:]), []rec{goodRec}, errBadVersion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rr := newRecordReader(bytes.NewReader(tt.in))
			for i, w := range tt.want {
				h, content, err := rr.next()
				if err != nil || h != w.h || string(content) != w.content {
					t.Fatalf("next() #%d = %+v, %.20q, %v, want %+v, %.20q", i, h, content, err, w.h, w.content)
				}
			}
			h, content, err := rr.next()
			if !errors.Is(err, tt.wantErr) || h != (header{}) || content != nil {
				t.Errorf("last next() = %+v, %q, %v, want %v", h, content, err, tt.wantErr)
			}
			if tt.wantErr == io.EOF && err != io.EOF {
				t.Errorf("last next() error = %#v, want io.EOF itself", err)
			}
		})
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func TestRecordReaderReadError(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name string
		r    io.Reader
	}{
		{"header", errReader{boom}},
		{"content", io.MultiReader(bytes.NewReader([]byte{1, 5, 0, 1, 0, 4, 0, 0}), errReader{boom})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := newRecordReader(tt.r).next()
			if !errors.Is(err, boom) || !strings.HasPrefix(err.Error(), "fastcgi: ") {
				t.Errorf("next() error = %v, want a fastcgi: error wrapping %v", err, boom)
			}
		})
	}
}

// loopReader serves data over and over without allocating.
type loopReader struct {
	data []byte
	off  int
}

func (r *loopReader) Read(p []byte) (int, error) {
	if r.off == len(r.data) {
		r.off = 0
	}
	n := copy(p, r.data[r.off:])
	r.off += n
	return n, nil
}

// benchRecords is a typical request's worth of records.
func benchRecords() []byte {
	var b []byte
	b = appendRecord(b, typeBeginRequest, 1, []byte{0, 1, 1, 0, 0, 0, 0, 0})
	b = appendStream(b, typeParams, 1, encodePairs(sampleParams()))
	b = appendStream(b, typeParams, 1, nil)
	b = appendStream(b, typeStdin, 1, bytes.Repeat([]byte("body"), 1000))
	return appendStream(b, typeStdin, 1, nil)
}

func TestAllocBudgets(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation counts")
	}
	records := benchRecords()
	rr := newRecordReader(&loopReader{data: records})
	rr.next() // the buffer
	if n := testing.AllocsPerRun(100, func() { rr.next() }); n != 0 {
		t.Errorf("recordReader.next allocates %v times per record, want 0", n)
	}
	dst := appendStream(nil, typeStdout, 1, make([]byte, 100<<10+3))
	p := make([]byte, 100<<10+3) // the last record is padded
	if n := testing.AllocsPerRun(100, func() { dst = appendStream(dst[:0], typeStdout, 1, p) }); n != 0 {
		t.Errorf("appendStream allocates %v times into a large enough dst, want 0", n)
	}
	params := sampleParams()
	stream := encodePairs(params)
	fn := func(string, string) error { return nil }
	n := testing.AllocsPerRun(100, func() {
		d := newPairDecoder(len(stream))
		d.feed(stream, fn)
		d.finish()
	})
	if n > 1 {
		t.Errorf("decoding %d pairs in one record allocates %v times, want one string for them all", len(params), n)
	}
}

// Budget: 0 allocs/op once the 64 KiB buffer exists.
func BenchmarkRecordReader(b *testing.B) {
	records := benchRecords()
	rr := newRecordReader(&loopReader{data: records})
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := rr.next(); err != nil {
			b.Fatal(err)
		}
	}
}

// Budget: 0 allocs/op when dst has room (the connection reuses it).
func BenchmarkAppendStream(b *testing.B) {
	p := make([]byte, 100<<10+3) // the last record is padded
	dst := appendStream(nil, typeStdout, 1, p)
	b.SetBytes(int64(len(p)))
	b.ReportAllocs()
	for b.Loop() {
		dst = appendStream(dst[:0], typeStdout, 1, p)
	}
}

// Budget: one allocation for all the pairs of one record (they share one
// string).
func BenchmarkPairDecoder(b *testing.B) {
	stream := encodePairs(sampleParams())
	fn := func(string, string) error { return nil }
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	for b.Loop() {
		d := newPairDecoder(len(stream))
		if err := d.feed(stream, fn); err != nil {
			b.Fatal(err)
		}
		if err := d.finish(); err != nil {
			b.Fatal(err)
		}
	}
}
