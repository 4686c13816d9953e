package bridge

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestEnvironFromList(t *testing.T) {
	tests := []struct {
		name string
		list []string
		want []string
	}{
		{"empty", nil, []string{}},
		{"plain", []string{"A=1", "B=2"}, []string{"A=1", "B=2"}},
		{"last wins in place", []string{"A=1", "B=2", "A=3"}, []string{"A=3", "B=2"}},
		{"no equals is empty value", []string{"A"}, []string{"A="}},
		{"value keeps equals", []string{"Q=a=b"}, []string{"Q=a=b"}},
		{"empty name ignored", []string{"=x", "A=1"}, []string{"A=1"}},
		{"raw bytes kept", []string{"P=/\xff\xfe"}, []string{"P=/\xff\xfe"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := EnvironFromList(tt.list)
			if got := e.List(); !slices.Equal(got, tt.want) {
				t.Errorf("EnvironFromList(%q).List() = %q, want %q", tt.list, got, tt.want)
			}
			if e.Len() != len(tt.want) {
				t.Errorf("Len() = %d, want %d", e.Len(), len(tt.want))
			}
		})
	}
}

// TestEnvironFromListMany checks EnvironFromList's filter of seen names on
// more names than it has bits: every name collides with others, and a
// name given again must still replace its value in place.
func TestEnvironFromListMany(t *testing.T) {
	var list []string
	for i := range 2000 {
		list = append(list, fmt.Sprintf("V%d=%d", i%700, i))
	}
	var want Environ
	for _, s := range list {
		name, value, _ := strings.Cut(s, "=")
		want.Set(name, value)
	}
	if got := EnvironFromList(list); !slices.Equal(got.List(), want.List()) {
		t.Errorf("EnvironFromList of 2000 entries over 700 names: %d variables, want %d, or in another order or with other values",
			got.Len(), want.Len())
	}
}

func TestEnvironAccessors(t *testing.T) {
	var e Environ
	e.Set("EMPTY", "")
	e.Set("A", "1")
	e.Set("", "ignored")
	if v, ok := e.Lookup("EMPTY"); v != "" || !ok {
		t.Errorf(`Lookup("EMPTY") = %q, %v, want "", true`, v, ok)
	}
	if v, ok := e.Lookup("MISSING"); v != "" || ok {
		t.Errorf(`Lookup("MISSING") = %q, %v, want "", false`, v, ok)
	}
	if got := e.Get("A"); got != "1" {
		t.Errorf(`Get("A") = %q, want "1"`, got)
	}
	c := e.Clone()
	e.Set("A", "2")
	if got := c.Get("A"); got != "1" {
		t.Errorf(`clone's Get("A") after Set on the original = %q, want "1"`, got)
	}
	e.Delete("EMPTY")
	e.Delete("MISSING")
	if got := e.List(); !slices.Equal(got, []string{"A=2"}) {
		t.Errorf("List() after Delete = %q, want [A=2]", got)
	}
	var names []string
	for name := range e.All() {
		names = append(names, name)
	}
	if !slices.Equal(names, []string{"A"}) {
		t.Errorf("All() names = %q, want [A]", names)
	}
	e.Reset()
	if e.Len() != 0 {
		t.Errorf("Len() after Reset = %d, want 0", e.Len())
	}
}

func TestNilEnvironReadsEmpty(t *testing.T) {
	var e *Environ
	if v, ok := e.Lookup("A"); v != "" || ok || e.Get("A") != "" || e.Len() != 0 || len(e.List()) != 0 {
		t.Errorf("nil Environ: Lookup = %q, %v; Len = %d", v, ok, e.Len())
	}
	for name := range e.All() {
		t.Errorf("nil Environ yielded %q", name)
	}
	// Clone of a nil Environ is an empty one, not a panic.
	c := e.Clone()
	if c.Len() != 0 {
		t.Errorf("nil Environ: Clone().Len() = %d, want 0", c.Len())
	}
	c.Set("A", "1")
	if c.Get("A") != "1" {
		t.Errorf("Clone of a nil Environ: Get after Set = %q, want 1", c.Get("A"))
	}
}
