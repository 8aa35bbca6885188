package stage

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/kroll-dev/kroll/pkg/release"
)

// arMagic starts every ar archive.
const arMagic = "!<arch>\n"

// arHeaderSize is the size of an ar member header.
const arHeaderSize = 60

// arMember is one member of an ar archive.
type arMember struct {
	// Name is the member name without the GNU "/" terminator.
	Name string
	// Size is the member size in bytes.
	Size int64
}

// arReader reads the members of an ar archive (the container of a .deb).
type arReader struct {
	r       io.Reader
	body    *exactReader
	pad     int64
	started bool
	last    string
}

// newArReader returns a reader for the ar archive in r.
func newArReader(r io.Reader) *arReader { return &arReader{r: r} }

// Next skips the rest of the current member and returns the header of
// the next one, or io.EOF at the end of the archive.
func (a *arReader) Next() (arMember, error) {
	if !a.started {
		var magic [len(arMagic)]byte
		if _, err := io.ReadFull(a.r, magic[:]); err != nil {
			return arMember{}, fmt.Errorf("not an ar archive: %w", truncated(err))
		}
		if string(magic[:]) != arMagic {
			return arMember{}, errors.New("not an ar archive: bad magic")
		}
		a.started = true
	}
	if a.body != nil {
		if _, err := io.Copy(io.Discard, a.body); err != nil {
			return arMember{}, fmt.Errorf("ar member %q: %w", a.last, truncated(err))
		}
		if a.pad > 0 {
			// The padding byte of the last member may be missing.
			var b [1]byte
			if _, err := io.ReadFull(a.r, b[:]); err != nil && err != io.EOF {
				return arMember{}, fmt.Errorf("ar member %q: %w", a.last, err)
			}
		}
		a.body = nil
	}
	var h [arHeaderSize]byte
	n, err := io.ReadFull(a.r, h[:])
	if err == io.EOF && n == 0 {
		return arMember{}, io.EOF
	}
	where := "first ar header"
	if a.last != "" {
		where = fmt.Sprintf("ar header after member %q", a.last)
	}
	if err != nil {
		return arMember{}, fmt.Errorf("%s: %w", where, truncated(err))
	}
	if string(h[58:60]) != "`\n" {
		return arMember{}, fmt.Errorf("%s: bad terminator", where)
	}
	name := strings.TrimRight(string(h[0:16]), " ")
	name = strings.TrimSuffix(name, "/")
	sizeS := strings.TrimRight(string(h[48:58]), " ")
	size, err := strconv.ParseInt(sizeS, 10, 64)
	if err != nil || size < 0 {
		return arMember{}, fmt.Errorf("ar member %q: bad size %q", name, sizeS)
	}
	a.last = name
	a.body = &exactReader{r: a.r, n: size}
	a.pad = size % 2
	return arMember{Name: name, Size: size}, nil
}

// Read reads from the current member.
func (a *arReader) Read(p []byte) (int, error) {
	if a.body == nil {
		return 0, io.EOF
	}
	return a.body.Read(p)
}

// exactReader reads exactly n bytes from r and reports
// io.ErrUnexpectedEOF when r ends earlier.
type exactReader struct {
	r io.Reader
	n int64
}

// Read implements io.Reader.
func (e *exactReader) Read(p []byte) (int, error) {
	if e.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.n {
		p = p[:e.n]
	}
	n, err := e.r.Read(p)
	e.n -= int64(n)
	if err == io.EOF && e.n > 0 {
		err = io.ErrUnexpectedEOF
	}
	if err == io.EOF {
		err = nil
	}
	return n, err
}

// truncated turns an unexpected end of input into a "truncated" error.
func truncated(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("truncated archive: %w", io.ErrUnexpectedEOF)
	}
	return err
}

// limits bounds what an archive may contain.
type limits struct {
	maxEntry int64
	maxTotal int64
	// done, when set, ends the extraction before the entry name once it
	// returns true: the rest of the archive is not needed. The artifact's
	// sha256 was verified against the signed manifest before unpacking,
	// so skipping the rest loses no integrity check.
	done func(name string, ex extracted) bool
}

