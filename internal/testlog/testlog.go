// Package testlog holds what the module's tests share to read the logs of
// a server they run.
package testlog

import (
	"bytes"
	"strings"
	"sync"
	"time"
)

// Buffer is a log destination safe for a server's goroutines: they write,
// the test reads String, or waits for a line with Wait.
type Buffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	written chan struct{} // closed by the next Write; nil when nobody waits
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.written != nil {
		close(b.written)
		b.written = nil
	}
	return b.b.Write(p)
}

// Wait returns the first line written that holds s, as soon as it is
// written; ok is false when none is after d. It waits for the write, not
// for time to pass: d only bounds a test whose server is broken.
func (b *Buffer) Wait(s string, d time.Duration) (line string, ok bool) {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		b.mu.Lock()
		for l := range strings.Lines(b.b.String()) {
			if strings.Contains(l, s) {
				b.mu.Unlock()
				return l, true
			}
		}
		if b.written == nil {
			b.written = make(chan struct{})
		}
		written := b.written
		b.mu.Unlock()
		select {
		case <-written:
		case <-deadline.C:
			return "", false
		}
	}
}

// String returns what was written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Line returns the first line of log holding all of parts, or "".
func Line(log string, parts ...string) string {
	for line := range strings.SplitSeq(log, "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			return line
		}
	}
	return ""
}
