package main

import (
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/cgirun/cgirun/cgi"
)

// scriptExecutor reads the CGIRUN_* variables of env and the flags args as
// fcgi and http do, and returns the Executor they make for root.
func scriptExecutor(t *testing.T, root string, env map[string]string, args ...string) (*cgi.Executor, error) {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	var s ScriptConfig
	if err := loadEnv(&s); err != nil {
		return nil, err
	}
	fs := newFlagSet("test")
	s.flags(fs)
	if err := fs.Parse(args); err != nil {
		return nil, &usageError{flagError(fs, err)}
	}
	if err := s.validate(); err != nil {
		return nil, err
	}
	return s.executor([]string{root}, slog.New(slog.DiscardHandler))
}

// TestAllowEnvSetting: --allow-env and CGIRUN_ALLOW_ENV reach the
// Executor; a name that no variable can have is refused, naming the flag.
func TestAllowEnvSetting(t *testing.T) {
	root := t.TempDir()
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		want    []string
		wantErr string
	}{
		{"none", nil, nil, nil, ""},
		{"flags", nil, []string{"--allow-env", "TMPDIR", "--allow-env", "LD_BIND_NOW"}, []string{"TMPDIR", "LD_BIND_NOW"}, ""},
		{"variable", map[string]string{"CGIRUN_ALLOW_ENV": "TMPDIR,PYTHONPATH"}, nil, []string{"TMPDIR", "PYTHONPATH"}, ""},
		{"flag over variable", map[string]string{"CGIRUN_ALLOW_ENV": "TMPDIR"}, []string{"--allow-env", "PERL5LIB"}, []string{"PERL5LIB"}, ""},
		{"not a name", nil, []string{"--allow-env", "A=B"}, nil, `--allow-env (CGIRUN_ALLOW_ENV) "A=B": not a variable name; want a name such as TMPDIR`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := scriptExecutor(t, root, tt.env, tt.args...)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Errorf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(e.AllowEnv, tt.want) {
				t.Errorf("AllowEnv = %q, %v; want %q", e.AllowEnv, err, tt.want)
			}
		})
	}
	code, stdout, _ := runCmd(t, nil, "fcgi", "--help")
	if code != exitOK || !strings.Contains(stdout, "--allow-env NAME") || !strings.Contains(stdout, "CGIRUN_ALLOW_ENV") {
		t.Errorf("fcgi --help = %d, lacks --allow-env or CGIRUN_ALLOW_ENV:\n%s", code, stdout)
	}
}

// TestScriptChecksSettings: --strict-scripts, --unsafe-scripts (repeatable
// or a comma list, CGIRUN_UNSAFE_SCRIPTS) and --allow-privilege-gain reach
// the Executor; an unknown check is refused, naming the flag and the
// checks there are.
func TestScriptChecksSettings(t *testing.T) {
	root := t.TempDir()
	type got struct{ strict, setid, writable, owner, gain bool }
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		want    got
		wantErr string
	}{
		{"defaults", nil, nil, got{}, ""},
		{"strict", nil, []string{"--strict-scripts"}, got{strict: true}, ""},
		{"comma list", nil, []string{"--unsafe-scripts", "setid,owner"}, got{setid: true, owner: true}, ""},
		{"repeated", nil, []string{"--unsafe-scripts", "writable", "--unsafe-scripts", "owner"}, got{writable: true, owner: true}, ""},
		{"variables", map[string]string{"CGIRUN_UNSAFE_SCRIPTS": "setid", "CGIRUN_STRICT_SCRIPTS": "yes", "CGIRUN_ALLOW_PRIVILEGE_GAIN": "on"}, nil, got{strict: true, setid: true, gain: true}, ""},
		{"unknown check", nil, []string{"--unsafe-scripts", "setuid"}, got{}, `--unsafe-scripts (CGIRUN_UNSAFE_SCRIPTS) "setuid": not a check; want setid, writable or owner, such as --unsafe-scripts setid,owner`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := scriptExecutor(t, root, tt.env, tt.args...)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Errorf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if g := (got{e.StrictScripts, e.AllowSetID, e.AllowWritable, e.AllowAnyOwner, e.AllowPrivilegeGain}); g != tt.want {
				t.Errorf("Executor = %+v, want %+v", g, tt.want)
			}
		})
	}
}
