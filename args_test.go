package cgirun

import "testing"

// TestCheckArgs: outside CGI, a flag Run does not know is an error naming
// it and pointing at --help, rather than a server started as if it had not
// been given (issue 14). Arguments without a dash are the program's.
func TestCheckArgs(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string // "" means no error
	}{
		{"none", []string{"/usr/bin/myapp"}, ""},
		{"a word", []string{"/usr/bin/myapp", "serve"}, ""},
		{"an unknown flag", []string{"/usr/bin/myapp", "--bogus"}, `cgirun: unknown flag "--bogus": settings are CGIRUN_* environment variables, such as CGIRUN_HTTP=127.0.0.1:8080; see myapp --help`},
		{"a single-dash flag after a word", []string{"myapp", "x", "-v"}, `cgirun: unknown flag "-v": settings are CGIRUN_* environment variables, such as CGIRUN_HTTP=127.0.0.1:8080; see myapp --help`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkArgs(tt.args)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("checkArgs(%q) = %q, want %q", tt.args, got, tt.want)
			}
		})
	}
}
