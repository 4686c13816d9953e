// Package settings is how cgirun.Run and the cgirun command read and list
// their CGIRUN_* variables alike. envconfig reads them: yes, no, on and
// off are booleans, an unknown name gets the closest known one, and a
// value that cannot be read gets a message naming it, what was wrong and
// a right value. Vars lists them as envconfig.Usagef does, without
// text/template, for --help and the man page.
package settings

import (
	"errors"
	"fmt"
	"iter"
	"os"
	"strconv"
	"strings"

	"github.com/kelseyhightower/envconfig"

	"github.com/cgirun/cgirun/upgrade"
)

// boolType is envconfig's description of a bool field.
const boolType = "True or False"

// Names returns the variables envconfig reads into spec (a pointer
// to a config struct) with envconfig's descriptions of their types, such
// as "Duration" or boolType (see Vars).
func Names(prefix string, spec any) map[string]string {
	vars, _ := Vars(prefix, spec)
	names := make(map[string]string, len(vars))
	for _, v := range vars {
		names[v.Key] = v.Type
	}
	return names
}

// ParseBool is strconv.ParseBool that also takes yes, no, on and off in
// any case.
func ParseBool(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "yes", "on":
		return true, nil
	case "no", "off":
		return false, nil
	}
	return strconv.ParseBool(s)
}

// NormalizeBools sets the boolean variables of spec that hold yes, no, on
// or off to true or false, for envconfig, which takes only
// strconv.ParseBool's words.
func NormalizeBools(prefix string, spec any) {
	for name, typ := range Names(prefix, spec) {
		v, ok := os.LookupEnv(name)
		if !ok || typ != boolType {
			continue
		}
		if _, err := strconv.ParseBool(v); err == nil {
			continue
		}
		if b, err := ParseBool(v); err == nil {
			os.Setenv(name, strconv.FormatBool(b))
		}
	}
}

// Unknown returns a warning for each CGIRUN_* variable of environ
// (os.Environ's form) that is none of known (see Names), with the
// closest known name when one is close: a mistyped name would otherwise be
// ignored without a word. The hand-over of an upgrade (CGIRUN_INHERIT_FDS,
// CGIRUN_READY_FD) and the tests' CGIRUN_TEST_* variables are no typos.
func Unknown(environ []string, known map[string]string) []string {
	var warnings []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "CGIRUN_") || strings.HasPrefix(name, "CGIRUN_TEST_") ||
			name == upgrade.EnvInheritFDs || name == upgrade.EnvReadyFD {
			continue
		}
		if _, ok := known[name]; ok {
			continue
		}
		best := Closest(name, func(yield func(string) bool) {
			for k := range known {
				if !yield(k) {
					return
				}
			}
		})
		if best == "" {
			warnings = append(warnings, name+" is not a setting; see --help for the settings")
			continue
		}
		warnings = append(warnings, name+" is not a setting; did you mean "+best+"?")
	}
	return warnings
}

// maxSuggestDistance is the most edits between an unknown name and the
// setting Unknown suggests for it.
const maxSuggestDistance = 3

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// EnvError rewrites envconfig's error for a value it could not convert
// ("envconfig.Process: assigning ... converting '5' to type
// time.Duration") as NAME="value": what was wrong: an example of a right
// value.
func EnvError(err error) error {
	var pe *envconfig.ParseError
	if !errors.As(err, &pe) {
		return err
	}
	what := pe.Err.Error()
	switch {
	case pe.TypeName == "time.Duration":
		what = "not a duration: want a number with a unit, such as 30s or 2m"
	case pe.TypeName == "bool":
		what = "not a boolean: want true or false (or yes, no, on, off, 1, 0)"
	case strings.HasPrefix(pe.TypeName, "int") && errors.Is(pe.Err, strconv.ErrRange):
		what = "out of range: want a smaller whole number, such as 100"
	case strings.HasPrefix(pe.TypeName, "int"):
		what = "not a whole number: want digits, such as 100"
	}
	return fmt.Errorf("%s=%q: %s", pe.KeyName, pe.Value, what)
}

// Closest returns the candidate nearest to name, within
// maxSuggestDistance edits, the first in sort order among equals; "" when
// none is that close.
func Closest(name string, candidates iter.Seq[string]) string {
	best, bestDist := "", maxSuggestDistance+1
	for k := range candidates {
		if d := editDistance(name, k); d < bestDist || d == bestDist && k < best {
			best, bestDist = k, d
		}
	}
	return best
}
