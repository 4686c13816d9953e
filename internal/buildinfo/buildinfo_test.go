package buildinfo

import (
	"regexp"
	"testing"
)

func TestLine(t *testing.T) {
	got := Line("myapp")
	if !regexp.MustCompile(`^myapp \S+ go1\.\S+ \w+/\w+$`).MatchString(got) {
		t.Errorf("Line = %q, want \"myapp VERSION goX.Y OS/ARCH\"", got)
	}
}
