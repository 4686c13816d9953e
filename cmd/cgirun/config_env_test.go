package main

import (
	"os"
	"strings"
	"testing"

	"github.com/cgirun/cgirun/internal/settings/settingstest"
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

// TestUnknownSettingsWarned: a CGIRUN_* variable that no command reads is
// warned about with the closest setting of the command, before the error
// the typo may have caused. Another command's setting (a shared
// environment file), a --pass-env name (a cgirun program's setting meant
// for the scripts) and an upgrade's hand-over are not.
func TestUnknownSettingsWarned(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string // stderr
	}{
		{"a typo", map[string]string{"CGIRUN_ROT": "/srv/cgi-bin"}, []string{"http"},
			"cgirun http: CGIRUN_ROT is not a setting; did you mean CGIRUN_ROOT?\ncgirun http: no root"},
		{"another command's setting", map[string]string{"CGIRUN_PROBE_TIMEOUT": "1s"}, []string{"http"}, "cgirun http: no root"},
		{"a fcgi typo", map[string]string{"CGIRUN_CHILDRN": "4"}, []string{"fcgi", "-s", "nowhere"},
			"cgirun fcgi: CGIRUN_CHILDRN is not a setting; did you mean CGIRUN_CHILDREN?\ncgirun fcgi: "},
		{"passed to the scripts", map[string]string{"CGIRUN_ACCESS_LOG": "1"}, []string{"fcgi", "--pass-env", "CGIRUN_ACCESS_LOG", "-s", "nowhere"}, "cgirun fcgi: -s"},
		{"a probe typo", map[string]string{"CGIRUN_PROBE_TIMEOT": "1s"}, []string{"probe"},
			"cgirun probe: CGIRUN_PROBE_TIMEOT is not a setting; did you mean CGIRUN_PROBE_TIMEOUT?\ncgirun probe: "},
		{"an upgrade's hand-over", map[string]string{"CGIRUN_READY_FD": "9"}, []string{"fcgi", "-s", "nowhere"}, "cgirun fcgi: -s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			_, _, stderr := runCmd(t, nil, tt.args...)
			if !strings.HasPrefix(stderr, tt.want) {
				t.Errorf("run(%q) with %v stderr = %q, want it to start with %q", tt.args, tt.env, stderr, tt.want)
			}
		})
	}
}

// TestFlagMessages: a flag's bad value is named with what was wrong and a
// right value, not the flag package's "parse error" (issue 14).
func TestFlagMessages(t *testing.T) {
	root := t.TempDir()
	tests := []struct {
		name string
		args []string
		want string // the line on stderr
	}{
		{"duration without a unit", []string{"http", "--root", root, "--timeout", "5"},
			`cgirun http: --timeout "5": not a duration: want a number with a unit, such as 30s (see cgirun http --help)`},
		{"duration with =", []string{"fcgi", "--root", root, "--kill-grace=soon"},
			`cgirun fcgi: --kill-grace "soon": not a duration: want a number with a unit, such as 30s (see cgirun fcgi --help)`},
		{"integer", []string{"http", "--root", root, "-c", "many"},
			`cgirun http: -c "many": not a whole number: want digits, such as 100 (see cgirun http --help)`},
		{"integer out of range", []string{"http", "--root", root, "--max-body", "99999999999999999999"},
			`cgirun http: --max-body "99999999999999999999": out of range: want a smaller whole number, such as 100 (see cgirun http --help)`},
		{"boolean", []string{"fcgi", "--root", root, "-f=maybe"},
			`cgirun fcgi: -f "maybe": not a boolean: want true or false (see cgirun fcgi --help)`},
		{"rlimit with a unit", []string{"fcgi", "--root", root, "--rlimit-cpu", "1s"},
			`cgirun fcgi: --rlimit-cpu "1s": not a whole number: want digits, such as 100 (see cgirun fcgi --help)`},
		{"unknown flag", []string{"http", "--rot", root},
			`cgirun http: unknown flag --rot; did you mean --root? (see cgirun http --help)`},
		{"missing value", []string{"http", "--root"},
			`cgirun http: --root needs a value (see cgirun http --help)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runCmd(t, nil, tt.args...)
			if code != exitUsage || stderr != tt.want+"\n" {
				t.Errorf("run(%q) = %d, stderr %q; want %d and %q", tt.args, code, stderr, exitUsage, tt.want)
			}
		})
	}
}

// TestSettingsListedAsEnvconfig: the CGIRUN_* variables each command's
// --help and the man page list are those envconfig reads, described as
// envconfig.Usagef describes them.
func TestSettingsListedAsEnvconfig(t *testing.T) {
	c := &cli{getenv: os.Getenv}
	n := 0
	for _, cmd := range commands {
		p, ok, err := c.helpPage(t.Context(), cmd)
		if err != nil {
			t.Fatal(err)
		}
		if !ok || p.spec == nil {
			continue
		}
		n++
		t.Run(cmd.name, func(t *testing.T) {
			settingstest.Check(t, envPrefix, p.spec)
		})
	}
	if n < 4 {
		t.Errorf("%d commands list variables, want fcgi, http, proxy and probe at least", n)
	}
}