// errDone ends an extraction early (limits.done).
var errDone = errors.New("extraction complete")

// selectFunc says whether the archive entry with the cleaned relative name
// is extracted.
type selectFunc func(name string) bool

// extracted lists the regular files an extraction wrote, by cleaned name.
type extracted map[string]bool

// unpackDeb extracts the selected entries of the data archive of the .deb
// in r into the directory root (which must exist).
func unpackDeb(ctx context.Context, r io.Reader, root string, sel selectFunc, lim limits) (extracted, error) {
	ar := newArReader(r)
	sawBinary := false
	for {
		m, err := ar.Next()
		if err == io.EOF {
			return nil, errors.New("deb: no data.tar member")
		}
		if err != nil {
			return nil, fmt.Errorf("deb: %w", err)
		}
		switch {
		case m.Name == "debian-binary":
			b, err := io.ReadAll(io.LimitReader(ar, 64))
			if err != nil {
				return nil, fmt.Errorf("deb: debian-binary: %w", truncated(err))
			}
			if !bytes.HasPrefix(b, []byte("2.")) {
				return nil, fmt.Errorf("deb: unsupported format version %q", bytes.TrimSpace(b))
			}
			sawBinary = true
		case strings.HasPrefix(m.Name, "data.tar"):
			if !sawBinary {
				return nil, errors.New("deb: data.tar before debian-binary")
			}
			dr, closeDR, err := decompressor(strings.TrimPrefix(m.Name, "data.tar"), ar)
			if err != nil {
				return nil, fmt.Errorf("deb: %s: %w", m.Name, err)
			}
			defer closeDR()
			ex, err := extractTar(ctx, dr, root, sel, lim)
			if errors.Is(err, errDone) {
				return ex, nil
			}
			if err != nil {
				return nil, fmt.Errorf("deb: %s: %w", m.Name, err)
			}
			// Read the rest so a truncated member is noticed.
			if _, err := io.Copy(io.Discard, dr); err != nil {
				return nil, fmt.Errorf("deb: %s: %w", m.Name, truncated(err))
			}
			return ex, nil
		}
	}
}

// zstdMaxWindow bounds the window of a zstd stream, which is what the
// decoder allocates: dpkg-deb's levels up to 19 use at most 8 MiB; the
// "ultra" levels and --long, which may ask for up to 2 GiB, are refused
// beyond this rather than let an artifact size the agent's memory.
const zstdMaxWindow = 64 << 20

// decompressor returns a reader of the tar stream compressed in r as the
// file name suffix ext says ("" for a plain tar, ".gz", ".xz", ".zst":
// what dpkg-deb writes), and a function that releases the decoder. Other
// suffixes are refused. A corrupt or truncated stream is reported by the
// returned reader as one error naming the compression.
func decompressor(ext string, r io.Reader) (io.Reader, func(), error) {
	switch ext {
	case "":
		return r, func() {}, nil
	case ".gz":
		gr, err := gzip.NewReader(r)
		if err != nil {
			return nil, nil, fmt.Errorf("gzip: %w", truncated(err))
		}
		return &decodeReader{r: gr, what: "gzip"}, func() { gr.Close() }, nil
	case ".xz":
		xr, err := xz.NewReader(r)
		if err != nil {
			return nil, nil, fmt.Errorf("xz: %w", truncated(err))
		}
		return &decodeReader{r: xr, what: "xz"}, func() {}, nil
	case ".zst":
		br := bufio.NewReader(r)
		if err := zstdWindowCheck(br); err != nil {
			return nil, nil, err
		}
		// One goroutine-free decoder with a bounded window: the stream
		// is read once, front to back, so concurrency buys nothing.
		zr, err := zstd.NewReader(br,
			zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(zstdMaxWindow),
			zstd.WithDecoderMaxMemory(zstdMaxWindow))
		if err != nil {
			return nil, nil, fmt.Errorf("zstd: %w", truncated(err))
		}
		return &decodeReader{r: zr, what: "zstd"}, zr.Close, nil
	}
	return nil, nil, fmt.Errorf("unsupported compression %q (want .zst, .xz, .gz or none)", ext)
}

