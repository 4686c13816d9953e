package cgirun

import (
	"strings"
	"testing"

	"github.com/kelseyhightower/envconfig"

	"github.com/cgirun/cgirun/internal/settings"
	"github.com/cgirun/cgirun/internal/settings/settingstest"
)

// TestLoadConfigMessages: a value envconfig cannot read gets one line that
// names the variable, says what was wrong and gives an example of a right
// value, not envconfig's "envconfig.Process: assigning ..." (issue 14).
func TestLoadConfigMessages(t *testing.T) {
	tests := []struct {
		name, key, value, want string
	}{
		{"duration without a unit", "CGIRUN_SHUTDOWN_GRACE", "5", `cgirun: CGIRUN_SHUTDOWN_GRACE="5": not a duration: want a number with a unit, such as 30s or 2m`},
		{"duration in words", "CGIRUN_IDLE_TIMEOUT", "soon", `cgirun: CGIRUN_IDLE_TIMEOUT="soon": not a duration: want a number with a unit, such as 30s or 2m`},
		{"boolean", "CGIRUN_ACCESS_LOG", "maybe", `cgirun: CGIRUN_ACCESS_LOG="maybe": not a boolean: want true or false (or yes, no, on, off, 1, 0)`},
		{"integer", "CGIRUN_MAX_CONNS", "ten", `cgirun: CGIRUN_MAX_CONNS="ten": not a whole number: want digits, such as 100`},
		{"integer out of range", "CGIRUN_MAX_CONNS", "99999999999999999999", `cgirun: CGIRUN_MAX_CONNS="99999999999999999999": out of range: want a smaller whole number, such as 100`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(tt.key, tt.value)
			_, err := LoadConfig()
			if err == nil || err.Error() != tt.want {
				t.Errorf("LoadConfig() with %s=%q = %v, want %s", tt.key, tt.value, err, tt.want)
			}
		})
	}
}

// TestLoadConfigBooleans: yes, no, on and off are booleans too, in any
// case, as well as what strconv.ParseBool takes.
func TestLoadConfigBooleans(t *testing.T) {
	tests := []struct {
		value string
		want  bool
	}{
		{"yes", true}, {"Yes", true}, {"on", true}, {"ON", true}, {"true", true}, {"1", true},
		{"no", false}, {"off", false}, {"Off", false}, {"false", false}, {"0", false},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			t.Setenv("CGIRUN_ACCESS_LOG", tt.value)
			t.Setenv("CGIRUN_KEEPALIVE", tt.value)
			cfg, err := LoadConfig()
			if err != nil {
				t.Fatalf("LoadConfig() with CGIRUN_ACCESS_LOG=%q: %v", tt.value, err)
			}
			if cfg.AccessLog != tt.want || cfg.Keepalive != tt.want {
				t.Errorf("LoadConfig() with CGIRUN_ACCESS_LOG and CGIRUN_KEEPALIVE=%q = %v, %v; want %v", tt.value, cfg.AccessLog, cfg.Keepalive, tt.want)
			}
		})
	}
}

// TestUnknownSettings: a CGIRUN_* name that is no setting is warned about
// with the closest one, since a typo would otherwise fall back silently
// (CGIRUN_FASTCG: plain HTTP on 127.0.0.1:8080 behind nginx's 502).
func TestUnknownSettings(t *testing.T) {
	tests := []struct {
		name    string
		environ []string
		want    []string
	}{
		{"none", []string{"PATH=/bin", "CGIRUN_FASTCGI=/run/app.sock", "HTTP_CGIRUN_FASTCG=x"}, nil},
		{"a typo", []string{"CGIRUN_FASTCG=/run/app.sock"}, []string{"CGIRUN_FASTCG is not a setting; did you mean CGIRUN_FASTCGI?"}},
		{"a missing underscore", []string{"CGIRUN_SHUTDOWNGRACE=5s", "CGIRUN_ACESS_LOG=1"},
			[]string{"CGIRUN_SHUTDOWNGRACE is not a setting; did you mean CGIRUN_SHUTDOWN_GRACE?", "CGIRUN_ACESS_LOG is not a setting; did you mean CGIRUN_ACCESS_LOG?"}},
		{"nothing close", []string{"CGIRUN_QQQQQQQQQQQQQQQQ=1"}, []string{"CGIRUN_QQQQQQQQQQQQQQQQ is not a setting; see --help for the settings"}},
		{"an upgrade's hand-over", []string{"CGIRUN_INHERIT_FDS=3", "CGIRUN_READY_FD=4"}, nil},
		{"a test's variable", []string{"CGIRUN_TEST_UPGRADE_CHILD=1"}, nil},
	}
	known := settings.Names("CGIRUN", &Config{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := settings.Unknown(tt.environ, known)
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("Unknown(%q) = %q, want %q", tt.environ, got, tt.want)
			}
		})
	}
}

// TestForcedCGI: CGIRUN_CGI takes the booleans LoadConfig takes, so that
// Run tells CGI (whose arguments are the client's) at once for each.
func TestForcedCGI(t *testing.T) {
	tests := []struct {
		value string
		want  bool
	}{{"", false}, {"true", true}, {"1", true}, {"yes", true}, {"On", true}, {"no", false}, {"off", false}, {"0", false}, {"maybe", false}}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			if got := forcedCGI(tt.value); got != tt.want {
				t.Errorf("forcedCGI(%q) = %v, want %v", tt.value, got, tt.want)
			}
		})
	}
}

// TestUsageIsEnvconfigs: --help's table of settings is, byte for byte,
// envconfig.Usagef's with its DefaultTableFormat, which Usage wrote
// before it listed the settings without text/template.
func TestUsageIsEnvconfigs(t *testing.T) {
	settingstest.Check(t, "CGIRUN", &Config{})
	var got, want strings.Builder
	if err := Usage(&got); err != nil {
		t.Fatal(err)
	}
	if err := envconfig.Usagef("CGIRUN", &Config{}, &want, envconfig.DefaultTableFormat); err != nil {
		t.Fatal(err)
	}
	if got.String() != want.String() {
		t.Errorf("Usage wrote\n%q\nenvconfig.Usagef writes\n%q", got.String(), want.String())
	}
}
