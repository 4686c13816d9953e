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
	"syscall"

	"github.com/cgirun/cgirun/bridge"
)

// scriptError is a request the executor refuses before anything runs.
type scriptError struct {
	status int
	msg    string
}

func (s *scriptError) Error() string { return s.msg }

// scriptFile is a script that resolve checked: its real path and, where
// the platform allows, the checked file itself, open.
type scriptFile struct {
	path string // absolute, symlinks resolved
	// fd is the checked file, opened O_PATH and close-on-exec; -1 where
	// the script is checked and run by path.
	fd   int
	mode fs.FileMode
	uid  uint32
	gid  uint32
}

// close closes the script's descriptor, if any.
func (s *scriptFile) close() {
	if s.fd >= 0 {
		syscall.Close(s.fd)
		s.fd = -1
	}
}

// resolve finds the script a request names, opens it and checks that it
// may run; a refusal comes with the status that the client gets. The
// caller closes the script once it was started.
func (e *Executor) resolve(env *bridge.Environ) (*scriptFile, *scriptError) {
	name := env.Get("SCRIPT_FILENAME")
	if name == "" {
		root, script := env.Get("DOCUMENT_ROOT"), env.Get("SCRIPT_NAME")
		if root == "" || script == "" {
			return nil, &scriptError{http.StatusNotFound, "no SCRIPT_FILENAME, nor DOCUMENT_ROOT and SCRIPT_NAME"}
		}
		name = filepath.Join(root, script)
	}
	if strings.ContainsRune(name, 0) {
		return nil, &scriptError{http.StatusBadRequest, fmt.Sprintf("script name %q holds a NUL byte", name)}
	}
	if !filepath.IsAbs(name) {
		// Apache's "proxy:fcgi://host/path" form, or a relative path:
		// neither names a file this runner will look up.
		return nil, &scriptError{http.StatusForbidden, fmt.Sprintf("script name %q is not an absolute path", name)}
	}
	roots := e.roots
	if e.RootFromRequest {
		root, se := e.requestRoot(env)
		if se != nil {
			return nil, se
		}
		roots = []string{root}
	}
	s, err := openScript(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, &scriptError{http.StatusNotFound, fmt.Sprintf("script %s does not exist", name)}
	}
	if err != nil {
		return nil, &scriptError{http.StatusForbidden, fmt.Sprintf("script %s: %v", name, err)}
	}
	if se := e.check(name, s, roots); se != nil {
		s.close()
		return nil, se
	}
	return s, nil
}

// requestRoot returns the request's DOCUMENT_ROOT, absolute with symlinks
// resolved, the root of its script under RootFromRequest, once it is
// checked: a directory other than /, inside Roots when they are set.
func (e *Executor) requestRoot(env *bridge.Environ) (string, *scriptError) {
	dir := env.Get("DOCUMENT_ROOT")
	switch {
	case dir == "":
		return "", &scriptError{http.StatusForbidden, "no DOCUMENT_ROOT, the root of the script when the runner is given none; the web server must send it (nginx's fastcgi_params does)"}
	case strings.ContainsRune(dir, 0):
		return "", &scriptError{http.StatusBadRequest, fmt.Sprintf("DOCUMENT_ROOT %q holds a NUL byte", dir)}
	case !filepath.IsAbs(dir):
		return "", &scriptError{http.StatusForbidden, fmt.Sprintf("DOCUMENT_ROOT %q is not an absolute path", dir)}
	}
	real, err := filepath.EvalSymlinks(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return "", &scriptError{http.StatusNotFound, fmt.Sprintf("DOCUMENT_ROOT %s does not exist", dir)}
	}
	if err != nil {
		return "", &scriptError{http.StatusForbidden, fmt.Sprintf("DOCUMENT_ROOT %s: %v", dir, err)}
	}
	if fi, err := os.Stat(real); err != nil || !fi.IsDir() {
		return "", &scriptError{http.StatusForbidden, fmt.Sprintf("DOCUMENT_ROOT %s is not a directory", dir)}
	}
	if real == "/" {
		return "", &scriptError{http.StatusForbidden, fmt.Sprintf("DOCUMENT_ROOT %s resolves to /, which confines nothing", dir)}
	}
	if len(e.roots) > 0 && !slices.ContainsFunc(e.roots, func(root string) bool { return within(real, root) }) {
		return "", &scriptError{http.StatusForbidden, fmt.Sprintf("DOCUMENT_ROOT %s resolves to %s, outside the roots %v", dir, real, e.roots)}
	}
	return real, nil
}

