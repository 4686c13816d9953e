package serve

import (
	"io"
	"log/slog"
)

// NewLogger returns the logger of a server process: slog's text or JSON
// lines (format "json") on w.
func NewLogger(format string, w io.Writer) *slog.Logger {
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, nil))
	}
	return slog.New(slog.NewTextHandler(w, nil))
}
