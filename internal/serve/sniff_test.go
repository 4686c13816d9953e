package serve

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cgirun/cgirun/internal/testlog"
)

// sniffNetworks are the kinds of socket a Sniffer is tested on.
var sniffNetworks = []string{"unix", "tcp"}

// listenOn returns a listener on network: a unix socket in a temporary
// directory, or a TCP port on loopback.
func listenOn(t testing.TB, network string) net.Listener {
	t.Helper()
	addr := "127.0.0.1:0"
	if network == "unix" {
		addr = filepath.Join(t.TempDir(), "s.sock")
	}
	l, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// startSniff runs a Sniffer on a new socket of network, closed at the
// end of the test, with its log in a buffer.
func startSniff(t *testing.T, network string, cfg SniffConfig) (*Sniffer, *testlog.Buffer) {
	t.Helper()
	logs := new(testlog.Buffer)
	cfg.Log = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := Sniff(listenOn(t, network), cfg)
	t.Cleanup(func() { s.Close() })
	return s, logs
}

// dialSend connects to l and writes b.
func dialSend(t *testing.T, l net.Listener, b []byte) net.Conn {
	t.Helper()
	c, err := net.Dial(l.Addr().Network(), l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if len(b) > 0 {
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

type acceptResult struct {
	c   net.Conn
	err error
}

// acceptAsync calls l.Accept in a goroutine; the result comes on the
// channel.
func acceptAsync(l net.Listener) <-chan acceptResult {
	ch := make(chan acceptResult, 1)
	go func() {
		c, err := l.Accept()
		ch <- acceptResult{c, err}
	}()
	return ch
}

// waitAccept returns what l.Accept returned, within waitLimit.
func waitAccept(t *testing.T, ch <-chan acceptResult) (net.Conn, error) {
	t.Helper()
	select {
	case r := <-ch:
		if r.c != nil {
			t.Cleanup(func() { r.c.Close() })
		}
		return r.c, r.err
	case <-time.After(waitLimit):
		t.Fatal("Accept did not return")
		return nil, nil
	}
}

// waitClosed reads c until the server closes it, within waitLimit, and
// returns what it read.
func waitClosed(t *testing.T, c net.Conn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(waitLimit))
	b, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the server did not close the connection")
	}
	return string(b)
}

func TestProtocolOf(t *testing.T) {
	tests := []struct {
		name string
		b    byte
		tls  bool
		want Protocol
		ok   bool
	}{
		{"FastCGI version", 0x01, false, FastCGI, true},
		{"uwsgi modifier1", 0x00, false, UWSGI, true},
		{"SCGI 1", '1', false, SCGI, true},
		{"SCGI 9", '9', false, SCGI, true},
		{"SCGI 0, for the SCGI server to refuse", '0', false, SCGI, true},
		{"HTTP GET", 'G', false, HTTP, true},
		{"HTTP A", 'A', false, HTTP, true},
		{"HTTP Z", 'Z', false, HTTP, true},
		{"TLS with TLS", 0x16, true, HTTP, true},
		{"TLS without TLS", 0x16, false, 0, false},
		{"lower case", 'g', false, 0, false},
		{"FastCGI version 2", 0x02, false, 0, false},
		{"colon", ':', false, 0, false},
		{"0xff", 0xff, true, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, ok := ProtocolOf(tt.b, tt.tls); got != tt.want || ok != tt.ok {
				t.Errorf("ProtocolOf(0x%02x, %v) = %v, %v; want %v, %v", tt.b, tt.tls, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestProtocolString(t *testing.T) {
	want := map[Protocol]string{FastCGI: "FastCGI", SCGI: "SCGI", UWSGI: "uwsgi", HTTP: "HTTP", numProtocols: "Protocol(4)"}
	for p, s := range want {
		if p.String() != s {
			t.Errorf("Protocol(%d).String() = %q, want %q", int(p), p.String(), s)
		}
	}
}

// TestSniffRoutes: each protocol's first bytes reach that protocol's
// listener whole, on the socket itself (the server keeps its raw reads
// and CloseWrite), and no other listener.
func TestSniffRoutes(t *testing.T) {
	tests := []struct {
		name string
		send string
		tls  bool
		want Protocol
	}{
		{"FastCGI", "\x01\x01\x00\x01\x00\x08\x00\x00", false, FastCGI},
		{"uwsgi", "\x00\x10\x00\x00", false, UWSGI},
		{"SCGI", "70:CONTENT_LENGTH\x000\x00", false, SCGI},
		{"HTTP", "GET / HTTP/1.1\r\n", false, HTTP},
		{"HTTPS", "\x16\x03\x01\x00", true, HTTP},
		{"one byte", "\x01", false, FastCGI},
	}
	for _, network := range sniffNetworks {
		for _, tt := range tests {
			t.Run(network+"/"+tt.name, func(t *testing.T) {
				s, _ := startSniff(t, network, SniffConfig{Timeout: waitLimit, TLS: tt.tls})
				others := map[Protocol]<-chan acceptResult{}
				for p := range numProtocols {
					if p != tt.want {
						others[p] = acceptAsync(s.Listener(p))
					}
				}
				ch := acceptAsync(s.Listener(tt.want))
				client := dialSend(t, s.Listener(tt.want), []byte(tt.send))
				c, err := waitAccept(t, ch)
				if err != nil {
					t.Fatalf("Accept: %v", err)
				}
				switch c.(type) {
				case *net.UnixConn, *net.TCPConn:
				default:
					t.Errorf("Accept returned a %T, want the socket itself", c)
				}
				client.Close()
				got, err := io.ReadAll(c)
				if err != nil || string(got) != tt.send {
					t.Errorf("the %v listener read %q, %v; want %q", tt.want, got, err, tt.send)
				}
				s.Close()
				for p, ch := range others {
					if c, err := waitAccept(t, ch); !errors.Is(err, net.ErrClosed) {
						t.Errorf("the %v listener's Accept = %v, %v; want net.ErrClosed", p, c, err)
					}
				}
			})
		}
	}
}

// TestSniffSilentClient: a client that connects and sends nothing holds
// no other client, even with no bound on its wait.
func TestSniffSilentClient(t *testing.T) {
	for _, network := range sniffNetworks {
		t.Run(network, func(t *testing.T) {
			s, _ := startSniff(t, network, SniffConfig{})
			ch := acceptAsync(s.Listener(FastCGI))
			dialSend(t, s.Listener(FastCGI), nil) // silent
			dialSend(t, s.Listener(FastCGI), []byte{0x01})
			c, err := waitAccept(t, ch)
			if err != nil {
				t.Fatalf("Accept: %v", err)
			}
			var b [1]byte
			if _, err := io.ReadFull(c, b[:]); err != nil || b[0] != 0x01 {
				t.Errorf("read %q, %v; want the second client's 0x01", b[:], err)
			}
		})
	}
}

// TestSniffTimeout: a client silent past Timeout is closed and logged at
// debug level.
func TestSniffTimeout(t *testing.T) {
	s, logs := startSniff(t, "tcp", SniffConfig{Timeout: 50 * time.Millisecond})
	c := dialSend(t, s.Listener(HTTP), nil)
	waitClosed(t, c)
	if _, ok := logs.Wait("connection closed before its first byte", waitLimit); !ok {
		t.Errorf("no debug line for the silent client; log:\n%s", logs)
	}
	// The next client is served.
	ch := acceptAsync(s.Listener(HTTP))
	dialSend(t, s.Listener(HTTP), []byte("GET"))
	if _, err := waitAccept(t, ch); err != nil {
		t.Errorf("Accept after the timeout: %v", err)
	}
}

// TestSniffUnknownByte: a connection whose first byte starts no protocol
// is closed and logged with that byte, TLS too when TLS is off; the next
// connection is served.
func TestSniffUnknownByte(t *testing.T) {
	for _, network := range sniffNetworks {
		for _, b := range []byte{0x16, 'g', 0x02, 0xff} {
			t.Run(network+"/0x"+hex2(b), func(t *testing.T) {
				s, logs := startSniff(t, network, SniffConfig{Timeout: waitLimit})
				ch := acceptAsync(s.Listener(FastCGI))
				bad := dialSend(t, s.Listener(FastCGI), []byte{b, 'x'})
				if got := waitClosed(t, bad); got != "" {
					t.Errorf("the refused client read %q", got)
				}
				line, ok := logs.Wait("starts no protocol", waitLimit)
				if want := "byte=0x" + hex2(b); !ok || !strings.Contains(line, want) || !strings.Contains(line, "level=WARN") {
					t.Errorf("log line %q, want a warning with %s", line, want)
				}
				dialSend(t, s.Listener(FastCGI), []byte{0x01})
				if _, err := waitAccept(t, ch); err != nil {
					t.Errorf("Accept after the refusal: %v", err)
				}
			})
		}
	}
}

func hex2(b byte) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[b>>4], digits[b&15]})
}

// TestSniffClose: closing the Sniffer closes the parent and every
// listener; closing one listener refuses its protocol and serves the
// others; closing the last closes the parent; closing the parent ends
// every Accept with net.ErrClosed; Addr is the parent's.
func TestSniffClose(t *testing.T) {
	t.Run("Sniffer", func(t *testing.T) {
		s, _ := startSniff(t, "unix", SniffConfig{})
		silent := dialSend(t, s.Listener(SCGI), nil)
		var chs []<-chan acceptResult
		for p := range numProtocols {
			chs = append(chs, acceptAsync(s.Listener(p)))
		}
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		for p, ch := range chs {
			if _, err := waitAccept(t, ch); !errors.Is(err, net.ErrClosed) {
				t.Errorf("%v Accept after Close = %v, want net.ErrClosed", Protocol(p), err)
			}
		}
		waitClosed(t, silent) // the connection being sniffed is closed
		if c, err := net.Dial("unix", s.Listener(HTTP).Addr().String()); err == nil {
			c.Close()
			t.Error("the parent still accepts after Close")
		}
	})
	t.Run("one listener", func(t *testing.T) {
		s, logs := startSniff(t, "unix", SniffConfig{})
		s.Listener(UWSGI).Close()
		if _, err := s.Listener(UWSGI).Accept(); !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept of the closed listener = %v, want net.ErrClosed", err)
		}
		refused := dialSend(t, s.Listener(UWSGI), []byte{0x00})
		waitClosed(t, refused)
		if _, ok := logs.Wait("its protocol's listener is closed", waitLimit); !ok {
			t.Errorf("no line for the refused uwsgi connection; log:\n%s", logs)
		}
		ch := acceptAsync(s.Listener(SCGI))
		dialSend(t, s.Listener(SCGI), []byte("1"))
		if _, err := waitAccept(t, ch); err != nil {
			t.Errorf("SCGI Accept with uwsgi closed: %v", err)
		}
	})
	t.Run("every listener", func(t *testing.T) {
		s, _ := startSniff(t, "unix", SniffConfig{})
		for p := range numProtocols {
			if err := s.Listener(p).Close(); err != nil {
				t.Errorf("%v Close: %v", p, err)
			}
		}
		if c, err := net.Dial("unix", s.Listener(HTTP).Addr().String()); err == nil {
			c.Close()
			t.Error("the parent still accepts with every listener closed")
		}
	})
	t.Run("parent", func(t *testing.T) {
		l := listenOn(t, "tcp")
		s := Sniff(l, SniffConfig{})
		defer s.Close()
		for p := range numProtocols {
			if s.Listener(p).Addr() != l.Addr() {
				t.Errorf("%v Addr = %v, want the parent's %v", p, s.Listener(p).Addr(), l.Addr())
			}
		}
		ch := acceptAsync(s.Listener(FastCGI))
		l.Close()
		if _, err := waitAccept(t, ch); !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept after the parent closed = %v, want net.ErrClosed", err)
		}
		if _, err := s.Listener(HTTP).Accept(); !errors.Is(err, net.ErrClosed) {
			t.Errorf("HTTP Accept after the parent closed = %v, want net.ErrClosed", err)
		}
	})
}

// TestSniffMaxPending: past MaxPending connections awaiting their first
// byte, the next waits in the backlog until one of them ends.
func TestSniffMaxPending(t *testing.T) {
	l := listenOn(t, "unix")
	full := make(chan struct{}, 1)
	s := sniff(l, SniffConfig{MaxPending: 1}, func() {
		select {
		case full <- struct{}{}:
		default:
		}
	})
	defer s.Close()
	silent := dialSend(t, l, nil)
	select {
	case <-full: // the silent client holds the one slot
	case <-time.After(waitLimit):
		t.Fatal("the accept loop never waited for a slot")
	}
	ch := acceptAsync(s.Listener(FastCGI))
	dialSend(t, l, []byte{0x01})
	silent.Close()
	if _, err := waitAccept(t, ch); err != nil {
		t.Errorf("Accept once the silent client left: %v", err)
	}
}

// wrappedListener hands out connections of a type that is no socket.
type wrappedListener struct{ net.Listener }

type wrappedConn struct{ net.Conn }

func (l wrappedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return wrappedConn{c}, nil
}

// TestSniffWrappedConn: a connection that is no socket is read, not
// peeked, and its first Read returns the byte read.
func TestSniffWrappedConn(t *testing.T) {
	l := listenOn(t, "unix")
	s := Sniff(wrappedListener{l}, SniffConfig{Log: slog.New(slog.DiscardHandler)})
	defer s.Close()
	ch := acceptAsync(s.Listener(SCGI))
	client := dialSend(t, l, []byte("12:"))
	c, err := waitAccept(t, ch)
	if err != nil {
		t.Fatal(err)
	}
	client.Close()
	if got, err := io.ReadAll(c); string(got) != "12:" || err != nil {
		t.Errorf("read %q, %v; want %q", got, err, "12:")
	}
}

// failingListener fails its first fails Accepts with err, then accepts.
type failingListener struct {
	net.Listener
	fails atomic.Int32
	err   error
}

func (l *failingListener) Accept() (net.Conn, error) {
	if l.fails.Add(-1) >= 0 {
		return nil, l.err
	}
	return l.Listener.Accept()
}

// TestSniffAcceptRetries: an accept that fails for want of descriptors
// (EMFILE, ENFILE) is retried after a wait, logged, and the next
// connection is served; any other accept error ends the Sniffer: Accept
// on its listeners returns an error.
func TestSniffAcceptRetries(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE} {
		t.Run(errno.Error(), func(t *testing.T) {
			l := &failingListener{Listener: listenOn(t, "unix"), err: &os.SyscallError{Syscall: "accept4", Err: errno}}
			l.fails.Store(3)
			logs := new(testlog.Buffer)
			s := Sniff(l, SniffConfig{Log: slog.New(slog.NewTextHandler(logs, nil))})
			defer s.Close()
			ch := acceptAsync(s.Listener(FastCGI))
			dialSend(t, l, []byte{0x01})
			if _, err := waitAccept(t, ch); err != nil {
				t.Fatalf("Accept after %d failed accepts: %v\n%s", 3, err, logs)
			}
			if n := strings.Count(logs.String(), "accept failed; retrying"); n != 3 {
				t.Errorf("%d retries logged, want 3:\n%s", n, logs)
			}
		})
	}
	t.Run("another error", func(t *testing.T) {
		l := &failingListener{Listener: listenOn(t, "unix"), err: errors.New("accept: broken")}
		l.fails.Store(1)
		s := Sniff(l, SniffConfig{Log: slog.New(slog.DiscardHandler)})
		defer s.Close()
		if _, err := waitAccept(t, acceptAsync(s.Listener(FastCGI))); err == nil {
			t.Error("Accept after a lasting accept error = nil error, want one")
		}
	})
}

// BenchmarkAccept measures what sniffing adds to a connection: accept,
// peek, hand-over, against a plain accept, on a unix socket.
func BenchmarkAccept(b *testing.B) {
	for _, sniffed := range []bool{false, true} {
		name := "direct"
		if sniffed {
			name = "sniffed"
		}
		b.Run(name, func(b *testing.B) {
			l := listenOn(b, "unix")
			accept := l
			if sniffed {
				s := Sniff(l, SniffConfig{Timeout: waitLimit})
				defer s.Close()
				accept = s.Listener(FastCGI)
			}
			b.ReportAllocs()
			var buf [1]byte
			for b.Loop() {
				c, err := net.Dial("unix", l.Addr().String())
				if err != nil {
					b.Fatal(err)
				}
				c.Write([]byte{0x01})
				sc, err := accept.Accept()
				if err != nil {
					b.Fatal(err)
				}
				sc.Read(buf[:])
				sc.Close()
				c.Close()
			}
		})
	}
}