// check checks the script s that name resolved to: inside one of roots,
// on the allowed list, a regular executable file.
func (e *Executor) check(name string, s *scriptFile, roots []string) *scriptError {
	real := s.path
	if !slices.ContainsFunc(roots, func(root string) bool { return within(real, root) }) {
		return &scriptError{http.StatusForbidden, fmt.Sprintf("script %s resolves to %s, outside the roots %v", name, real, roots)}
	}
	if e.allow != nil && !e.allow[real] {
		return &scriptError{http.StatusForbidden, fmt.Sprintf("script %s is not in the allowed list", real)}
	}
	switch {
	case !s.mode.IsRegular():
		return &scriptError{http.StatusForbidden, fmt.Sprintf("script %s is not a regular file", real)}
	case s.mode.Perm()&0o111 == 0:
		return &scriptError{http.StatusForbidden, fmt.Sprintf("script %s is not executable", real)}
	case e.Credential != nil && !mayExec(s, e.Credential):
		// A "#!" script runs through its interpreter (see
		// scriptFile.command): the kernel's check of the script's own
		// execute bit for the user is made here.
		return &scriptError{http.StatusForbidden, fmt.Sprintf("script %s (mode %v, owner %d, group %d) is not executable by uid %d", real, s.mode.Perm(), s.uid, s.gid, e.Credential.Uid)}
	}
	if e.strict() {
		if reason := e.suexec(s); reason != "" {
			return &scriptError{http.StatusForbidden, fmt.Sprintf("script %s %s", real, reason)}
		}
	}
	return nil
}

// strict reports whether the suEXEC checks and no_new_privs apply.
func (e *Executor) strict() bool {
	return e.Credential != nil || e.StrictScripts
}

// suexec makes Apache suEXEC's checks of a script, less those relaxed, and
// returns why s may not run, or "".
func (e *Executor) suexec(s *scriptFile) string {
	uid := uint32(os.Geteuid())
	if e.Credential != nil {
		uid = e.Credential.Uid
	}
	switch {
	case !e.AllowSetID && s.mode&(fs.ModeSetuid|fs.ModeSetgid) != 0:
		return fmt.Sprintf("is setuid or setgid (mode %v); AllowSetID (the runner's --unsafe-scripts setid) lets it run", s.mode)
	case !e.AllowWritable && s.mode.Perm()&0o022 != 0:
		return fmt.Sprintf("is writable by group or others (mode %v); AllowWritable (the runner's --unsafe-scripts writable) lets it run", s.mode.Perm())
	case !e.AllowAnyOwner && s.uid != uid:
		return fmt.Sprintf("is owned by uid %d, not by uid %d that runs it; AllowAnyOwner (the runner's --unsafe-scripts owner) lets it run", s.uid, uid)
	}
	if !e.AllowWritable {
		dir := filepath.Dir(s.path)
		var st syscall.Stat_t
		if err := syscall.Lstat(dir, &st); err != nil {
			return fmt.Sprintf("has a directory that cannot be checked: %v", err)
		}
		if st.Mode&0o022 != 0 {
			return fmt.Sprintf("is in %s, writable by group or others (mode %v); AllowWritable (the runner's --unsafe-scripts writable) lets it run", dir, fs.FileMode(st.Mode&0o777))
		}
	}
	return ""
}

// mayExec reports whether the user of cred may execute s by its
// permission bits (ACLs aside), as the kernel decides: the owner's bits
// for its owner, the group's for a member, the others' for the rest; root
// needs one execute bit of the three.
func mayExec(s *scriptFile, cred *syscall.Credential) bool {
	perm := s.mode.Perm()
	switch {
	case cred.Uid == 0:
		return perm&0o111 != 0
	case cred.Uid == s.uid:
		return perm&0o100 != 0
	case cred.Gid == s.gid || slices.Contains(cred.Groups, s.gid):
		return perm&0o010 != 0
	}
	return perm&0o001 != 0
}

// statScript resolves name by path, as platforms without /proc/self/fd
// do: what runs is looked up again by path when it starts.
func statScript(name string) (*scriptFile, error) {
	real, err := filepath.EvalSymlinks(name)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(real)
	if err != nil {
		return nil, err
	}
	s := &scriptFile{path: real, fd: -1, mode: fi.Mode()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.uid, s.gid = st.Uid, st.Gid
	}
	return s, nil
}

// within reports whether path is root or below it; both are clean absolute
// paths with symlinks resolved.
func within(path, root string) bool {
	root = strings.TrimSuffix(root, "/")
	return path == root || len(path) > len(root) && path[len(root)] == '/' && strings.HasPrefix(path, root)
}

