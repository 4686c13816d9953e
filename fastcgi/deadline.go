package fastcgi

import "time"

// deadlineSlack is how much earlier than the deadline that applies a
// socket's armed deadline may be left. Moving a socket's deadline costs a
// timer update in the runtime; a kept connection that answers requests
// back to back would move both of its deadlines for every request, each
// time by the time between two requests. Left armed while it is at most
// this much early, a deadline moves about once a second instead, and the
// rare one that fires early is moved to the deadline that applies and the
// read or write goes on (see lazyDeadline).
const deadlineSlack = time.Second

// lazyDeadline is one direction of a socket's deadline, moved lazily: the
// deadline that applies (want) is kept apart from the one armed on the
// socket, which is never later than want, and earlier by at most
// deadlineSlack, or armed while want is zero (a deadline from before,
// which then fires early). A read or write that fails with
// os.ErrDeadlineExceeded asks expired whether want has passed: when it
// has not, the socket is armed with want and the read or write is to be
// made again. The guard is the caller's (the connection's mutex of that
// direction).
type lazyDeadline struct {
	want  time.Time // the deadline that applies; zero: none
	armed time.Time // the deadline set on the socket; zero: none
	set   func(time.Time) error
}

// update makes d the deadline that applies (zero: none), arming the
// socket only when its armed deadline is later than d or earlier than d by
// deadlineSlack or more.
func (l *lazyDeadline) update(d time.Time) {
	l.want = d
	if d.IsZero() || (!l.armed.IsZero() && !l.armed.After(d) && d.Sub(l.armed) < deadlineSlack) {
		return
	}
	l.arm(d)
}

// expired is called when a read or write failed with
// os.ErrDeadlineExceeded. It reports whether the deadline that applies
// has passed; when it has not, it arms the socket with it, and the caller
// reads or writes again.
func (l *lazyDeadline) expired() bool {
	if !l.want.IsZero() && !time.Now().Before(l.want) {
		return true
	}
	l.arm(l.want)
	return false
}

// arm sets d on the socket, now.
func (l *lazyDeadline) arm(d time.Time) {
	l.armed = d
	l.set(d)
}
