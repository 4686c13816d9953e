package fastcgi

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
)

// Read buffers come in two sizes: a small one holds a request's header
// block and a bodiless request whole; a large one holds the largest record,
// and lets one read take several body records at once.
const (
	smallReadBuf = 4 << 10
	largeReadBuf = maxContent + maxPad + headerLen
)

var (
	smallReadPool = sync.Pool{New: func() any { b := make([]byte, smallReadBuf); return &b }}
	largeReadPool = sync.Pool{New: func() any { b := make([]byte, largeReadBuf); return &b }}
)

// recordReader reads records. It holds a buffer only while bytes it read
// wait in it: on a socket, a read that finds nothing waits for the poller
// with no buffer at all, and takes one from a pool once bytes are there, so
// that an idle connection, or one whose handler is busy, holds none, and a
// burst of records costs one read.
type recordReader struct {
	r   io.Reader
	raw syscall.RawConn // r's, when r is a socket: reads that wait with no buffer

	hdr    [headerLen]byte
	buf    *[]byte // nil while nothing is buffered
	rd, wr int     // the unread bytes are (*buf)[rd:wr]
	large  bool    // the last record needed a large buffer: the next read takes one

	// expired, when set, is asked after a read failed with
	// os.ErrDeadlineExceeded whether the deadline has really passed: a
	// deadline armed lazily (lazyDeadline) fires early, and the read is
	// made again when expired reports false.
	expired func() bool

	// The raw read's callback, made once, and what it passes in and out:
	// a closure made for every read would cost allocations.
	rawRead func(fd uintptr) bool
	need    int
	m       int
	serr    error
}

func newRecordReader(r io.Reader) *recordReader {
	rr := new(recordReader)
	rr.init(r)
	return rr
}

// init makes rr read from r, as newRecordReader does, for a recordReader
// held by value.
func (rr *recordReader) init(r io.Reader) {
	*rr = recordReader{r: r}
	// Only a socket itself: the Read of a type that wraps one may do more
	// than read the socket.
	var sc syscall.Conn
	switch c := r.(type) {
	case *net.TCPConn:
		sc = c
	case *net.UnixConn:
		sc = c
	}
	if sc != nil {
		if raw, err := sc.SyscallConn(); err == nil {
			rr.raw = raw
			rr.rawRead = rr.readFD
		}
	}
}

// buffered is the number of bytes read and not consumed yet.
func (rr *recordReader) buffered() int { return rr.wr - rr.rd }

// next reads the next record and returns its header and content; the
// padding, of any length, is read and dropped. The content is valid until
// the next call. next returns io.EOF when the input ends between records,
// and an error wrapping io.ErrUnexpectedEOF when it ends inside one.
func (rr *recordReader) next() (header, []byte, error) {
	h, err := rr.readHeader()
	if err != nil {
		return header{}, nil, err
	}
	content, err := rr.readContent(h)
	if err != nil {
		return header{}, nil, err
	}
	return h, content, nil
}

// readHeader is next's first half: it reads a record header.
func (rr *recordReader) readHeader() (header, error) {
	if err := rr.fill(headerLen); err != nil {
		if err == io.EOF && rr.buffered() == 0 { // the end between records
			return header{}, err
		}
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return header{}, fmt.Errorf("fastcgi: reading record header: %w", err)
	}
	copy(rr.hdr[:], (*rr.buf)[rr.rd:])
	rr.consume(headerLen)
	return parseHeader(rr.hdr[:])
}

// peekHeader returns the next record's header without consuming it, when
// the whole record is buffered already.
func (rr *recordReader) peekHeader() (header, bool) {
	if rr.buffered() < headerLen {
		return header{}, false
	}
	h, err := parseHeader((*rr.buf)[rr.rd : rr.rd+headerLen])
	if err != nil {
		return header{}, false
	}
	return h, rr.buffered() >= headerLen+int(h.ContentLength)+int(h.PaddingLength)
}