// unsafeNames are the variables a request may not set for a script,
// beside the prefixes of unsafeVar: what the dynamic loader ignores in its
// secure mode (glibc's UNSECURE_ENVVARS), what makes a shell or an
// interpreter run code or load it from elsewhere before the script's first
// line, and what changes how a shell splits or traces the script.
var unsafeNames = map[string]bool{
	// glibc's secure mode, beside LD_* and MALLOC_*.
	"GCONV_PATH": true, "GETCONF_DIR": true, "GLIBC_TUNABLES": true, "HOSTALIASES": true,
	"LOCALDOMAIN": true, "LOCPATH": true, "NIS_PATH": true, "NLSPATH": true,
	"RESOLV_HOST_CONF": true, "RES_OPTIONS": true, "TMPDIR": true, "TZDIR": true,
	// Shells.
	"BASH_ENV": true, "ENV": true, "IFS": true, "SHELLOPTS": true, "BASHOPTS": true,
	"PS4": true, "CDPATH": true, "GLOBIGNORE": true, "BASH_XTRACEFD": true, "PROMPT_COMMAND": true,
	// Interpreters.
	"PERL5LIB": true, "PERL5OPT": true, "PERLLIB": true, "PERL5DB": true,
	"PYTHONPATH": true, "PYTHONSTARTUP": true, "PYTHONHOME": true, "PYTHONINSPECT": true,
	"PYTHONUSERBASE": true, "PYTHONBREAKPOINT": true, "PYTHONWARNINGS": true,
	"RUBYOPT": true, "RUBYLIB": true, "NODE_OPTIONS": true, "NODE_PATH": true,
	"JAVA_TOOL_OPTIONS": true, "_JAVA_OPTIONS": true, "JDK_JAVA_OPTIONS": true,
}

// unsafeVar reports whether a request may not set the variable name for a
// script: a name that is not a CGI meta-variable name (RFC 3875: letters,
// digits and '_', not starting with a digit; so never an exported bash
// function, BASH_FUNC_name%%), a name of unsafeNames, LD_*, MALLOC_*,
// BASH_FUNC_*, or HTTP_PROXY in any case (httpoxy).
func unsafeVar(name string) bool {
	if name == "" || '0' <= name[0] && name[0] <= '9' {
		return true
	}
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '_':
		default:
			return true
		}
	}
	switch {
	case strings.HasPrefix(name, "HTTP_"):
		return strings.EqualFold(name, "HTTP_PROXY")
	case strings.HasPrefix(name, "LD_"), strings.HasPrefix(name, "MALLOC_"), strings.HasPrefix(name, "BASH_FUNC_"):
		return true
	}
	return unsafeNames[name] || strings.EqualFold(name, "HTTP_PROXY")
}

// childEnv is the script's environment: the request's CGI variables, less
// those unsafeVar names (unless AllowEnv names them) and those execve
// cannot carry, plus the runner's variables named in Env, which are not
// filtered. The entries are cut from one string: one allocation, not one
// per variable. dropped names the request's variables left out; it is nil
// when none was.
func (e *Executor) childEnv(env *bridge.Environ) (list, dropped []string) {
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
		if e.dropVar(name, v) {
			dropped = append(dropped, name)
			continue
		}
		add(name, v)
	}
	for _, name := range names {
		if v, set := env.Lookup(name); set && !e.dropVar(name, v) {
			continue // the request's own value wins
		}
		if v, ok := os.LookupEnv(name); ok {
			add(name, v)
		}
	}
	all := b.String()
	list = make([]string, len(ends))
	start := 0
	for i, end := range ends {
		list[i], start = all[start:end], end
	}
	return list, dropped
}

// dropVar reports whether the request's variable name=v stays out of the
// script's environment: what execve cannot carry, a negative
// CONTENT_LENGTH, and what unsafeVar names unless AllowEnv lets it
// through.
func (e *Executor) dropVar(name, v string) bool {
	if name == "" || strings.ContainsRune(name, '=') || strings.ContainsRune(name, 0) || strings.ContainsRune(v, 0) {
		return true
	}
	if name == "CONTENT_LENGTH" && strings.HasPrefix(v, "-") {
		// A body of unknown length (Caddy sends -1 for a chunked one):
		// no length a CGI script understands. It reads stdin to its
		// end, as when nginx streams a chunked body with none.
		return true
	}
	return unsafeVar(name) && !e.allowEnv[name]
}
