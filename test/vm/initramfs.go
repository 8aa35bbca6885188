package vm

import (
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
)

// Initramfs collects the files of a guest's initramfs. The zero value is
// not usable; use NewInitramfs.
type Initramfs struct {
	files map[string]ramfsFile
}

type ramfsFile struct {
	typ  uint32
	perm fs.FileMode
	data []byte
}

// NewInitramfs returns an empty initramfs with the usual top directories.
func NewInitramfs() *Initramfs {
	r := &Initramfs{files: make(map[string]ramfsFile)}
	for _, d := range []string{"bin", "sbin", "usr/bin", "usr/sbin", "dev", "proc", "sys", "tmp", "run", "etc", "root", "kroll"} {
		r.dir(d)
	}
	return r
}

func cleanGuestPath(p string) (string, error) {
	c := strings.TrimPrefix(path.Clean("/"+p), "/")
	if c == "" || c == "." {
		return "", fmt.Errorf("vm: invalid guest path %q", p)
	}
	return c, nil
}

func (r *Initramfs) dir(p string) {
	for d := p; d != "." && d != "/" && d != ""; d = path.Dir(d) {
		if _, ok := r.files[d]; !ok {
			r.files[d] = ramfsFile{typ: cpioDir, perm: 0o755}
		}
	}
}

// AddFile adds a regular file (and its parent directories).
func (r *Initramfs) AddFile(guestPath string, data []byte, perm fs.FileMode) error {
	p, err := cleanGuestPath(guestPath)
	if err != nil {
		return err
	}
	r.dir(path.Dir(p))
	r.files[p] = ramfsFile{typ: cpioRegular, perm: perm, data: data}
	return nil
}

// AddHostFile adds the host file hostPath as guestPath, keeping its mode.
func (r *Initramfs) AddHostFile(guestPath, hostPath string) error {
	st, err := os.Stat(hostPath)
	if err != nil {
		return fmt.Errorf("vm: %w", err)
	}
	data, err := os.ReadFile(hostPath)
	if err != nil {
		return fmt.Errorf("vm: %w", err)
	}
	return r.AddFile(guestPath, data, st.Mode().Perm())
}

// AddSymlink adds a symbolic link guestPath → target.
func (r *Initramfs) AddSymlink(guestPath, target string) error {
	p, err := cleanGuestPath(guestPath)
	if err != nil {
		return err
	}
	r.dir(path.Dir(p))
	r.files[p] = ramfsFile{typ: cpioSymlink, perm: 0o777, data: []byte(target)}
	return nil
}

// WriteTo writes the initramfs as a gzip-compressed newc cpio archive,
// parents before children, in a stable order.
func (r *Initramfs) WriteTo(w io.Writer) (int64, error) {
	names := make([]string, 0, len(r.files))
	for n := range r.files {
		names = append(names, n)
	}
	sort.Strings(names) // "a" < "a/b": parents first
	cw := &countingWriter{w: w}
	zw, err := gzip.NewWriterLevel(cw, gzip.BestSpeed)
	if err != nil {
		return 0, err
	}
	c := &cpioWriter{w: zw}
	for _, n := range names {
		f := r.files[n]
		c.entry(n, f.typ, f.perm, f.data)
	}
	if err := c.close(); err != nil {
		return cw.n, fmt.Errorf("vm: write initramfs: %w", err)
	}
	if err := zw.Close(); err != nil {
		return cw.n, fmt.Errorf("vm: write initramfs: %w", err)
	}
	return cw.n, nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// shellQuote quotes s for the busybox shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
