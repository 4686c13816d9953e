package serve

import (
	"bytes"
	"log/slog"
	"testing"
)

// TestWriter: a logger of NewLogger gives the writer below it, for lines
// that are not slog's (the combined access log); other loggers give nil.
func TestWriter(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			var b bytes.Buffer
			log := NewLogger(format, &b)
			for name, l := range map[string]*slog.Logger{"logger": log, "With": log.With("k", "v"), "WithGroup": log.WithGroup("g")} {
				w := Writer(l)
				if w == nil {
					t.Fatalf("Writer(%s) = nil, want the logger's writer", name)
				}
				b.Reset()
				if _, err := w.Write([]byte("raw\n")); err != nil || b.String() != "raw\n" {
					t.Errorf("Writer(%s).Write(raw) = %v, wrote %q, want %q", name, err, b.String(), "raw\n")
				}
			}
		})
	}
	if w := Writer(slog.New(slog.NewTextHandler(new(bytes.Buffer), nil))); w != nil {
		t.Errorf("Writer(another logger) = %v, want nil", w)
	}
}
