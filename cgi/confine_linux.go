package cgi

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"sync"
	"syscall"
)

// oPath is open(2)'s O_PATH, which package syscall lacks on some
// architectures: a descriptor that names a file without reading it (a FIFO
// or a device is not opened for I/O).
const oPath = 0x200000

// stNoexec is statfs(2)'s ST_NOEXEC: the file system is mounted noexec.
const stNoexec = 0x8

// procFD tells whether /proc/self/fd is there to read: without it, scripts
// are checked and run by path.
var procFD = sync.OnceValue(func() bool {
	_, err := os.Stat("/proc/self/fd")
	return err == nil
})

// fdPath is the name of descriptor fd in /proc/self/fd.
func fdPath(fd int) string {
	return "/proc/self/fd/" + strconv.Itoa(fd)
}

// openScript opens name, symlinks followed, and describes the file it
// opened: its path is the one the kernel gives for the descriptor, not
// the one the name resolved to a moment before, so a swap of a directory
// for a symlink after the open changes nothing of what is checked and
// run.
func openScript(name string) (*scriptFile, error) {
	if !procFD() {
		return statScript(name)
	}
	fd, err := syscall.Open(name, oPath|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	if fd < 3 {
		// The child's 0, 1 and 2 are replaced before its exec: keep the
		// script's descriptor above them.
		nfd, err := fcntlDup(fd)
		syscall.Close(fd)
		if err != nil {
			return nil, &os.PathError{Op: "dup", Path: name, Err: err}
		}
		fd = nfd
	}
	s := &scriptFile{fd: fd}
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		s.close()
		return nil, &os.PathError{Op: "fstat", Path: name, Err: err}
	}
	if st.Nlink == 0 {
		s.close()
		return nil, &os.PathError{Op: "open", Path: name, Err: errors.New("the file was removed as it was opened")}
	}
	if s.path, err = os.Readlink(fdPath(fd)); err != nil {
		s.close()
		return nil, err
	}
	s.mode = fs.FileMode(st.Mode & 0o777)
	switch st.Mode & syscall.S_IFMT {
	case syscall.S_IFREG:
	case syscall.S_IFDIR:
		s.mode |= fs.ModeDir
	default:
		s.mode |= fs.ModeIrregular
	}
	if st.Mode&syscall.S_ISUID != 0 {
		s.mode |= fs.ModeSetuid
	}
	if st.Mode&syscall.S_ISGID != 0 {
		s.mode |= fs.ModeSetgid
	}
	s.uid, s.gid = st.Uid, st.Gid
	return s, nil
}

func fcntlDup(fd int) (int, error) {
	nfd, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_DUPFD_CLOEXEC, 3)
	if errno != 0 {
		return -1, errno
	}
	return int(nfd), nil
}

// binprmBufSize is how much of a file the kernel reads to find a "#!"
// line (BINPRM_BUF_SIZE).
const binprmBufSize = 256

// command returns the program to execute for s and its argv. A script
// without a descriptor runs by path, as argv [path]. A binary runs as
// /proc/self/fd/N, the checked file itself, with argv [path]. A "#!"
// script runs its interpreter as the kernel would run it, argv
// [interpreter, optional argument, path]: the interpreter named by the
// checked file, which then opens path.
func (s *scriptFile) command() (string, []string, error) {
	if s.fd < 0 {
		return s.path, []string{s.path}, nil
	}
	// A plain descriptor, not an os.File: the file is read once, by one
	// pread, with nothing for the poller (which would try to register
	// it, since it is opened non-blocking, and fail: a regular file).
	name := fdPath(s.fd)
	fd, err := syscall.Open(name, syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return "", nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	var b [binprmBufSize]byte
	n, err := syscall.Pread(fd, b[:], 0)
	syscall.Close(fd)
	if n < 2 {
		return name, []string{s.path}, nil // the kernel says what it makes of it
	}
	interp, arg, ok, err := shebang(b[:n])
	switch {
	case err != nil:
		return "", nil, fmt.Errorf("script %s: %w", s.path, err)
	case !ok:
		return name, []string{s.path}, nil
	}
	// The kernel refuses to run a script from a file system mounted
	// noexec, even through an interpreter it is asked to run directly.
	var sfs syscall.Statfs_t
	if err := syscall.Fstatfs(s.fd, &sfs); err == nil && sfs.Flags&stNoexec != 0 {
		return "", nil, fmt.Errorf("script %s: on a file system mounted noexec: %w", s.path, syscall.EACCES)
	}
	switch {
	case arg == "":
		return interp, []string{interp, s.path}, nil
	}
	return interp, []string{interp, arg, s.path}, nil
}

// shebang parses the start of a file, buf, as the kernel's binfmt_script
// does: "#!", blanks, the interpreter up to a blank, then the rest of the
// line less its outer blanks as one optional argument. ok is false when
// buf does not start with "#!". A line longer than buf is cut, unless the
// interpreter's name itself does not fit (ENOEXEC, as the kernel says).
func shebang(buf []byte) (interp, arg string, ok bool, err error) {
	line, found := bytes.CutPrefix(buf, []byte("#!"))
	if !found {
		return "", "", false, nil
	}
	blank := func(r rune) bool { return r == ' ' || r == '\t' }
	end := bytes.IndexByte(line, '\n')
	if end >= 0 {
		line = line[:end]
	}
	line = bytes.TrimLeftFunc(line, blank)
	name, rest, cut := bytes.Cut(line, []byte{' '})
	if i := bytes.IndexByte(name, '\t'); i >= 0 {
		name, rest, cut = line[:i], line[i+1:], true
	}
	if end < 0 && len(buf) == binprmBufSize && !cut {
		return "", "", true, fmt.Errorf("its #! line does not fit in %d bytes: %w", binprmBufSize, syscall.ENOEXEC)
	}
	if i := bytes.IndexByte(name, 0); i >= 0 {
		name = name[:i]
	}
	if len(name) == 0 {
		return "", "", true, fmt.Errorf("its #! line names no interpreter: %w", syscall.ENOEXEC)
	}
	rest = bytes.TrimFunc(rest, blank)
	if i := bytes.IndexByte(rest, 0); i >= 0 {
		rest = rest[:i]
	}
	return string(name), string(rest), true, nil
}
