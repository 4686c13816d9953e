// Package settingstest checks settings' listing of a spec against
// envconfig's own, envconfig.Usagef, for the tests of each package that
// has a spec. It is imported by tests only: envconfig.Usagef executes a
// text/template.
package settingstest

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/kelseyhightower/envconfig"

	"github.com/cgirun/cgirun/internal/settings"
)

// Separators of the fields and rows of rowFormat, which no tag holds.
const fieldSep, rowSep = "\x1f", "\x1e"

// rowFormat is an envconfig.Usagef format that shows every field of each
// variable, the required tag last, so that an error there cuts no other
// field of the row short.
const rowFormat = "{{range .}}{{usage_key .}}" + fieldSep + "{{usage_type .}}" + fieldSep + "{{usage_default .}}" + fieldSep +
	"{{usage_description .}}" + fieldSep + "{{usage_required .}}" + rowSep + "{{end}}"

// Check fails t unless settings.Vars lists the variables of spec (a
// pointer to a struct) under prefix as envconfig.Usagef does, every field
// of every row, and settings.Usage writes the bytes envconfig.Usagef
// writes with envconfig.DefaultTableFormat. Where envconfig.Usagef fails
// on a required tag, settings fails on the same tag with the same
// strconv error, after the same output. Check reads spec through settings
// before envconfig, which sets the nil pointers to structs it meets.
func Check(t testing.TB, prefix string, spec any) {
	t.Helper()
	var rows strings.Builder
	vars, err := settings.Vars(prefix, spec)
	if err == nil {
		err = writeRows(&rows, vars)
	}
	var table strings.Builder
	tableErr := settings.Usage(&table, prefix, spec)

	var wantRows, wantTable strings.Builder
	wantErr := envconfig.Usagef(prefix, spec, &wantRows, rowFormat)
	wantTableErr := envconfig.Usagef(prefix, spec, &wantTable, envconfig.DefaultTableFormat)

	if got, want := rows.String(), wantRows.String(); got != want {
		t.Errorf("settings.Vars(%q, %T) lists\n%s\nenvconfig.Usagef lists\n%s", prefix, spec, readable(got), readable(want))
	}
	if !sameError(err, wantErr) {
		t.Errorf("settings.Vars(%q, %T): error %v, envconfig.Usagef's %v", prefix, spec, err, wantErr)
	}
	if got, want := table.String(), wantTable.String(); got != want {
		t.Errorf("settings.Usage(%q, %T) =\n%q\nenvconfig.Usagef with DefaultTableFormat =\n%q", prefix, spec, got, want)
	}
	if !sameError(tableErr, wantTableErr) {
		t.Errorf("settings.Usage(%q, %T) = %v, envconfig.Usagef's %v", prefix, spec, tableErr, wantTableErr)
	}
}

// writeRows writes vars in rowFormat, up to the first required tag that
// cannot be read, whose error it returns.
func writeRows(b *strings.Builder, vars []settings.Var) error {
	for _, v := range vars {
		b.WriteString(v.Key + fieldSep + v.Type + fieldSep + v.Default + fieldSep + v.Desc + fieldSep)
		req, err := v.Required()
		if err != nil {
			return err
		}
		b.WriteString(req + rowSep)
	}
	return nil
}

// sameError reports whether got and want are both nil, or both wrap
// strconv errors alike, or are the same error.
func sameError(got, want error) bool {
	var gotNum, wantNum *strconv.NumError
	if errors.As(got, &gotNum) && errors.As(want, &wantNum) {
		return *gotNum == *wantNum
	}
	return got == want
}

// readable shows rows in rowFormat one a line, fields separated by " | ".
func readable(rows string) string {
	return strings.NewReplacer(fieldSep, " | ", rowSep, "\n").Replace(rows)
}
