package settings_test

import (
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kelseyhightower/envconfig"

	"github.com/cgirun/cgirun/internal/settings"
	"github.com/cgirun/cgirun/internal/settings/settingstest"
)

// Types of the fields of ruleSpec, one for each of envconfig's rules.
type (
	level       string // a named string: its name
	switchBool  bool   // a named bool: its name
	interval    int64  // named int...: "Integer" (envconfig tests the prefix "int")
	port        uint16 // a named uint: its name
	ratio       float64
	listOfNames []string
	// textLevel is read through UnmarshalText: a variable, not a prefix.
	textLevel struct{ n int }
	// setterValue is read through envconfig.Setter on its pointer.
	setterValue struct{ s string }
	// decoderValue is read through envconfig.Decoder on its value.
	decoderValue struct{ s string }
	// binaryValue is read through encoding.BinaryUnmarshaler.
	binaryValue struct{ b []byte }
	// Named is a struct whose fields are variables under its key.
	Named struct {
		Host     string `default:"localhost"`
		HTTPPort int    `split_words:"true" required:"true" desc:"the port"`
	}
	// Embedded is a struct whose fields are variables under the outer
	// prefix.
	Embedded struct {
		EmbeddedField string `split_words:"true" default:"e"`
		TLSCert       string `split_words:"true"`
	}
	// PtrEmbedded is embedded through a nil pointer.
	PtrEmbedded struct {
		PtrEmbeddedField bool `split_words:"true"`
	}
	hidden struct{ Visible int }
)

func (l *textLevel) UnmarshalText(b []byte) error     { l.n = len(b); return nil }
func (v *setterValue) Set(s string) error             { v.s = s; return nil }
func (v decoderValue) Decode(string) error            { return nil }
func (v *binaryValue) UnmarshalBinary(b []byte) error { v.b = b; return nil }

// ruleSpec has a field for each rule by which envconfig names a variable
// and describes its type.
type ruleSpec struct {
	TLSCert       string `split_words:"true" desc:"an acronym before a word"`
	HTTPAddr      string `split_words:"true" default:":8080"`
	URLPath       string `split_words:"true"`
	ID            string `split_words:"true"`
	ServerID      string `split_words:"true"`
	IDs           []int  `split_words:"true"`
	X             int    `split_words:"true" desc:"a single letter"`
	A1B2          int    `split_words:"true"`
	MaxBody       int64  `split_words:"false"`
	MinBody       int64  `split_words:"no"`
	CacheSize     int64  `split_words:"1"`
	Alt           string `envconfig:"other_name" desc:"an alt name"`
	AltSplit      string `split_words:"true" envconfig:"alt_split_name"`
	Ignored       string `ignored:"true"`
	NotIgnored    string `ignored:"false"`
	unexported    string
	Duration      time.Duration `default:"5s"`
	Time          time.Time
	IP            net.IP
	Names         []string          `default:"a,b"`
	Counts        map[string]int    `desc:"a map"`
	Lists         map[string][]bool `split_words:"true"`
	Bytes         []byte
	Array         [3]float32
	ByteArray     [4]byte `split_words:"true"`
	Level         level
	Switch        switchBool
	Interval      interval
	Port          port
	Ratio         ratio
	Float         float32
	Float64       float64
	Uint16        uint16
	Uint8         uint8
	Int8          int8
	Listed        listOfNames
	Text          textLevel
	TextPtr       *textLevel
	Setter        setterValue
	Decoder       decoderValue
	Binary        binaryValue
	Any           any
	Func          func()
	Chan          chan int
	IntPtr        *int
	IntPtrPtr     **int
	RequiredTrue  string `split_words:"true" required:"true"`
	RequiredOne   string `split_words:"true" required:"1"`
	RequiredFalse string `split_words:"true" required:"false"`
	RequiredF     string `split_words:"true" required:"F"`
	RequiredZero  string `split_words:"true" required:"0" default:"x"`
	Named         Named
	NamedSplit    Named `split_words:"true"`
	NamedAlt      Named `envconfig:"server"`
	NamedPtr      *Named
	NamedPtrPtr   **Named `split_words:"true"`
	NamedIgnored  Named   `ignored:"true"`
	Inline        struct{ Depth int }
	Embedded      `desc:"not listed: its fields are"`
	*PtrEmbedded
	hidden
	Nested struct {
		Inner struct {
			LeafValue string `split_words:"true" default:"leaf"`
		}
	}
}

