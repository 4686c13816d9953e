package settings

import (
	"encoding"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/kelseyhightower/envconfig"
)

// A Var is a variable envconfig reads into a spec, as envconfig.Usagef
// lists it.
type Var struct {
	Key     string // the variable's name, such as CGIRUN_SHUTDOWN_GRACE
	Type    string // envconfig's description of its type, such as "Duration" or boolType
	Default string // the field's default tag
	Desc    string // the field's desc tag

	required string // the field's required tag, as written
}

// Required is the variable's required tag as envconfig.Usagef shows it:
// "" when there is none, "true" for any word strconv.ParseBool reads as
// true, else the tag as written. The error is strconv.ParseBool's, for a
// tag it cannot read.
func (v Var) Required() (string, error) {
	if v.required == "" {
		return "", nil
	}
	b, err := strconv.ParseBool(v.required)
	if err != nil {
		return "", fmt.Errorf("settings: %s: required tag: %w", v.Key, err)
	}
	if b {
		return "true", nil
	}
	return v.required, nil
}

// Vars returns the variables envconfig reads into spec, a pointer to a
// struct, in envconfig's order, by the rules of envconfig v1.4.0, without
// text/template (whose execution, in envconfig.Usagef, keeps every
// exported method of the program in its binary). Unexported fields and
// those tagged ignored are left out. The key is the field's name, split
// into words at its capitals when split_words is true or replaced by its
// envconfig tag, after prefix and "_", in upper case. A struct field whose
// type implements none of envconfig.Decoder, envconfig.Setter,
// encoding.TextUnmarshaler and encoding.BinaryUnmarshaler is replaced by
// its own fields, whose prefix is its key, or prefix when it is embedded.
// Pointers are followed; where envconfig sets a nil pointer to a struct
// to a new one, Vars reads a new one and leaves spec as it is. The error is
// envconfig.ErrInvalidSpecification when spec is no pointer to a struct.
func Vars(prefix string, spec any) ([]Var, error) {
	s := reflect.ValueOf(spec)
	if s.Kind() != reflect.Pointer || s.Elem().Kind() != reflect.Struct {
		return nil, envconfig.ErrInvalidSpecification
	}
	return appendVars(nil, prefix, s.Elem()), nil
}

// appendVars appends to vars the variables of the struct s.
func appendVars(vars []Var, prefix string, s reflect.Value) []Var {
	t := s.Type()
	for i := range t.NumField() {
		ft := t.Field(i)
		if !ft.IsExported() || isTrue(ft.Tag.Get("ignored")) {
			continue
		}
		f := s.Field(i)
		for f.Kind() == reflect.Pointer {
			if f.IsNil() {
				if f.Type().Elem().Kind() != reflect.Struct {
					break
				}
				f = reflect.New(f.Type().Elem())
			}
			f = f.Elem()
		}
		key := ft.Name
		if isTrue(ft.Tag.Get("split_words")) {
			key = splitWords(key)
		}
		if alt := ft.Tag.Get("envconfig"); alt != "" {
			key = alt
		}
		if prefix != "" {
			key = prefix + "_" + key
		}
		key = strings.ToUpper(key)
		if f.Kind() == reflect.Struct && !decodes(f.Type()) {
			inner := key
			if ft.Anonymous {
				inner = prefix
			}
			vars = appendVars(vars, inner, f)
			continue
		}
		vars = append(vars, Var{
			Key:      key,
			Type:     typeDescription(f.Type()),
			Default:  ft.Tag.Get("default"),
			Desc:     ft.Tag.Get("desc"),
			required: ft.Tag.Get("required"),
		})
	}
	return vars
}

// isTrue reports whether a tag holds a word strconv.ParseBool reads as
// true, as envconfig does. A tag that is not there is not parsed: the
// error would be allocated for nothing.
func isTrue(tag string) bool {
	if tag == "" {
		return false
	}
	b, _ := strconv.ParseBool(tag)
	return b
}

