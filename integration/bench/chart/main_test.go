package main

import (
	"bytes"
	"errors"
	"image"
	"image/png"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const sample = "testdata/results.md"

// TestMain runs main itself when the test binary is re-run by
// TestMainExitStatus.
func TestMain(m *testing.M) {
	if os.Getenv("CHART_TEST_RUN_MAIN") == "1" {
		os.Args = append([]string{"chart"}, strings.Fields(os.Getenv("CHART_TEST_ARGS"))...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func readSample(t *testing.T) report {
	t.Helper()
	f, err := os.Open(sample)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rep, err := parse(f)
	if err != nil {
		t.Fatalf("parse(%s) = %v, want no error", sample, err)
	}
	return rep
}

func TestParseSample(t *testing.T) {
	rep := readSample(t)
	if want := "2026-11-23 15:51 UTC, 2 cores, go1.26.8, nginx/1.22.1, wrk debian/4.1.0-3+b2"; rep.run != want {
		t.Errorf("run = %q, want %q", rep.run, want)
	}
	if len(rep.unmeasured) != 0 {
		t.Errorf("unmeasured = %q, want none", rep.unmeasured)
	}
	var names []string
	for _, tg := range rep.targets {
		names = append(names, tg.name)
	}
	wantNames := []string{
		"cgirun keepalive / net/http/fcgi keepalive",
		"cgirun keepalive / proxy_pass to net/http",
		"cgirun keepalive / php-fpm",
		"cgirun no keepalive / net/http/fcgi no keepalive",
		"runner / fcgiwrap, both -c 8",
		"runner / fcgiwrap, each its default",
		"cgirun peak RSS at 1000 clients",
		"cgirun upload MB/s / proxy_pass upload MB/s",
		"cgirun streaming back end peak RSS",
		"cold start cgi.Serve / net/http/cgi (mean time)",
		"cold start cgirun.Run / net/http/cgi (mean time)",
	}
	if !slices.Equal(names, wantNames) {
		t.Fatalf("target names = %q, want %q", names, wantNames)
	}

	tests := []struct {
		name string
		want target
	}{
		{"ratio not met", target{
			name:    "cgirun keepalive / net/http/fcgi keepalive",
			perPass: []float64{1.995, 2.156, 1.755},
			median:  2, medText: "2.00", op: "≥", want: 2.5, wantTxt: "≥2.5",
		}},
		{"ratio met", target{
			name:    "cgirun keepalive / php-fpm",
			perPass: []float64{1.802, 1.909, 0.948},
			median:  1.8, medText: "1.80", op: "≥", want: 1.5, wantTxt: "≥1.5", met: true,
		}},
		{"MiB not met, no passes", target{
			name:   "cgirun peak RSS at 1000 clients",
			median: 33.2, medText: "33.2", unit: "MiB", op: "≤", want: 30, wantTxt: "≤30 MiB",
		}},
		{"MiB met, strict bound", target{
			name:   "cgirun streaming back end peak RSS",
			median: 10, medText: "10.0", unit: "MiB", op: "<", want: 64, wantTxt: "<64 MiB", met: true,
		}},
		{"upper bound on a ratio", target{
			name:    "cold start cgi.Serve / net/http/cgi (mean time)",
			perPass: []float64{0.877, 0.918, 1.025},
			median:  0.92, medText: "0.92", op: "≤", want: 0.85, wantTxt: "≤0.85",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			i := slices.Index(names, tt.want.name)
			got := rep.targets[i]
			if !equalTarget(got, tt.want) {
				t.Errorf("parse(%s) row %q = %+v, want %+v", sample, tt.want.name, got, tt.want)
			}
		})
	}
}

func equalTarget(a, b target) bool {
	return a.name == b.name && slices.Equal(a.perPass, b.perPass) &&
		a.median == b.median && a.medText == b.medText && a.unit == b.unit &&
		a.op == b.op && a.want == b.want && a.wantTxt == b.wantTxt && a.met == b.met
}

// table builds run.sh's output around the given Targets rows.
func table(rows ...string) string {
	return "## Load benchmark\n\n2026-11-23 15:51 UTC, 2 cores;\n\n### Targets\n\nSome prose.\n\n" +
		targetsHeader + "\n|---|---|---:|---:|---|\n" + strings.Join(rows, "\n") + "\n\n### Memory\n"
}

const goodRow = "| a / b | 1.0 2.0 3.0 | 2.00 | ≥1.5 | met |"

func TestParseUnmeasured(t *testing.T) {
	in := table(
		goodRow,
		"| cgirun keepalive / php-fpm | php-fpm not installed | | ≥1.5 | skipped |",
		"| cgirun peak RSS at 1000 clients | | | ≤30 MiB | **NOT MEASURED** |",
		"| x / y | no figures | | ≥2.5 | **NOT MEASURED** |",
	)
	rep, err := parse(strings.NewReader(in))
	if err != nil {
		t.Fatalf("parse = %v, want no error", err)
	}
	want := []string{
		"cgirun keepalive / php-fpm: php-fpm not installed",
		"cgirun peak RSS at 1000 clients: no figures",
		"x / y: no figures",
	}
	if !slices.Equal(rep.unmeasured, want) {
		t.Errorf("unmeasured = %q, want %q", rep.unmeasured, want)
	}
	if len(rep.targets) != 1 || rep.targets[0].name != "a / b" {
		t.Errorf("targets = %+v, want the one measured row", rep.targets)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // in the error
	}{
		{"empty input", "", `no "### Targets" table`},
		{"no Targets table", "## Load benchmark\n\n2026-11-23\n\n### Throughput\n\n| a | b |\n|---|---|\n| 1 | 2 |\n", `no "### Targets" table`},
		{"no run heading", strings.TrimPrefix(table(goodRow), "## Load benchmark\n"), `no "## Load benchmark" heading`},
		{"other header", strings.Replace(table(goodRow), "| median |", "| mean |", 1), "Targets table header"},
		{"no separator", strings.Replace(table(goodRow), "|---|---|---:|---:|---|\n", "", 1), "want the |---| line"},
		{"table with no rows", table(), "no measured target"},
		{"input ends after the header", "## Load benchmark\n\nd\n\n### Targets\n\n" + targetsHeader + "\n", "ends before its first row"},
		{"heading with no table", "## Load benchmark\n\nd\n\n### Targets\n\n### Memory\n", "heading with no table"},
		{"all rows unmeasured", table("| x / y | no figures | | ≥2.5 | **NOT MEASURED** |"), "no measured target"},
		{"two Targets tables", table(goodRow) + "\n### Targets\n", `a second "### Targets" table`},
		{"two runs", table(goodRow) + "\n## Load benchmark\n", `a second "## Load benchmark" heading`},
		{"median not a number", table("| a / b | 1 2 3 | two | ≥1.5 | met |"), `median: "two": not a number`},
		{"median nan", table("| a / b | 1 2 3 | nan | ≥1.5 | met |"), `median: "nan": not a finite number`},
		{"median infinite", table("| a / b | 1 2 3 | +Inf | ≥1.5 | met |"), `not a finite number`},
		{"median negative", table("| a / b | 1 2 3 | -1.0 | ≥1.5 | met |"), `"-1.0": not a finite number from 0 to 1e+09`},
		{"bound too large", table("| a / b | 1 2 3 | 2.0 | ≥1e300 | met |"), `"1e300": not a finite number from 0 to 1e+09`},
		{"median missing", table("| a / b | 1 2 3 | | ≥1.5 | met |"), `median: "": want a number`},
		{"per pass not a number", table("| a / b | 1.0 x 3.0 | 2.00 | ≥1.5 | met |"), `per pass: "x": not a number`},
		{"per pass says no figures", table("| a / b | no figures | 2.00 | ≥1.5 | met |"), `per pass: "no": not a number`},
		{"bound with no operator", table("| a / b | 1 2 3 | 2.00 | 1.5 | met |"), "no ≥, ≤, > or < before the bound"},
		{"bound not a number", table("| a / b | 1 2 3 | 2.00 | ≥x | met |"), `want: "x": not a number`},
		{"units differ", table("| rss | | 33.2 MiB | ≤30 | met |"), "in different units"},
		{"three words", table("| rss | | 33.2 MiB x | ≤30 MiB | met |"), "want a number and at most a unit"},
		{"unknown verdict", table("| a / b | 1 2 3 | 2.00 | ≥1.5 | maybe |"), `verdict "maybe"`},
		{"too few cells", table("| a / b | 1 2 3 | 2.00 | ≥1.5 |"), "has 4 cells, want 5"},
		{"too many cells", table("| a / b | 1 2 3 | 2.00 | ≥1.5 | met | x |"), "has 6 cells, want 5"},
		{"row not closed", table("| a / b | 1 2 3 | 2.00 | ≥1.5 | met"), "does not end in |"},
		{"no name", table("|  | 1 2 3 | 2.00 | ≥1.5 | met |"), "no target name"},
		{"line too long", table("| a / b | " + strings.Repeat("1 ", maxLineBytes) + "| 2.00 | ≥1.5 | met |"), "token too long"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, err := parse(strings.NewReader(tt.in))
			if err == nil {
				t.Fatalf("parse = %+v, nil; want an error containing %q", rep, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("parse error = %q, want it to contain %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("parse error = %q, want one line", err)
			}
		})
	}
}

func TestParseErrorNamesLine(t *testing.T) {
	in := table(goodRow, "| a / b | 1 2 3 | two | ≥1.5 | met |")
	_, err := parse(strings.NewReader(in))
	// The bad row is the 12th line of table's output.
	if err == nil || !strings.HasPrefix(err.Error(), "line 12: a / b: ") {
		t.Errorf("parse error = %v, want it to start with %q", err, "line 12: a / b: ")
	}
}

func TestShortName(t *testing.T) {
	tests := []struct{ in, want string }{
		{"cgirun keepalive / net/http/fcgi keepalive", "keepalive vs net/http/fcgi keepalive"},
		{"runner / fcgiwrap, both -c 8", "runner vs fcgiwrap, both -c 8"},
		{"cgirun upload MB/s / proxy_pass upload MB/s", "upload vs proxy_pass upload"},
		{"cold start cgi.Serve / net/http/cgi (mean time)", "cold start cgi.Serve vs net/http/cgi"},
		{"cgirun peak RSS at 1000 clients", "peak RSS at 1000 clients"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := shortName(tt.in); got != tt.want {
				t.Errorf("shortName(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestBarName(t *testing.T) {
	long := strings.Repeat("x", maxNameRunes+10)
	tests := []struct {
		name string
		in   target
		want string
	}{
		{"ratio", target{name: "cgirun keepalive / php-fpm", wantTxt: "≥1.5"}, "keepalive vs php-fpm (≥1.5)"},
		{"unit", target{name: "cgirun peak RSS at 1000 clients", wantTxt: "≤30 MiB"}, "peak RSS at 1000 clients (≤30 MiB)"},
		{"too long", target{name: long, wantTxt: "≥1"}, strings.Repeat("x", maxNameRunes-1) + "… (≥1)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := barName(tt.in); got != tt.want {
				t.Errorf("barName(%q) = %q, want %q", tt.in.name, got, tt.want)
			}
		})
	}
}

func TestTicks(t *testing.T) {
	tests := []struct {
		top  float64
		want []string
	}{
		{2.75, []string{"0", "0.5", "1", "1.5", "2", "2.5"}},
		{1.1, []string{"0", "0.2", "0.4", "0.6", "0.8", "1"}},
		{77, []string{"0", "10", "20", "30", "40", "50", "60", "70"}},
		{180, []string{"0", "20", "40", "60", "80", "100", "120", "140", "160", "180"}},
		{0, []string{"0"}},
	}
	for _, tt := range tests {
		var got []string
		for _, tk := range ticks(tt.top) {
			got = append(got, tk.Label)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("ticks(%v) = %q, want %q", tt.top, got, tt.want)
		}
	}
}

func TestWrap(t *testing.T) {
	sty := textStyle(sans, 10)
	items := []string{"first: no figures", "second: fcgiwrap not installed", "third: no figures"}
	one := wrap(sty, "Not measured: ", items, px(2000))
	if want := []string{"Not measured: first: no figures; second: fcgiwrap not installed; third: no figures"}; !slices.Equal(one, want) {
		t.Errorf("wrap, wide = %q, want %q", one, want)
	}
	narrow := wrap(sty, "Not measured: ", items, sty.Width("Not measured: first: no figures; second"))
	want := []string{"Not measured: first: no figures;", "second: fcgiwrap not installed;", "third: no figures"}
	if !slices.Equal(narrow, want) {
		t.Errorf("wrap, narrow = %q, want %q", narrow, want)
	}
}

// decodePNG decodes the PNG file at path.
func decodePNG(t *testing.T, path string) image.Image {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("png.Decode(%s) = %v, want a PNG", path, err)
	}
	return img
}

// countColour counts the pixels of img that are exactly c.
func countColour(img image.Image, c [3]uint8) int {
	n := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if uint8(r>>8) == c[0] && uint8(g>>8) == c[1] && uint8(bl>>8) == c[2] {
				n++
			}
		}
	}
	return n
}

func TestRunWritesPNG(t *testing.T) {
	rep := readSample(t)
	naturalHeight := int(math.Ceil(newLayout(rep, 700).heightPx(rowPx)))
	tests := []struct {
		name   string
		args   []string
		w, h   int
		output string // relative to the temp dir
	}{
		{"requested size", []string{"-width", "900", "-height", "600"}, 900, 600, "x.png"},
		{"height fits the bars", []string{"-width", "700"}, 700, naturalHeight, "x.png"},
		{"larger than natural", []string{"-width", "1200", "-height", "1000"}, 1200, 1000, "x.png"},
		{"default name and width", nil, defaultWidth, 0, "ratios.png"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			out := filepath.Join(dir, tt.output)
			args := append([]string{}, tt.args...)
			if tt.output == "ratios.png" {
				t.Chdir(dir)
				args = append(args, filepath.Join(wd, sample))
			} else {
				args = append(args, "-o", out, sample)
			}
			var stderr bytes.Buffer
			if err := run(args, strings.NewReader(""), &stderr); err != nil {
				t.Fatalf("run(%q) = %v, want no error", args, err)
			}
			img := decodePNG(t, out)
			b := img.Bounds()
			if b.Dx() != tt.w || (tt.h != 0 && b.Dy() != tt.h) {
				t.Errorf("run(%q) wrote a %dx%d PNG, want %dx%d (0: any height)", args, b.Dx(), b.Dy(), tt.w, tt.h)
			}
			// The sample has targets met and not met: both colours fill
			// bars, so each covers far more than antialiased edges would.
			for _, c := range []struct {
				name string
				rgb  [3]uint8
			}{
				{"met", [3]uint8{colourMet.R, colourMet.G, colourMet.B}},
				{"not met", [3]uint8{colourNotMet.R, colourNotMet.G, colourNotMet.B}},
			} {
				if n := countColour(img, c.rgb); n < 2000 {
					t.Errorf("run(%q): %d pixels of the %s colour, want bars of it (≥ 2000)", args, n, c.name)
				}
			}
			if stderr.Len() != 0 {
				t.Errorf("run(%q) wrote %q to stderr, want nothing", args, stderr.String())
			}
		})
	}
}

// wd is the package directory, read before any test's t.Chdir.
var wd = func() string {
	d, err := os.Getwd()
	if err != nil {
		panic(err)
	}
	return d
}()

func TestRunReadsStdin(t *testing.T) {
	in, err := os.ReadFile(sample)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "stdin.png")
	if err := run([]string{"-o", out}, bytes.NewReader(in), &bytes.Buffer{}); err != nil {
		t.Fatalf("run(-o %s) with the sample on stdin = %v, want no error", out, err)
	}
	if b := decodePNG(t, out).Bounds(); b.Dx() != defaultWidth {
		t.Errorf("PNG from stdin is %d wide, want %d", b.Dx(), defaultWidth)
	}
}

func TestRunErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.md")
	if err := os.WriteFile(bad, []byte(table("| a / b | 1 2 3 | two | ≥1.5 | met |")), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		args  []string
		stdin string
		want  string // in the error
	}{
		{"unparseable number in a file", []string{bad}, "", `chart: ` + bad + `: line 11: a / b: median: "two": not a number`},
		{"no Targets table on stdin", nil, "# nothing here\n", `chart: standard input: no "### Targets" table`},
		{"missing file", []string{filepath.Join(dir, "none.md")}, "", "chart: open "},
		{"width too small", []string{"-width", "100", sample}, "", "chart: width 100: want 600 to 8000 pixels"},
		{"height too small", []string{"-height", "100", sample}, "", "chart: height 100: want 0 (fit the bars) or "},
		{"height too large", []string{"-height", "9000", sample}, "", "chart: height 9000"},
		{"unwritable output", []string{"-o", filepath.Join(dir, "no", "such", "dir.png"), sample}, "", "chart: open "},
		{"two files", []string{sample, sample}, "", "usage"},
		{"unknown flag", []string{"-x", sample}, "", "usage"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(dir, "out.png")
			args := tt.args
			if !slices.Contains(args, "-o") {
				args = append([]string{"-o", out}, args...)
			}
			err := run(args, strings.NewReader(tt.stdin), &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("run(%q) = %v, want an error containing %q", args, err, tt.want)
			}
			if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("run(%q) failed but left %s (stat: %v)", args, out, err)
			}
		})
	}
}

