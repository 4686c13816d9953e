package cgirun

import (
	"runtime"
	"strings"
	"testing"
)

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

// TestIsVersionArg: "myapp version" and --version print the version
// rather than start a server (issue 14); version among other arguments is
// the program's own word.
func TestIsVersionArg(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want bool
	}{
		{[]string{"myapp", "version"}, true},
		{[]string{"myapp", "--version"}, true},
		{[]string{"myapp", "-version"}, true},
		{[]string{"myapp"}, false},
		{[]string{"myapp", "versions"}, false},
		{[]string{"myapp", "version", "2"}, false},
		{[]string{"myapp", "serve", "version"}, false},
	} {
		if isVersionArg(tt.args, true) {
			t.Errorf("isVersionArg(%q) after flag.Parse = true, want false: main reads its own flags", tt.args)
		}
		if got := isVersionArg(tt.args, false); got != tt.want {
			t.Errorf("isVersionArg(%q) = %v, want %v", tt.args, got, tt.want)
		}
	}
}

// TestVersion: the line names the program, not its path, and the Go
// version it was built with.
func TestVersion(t *testing.T) {
	got := Version("/usr/local/bin/myapp")
	if !strings.HasPrefix(got, "myapp ") || !strings.Contains(got, " "+runtime.Version()+" ") {
		t.Errorf("Version = %q, want it to start with %q and hold %q", got, "myapp ", runtime.Version())
	}
}
