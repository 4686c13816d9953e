// Package buildinfo says which build a program is, in one line that both
// the cgirun command and programs served by package cgirun print.
package buildinfo

import (
	"runtime"
	"runtime/debug"
)

// Version is the main module's version as the build recorded it: a tag
// such as v1.2.0, a pseudo-version that holds the VCS revision (and
// "+dirty" for uncommitted changes), or "(devel)" when there is none.
func Version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

// Line is "NAME VERSION GOVERSION OS/ARCH", as "cgirun version" prints it:
//
//	cgirun v1.2.0 go1.26.8 linux/amd64
func Line(name string) string {
	return name + " " + Version() + " " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH
}
