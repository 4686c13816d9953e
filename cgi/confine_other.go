//go:build !linux

package cgi

// openScript resolves name by path: without /proc/self/fd there is no
// descriptor of the checked file to run, and what runs is looked up again
// by path when it starts.
func openScript(name string) (*scriptFile, error) {
	return statScript(name)
}