// zstdWindowCheck refuses a zstd stream whose first frame needs a window
// (or, for a single-segment frame, a content size) above zstdMaxWindow,
// naming the size. The decoder enforces the same bound on every frame;
// this check only makes the common case's error say how large it was.
func zstdWindowCheck(br *bufio.Reader) error {
	b, err := br.Peek(zstd.HeaderMaxSize)
	if len(b) == 0 {
		return fmt.Errorf("zstd: %w", truncated(err))
	}
	var h zstd.Header
	if err := h.Decode(b); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("zstd: %w", truncated(err))
		}
		return fmt.Errorf("zstd: corrupt stream: %w", err)
	}
	w := h.WindowSize
	if h.SingleSegment {
		w = h.FrameContentSize
	}
	if w > zstdMaxWindow {
		return fmt.Errorf("zstd: window of %d bytes exceeds the limit of %d bytes (compressed with --ultra or --long?)", w, zstdMaxWindow)
	}
	return nil
}

// decodeReader names the compression in the errors of a decoder, so a
// corrupt stream reads as "zstd: ..." rather than as a tar error.
type decodeReader struct {
	r    io.Reader
	what string
}

// Read implements io.Reader.
func (d *decodeReader) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	if err != nil && err != io.EOF {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return n, fmt.Errorf("%s: %w", d.what, truncated(err))
		}
		if errors.Is(err, zstd.ErrWindowSizeExceeded) || errors.Is(err, zstd.ErrDecoderSizeExceeded) {
			return n, fmt.Errorf("%s: a frame's window exceeds the limit of %d bytes: %w", d.what, zstdMaxWindow, err)
		}
		return n, fmt.Errorf("%s: corrupt stream: %w", d.what, err)
	}
	return n, err
}

// checkEntry refuses entries that are unsafe anywhere in an archive and
// returns the cleaned relative name ("" for the archive root).
func checkEntry(h *tar.Header, lim limits) (string, error) {
	name := h.Name
	if name == "" {
		return "", errors.New("entry with an empty name")
	}
	if strings.HasPrefix(name, "/") || filepath.IsAbs(name) {
		return "", fmt.Errorf("entry %q: absolute path", name)
	}
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return "", fmt.Errorf("entry %q: path traversal (\"..\")", name)
		}
	}
	if strings.ContainsRune(name, 0) || strings.Contains(name, "\\") {
		return "", fmt.Errorf("entry %q: invalid character in path", name)
	}
	clean := path.Clean(name)
	if clean == "." {
		clean = ""
	}
	switch h.Typeflag {
	case tar.TypeReg, '\x00', tar.TypeDir:
	case tar.TypeSymlink:
		t := h.Linkname
		if t == "" || strings.HasPrefix(t, "/") {
			return "", fmt.Errorf("entry %q: symlink to %q points outside the tree", name, t)
		}
		if !filepath.IsLocal(path.Join(path.Dir(clean), t)) {
			return "", fmt.Errorf("entry %q: symlink to %q points outside the tree", name, t)
		}
		if !dotdotLeading(t) {
			// "up/../../x" is lexically inside the tree but physically
			// outside when up is itself a symlink (to ..): only leading
			// ".." components, which climb real directories, are allowed.
			return "", fmt.Errorf("entry %q: symlink to %q has \"..\" after another path component", name, t)
		}
	case tar.TypeLink:
		if !filepath.IsLocal(h.Linkname) || strings.Contains(h.Linkname, "\\") {
			return "", fmt.Errorf("entry %q: hardlink to %q points outside the tree", name, h.Linkname)
		}
	case tar.TypeChar, tar.TypeBlock:
		return "", fmt.Errorf("entry %q: device file refused", name)
	case tar.TypeFifo:
		return "", fmt.Errorf("entry %q: fifo refused", name)
	default:
		return "", fmt.Errorf("entry %q: unsupported entry type %q", name, h.Typeflag)
	}
	if h.Size < 0 || h.Size > lim.maxEntry {
		return "", fmt.Errorf("entry %q: %d bytes exceeds the limit of %d bytes per entry", name, h.Size, lim.maxEntry)
	}
	return clean, nil
}

