package serve

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
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

// TestJSONDurationsInSeconds: the JSON logger writes a time.Duration as
// seconds, a float, not slog's nanoseconds; the text logger keeps Go's
// duration string.
func TestJSONDurationsInSeconds(t *testing.T) {
	tests := []struct {
		name   string
		format string
		args   []any
		want   string
	}{
		{name: "json", format: "json", args: []any{"duration", 1500 * time.Millisecond}, want: `"duration":1.5`},
		{name: "json, small", format: "json", args: []any{"duration", 250 * time.Microsecond}, want: `"duration":0.00025`},
		{name: "json, in a group", format: "json", args: []any{slog.Group("slow", "limit", 2*time.Second)}, want: `"slow":{"limit":2}`},
		{name: "json, With", format: "json", args: nil, want: `"grace":30`},
		{name: "json, not a duration", format: "json", args: []any{"bytes", 1500}, want: `"bytes":1500`},
		{name: "text", format: "text", args: []any{"duration", 1500 * time.Millisecond}, want: `duration=1.5s`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			log := NewLogger(tt.format, &b)
			if tt.args == nil {
				log = log.With("grace", 30*time.Second)
			}
			log.Info("m", tt.args...)
			if !strings.Contains(b.String(), tt.want) {
				t.Errorf("NewLogger(%q).Info(m, %v) = %q, want %s in it", tt.format, tt.args, b.String(), tt.want)
			}
		})
	}
}

// TestWriterLinesWhole: lines written through Writer and slog's lines,
// from many goroutines, reach an unsynchronized writer one at a time.
func TestWriterLinesWhole(t *testing.T) {
	var b bytes.Buffer // not safe for concurrent writes: the logger must serialize
	log := NewLogger("text", &b)
	w := Writer(log)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				w.Write([]byte("raw line\n"))
				log.Info("slog line")
			}
		})
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != 1600 {
		t.Fatalf("%d lines written, want 1600", len(lines))
	}
	for _, l := range lines {
		if l != "raw line" && !strings.HasSuffix(l, `level=INFO msg="slog line"`) {
			t.Errorf("line %q is neither whole line", l)
		}
	}
}
