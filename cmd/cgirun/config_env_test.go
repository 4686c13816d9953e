package main

import (
	"strings"
	"testing"
)

// TestEnvironmentMessages: a CGIRUN_* value envconfig cannot read gets one
// line naming the variable, what was wrong and an example of a right value,
// not envconfig's words; yes, no, on and off are booleans (issue 14).
func TestEnvironmentMessages(t *testing.T) {
	root := t.TempDir()
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string // the line on stderr
	}{
		{"duration without a unit", map[string]string{"CGIRUN_SCRIPT_TIMEOUT": "5"}, []string{"http", "--root", root},
			`cgirun http: CGIRUN_SCRIPT_TIMEOUT="5": not a duration: want a number with a unit, such as 30s or 2m (see cgirun http --help)` + "\n"},
		{"integer", map[string]string{"CGIRUN_CHILDREN": "many"}, []string{"http", "--root", root},
			`cgirun http: CGIRUN_CHILDREN="many": not a whole number: want digits, such as 100 (see cgirun http --help)` + "\n"},
		{"boolean", map[string]string{"CGIRUN_STDERR_TO_WEB_SERVER": "maybe"}, []string{"fcgi", "--root", root, "-s", "nowhere"},
			`cgirun fcgi: CGIRUN_STDERR_TO_WEB_SERVER="maybe": not a boolean: want true or false (or yes, no, on, off, 1, 0) (see cgirun fcgi --help)` + "\n"},
		{"yes is a boolean", map[string]string{"CGIRUN_STDERR_TO_WEB_SERVER": "yes"}, []string{"fcgi", "--root", root, "-s", "nowhere"},
			"-s (CGIRUN_FASTCGI)"},
		{"off is a boolean", map[string]string{"CGIRUN_STDERR_TO_WEB_SERVER": "Off"}, []string{"fcgi", "--root", root, "-s", "nowhere"},
			"-s (CGIRUN_FASTCGI)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			code, _, stderr := runCmd(t, nil, tt.args...)
			if code != exitUsage || !strings.Contains(stderr, tt.want) || strings.Count(stderr, "\n") != 1 {
				t.Errorf("run(%q) with %v = %d, stderr %q; want %d and the line %q", tt.args, tt.env, code, stderr, exitUsage, tt.want)
			}
		})
	}
}