// dotdotLeading reports whether the ".." components of the slash path p
// all come before its other components.
func dotdotLeading(p string) bool {
	down := false
	for _, c := range strings.Split(p, "/") {
		switch {
		case c == "..":
			if down {
				return false
			}
		case c != "" && c != ".":
			down = true
		}
	}
	return true
}

// extractTar extracts the selected entries of the tar stream r into root.
// Every entry, selected or not, is checked with checkEntry. Files are
// created through an os.Root, so nothing is ever written outside root,
// and never below a symlink (realParents), so no extracted link points
// outside root either.
func extractTar(ctx context.Context, r io.Reader, root string, sel selectFunc, lim limits) (extracted, error) {
	rt, err := os.OpenRoot(root)
	if err != nil {
		return nil, err
	}
	defer rt.Close()
	tr := tar.NewReader(r)
	ex := extracted{}
	// dirs are the directories under root known to be real directories
	// (not symlinks): an entry is extracted only below such directories.
	dirs := map[string]bool{}
	var total int64
	last := ""
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		h, err := tr.Next()
		if err == io.EOF {
			return ex, nil
		}
		if err != nil {
			if last == "" {
				return nil, fmt.Errorf("tar: first entry: %w", truncated(err))
			}
			return nil, fmt.Errorf("tar: after entry %q: %w", last, truncated(err))
		}
		last = h.Name
		name, err := checkEntry(h, lim)
		if err != nil {
			return nil, err
		}
		if lim.done != nil && lim.done(name, ex) {
			return ex, errDone
		}
		if name == "" || !sel(name) {
			// Read skipped content too, so truncation is detected.
			if _, err := io.Copy(io.Discard, tr); err != nil {
				return nil, fmt.Errorf("entry %q: %w", h.Name, truncated(err))
			}
			continue
		}
		if dir := path.Dir(name); dir != "." {
			if err := realParents(rt, dirs, dir); err != nil {
				return nil, fmt.Errorf("entry %q: %w", h.Name, err)
			}
			if err := rt.MkdirAll(dir, 0o755); err != nil {
				return nil, fmt.Errorf("entry %q: %w", h.Name, err)
			}
			markDirs(dirs, dir)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := rt.MkdirAll(name, 0o755); err != nil {
				return nil, fmt.Errorf("entry %q: %w", h.Name, err)
			}
		case tar.TypeSymlink:
			if err := rt.Symlink(h.Linkname, name); err != nil {
				return nil, fmt.Errorf("entry %q: %w", h.Name, err)
			}
		case tar.TypeLink:
			target := path.Clean(h.Linkname)
			if !ex[target] {
				return nil, fmt.Errorf("entry %q: hardlink to %q, which is not an extracted file", h.Name, h.Linkname)
			}
			if err := rt.Link(target, name); err != nil {
				return nil, fmt.Errorf("entry %q: %w", h.Name, err)
			}
			ex[name] = true
		default:
			total += h.Size
			if total > lim.maxTotal {
				return nil, fmt.Errorf("entry %q: extracted size exceeds the limit of %d bytes", h.Name, lim.maxTotal)
			}
			if err := writeEntry(rt, name, h, tr); err != nil {
				return nil, err
			}
			ex[name] = true
		}
	}
}