// readContent is next's second half: it reads the content and padding that
// h announces. The content is valid until the next read.
func (rr *recordReader) readContent(h header) ([]byte, error) {
	n := int(h.ContentLength) + int(h.PaddingLength)
	rr.large = n > smallReadBuf
	if n == 0 {
		return []byte{}, nil
	}
	if err := rr.fill(n); err != nil {
		got := rr.buffered()
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("fastcgi: reading %s record: got %d of %d content and padding bytes: %w", h.Type, got, n, err)
	}
	content := (*rr.buf)[rr.rd : rr.rd+int(h.ContentLength) : rr.rd+int(h.ContentLength)]
	rr.consume(n)
	return content, nil
}

// consume drops n buffered bytes. What they held stays valid until the next
// read, the only thing that gives the buffer back.
func (rr *recordReader) consume(n int) {
	rr.rd += n
}

// fill reads until at least n bytes (at most largeReadBuf) are buffered.
func (rr *recordReader) fill(n int) error {
	for rr.buffered() < n {
		if err := rr.read(n); err != nil {
			return err
		}
	}
	return nil
}

// read reads once, into a buffer with room for n bytes from rr.rd, again
// after a deadline that fired early.
func (rr *recordReader) read(n int) error {
	for {
		err := rr.readOnce(n)
		if err == nil || rr.expired == nil || !errors.Is(err, os.ErrDeadlineExceeded) || rr.expired() {
			return err
		}
	}
}

// readOnce is read without the look at the deadline.
func (rr *recordReader) readOnce(n int) error {
	if rr.raw == nil {
		rr.makeRoom(n)
		m, err := rr.r.Read((*rr.buf)[rr.wr:])
		rr.wr += m
		if rr.buffered() == 0 {
			rr.drop()
		}
		if m > 0 {
			return nil
		}
		if err == nil {
			err = io.ErrNoProgress
		}
		return err
	}
	rr.need, rr.m, rr.serr = n, 0, nil
	err := rr.raw.Read(rr.rawRead)
	m, serr := rr.m, rr.serr
	rr.serr = nil
	if m > 0 {
		rr.wr += m
		return nil
	}
	if rr.buffered() == 0 {
		rr.drop()
	}
	switch {
	case err != nil: // a deadline, or the connection closed
		return err
	case serr != nil:
		return os.NewSyscallError("read", serr)
	}
	return io.EOF
}

// readFD is read's callback for the raw socket: it takes a buffer only
// when the socket has bytes.
func (rr *recordReader) readFD(fd uintptr) bool {
	rr.makeRoom(rr.need)
	for {
		rr.m, rr.serr = syscall.Read(int(fd), (*rr.buf)[rr.wr:])
		if rr.serr != syscall.EINTR {
			break
		}
	}
	if rr.serr == syscall.EAGAIN {
		if rr.buffered() == 0 {
			rr.drop() // waiting for the poller: hold nothing
		}
		return false
	}
	return true
}

// makeRoom gets rr a buffer with room for n bytes from rr.rd and for at
// least one more byte past rr.wr, moving the buffered bytes to its front
// when that makes room.
func (rr *recordReader) makeRoom(n int) {
	if rr.buf == nil {
		if rr.large || n > smallReadBuf {
			rr.buf = largeReadPool.Get().(*[]byte)
		} else {
			rr.buf = smallReadPool.Get().(*[]byte)
		}
		rr.rd, rr.wr = 0, 0
		return
	}
	b := *rr.buf
	if len(b)-rr.rd >= n && rr.wr < len(b) {
		return
	}
	if len(b) < n {
		nb := largeReadPool.Get().(*[]byte)
		rr.wr = copy(*nb, b[rr.rd:rr.wr])
		rr.rd = 0
		rr.putBuf()
		rr.buf = nb
		return
	}
	rr.wr = copy(b, b[rr.rd:rr.wr])
	rr.rd = 0
}

// drop gives the buffer back: called when nothing in it is unread, or
// when the reader is done.
func (rr *recordReader) drop() {
	if rr.buf != nil {
		rr.putBuf()
		rr.buf = nil
		rr.rd, rr.wr = 0, 0
	}
}

func (rr *recordReader) putBuf() {
	if len(*rr.buf) == largeReadBuf {
		largeReadPool.Put(rr.buf)
	} else {
		smallReadPool.Put(rr.buf)
	}
}
