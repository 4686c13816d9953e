package serve

import (
	"io"
	"log/slog"
	"sync"
)

// NewLogger returns the logger of a server process: slog's text or JSON
// lines (format "json") on w. Writer returns w to write other lines
// between them. A time.Duration is written as Go's duration string in
// text ("1.5s") and as seconds, a float, in JSON (1.5), where slog would
// write nanoseconds.
func NewLogger(format string, w io.Writer) *slog.Logger {
	lw := &lockedWriter{w: w}
	var h slog.Handler
	if format == "json" {
		h = slog.NewJSONHandler(lw, &slog.HandlerOptions{ReplaceAttr: durationSeconds})
	} else {
		h = slog.NewTextHandler(lw, nil)
	}
	return slog.New(&writerHandler{Handler: h, w: lw})
}

// durationSeconds is a ReplaceAttr that writes durations as seconds.
func durationSeconds(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.Float64Value(a.Value.Duration().Seconds())
	}
	return a
}

// Writer returns the writer below a logger of NewLogger (or one derived
// from it by With or WithGroup), for lines that are not slog's, such as
// the access log in Apache's combined format: each Write is one line, never
// mixed with slog's. It returns nil for any other logger.
func Writer(l *slog.Logger) io.Writer {
	if h, ok := l.Handler().(*writerHandler); ok {
		return h.w
	}
	return nil
}

// writerHandler is a slog.Handler that knows the writer below it.
type writerHandler struct {
	slog.Handler
	w *lockedWriter
}

func (h *writerHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &writerHandler{Handler: h.Handler.WithAttrs(attrs), w: h.w}
}

func (h *writerHandler) WithGroup(name string) slog.Handler {
	return &writerHandler{Handler: h.Handler.WithGroup(name), w: h.w}
}

// lockedWriter serializes the writes of slog's handler and those of Writer.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}