// realParents fails when a component of dir (a cleaned relative path) is
// a symlink under rt. A symlink that is harmless on its own
// (lib/modules/up -> ..) would otherwise let a later entry below it
// (lib/modules/up/x -> ../../etc/passwd) be placed where its lexically
// checked target resolves outside the tree. Components that do not exist
// yet are fine: MkdirAll creates them as directories. dirs caches the
// components already known to be directories.
func realParents(rt *os.Root, dirs map[string]bool, dir string) error {
	for i := 0; i <= len(dir); i++ {
		if i < len(dir) && dir[i] != '/' {
			continue
		}
		p := dir[:i]
		if dirs[p] {
			continue
		}
		fi, err := rt.Lstat(p)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("parent %q: %w", p, err)
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			return fmt.Errorf("parent %q is a symlink: entries below symlinks are refused", p)
		}
		if !fi.IsDir() {
			return fmt.Errorf("parent %q is not a directory", p)
		}
		dirs[p] = true
	}
	return nil
}

// markDirs records dir and its parents as real directories (just created
// or verified by MkdirAll after realParents).
func markDirs(dirs map[string]bool, dir string) {
	for p := dir; p != "." && p != "/" && !dirs[p]; p = path.Dir(p) {
		dirs[p] = true
	}
}

// writeEntry writes the regular file entry h of tr as name under rt.
func writeEntry(rt *os.Root, name string, h *tar.Header, tr io.Reader) (err error) {
	perm := os.FileMode(h.Mode) & 0o755
	f, err := rt.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, perm|0o600)
	if err != nil {
		return fmt.Errorf("entry %q: %w", h.Name, err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("entry %q: %w", h.Name, cerr)
		}
	}()
	n, err := io.Copy(f, tr)
	if err != nil {
		return fmt.Errorf("entry %q: %w", h.Name, truncated(err))
	}
	if n != h.Size {
		return fmt.Errorf("entry %q: truncated archive: %d of %d bytes", h.Name, n, h.Size)
	}
	return f.Sync()
}

// debSelect selects the kernel image and config (and with modules the
// module tree) of a Debian linux-image package.
func debSelect(modules bool) selectFunc {
	return func(name string) bool {
		switch {
		case name == "boot":
			return true
		case strings.HasPrefix(name, "boot/vmlinuz-"), strings.HasPrefix(name, "boot/config-"):
			return !strings.Contains(strings.TrimPrefix(name, "boot/"), "/")
		case modules && (name == "lib" || name == "lib/modules" || strings.HasPrefix(name, "lib/modules/")):
			return true
		}
		return false
	}
}

// pastBoot ends the extraction of a .deb without modules once a kernel
// image was extracted and the archive has moved past boot/: dpkg-deb
// writes entries sorted by name, so nothing of boot/ follows, and the
// hundreds of megabytes of modules need not be decompressed.
func pastBoot(name string, ex extracted) bool {
	if name == "boot" || strings.HasPrefix(name, "boot/") {
		return false
	}
	for k := range ex {
		if strings.HasPrefix(k, "boot/vmlinuz-") {
			return true
		}
	}
	return false
}

// bundleSelect selects the top-level kernel and initrd of a bundle.
func bundleSelect(name string) bool {
	return name == "vmlinuz" || strings.HasPrefix(name, "vmlinuz-") && !strings.Contains(name, "/") ||
		name == "initrd.img" || strings.HasPrefix(name, "initrd.img-") && !strings.Contains(name, "/")
}

// bundleCompression returns the decompressor suffix of a bundle archive
// named name (.tar.gz or .tgz, .tar.xz, .tar.zst), or "" when name is not
// an archive: such an artifact is kept as downloaded.
func bundleCompression(name string) string {
	switch {
	case strings.HasSuffix(name, ".tar.gz"), strings.HasSuffix(name, ".tgz"):
		return ".gz"
	case strings.HasSuffix(name, ".tar.xz"):
		return ".xz"
	case strings.HasSuffix(name, ".tar.zst"):
		return ".zst"
	}
	return ""
}