// wordRegexps are envconfig's expressions that split a name into words
// (gatherRegexp) and an acronym from the word after it (acronymRegexp),
// compiled on first use: a CGI program that lists no variables does not
// compile them.
var wordRegexps = sync.OnceValues(func() (gather, acronym *regexp.Regexp) {
	return regexp.MustCompile("([^A-Z]+|[A-Z]+[^A-Z]+|[A-Z]+)"), regexp.MustCompile("([A-Z]+)([A-Z][^A-Z]+)")
})

// splitWords joins the words of a field's name with "_", as envconfig's
// split_words does: HTTPAddr is HTTP_Addr.
func splitWords(name string) string {
	gather, acronym := wordRegexps()
	var words []string
	for _, w := range gather.FindAllString(name, -1) {
		if m := acronym.FindStringSubmatch(w); len(m) == 3 {
			words = append(words, m[1], m[2])
		} else {
			words = append(words, w)
		}
	}
	if len(words) == 0 {
		return name
	}
	return strings.Join(words, "_")
}

// decodes reports whether envconfig reads a value of type t, or of a
// pointer to it, through one of its methods.
func decodes(t reflect.Type) bool {
	for _, i := range [...]reflect.Type{
		reflect.TypeFor[envconfig.Decoder](),
		reflect.TypeFor[envconfig.Setter](),
		reflect.TypeFor[encoding.TextUnmarshaler](),
		reflect.TypeFor[encoding.BinaryUnmarshaler](),
	} {
		if t.Implements(i) || reflect.PointerTo(t).Implements(i) {
			return true
		}
	}
	return false
}

// typeDescription is envconfig's description of a variable's type.
func typeDescription(t reflect.Type) string {
	// named is t's name where it is not the name of a Go type of its
	// kind (a time.Duration is a "Duration"), else what.
	named := func(builtin, what string) string {
		if name := t.Name(); name != "" && !strings.HasPrefix(name, builtin) {
			return name
		}
		return what
	}
	switch t.Kind() {
	case reflect.Array, reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return "String"
		}
		return "Comma-separated list of " + typeDescription(t.Elem())
	case reflect.Map:
		return "Comma-separated list of " + typeDescription(t.Key()) + ":" + typeDescription(t.Elem()) + " pairs"
	case reflect.Pointer:
		return typeDescription(t.Elem())
	case reflect.Struct:
		if decodes(t) && t.Name() != "" {
			return t.Name()
		}
		return ""
	case reflect.String:
		if name := t.Name(); name != "" && name != "string" {
			return name
		}
		return "String"
	case reflect.Bool:
		if name := t.Name(); name != "" && name != "bool" {
			return name
		}
		return boolType
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return named("int", "Integer")
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return named("uint", "Unsigned Integer")
	case reflect.Float32, reflect.Float64:
		return named("float", "Float")
	}
	return t.String()
}

// Usage writes what envconfig.Usagef writes for prefix and spec with
// envconfig.DefaultTableFormat: a line of text, then a row of KEY, TYPE,
// DEFAULT, REQUIRED and DESCRIPTION for each variable, separated by
// tabs. On a required tag it cannot read it writes the rows up to it, as
// envconfig.Usagef does, and returns the error of Var.Required.
func Usage(w io.Writer, prefix string, spec any) error {
	vars, err := Vars(prefix, spec)
	if err != nil {
		return err
	}
	head, _, _ := strings.Cut(envconfig.DefaultTableFormat, "{{range .}}")
	b := []byte(head)
	var reqErr error
	for _, v := range vars {
		b = append(b, v.Key+"\t"+v.Type+"\t"+v.Default+"\t"...)
		var req string
		if req, reqErr = v.Required(); reqErr != nil {
			break
		}
		b = append(b, req+"\t"+v.Desc+"\n"...)
	}
	if _, err := w.Write(b); err != nil {
		return err
	}
	return reqErr
}
