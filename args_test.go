package cgirun

import "testing"

// TestCheckArgs: outside CGI, a flag Run does not read is logged, naming
// it and pointing at --help, rather than ignored without a word (issue
// 14). Arguments without a dash are the program's.
func TestCheckArgs(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string // "" means no warning
	}{
		{"none", []string{"/usr/bin/myapp"}, ""},
		{"a word", []string{"/usr/bin/myapp", "serve"}, ""},
		{"an unknown flag", []string{"/usr/bin/myapp", "--bogus"}, `cgirun: flag "--bogus" is not read: settings are CGIRUN_* environment variables, such as CGIRUN_HTTP=127.0.0.1:8080; see myapp --help`},
		{"a single-dash flag after a word", []string{"myapp", "x", "-v"}, `cgirun: flag "-v" is not read: settings are CGIRUN_* environment variables, such as CGIRUN_HTTP=127.0.0.1:8080; see myapp --help`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := checkArgs(tt.args); got != tt.want {
				t.Errorf("checkArgs(%q) = %q, want %q", tt.args, got, tt.want)
			}
		})
	}
}
