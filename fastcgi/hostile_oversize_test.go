package fastcgi

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// startChildServer runs the test binary as a FastCGI server with the
// default limits (serveChild) in a process of its own, so that its peak
// RSS is the server's alone. It returns the socket, the child's pid and its
// log.
func startChildServer(t *testing.T) (addr string, pid int, logs *syncBuffer) {
	t.Helper()
	addr = filepath.Join(t.TempDir(), "s")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childServeEnv+"="+addr)
	logs = new(syncBuffer)
	cmd.Stderr = logs
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close() // the child closes its server and exits
		if err := cmd.Wait(); err != nil {
			t.Errorf("child server: %v; log:\n%s", err, logs)
		}
	})
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.Dial("unix", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the child server did not start: %v; log:\n%s", err, logs)
		}
		time.Sleep(10 * time.Millisecond) // bounded poll for a process we cannot signal on
	}
	return addr, cmd.Process.Pid, logs
}

// download asks the child for an n-byte body on id and checks it came.
func (rc *rawConn) download(id uint16, n int) {
	rc.t.Helper()
	rc.send(requestRecords(id, true, "", "REQUEST_METHOD=GET", "REQUEST_URI=/download?n="+strconv.Itoa(n)))
	got := rc.readResponses(id)[id]
	if _, body, ok := bytes.Cut(got.stdout, []byte("\r\n\r\n")); !ok || len(body) != n || got.protoStatus != statusRequestComplete {
		rc.t.Fatalf("request %d: %d bytes, %q...: want a %d-byte body", id, len(got.stdout), got.stdout[:min(len(got.stdout), 40)], n)
	}
}

// sendAsync writes b on rc's connection in a goroutine, so that the test
// can read the answers meanwhile; the returned function waits for the end
// of the write.
func (rc *rawConn) sendAsync(b []byte) (wait func()) {
	errc := make(chan error, 1)
	go func() {
		_, err := rc.c.Write(b)
		errc <- err
	}()
	return func() {
		rc.t.Helper()
		if err := <-errc; err != nil {
			rc.t.Fatalf("write: %v", err)
		}
	}
}

// pairsRecords returns PARAMS records for id holding n bytes or more of
// whole name-value pairs, each pair within one record. end adds the empty
// record that ends the stream.
func pairsRecords(id uint16, n int, end bool) []byte {
	value := strings.Repeat("v", 60000)
	var b []byte
	for i, sent := 0, 0; sent < n; i++ {
		pair := appendPair(nil, "HTTP_X_"+strconv.Itoa(i), value)
		b = appendRecord(b, typeParams, id, pair)
		sent += len(pair)
	}
	if end {
		b = appendRecord(b, typeParams, id, nil)
	}
	return b
}

// connParamsBound is the peak RSS growth allowed where one connection's
// requests hold header blocks: MaxConnParamsBytes of them, which a pair
// still arriving may hold twice (its partial copy and the decoded
// variables), beside the growth allowed where nothing is held.
const connParamsBound = 2*DefaultMaxConnParamsBytes + 8<<20

func getValuesQuery() []byte { return appendPair(nil, "FCGI_MPXS_CONNS", "") }

// wantParamsRefused reads the answers that come before FCGI_GET_VALUES's,
// for requests 1 to n: each must be a 431 refusal, and requests from the
// first refused on must all be refused. It returns how many were not.
func wantParamsRefused(t *testing.T, rc *rawConn, n int) (held int) {
	t.Helper()
	refused := make(map[uint16]*response)
	for {
		r := rc.mustRead()
		if r.h.Type == typeGetValuesResult {
			break
		}
		resp := refused[r.h.ID]
		if resp == nil {
			resp = new(response)
			refused[r.h.ID] = resp
		}
		switch r.h.Type {
		case typeStdout:
			resp.stdout = append(resp.stdout, r.content...)
		case typeEndRequest:
			resp.protoStatus = protocolStatus(r.content[4])
		default:
			t.Fatalf("request %d: unexpected %s", r.h.ID, r.h.Type)
		}
	}
	held = n - len(refused)
	for id := uint16(held + 1); id <= uint16(n); id++ {
		got := refused[id]
		if got == nil || !bytes.HasPrefix(got.stdout, []byte("Status: 431 ")) || got.protoStatus != statusRequestComplete {
			t.Fatalf("request %d of %d (%d let in) = %+v, want 431", id, n, held, got)
		}
	}
	return held
}

