// Package defaults holds the one rule by which every setting of the module
// falls back to its default.
package defaults

import "cmp"

// Or returns v when it is positive, else def: a setting's zero value (and a
// nonsensical negative one) means its documented default.
func Or[T cmp.Ordered](v, def T) T {
	var zero T
	if v <= zero {
		return def
	}
	return v
}
