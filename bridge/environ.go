package bridge

import (
	"iter"
	"slices"
	"strings"
)

// Environ holds the CGI meta-variables of one request exactly as they were
// received: from the process environment (CGI) or from name-value pairs
// (FastCGI PARAMS). Names and values are raw bytes in Go strings; nothing is
// decoded, re-encoded or checked for UTF-8.
//
// A name set twice keeps its last value: Set replaces an existing value in
// place, so the order of first appearance is kept and iteration is stable.
//
// The zero value is an empty Environ ready to use, and a nil *Environ (what
// EnvironOf gives for a request that did not come through the bridge, such
// as plain HTTP) reads as empty. An Environ is not safe for concurrent
// mutation.
type Environ struct {
	// kv holds name0, value0, name1, value1, ... in order of first
	// appearance. A slice beats a map here: a request carries a few dozen
	// variables, and a slice costs one allocation where a map costs several.
	kv []string
}

// EnvironFromList builds an Environ from "NAME=value" strings, the form of
// os.Environ. An entry without '=' is a name with an empty value; an entry
// with an empty name is ignored. A name given twice keeps its last value.
func EnvironFromList(list []string) Environ {
	e := Environ{kv: make([]string, 0, 2*len(list))}
	// seen is a Bloom filter of the names so far: a name it has not seen
	// is appended without a scan, so that a process environment of n
	// variables costs O(n) and not O(n²) (a CGI program builds one at every
	// start).
	var seen [4]uint64
	for _, s := range list {
		name, value, _ := strings.Cut(s, "=")
		if name == "" {
			continue
		}
		h := nameHash(name)
		if seen[h>>6]&(1<<(h&63)) != 0 {
			e.Set(name, value)
			continue
		}
		seen[h>>6] |= 1 << (h & 63)
		e.kv = append(e.kv, name, value)
	}
	return e
}

// nameHash is FNV-1a of name, folded to a byte.
func nameHash(name string) uint8 {
	h := uint32(2166136261)
	for i := 0; i < len(name); i++ {
		h = (h ^ uint32(name[i])) * 16777619
	}
	return uint8(h ^ h>>8 ^ h>>16 ^ h>>24)
}

// Grow makes room for n more variables, so that a front end that knows
// roughly how many will come sets them without reallocating.
func (e *Environ) Grow(n int) {
	e.kv = slices.Grow(e.kv, 2*n)
}

// Len reports the number of distinct names.
func (e *Environ) Len() int {
	if e == nil {
		return 0
	}
	return len(e.kv) / 2
}

// Lookup returns the value of name and whether it is present.
func (e *Environ) Lookup(name string) (string, bool) {
	if e == nil {
		return "", false
	}
	for i := 0; i < len(e.kv); i += 2 {
		if e.kv[i] == name {
			return e.kv[i+1], true
		}
	}
	return "", false
}

// Get returns the value of name, or "" when it is absent. Use Lookup to tell
// an absent variable from an empty one.
func (e *Environ) Get(name string) string {
	v, _ := e.Lookup(name)
	return v
}

// Set sets name to value, replacing an earlier value of the same name (the
// last one wins). An empty name is ignored.
func (e *Environ) Set(name, value string) {
	if name == "" {
		return
	}
	for i := 0; i < len(e.kv); i += 2 {
		if e.kv[i] == name {
			e.kv[i+1] = value
			return
		}
	}
	e.kv = append(e.kv, name, value)
}

// Delete removes name. It is a no-op when name is absent.
func (e *Environ) Delete(name string) {
	for i := 0; i < len(e.kv); i += 2 {
		if e.kv[i] == name {
			e.kv = append(e.kv[:i], e.kv[i+2:]...)
			return
		}
	}
}

// Reset empties e and keeps its storage for reuse.
func (e *Environ) Reset() {
	clear(e.kv)
	e.kv = e.kv[:0]
}

// All yields every name and its value, in order of first appearance.
func (e *Environ) All() iter.Seq2[string, string] {
	return func(yield func(string, string) bool) {
		if e == nil {
			return
		}
		for i := 0; i < len(e.kv); i += 2 {
			if !yield(e.kv[i], e.kv[i+1]) {
				return
			}
		}
	}
}

// List returns the variables as "NAME=value" strings, the form of
// os.Environ and exec.Cmd.Env.
func (e *Environ) List() []string {
	list := make([]string, 0, e.Len())
	for i := 0; e != nil && i < len(e.kv); i += 2 {
		list = append(list, e.kv[i]+"="+e.kv[i+1])
	}
	return list
}

// Clone returns a copy of e that shares no storage with it. A nil e gives
// an empty Environ, as it reads as one everywhere else.
func (e *Environ) Clone() Environ {
	if e == nil {
		return Environ{}
	}
	return Environ{kv: append([]string(nil), e.kv...)}
}
