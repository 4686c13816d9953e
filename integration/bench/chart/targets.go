package main

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
)

// The lines of run.sh's output that the parser looks for.
const (
	runHeading     = "## Load benchmark"
	targetsHeading = "### Targets"
	targetsHeader  = "| target | per pass | median | want | verdict |"
)

// Limits on the input, far above what run.sh prints.
const (
	maxLineBytes = 64 << 10 // one line; run.sh's longest are a few hundred bytes
	maxFigure    = 1e9      // a ratio or a size in MiB
)

// report is what the chart is drawn from: one run of run.sh.
type report struct {
	run        string   // the line after "## Load benchmark": date, cores, versions
	targets    []target // the measured rows of the Targets table, in order
	unmeasured []string // rows the run had no figures for, with the reason
}

// target is one measured row of the Targets table.
type target struct {
	name    string    // as in the table
	perPass []float64 // empty for single figures such as peak RSS
	median  float64
	medText string // the median as the table prints it, without unit
	unit    string // "" for ratios, else the unit of median and bound ("MiB")
	op      string // "≥", "≤", "<" or ">"
	want    float64
	wantTxt string // the bound as the table prints it: "≥2.5", "≤30 MiB"
	met     bool
}

// parse reads run.sh's markdown and returns its Targets table. It fails on
// input with no Targets table or more than one, on a table whose header is
// not run.sh's, and on a figure it cannot read.
func parse(r io.Reader) (report, error) {
	var (
		rep         report
		lineNo      int
		wantRunLine bool   // the line after runHeading is next
		state       string // "", "prose", "header", "separator", "rows", "done"
	)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxLineBytes)
	for sc.Scan() {
		lineNo++
		line := strings.TrimSpace(sc.Text())
		if wantRunLine && line != "" {
			rep.run = strings.TrimSuffix(line, ";")
			wantRunLine = false
			continue
		}
		switch {
		case line == runHeading:
			if rep.run != "" || wantRunLine {
				return report{}, fmt.Errorf("line %d: a second %q heading: give one run at a time", lineNo, runHeading)
			}
			wantRunLine = true
			continue
		case line == targetsHeading:
			if state != "" {
				return report{}, fmt.Errorf("line %d: a second %q table: give one run at a time", lineNo, targetsHeading)
			}
			state = "prose"
			continue
		}
		switch state {
		case "prose":
			if strings.HasPrefix(line, "|") {
				if cells := splitRow(line); !slices.Equal(cells, splitRow(targetsHeader)) {
					return report{}, fmt.Errorf("line %d: Targets table header %q, want %q", lineNo, line, targetsHeader)
				}
				state = "separator"
			} else if strings.HasPrefix(line, "#") {
				return report{}, fmt.Errorf("line %d: %q heading with no table under it", lineNo, targetsHeading)
			}
		case "separator":
			if strings.Trim(line, "|-: ") != "" || !strings.HasPrefix(line, "|") {
				return report{}, fmt.Errorf("line %d: %q after the Targets header, want the |---| line", lineNo, line)
			}
			state = "rows"
		case "rows":
			if !strings.HasPrefix(line, "|") {
				state = "done"
				continue
			}
			if err := rep.addRow(line); err != nil {
				return report{}, fmt.Errorf("line %d: %w", lineNo, err)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return report{}, fmt.Errorf("line %d: %w", lineNo+1, err)
	}
	switch {
	case state == "":
		return report{}, fmt.Errorf("no %q table in the input", targetsHeading)
	case state == "prose" || state == "separator":
		return report{}, fmt.Errorf("the %q table ends before its first row", targetsHeading)
	case rep.run == "":
		return report{}, fmt.Errorf("no %q heading followed by the run's date line", runHeading)
	case len(rep.targets) == 0:
		return report{}, fmt.Errorf("the %q table has no measured target", targetsHeading)
	}
	return rep, nil
}

// splitRow returns the trimmed cells of a markdown table row.
func splitRow(line string) []string {
	line = strings.TrimSpace(line)
	line = strings.TrimPrefix(line, "|")
	line = strings.TrimSuffix(line, "|")
	cells := strings.Split(line, "|")
	for i, c := range cells {
		cells[i] = strings.TrimSpace(c)
	}
	return cells
}

// addRow parses one row of the Targets table into rep.
func (rep *report) addRow(line string) error {
	if !strings.HasSuffix(line, "|") {
		return fmt.Errorf("row %q does not end in |", line)
	}
	cells := splitRow(line)
	if len(cells) != 5 {
		return fmt.Errorf("row %q has %d cells, want 5", line, len(cells))
	}
	name, perPass, median, want, verdict := cells[0], cells[1], cells[2], cells[3], cells[4]
	if name == "" {
		return fmt.Errorf("row %q has no target name", line)
	}
	t := target{name: name}
	switch strings.Trim(verdict, "*") {
	case "met":
		t.met = true
	case "NOT MET":
	case "NOT MEASURED", "skipped":
		why := perPass
		if why == "" {
			why = "no figures"
		}
		rep.unmeasured = append(rep.unmeasured, name+": "+why)
		return nil
	default:
		return fmt.Errorf("%s: verdict %q, want met, **NOT MET**, **NOT MEASURED** or skipped", name, verdict)
	}

	var err error
	t.median, t.unit, err = parseFigure(median)
	if err != nil {
		return fmt.Errorf("%s: median: %w", name, err)
	}
	t.medText = strings.TrimSpace(strings.TrimSuffix(median, t.unit))

	t.wantTxt = want
	for _, op := range []string{"≥", "≤", ">", "<"} {
		if rest, ok := strings.CutPrefix(want, op); ok {
			t.op = op
			want = rest
			break
		}
	}
	if t.op == "" {
		return fmt.Errorf("%s: want %q: no ≥, ≤, > or < before the bound", name, t.wantTxt)
	}
	var unit string
	t.want, unit, err = parseFigure(want)
	if err != nil {
		return fmt.Errorf("%s: want: %w", name, err)
	}
	if unit != t.unit {
		return fmt.Errorf("%s: median %q and bound %q are in different units", name, median, t.wantTxt)
	}

	for f := range strings.FieldsSeq(perPass) {
		v, err := parseNumber(f)
		if err != nil {
			return fmt.Errorf("%s: per pass: %w", name, err)
		}
		t.perPass = append(t.perPass, v)
	}
	rep.targets = append(rep.targets, t)
	return nil
}

// parseFigure reads "2.00" or "33.2 MiB": a number and an optional unit.
func parseFigure(s string) (v float64, unit string, err error) {
	fields := strings.Fields(s)
	switch len(fields) {
	case 1:
	case 2:
		unit = fields[1]
	default:
		return 0, "", fmt.Errorf("%q: want a number and at most a unit", s)
	}
	v, err = parseNumber(fields[0])
	return v, unit, err
}

// parseNumber reads a figure of the table: finite and not negative, since
// every figure is a size or a ratio of two rates, sizes or times.
func parseNumber(s string) (float64, error) {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("%q: not a number", s)
	}
	if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 || v > maxFigure {
		return 0, fmt.Errorf("%q: not a finite number from 0 to %g", s, float64(maxFigure))
	}
	return v, nil
}

// shortName turns a target's name into a label that fits beside a bar:
// "cgirun keepalive / php-fpm" becomes "keepalive vs php-fpm".
func shortName(name string) string {
	s := strings.TrimPrefix(name, "cgirun ")
	s = strings.ReplaceAll(s, " (mean time)", "")
	s = strings.ReplaceAll(s, " MB/s", "")
	s = strings.ReplaceAll(s, " / ", " vs ")
	return s
}

// spread returns the lowest and highest per-pass figures, or the median
// twice when the row has none.
func (t target) spread() (lo, hi float64) {
	if len(t.perPass) == 0 {
		return t.median, t.median
	}
	return slices.Min(t.perPass), slices.Max(t.perPass)
}
