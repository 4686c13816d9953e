package cgirun

import (
	"path/filepath"

	"github.com/cgirun/cgirun/internal/buildinfo"
)

// Version describes the running program in one line, as "myapp version"
// prints it: its name (the base of prog), its main module's version (a
// tag, a pseudo-version holding the VCS revision, or "(devel)"), the Go
// version and the platform:
//
//	myapp v1.2.0 go1.26.8 linux/amd64
func Version(prog string) string {
	return buildinfo.Line(filepath.Base(prog))
}

// isVersionArg reports whether args (os.Args's form) ask for the version
// alone: "version", "--version" or "-version" as the only argument, and
// main parsed no flags of its own (parsed: flag.Parsed()), which may have a
// -version of their own.
func isVersionArg(args []string, parsed bool) bool {
	if len(args) != 2 || parsed {
		return false
	}
	switch args[1] {
	case "version", "--version", "-version":
		return true
	}
	return false
}