// TestMainExitStatus runs the command as a user would: bad input gives one
// line on stderr, exit status 1 and no PNG; good input gives a PNG and
// status 0.
func TestMainExitStatus(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.md")
	if err := os.WriteFile(bad, []byte("no table here\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		in         string
		wantStatus int
		wantPNG    bool
	}{
		{"bad input", bad, 1, false},
		{"good input", filepath.Join(wd, sample), 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-")+".png")
			cmd := exec.Command(os.Args[0], "-test.run=^TestMainExitStatus$")
			cmd.Env = append(os.Environ(), "CHART_TEST_RUN_MAIN=1", "CHART_TEST_ARGS=-o "+out+" "+tt.in)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			status := 0
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				status = exit.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if status != tt.wantStatus {
				t.Errorf("chart %s: exit status %d, want %d; stderr %q", tt.in, status, tt.wantStatus, stderr.String())
			}
			lines := strings.Count(stderr.String(), "\n")
			if tt.wantStatus != 0 && (lines != 1 || !strings.HasPrefix(stderr.String(), "chart: ")) {
				t.Errorf("chart %s: stderr %q, want one line starting \"chart: \"", tt.in, stderr.String())
			}
			if tt.wantStatus == 0 && stderr.Len() != 0 {
				t.Errorf("chart %s: stderr %q, want nothing", tt.in, stderr.String())
			}
			_, statErr := os.Stat(out)
			if gotPNG := statErr == nil; gotPNG != tt.wantPNG {
				t.Errorf("chart %s: PNG written = %v, want %v", tt.in, gotPNG, tt.wantPNG)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	if b, err := os.ReadFile(sample); err == nil {
		f.Add(string(b))
	}
	f.Add(table(goodRow))
	f.Add(table("| rss | | 33.2 MiB | ≤30 MiB | **NOT MET** |", "| x / y | no figures | | ≥2.5 | **NOT MEASURED** |"))
	f.Add(table("| a / b | 1 2 3 | nan | ≥1.5 | met |"))
	f.Fuzz(func(t *testing.T, in string) {
		rep, err := parse(strings.NewReader(in))
		if err != nil {
			return
		}
		if rep.run == "" || len(rep.targets) == 0 {
			t.Fatalf("parse(%q) = %+v, nil; want a run line and a target", in, rep)
		}
		for _, tg := range rep.targets {
			for _, v := range append([]float64{tg.median, tg.want}, tg.perPass...) {
				if !(v >= 0 && v <= maxFigure) {
					t.Fatalf("parse(%q): target %q has figure %v, want 0 to %g", in, tg.name, v, float64(maxFigure))
				}
			}
			if tg.op == "" {
				t.Fatalf("parse(%q): target %q has no bound operator", in, tg.name)
			}
		}
	})
}
