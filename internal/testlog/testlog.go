// Package testlog holds what the module's tests share to read the logs of
// a server they run.
package testlog

import (
	"bytes"
	"sync"
)

// Buffer is a log destination safe for a server's goroutines: they write,
// the test reads String.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns what was written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
