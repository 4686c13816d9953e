package defaults

import (
	"testing"
	"time"
)

func TestOr(t *testing.T) {
	if got := Or(0, 7); got != 7 {
		t.Errorf("Or(0, 7) = %d, want 7", got)
	}
	if got := Or(-1, 7); got != 7 {
		t.Errorf("Or(-1, 7) = %d, want 7", got)
	}
	if got := Or(3, 7); got != 3 {
		t.Errorf("Or(3, 7) = %d, want 3", got)
	}
	if got := Or(time.Duration(0), time.Second); got != time.Second {
		t.Errorf("Or(0s, 1s) = %v, want 1s", got)
	}
	if got := Or(2*time.Second, time.Second); got != 2*time.Second {
		t.Errorf("Or(2s, 1s) = %v, want 2s", got)
	}
}
