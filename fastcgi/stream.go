package fastcgi

import (
	"errors"
	"io"
	"sync"
)

// errRequestDone ends the input streams of a request whose handler returned:
// the serve loop drops what still arrives for it.
var errRequestDone = errors.New("fastcgi: request already answered")

// inStream carries one input stream of a request (STDIN or DATA) from the
// connection's serve loop to the handler. It holds at most limit bytes: the
// serve loop blocks in push when the handler reads slower than the web
// server sends, which is the only flow control FastCGI has, and the bound is
// what one slow request can hold up the others on its connection.
//
// When the stream's request is the only one on its connection and its
// reader waits, the serve loop may lend the connection's reader to the
// stream instead of waking the handler for every burst: the handler's Read
// then reads the records itself, as net/http's handlers read their bodies,
// and the serve loop waits until the stream gives the reader back (at its
// end, when it fails or closes, or when a record for anything else came):
// no hand-over between goroutines for every record.
type inStream struct {
	mu      sync.Mutex
	cond    sync.Cond // signalled on data, space, end and close
	buf     []byte    // unread bytes
	off     int       // read offset into buf
	limit   int
	ended   bool  // the empty record arrived: EOF after buf
	err     error // set by fail: returned to both sides
	closed  bool  // the handler is done with it: push discards
	waiting int   // readers waiting in Read
	total   int64 // bytes pushed

	src     lender // set while the connection's reader is lent to the stream
	pulling bool   // a Read is reading records through src
}

// lender is a connection that can lend its record reader to a stream.
type lender interface {
	// pull reads records for s, whose buffer is empty, until one changes
	// s or concerns something else. give is true when s must give the
	// reader back now; err is then why, or nil.
	pull(s *inStream) (give bool, err error)
	// giveBack hands the reader back to the serve loop.
	giveBack(err error)
}

// lend lends src's reader to s when a reader waits in Read and the stream
// can take a whole record; it reports whether it did. The serve loop then
// waits for src.giveBack.
func (s *inStream) lend(src lender) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.waiting == 0 || s.ended || s.closed || s.err != nil || s.limit < maxContent || s.src != nil {
		return false
	}
	s.src = src
	s.cond.Broadcast()
	return true
}

// giveBackLocked returns a lent reader, unless a Read is using it: that
// Read gives it back when its pull returns.
func (s *inStream) giveBackLocked(err error) {
	if s.src != nil && !s.pulling {
		src := s.src
		s.src = nil
		src.giveBack(err)
	}
}

func newInStream(limit int) *inStream {
	s := new(inStream)
	s.init(limit)
	return s
}

// init readies a zero inStream in place, as newInStream does.
func (s *inStream) init(limit int) {
	s.limit = limit
	s.cond.L = &s.mu
}

// push adds p, blocking while the stream is full. It returns an error when
// the request failed or is over; p is then dropped. It wakes the reader
// only when it must wait for room: the caller calls wake once it has no
// more bytes at hand, so that a burst of records costs one wake-up.
func (s *inStream) push(p []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return errors.New("fastcgi: input stream continues after its end")
	}
	for len(p) > 0 {
		for s.err == nil && !s.closed && len(s.buf)-s.off >= s.limit {
			s.cond.Broadcast()
			s.cond.Wait()
		}
		if s.err != nil {
			return s.err
		}
		if s.closed {
			return errRequestDone
		}
		if s.off > 0 && s.off == len(s.buf) {
			s.buf, s.off = s.buf[:0], 0
		} else if s.off > len(s.buf)/2 {
			// Reclaim the consumed front before growing.
			n := copy(s.buf, s.buf[s.off:])
			s.buf, s.off = s.buf[:n], 0
		}
		n := min(len(p), s.limit-(len(s.buf)-s.off))
		s.buf = append(s.buf, p[:n]...)
		s.total += int64(n)
		p = p[n:]
	}
	return nil
}

// hasBytes reports whether a Read would return bytes, or an error, and
// how many bytes the stream was given in all.
func (s *inStream) hasBytes() (bool, int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.off < len(s.buf) || s.err != nil || s.closed, s.total
}

// wake wakes a reader waiting for what push added.
func (s *inStream) wake() {
	s.mu.Lock()
	s.cond.Broadcast()
	s.mu.Unlock()
}

// open reports whether the web server has yet to send the end of the
// stream, whether or not anyone still reads it: a connection closed before
// then makes the web server's next write fail.
func (s *inStream) open() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.ended
}

// end marks the end of the stream: reads return io.EOF once buf is empty.
func (s *inStream) end() {
	s.mu.Lock()
	s.ended = true
	s.cond.Broadcast()
	s.mu.Unlock()
}

// fail makes both sides return err from now on; buffered bytes are dropped.
func (s *inStream) fail(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.buf, s.off = nil, 0
	s.giveBackLocked(nil)
	s.cond.Broadcast()
	s.mu.Unlock()
}

// close is the handler's side being done: later pushes are discarded and
// the buffer is freed.
func (s *inStream) close() {
	s.mu.Lock()
	s.closed = true
	s.buf, s.off = nil, 0
	s.giveBackLocked(nil)
	s.cond.Broadcast()
	s.mu.Unlock()
}

func (s *inStream) Read(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		if s.err != nil {
			s.giveBackLocked(nil)
			return 0, s.err
		}
		if s.off < len(s.buf) {
			n := copy(p, s.buf[s.off:])
			s.off += n
			s.cond.Broadcast()
			return n, nil
		}
		if s.ended || s.closed {
			s.giveBackLocked(nil)
			return 0, io.EOF
		}
		if len(p) == 0 {
			return 0, nil
		}
		if s.src != nil && !s.pulling {
			s.pulling = true
			s.mu.Unlock()
			give, err := s.src.pull(s)
			s.mu.Lock()
			s.pulling = false
			if give {
				s.giveBackLocked(err)
			}
			continue
		}
		s.waiting++
		s.cond.Wait()
		s.waiting--
	}
}