// TestVarsAsEnvconfig: settings lists the variables of a spec by every
// rule of envconfig v1.4.0 as envconfig.Usagef does, with a prefix and
// without.
func TestVarsAsEnvconfig(t *testing.T) {
	for _, prefix := range []string{"APP", "app", ""} {
		t.Run(prefix, func(t *testing.T) {
			settingstest.Check(t, prefix, &ruleSpec{})
		})
	}
}

// TestVarsFollowsPointers: a pointer that is set is followed to its value,
// and a nil pointer to a struct lists the struct's fields, as envconfig's
// listing does, but stays nil.
func TestVarsFollowsPointers(t *testing.T) {
	spec := &ruleSpec{}
	vars, err := settings.Vars("APP", spec)
	if err != nil {
		t.Fatal(err)
	}
	if spec.NamedPtr != nil || spec.NamedPtrPtr != nil || spec.PtrEmbedded != nil {
		t.Errorf("Vars set a nil pointer of its spec: %+v, %v, %+v", spec.NamedPtr, spec.NamedPtrPtr, spec.PtrEmbedded)
	}
	var keys []string
	for _, v := range vars {
		keys = append(keys, v.Key)
	}
	for _, want := range []string{"APP_NAMEDPTR_HOST", "APP_PTR_EMBEDDED_FIELD"} {
		if !strings.Contains(" "+strings.Join(keys, " ")+" ", " "+want+" ") {
			t.Errorf("Vars lists %q, want %s among them", keys, want)
		}
	}
	named := &Named{}
	spec.NamedPtrPtr = &named
	settingstest.Check(t, "APP", spec)
}

// TestVarsBadRequired: a required tag that is no boolean fails the
// listing at that variable, as envconfig.Usagef fails.
func TestVarsBadRequired(t *testing.T) {
	spec := &struct {
		Before string `default:"b"`
		Bad    string `required:"maybe" desc:"bad"`
		After  string
	}{}
	settingstest.Check(t, "APP", spec)
	vars, err := settings.Vars("APP", spec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vars[1].Required(); !errors.Is(err, strconv.ErrSyntax) {
		t.Errorf("%s.Required() = %v, want strconv.ErrSyntax", vars[1].Key, err)
	}
	var b strings.Builder
	if err := settings.Usage(&b, "APP", spec); !errors.Is(err, strconv.ErrSyntax) {
		t.Errorf("Usage = %v, want strconv.ErrSyntax", err)
	}
	if want := "APP_BAD\tString\t\t"; !strings.HasSuffix(b.String(), want) {
		t.Errorf("Usage wrote %q, want it to end at %q", b.String(), want)
	}
}

// TestVarsInvalidSpec: a spec that is no pointer to a struct is
// envconfig's ErrInvalidSpecification, and nothing is written.
func TestVarsInvalidSpec(t *testing.T) {
	var nilSpec *ruleSpec
	n := 1
	for _, spec := range []any{nil, ruleSpec{}, nilSpec, &n} {
		if _, err := settings.Vars("APP", spec); err != envconfig.ErrInvalidSpecification {
			t.Errorf("Vars(%T) = %v, want ErrInvalidSpecification", spec, err)
		}
		var b strings.Builder
		if err := settings.Usage(&b, "APP", spec); err != envconfig.ErrInvalidSpecification || b.Len() != 0 {
			t.Errorf("Usage(%T) = %v after %q, want ErrInvalidSpecification after nothing", spec, err, b.String())
		}
		settingstest.Check(t, "APP", spec)
	}
}

// failingWriter fails every write.
type failingWriter struct{}

var errWrite = errors.New("write failed")

func (failingWriter) Write([]byte) (int, error) { return 0, errWrite }

// TestUsageWriteError: Usage returns the error of its write.
func TestUsageWriteError(t *testing.T) {
	if err := settings.Usage(failingWriter{}, "APP", &Named{}); err != errWrite {
		t.Errorf("Usage = %v, want %v", err, errWrite)
	}
}
