package cgi

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cgirun/cgirun/bridge"
)

// scriptError is a request the executor refuses before anything runs.
type scriptError struct {
	status int
	msg    string
}

func (s *scriptError) Error() string { return s.msg }

// resolve finds the script a request names and checks that it may run;
// a refusal comes with the status that the client gets.
func (e *Executor) resolve(env *bridge.Environ) (string, *scriptError) {
	name := env.Get("SCRIPT_FILENAME")
	if name == "" {
		root, script := env.Get("DOCUMENT_ROOT"), env.Get("SCRIPT_NAME")
		if root == "" || script == "" {
			return "", &scriptError{http.StatusNotFound, "no SCRIPT_FILENAME, nor DOCUMENT_ROOT and SCRIPT_NAME"}
		}
		name = filepath.Join(root, script)
	}
	if strings.ContainsRune(name, 0) {
		return "", &scriptError{http.StatusBadRequest, fmt.Sprintf("script name %q holds a NUL byte", name)}
	}
	if !filepath.IsAbs(name) {
		// Apache's "proxy:fcgi://host/path" form, or a relative path:
		// neither names a file this runner will look up.
		return "", &scriptError{http.StatusForbidden, fmt.Sprintf("script name %q is not an absolute path", name)}
	}
	real, err := filepath.EvalSymlinks(name)
	if errors.Is(err, fs.ErrNotExist) {
		return "", &scriptError{http.StatusNotFound, fmt.Sprintf("script %s does not exist", name)}
	}
	if err != nil {
		return "", &scriptError{http.StatusForbidden, fmt.Sprintf("script %s: %v", name, err)}
	}
	if !slices.ContainsFunc(e.roots, func(root string) bool { return within(real, root) }) {
		return "", &scriptError{http.StatusForbidden, fmt.Sprintf("script %s resolves to %s, outside the roots %v", name, real, e.roots)}
	}
	if e.allow != nil && !e.allow[real] {
		return "", &scriptError{http.StatusForbidden, fmt.Sprintf("script %s is not in the allowed list", real)}
	}
	fi, err := os.Stat(real)
	switch {
	case err != nil:
		return "", &scriptError{http.StatusForbidden, fmt.Sprintf("script %s: %v", real, err)}
	case !fi.Mode().IsRegular():
		return "", &scriptError{http.StatusForbidden, fmt.Sprintf("script %s is not a regular file", real)}
	case fi.Mode().Perm()&0o111 == 0:
		return "", &scriptError{http.StatusForbidden, fmt.Sprintf("script %s is not executable", real)}
	}
	return real, nil
}

// within reports whether path is root or below it; both are clean absolute
// paths with symlinks resolved.
func within(path, root string) bool {
	return path == root || strings.HasPrefix(path, strings.TrimSuffix(root, "/")+"/")
}

// childEnv is the script's environment: the request's CGI variables, less
// HTTP_PROXY, plus the runner's variables named in Env. The entries are
// cut from one string: one allocation, not one per variable.
func (e *Executor) childEnv(env *bridge.Environ) []string {
	names := e.Env
	if names == nil {
		names = []string{"PATH"}
	}
	var b strings.Builder
	var ends []int
	add := func(name, v string) {
		b.WriteString(name)
		b.WriteByte('=')
		b.WriteString(v)
		ends = append(ends, b.Len())
	}
	size := 0
	for name, v := range env.All() {
		size += len(name) + 1 + len(v)
	}
	b.Grow(size + 256)
	ends = make([]int, 0, env.Len()+len(names))
	for name, v := range env.All() {
		if name == "HTTP_PROXY" || strings.ContainsRune(name, '=') || strings.ContainsRune(name, 0) || strings.ContainsRune(v, 0) {
			continue // httpoxy; and what execve cannot carry
		}
		add(name, v)
	}
	for _, name := range names {
		if _, set := env.Lookup(name); set {
			continue // the request's own value wins
		}
		if v, ok := os.LookupEnv(name); ok {
			add(name, v)
		}
	}
	all := b.String()
	list := make([]string, len(ends))
	start := 0
	for i, end := range ends {
		list[i], start = all[start:end], end
	}
	return list
}