// unpack extracts the kernel of the downloaded artifacts into dir/root.
func (s *Stager) unpack(ctx context.Context, m release.Manifest, dir string, paths []string) (*Staged, error) {
	root := filepath.Join(dir, rootName)
	if err := os.RemoveAll(root); err != nil {
		return nil, fmt.Errorf("unpack: %w", err)
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("unpack: %w", err)
	}
	lim := limits{maxEntry: s.cfg.MaxEntrySize, maxTotal: s.cfg.MaxTotalSize}
	all := extracted{}
	for i, p := range paths {
		name := m.Artifacts[i].Name
		var ex extracted
		err := func() error {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			br := bufio.NewReaderSize(f, 1<<20)
			switch {
			case m.Kind == release.KindDeb && strings.HasSuffix(name, ".deb"):
				dl := lim
				if !s.cfg.Modules {
					dl.done = pastBoot
				}
				ex, err = unpackDeb(ctx, br, root, debSelect(s.cfg.Modules), dl)
			case m.Kind == release.KindBundle && bundleCompression(name) != "":
				dr, closeDR, err := decompressor(bundleCompression(name), br)
				if err != nil {
					return err
				}
				defer closeDR()
				ex, err = extractTar(ctx, dr, root, bundleSelect, lim)
				return err
			default:
				return nil // not an archive of this kind: kept as downloaded
			}
			return err
		}()
		if err != nil {
			_ = os.RemoveAll(root)
			return nil, fmt.Errorf("unpack %s: %w", name, err)
		}
		for k := range ex {
			all[k] = true
		}
	}
	st, err := findKernel(m, dir, root, all)
	if err != nil {
		_ = os.RemoveAll(root)
		return nil, fmt.Errorf("unpack: %w", err)
	}
	return st, nil
}

// findKernel locates the kernel image and initrd among the extracted files.
func findKernel(m release.Manifest, dir, root string, ex extracted) (*Staged, error) {
	st := &Staged{Release: m, Dir: dir}
	var images []string
	for name := range ex {
		base := path.Base(name)
		dirName := path.Dir(name)
		if dirName != "." && dirName != "boot" {
			continue
		}
		switch {
		case base == "vmlinuz" || strings.HasPrefix(base, "vmlinuz-"):
			images = append(images, name)
		case base == "initrd.img" || strings.HasPrefix(base, "initrd.img-"):
			if st.Initrd != "" {
				return nil, fmt.Errorf("more than one initrd (%s, %s)", rel(root, st.Initrd), name)
			}
			st.Initrd = filepath.Join(root, filepath.FromSlash(name))
		}
	}
	if len(images) != 1 {
		return nil, fmt.Errorf("release %s: want exactly one vmlinuz, found %d %q", m.ID, len(images), images)
	}
	st.Vmlinuz = filepath.Join(root, filepath.FromSlash(images[0]))
	rel, ok := strings.CutPrefix(path.Base(images[0]), "vmlinuz-")
	if !ok {
		rel = m.KernelVersion
	}
	if rel != m.KernelVersion {
		return nil, fmt.Errorf("release %s: image %s is kernel %q, manifest says %q", m.ID, images[0], rel, m.KernelVersion)
	}
	st.KernelRelease = rel
	return st, nil
}

// OpenBundleArchive returns a reader of the tar stream of a bundle archive
// named name read from r (.tar.gz or .tgz, .tar.xz, .tar.zst, decoded with
// the same bounds as staging), and a function that releases the decoder.
// ok is false when name is not a bundle archive.
func OpenBundleArchive(name string, r io.Reader) (tr io.Reader, release func(), ok bool, err error) {
	ext := bundleCompression(name)
	if ext == "" {
		return nil, nil, false, nil
	}
	tr, release, err = decompressor(ext, r)
	if err != nil {
		return nil, nil, true, err
	}
	return tr, release, true, nil
}

// IsBundleArchive reports whether name is a bundle archive that staging
// unpacks (.tar.gz or .tgz, .tar.xz, .tar.zst).
func IsBundleArchive(name string) bool { return bundleCompression(name) != "" }
