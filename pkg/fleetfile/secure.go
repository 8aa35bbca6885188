package fleetfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// fileRule says who may do what to a file krollctl takes credentials or
// their destination from.
type fileRule struct {
	// what names the file in errors ("token_file", "fleet file"), noun
	// what a secret one holds ("the token").
	what, noun string
	// secret: only the owner may read it (mode 0600 or stricter), else
	// only the owner may change it (no group or other write).
	secret bool
	// fix is the command that repairs a bad mode.
	fix string
}

// readChecked opens path once and checks the open file itself (fstat of
// the handle: no race between a check and the open, a symbolic link is
// judged by the file it leads to): a regular file owned by the current
// user or root, of the rule's mode, in a directory that neither group
// nor others may write to (unless sticky, like /tmp) and that is owned
// by the current user or root. It returns at most limit bytes; more is an
// error.
func readChecked(path string, limit int64, rule fileRule) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", rule.what, err)
	}
	defer fh.Close()
	fi, err := fh.Stat()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", rule.what, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s %s: not a regular file", rule.what, path)
	}
	if err := checkOwner(fi); err != nil {
		return nil, fmt.Errorf("%s %s: %w", rule.what, path, err)
	}
	perm := fi.Mode().Perm()
	switch {
	case rule.secret && perm&0o077 != 0:
		return nil, fmt.Errorf("%s %s: mode %04o lets others read %s (run %s %s)", rule.what, path, perm, rule.noun, rule.fix, path)
	case !rule.secret && perm&0o022 != 0:
		return nil, fmt.Errorf("%s %s: mode %04o lets others change where your credentials go (run %s %s)", rule.what, path, perm, rule.fix, path)
	}
	dir := filepath.Dir(openedPath(fh, path))
	di, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("%s %s: directory: %w", rule.what, path, err)
	}
	if err := checkOwner(di); err != nil {
		return nil, fmt.Errorf("%s %s: directory %s: %w", rule.what, path, dir, err)
	}
	if dperm := di.Mode().Perm(); dperm&0o022 != 0 && di.Mode()&fs.ModeSticky == 0 {
		return nil, fmt.Errorf("%s %s: directory %s has mode %04o: others may replace the file (run chmod go-w %s)", rule.what, path, dir, dperm, dir)
	}
	data, err := io.ReadAll(io.LimitReader(fh, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", rule.what, path, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s %s: longer than %d bytes", rule.what, path, limit)
	}
	return data, nil
}

// openedPath is the path of the file fh is open on (through
// /proc/self/fd, so the directory checked is the one of the file read,
// whatever symbolic links led there); path when /proc cannot tell.
func openedPath(fh *os.File, path string) string {
	if p, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(fh.Fd()))); err == nil && filepath.IsAbs(p) {
		return p
	}
	return path
}

// checkOwner refuses a file owned by anyone but the current user or root.
func checkOwner(fi fs.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return errors.New("cannot tell its owner")
	}
	if uid := os.Getuid(); int(st.Uid) != uid && st.Uid != 0 {
		return fmt.Errorf("owned by uid %d, not by you (uid %d) or root", st.Uid, uid)
	}
	return nil
}