// TestOversizeInput sends a server in a process of its own (default limits)
// more than any limit allows, and checks the answer, the log line, that the
// server goes on, and its peak RSS.
func TestOversizeInput(t *testing.T) {
	const small = 8 << 20 // peak RSS growth allowed where nothing is held
	tests := []struct {
		name  string
		log   string // in the server's log
		bound int64  // peak RSS growth allowed
		run   func(t *testing.T, rc *rawConn, addr string)
	}{
		{
			name: "16 MiB of params: 431, the rest dropped",
			log:  "params too large", bound: small,
			run: func(t *testing.T, rc *rawConn, _ string) {
				b := beginRecord(1, roleResponder, true)
				b = append(b, pairsRecords(1, 16<<20, true)...)
				wait := rc.sendAsync(appendRecord(b, typeStdin, 1, nil))
				got := rc.readResponses(1)[1]
				if !bytes.HasPrefix(got.stdout, []byte("Status: 431 ")) || got.protoStatus != statusRequestComplete {
					t.Errorf("answer = %.60q %s, want 431", got.stdout, got.protoStatus)
				}
				wait()
				rc.download(2, 5)
			},
		},
		{
			name: "one pair whose length claims 2 GiB: 431 at once",
			log:  "a name-value pair of 2147483656 bytes", bound: small,
			run: func(t *testing.T, rc *rawConn, _ string) {
				b := beginRecord(1, roleResponder, true)
				head := []byte{4, 0xff, 0xff, 0xff, 0xff, 'H', 'T', 'T', 'P'} // value length 2^31-1
				b = appendRecord(b, typeParams, 1, head)
				b = appendStream(b, typeParams, 1, bytes.Repeat([]byte("v"), 16<<20))
				wait := rc.sendAsync(b)
				got := rc.readResponses(1)[1]
				if !bytes.HasPrefix(got.stdout, []byte("Status: 431 ")) {
					t.Errorf("answer = %.60q, want 431", got.stdout)
				}
				wait()
				rc.download(2, 5)
			},
		},
		{
			name: "1000 request ids on one connection: 900 FCGI_OVERLOADED",
			log:  "too many requests on one connection", bound: small,
			run: func(t *testing.T, rc *rawConn, addr string) {
				var b []byte
				for id := uint16(1); id <= 1000; id++ {
					b = append(b, beginRecord(id, roleResponder, true)...)
				}
				wait := rc.sendAsync(b)
				ids := make([]uint16, 0, 900)
				for id := uint16(DefaultMaxRequestsPerConn + 1); id <= 1000; id++ {
					ids = append(ids, id)
				}
				for id, got := range rc.readResponses(ids...) {
					if got.protoStatus != statusOverloaded || len(got.stdout) > 0 {
						t.Fatalf("request %d: %s %q, want FCGI_OVERLOADED", id, got.protoStatus, got.stdout)
					}
				}
				wait()
				other := dialRaw(t, addr)
				other.download(1, 5)
			},
		},
		{
			name: "100 ids each holding 120 KB of an unfinished header block: 431 past MaxConnParamsBytes",
			log:  "params too large", bound: connParamsBound,
			run: func(t *testing.T, rc *rawConn, addr string) {
				var b []byte
				for id := uint16(1); id <= DefaultMaxRequestsPerConn; id++ {
					b = append(b, beginRecord(id, roleResponder, true)...)
					b = append(b, pairsRecords(id, 120000, false)...)
				}
				wait := rc.sendAsync(appendRecord(b, typeGetValues, 0, getValuesQuery()))
				// The answer to GET_VALUES comes once every record before
				// it was read.
				held := wantParamsRefused(t, rc, DefaultMaxRequestsPerConn)
				wait()
				if held > DefaultMaxConnParamsBytes/120000 {
					t.Errorf("%d header blocks of 120 KB held on one connection, want at most %d", held, DefaultMaxConnParamsBytes/120000)
				}
				other := dialRaw(t, addr)
				other.download(1, 5)
			},
		},
		{
			name: "100 ids each with a 120 KB header block, waiting for their bodies: 431 past MaxConnParamsBytes",
			log:  "params too large", bound: connParamsBound,
			run: func(t *testing.T, rc *rawConn, addr string) {
				var b []byte
				for id := uint16(1); id <= DefaultMaxRequestsPerConn; id++ {
					b = append(b, beginRecord(id, roleResponder, true)...)
					var pairs []byte
					for _, kv := range [][2]string{{"REQUEST_METHOD", "POST"}, {"REQUEST_URI", "/upload"}, {"CONTENT_LENGTH", "5"}} {
						pairs = appendPair(pairs, kv[0], kv[1])
					}
					b = appendRecord(b, typeParams, id, pairs)
					b = append(b, pairsRecords(id, 120000, true)...)
				}
				wait := rc.sendAsync(appendRecord(b, typeGetValues, 0, getValuesQuery()))
				held := wantParamsRefused(t, rc, DefaultMaxRequestsPerConn)
				wait()
				if held > DefaultMaxConnParamsBytes/120000 {
					t.Errorf("%d header blocks of 120 KB held on one connection, want at most %d", held, DefaultMaxConnParamsBytes/120000)
				}
				// The requests let in are answered once their bodies come.
				var bodies []byte
				ids := make([]uint16, 0, held)
				for id := uint16(1); id <= uint16(held); id++ {
					bodies = appendStream(bodies, typeStdin, id, []byte("hello"))
					bodies = appendStream(bodies, typeStdin, id, nil)
					ids = append(ids, id)
				}
				rc.send(bodies)
				want := fmt.Sprintf("\r\n\r\n5 %x", sha256.Sum256([]byte("hello")))
				for id, got := range rc.readResponses(ids...) {
					if !bytes.HasSuffix(got.stdout, []byte(want)) {
						t.Errorf("request %d = %.60q, want an upload of 5 bytes", id, got.stdout)
					}
				}
				other := dialRaw(t, addr)
				other.download(1, 5)
			},
		},
		{
			name: "32 MiB body past the handler's http.MaxBytesReader: 413, the rest dropped",
			log:  "", bound: small,
			run: func(t *testing.T, rc *rawConn, _ string) {
				const size = 32 << 20
				b := beginRecord(1, roleResponder, true)
				b = append(b, paramsRecords(1, "REQUEST_METHOD=POST", "REQUEST_URI=/limited", "CONTENT_LENGTH="+strconv.Itoa(size))...)
				b = appendStream(b, typeStdin, 1, bytes.Repeat([]byte("b"), size))
				wait := rc.sendAsync(appendStream(b, typeStdin, 1, nil))
				got := rc.readResponses(1)[1]
				if !bytes.HasPrefix(got.stdout, []byte("Status: 413 ")) {
					t.Errorf("answer = %.60q, want 413", got.stdout)
				}
				wait()
				rc.download(2, 5)
			},
		},
		{
			name: "a flood of tiny records",
			log:  "", bound: small,
			run: func(t *testing.T, rc *rawConn, _ string) {
				ignored, unknown, body := 100000, 50000, 100000
				if raceEnabled {
					ignored, unknown, body = ignored/10, unknown/10, body/10
				}
				w := bufio.NewWriterSize(rc.c, 64<<10)
				errc := make(chan error, 1)
				sum := sha256.New()
				go func() {
					for range ignored { // for an id not in use: dropped
						w.Write(appendRecord(nil, typeStdin, 77, nil))
					}
					for range unknown { // each answered FCGI_UNKNOWN_TYPE
						w.Write(appendRecord(nil, recType(42), 0, nil))
					}
					w.Write(beginRecord(1, roleResponder, true))
					w.Write(paramsRecords(1, "REQUEST_METHOD=POST", "REQUEST_URI=/upload", "CONTENT_LENGTH="+strconv.Itoa(body)))
					rec := make([]byte, 0, 16)
					for i := range body {
						c := byte('a' + i%26)
						sum.Write([]byte{c})
						rec = appendRecord(rec[:0], typeStdin, 1, []byte{c})
						w.Write(rec)
					}
					w.Write(appendRecord(nil, typeStdin, 1, nil))
					errc <- w.Flush()
				}()
				for i := range unknown {
					if r := rc.mustRead(); r.h.Type != typeUnknownType || r.content[0] != 42 {
						t.Fatalf("answer %d: %s %q, want FCGI_UNKNOWN_TYPE", i, r.h.Type, r.content)
					}
				}
				got := rc.readResponses(1)[1]
				if err := <-errc; err != nil {
					t.Fatal(err)
				}
				want := fmt.Sprintf("\r\n\r\n%d %x", body, sum.Sum(nil))
				if !bytes.HasSuffix(got.stdout, []byte(want)) {
					t.Errorf("upload of %d one-byte records answered %q, want %q", body, got.stdout, want)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, pid, logs := startChildServer(t)
			rc := dialRaw(t, addr)
			rc.download(1, 5) // warm up
			before, err := peakRSS(pid)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			tt.run(t, rc, addr)
			took := time.Since(start)
			after, err := peakRSS(pid)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("server peak RSS %.1f MiB, %+.1f MiB over its %.1f MiB before (allowed %+.1f MiB); took %v",
				float64(after)/(1<<20), float64(after-before)/(1<<20), float64(before)/(1<<20), float64(tt.bound)/(1<<20), took.Round(time.Millisecond))
			if after-before > tt.bound && !raceEnabled {
				t.Errorf("server peak RSS grew by %d bytes, want at most %d", after-before, tt.bound)
			}
			if !strings.Contains(logs.String(), tt.log) {
				t.Errorf("server log lacks %q:\n%s", tt.log, logs)
			}
			failed := 0
			if t.Failed() {
				failed = 1
			}
			reliabilityRow(t, "FastCGI oversize: "+tt.name, "-", failed, after>>10, "-", "-")
		})
	}
}
