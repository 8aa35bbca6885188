package install

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/kroll-dev/kroll/agent/stage"
	"github.com/kroll-dev/kroll/pkg/fsutil"
)

// Limits of a bundle's module tree.
const (
	maxModuleEntry = 512 << 20
	maxModuleTotal = 4 << 30
)

// depmodOutputs are the files depmod writes into a module tree: they are
// not part of the tree's digest.
var depmodOutputs = []string{
	"modules.alias", "modules.alias.bin", "modules.builtin.alias.bin", "modules.builtin.bin", "modules.dep",
	"modules.dep.bin", "modules.devname", "modules.softdep", "modules.symbols", "modules.symbols.bin", "modules.weakdep",
}

// skippedLinks are top-level links of a module tree that point to the
// kernel's headers elsewhere; they are not installed from a bundle.
var skippedLinks = []string{"build", "source"}

// treeEntry is one entry of a module tree, for its digest.
type treeEntry struct {
	name string // relative to lib/modules/<release>
	line string // type, permissions, size and content sha256
}

// digest is the sha256 of the sorted entries.
func digest(entries []treeEntry) string {
	slices.SortFunc(entries, func(a, b treeEntry) int { return strings.Compare(a.name, b.name) })
	h := sha256.New()
	for _, e := range entries {
		fmt.Fprintf(h, "%q %s\n", e.name, e.line)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// ignored reports whether a tree entry is left out of the digest.
func ignored(name string) bool {
	return slices.Contains(depmodOutputs, name)
}

// moduleName maps an archive entry to its path below lib/modules/<rel>/:
// ok is false for entries outside it; the tree's own directory is ".".
func moduleName(h *tar.Header, rel string) (name string, ok bool, err error) {
	n := strings.TrimPrefix(h.Name, "./")
	n = strings.TrimSuffix(n, "/")
	if n == "" || n == "." {
		return "", false, nil
	}
	clean := path.Clean(n)
	if clean != n || !fs.ValidPath(n) {
		return "", false, fmt.Errorf("entry %q: not a clean relative path", h.Name)
	}
	prefix := "lib/modules/" + rel
	if n == prefix {
		return ".", true, nil
	}
	rest, ok := strings.CutPrefix(n, prefix+"/")
	return rest, ok, nil
}

// bundleModules walks the module entries of a verified bundle archive; fn
// receives each entry below lib/modules/<rel>/ and its content reader.
func bundleModules(ctx context.Context, archive, rel string, fn func(name string, h *tar.Header, r io.Reader) error) (found bool, err error) {
	f, err := os.Open(archive)
	if err != nil {
		return false, err
	}
	defer f.Close()
	dr, release, ok, err := stage.OpenBundleArchive(filepath.Base(archive), bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		return false, fmt.Errorf("%s: %w", filepath.Base(archive), err)
	}
	if !ok {
		return false, fmt.Errorf("%s: not a bundle archive", filepath.Base(archive))
	}
	defer release()
	tr := tar.NewReader(dr)
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		h, err := tr.Next()
		if err == io.EOF {
			return found, nil
		}
		if err != nil {
			return false, fmt.Errorf("%s: %w", filepath.Base(archive), err)
		}
		name, ok, err := moduleName(h, rel)
		if err != nil {
			return false, fmt.Errorf("%s: %w", filepath.Base(archive), err)
		}
		if !ok {
			continue
		}
		found = true
		switch h.Typeflag {
		case tar.TypeDir:
		case tar.TypeReg:
			if h.Size < 0 || h.Size > maxModuleEntry {
				return false, fmt.Errorf("%s: entry %q: size %d over the limit of %d bytes", filepath.Base(archive), h.Name, h.Size, maxModuleEntry)
			}
			if total += h.Size; total > maxModuleTotal {
				return false, fmt.Errorf("%s: module tree over the limit of %d bytes", filepath.Base(archive), maxModuleTotal)
			}
		case tar.TypeSymlink:
			if slices.Contains(skippedLinks, name) {
				continue
			}
			return false, fmt.Errorf("%s: entry %q: symlinks in a module tree are refused (only top-level build and source, which are skipped)", filepath.Base(archive), h.Name)
		default:
			return false, fmt.Errorf("%s: entry %q: type %q refused in a module tree (directories and regular files only)", filepath.Base(archive), h.Name, h.Typeflag)
		}
		if name == "." {
			continue
		}
		if err := fn(name, h, tr); err != nil {
			return false, err
		}
	}
}

// archiveDigest is the digest of the module tree in the archives, and the
// bytes it needs on disk.
func archiveDigest(ctx context.Context, archives []string, rel string) (dig string, size uint64, found bool, err error) {
	var entries []treeEntry
	for _, a := range archives {
		ok, err := bundleModules(ctx, a, rel, func(name string, h *tar.Header, r io.Reader) error {
			if ignored(name) {
				return nil
			}
			if h.Typeflag == tar.TypeDir {
				entries = append(entries, treeEntry{name, "d"})
				return nil
			}
			s := sha256.New()
			n, err := io.Copy(s, r)
			if err != nil {
				return fmt.Errorf("entry %q: %w", h.Name, err)
			}
			size += uint64(n) + blockRound
			entries = append(entries, treeEntry{name, fmt.Sprintf("f %o %d %x", os.FileMode(h.Mode).Perm(), n, s.Sum(nil))})
			return nil
		})
		if err != nil {
			return "", 0, false, err
		}
		found = found || ok
	}
	return digest(entries), size, found, nil
}

// treeDigest is the digest of an installed module tree.
func treeDigest(ctx context.Context, dir string) (string, error) {
	var entries []treeEntry
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		name, err := filepath.Rel(dir, p)
		if err != nil || name == "." {
			return err
		}
		name = filepath.ToSlash(name)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			if !slices.Contains(skippedLinks, name) {
				entries = append(entries, treeEntry{name, "l"})
			}
		case d.IsDir():
			entries = append(entries, treeEntry{name, "d"})
		case ignored(name):
		case d.Type().IsRegular():
			fi, err := d.Info()
			if err != nil {
				return err
			}
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			s := sha256.New()
			n, err := io.Copy(s, f)
			if err != nil {
				return err
			}
			entries = append(entries, treeEntry{name, fmt.Sprintf("f %o %d %x", fi.Mode().Perm(), n, s.Sum(nil))})
		default:
			entries = append(entries, treeEntry{name, "?" + d.Type().String()})
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return digest(entries), nil
}

// extractModules writes the module tree of the archives into dir (which
// must not exist), fsyncing every file and directory.
func extractModules(ctx context.Context, archives []string, rel, dir string) error {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	rt, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer rt.Close()
	var dirs []string
	for _, a := range archives {
		_, err := bundleModules(ctx, a, rel, func(name string, h *tar.Header, r io.Reader) error {
			if p := path.Dir(name); p != "." {
				if err := rt.MkdirAll(p, 0o755); err != nil {
					return fmt.Errorf("entry %q: %w", h.Name, err)
				}
			}
			if h.Typeflag == tar.TypeDir {
				if err := rt.MkdirAll(name, 0o755); err != nil {
					return fmt.Errorf("entry %q: %w", h.Name, err)
				}
				dirs = append(dirs, name)
				return nil
			}
			f, err := rt.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, os.FileMode(h.Mode).Perm()&0o755|0o600)
			if err != nil {
				return fmt.Errorf("entry %q: %w", h.Name, err)
			}
			_, err = io.Copy(f, r)
			if err == nil {
				err = f.Chmod(os.FileMode(h.Mode).Perm() & 0o755)
			}
			if err == nil {
				err = f.Sync()
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("entry %q: %w", h.Name, err)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	// Directories last, deepest first, so every new entry is durable.
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		return fsutil.SyncDir(p)
	})
}

// copyFile installs src as dst atomically (temporary file, fsync, rename,
// directory fsync).
func copyFile(src, dst string) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".kroll-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := io.Copy(tmp, in); err != nil {
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return err
	}
	return fsutil.SyncDir(filepath.Dir(dst))
}

// sameContent reports whether two files have the same content.
func sameContent(a, b string) (bool, error) {
	sum := func(p string) ([]byte, int64, error) {
		f, err := os.Open(p)
		if err != nil {
			return nil, 0, err
		}
		defer f.Close()
		h := sha256.New()
		n, err := io.Copy(h, f)
		return h.Sum(nil), n, err
	}
	sa, na, err := sum(a)
	if err != nil {
		return false, err
	}
	sb, nb, err := sum(b)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return na == nb && string(sa) == string(sb), nil
}

// fileReady fails unless p is a non-empty regular file.
func fileReady(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() || fi.Size() == 0 {
		return fmt.Errorf("%s is not a non-empty regular file", p)
	}
	return nil
}

// relRoot is p relative to the installer's root.
func (in *Installer) relRoot(p string) string {
	r, err := filepath.Rel(in.cfg.Root, p)
	if err != nil {
		return p
	}
	return r
}

// placeFile installs src as dst unless dst already has its content. A
// different dst is replaced only when the agent created it (owned);
// created reports whether dst is now the agent's.
func (in *Installer) placeFile(src, dst string, owned bool) (created bool, err error) {
	same, err := sameContent(src, dst)
	if err != nil {
		return false, err
	}
	if same {
		return owned, nil
	}
	if _, err := os.Lstat(dst); err == nil && !owned {
		return false, fmt.Errorf("%s exists with other content and was not installed by kroll: refusing to overwrite it (move it away to proceed)", dst)
	}
	if err := copyFile(src, dst); err != nil {
		return false, fmt.Errorf("install %s: %w", dst, err)
	}
	return true, nil
}

// installBundle installs a bundle: its module tree, kernel and initrd.
func (in *Installer) installBundle(ctx context.Context, req Request) (*Result, error) {
	rel := req.Manifest.KernelVersion
	var archives []string
	for _, a := range req.Manifest.Artifacts {
		if !stage.IsBundleArchive(a.Name) {
			continue
		}
		p, err := verifiedArtifact(req.Dir, a)
		if err != nil {
			return nil, err
		}
		archives = append(archives, p)
	}
	if len(archives) == 0 {
		return nil, fmt.Errorf("release %s: no .tar.gz artifact", req.Manifest.ID)
	}
	if err := fileReady(req.Vmlinuz); err != nil {
		return nil, fmt.Errorf("staged kernel: %w: %w", ErrStagedChanged, err)
	}
	st, err := in.loadState()
	if err != nil {
		return nil, err
	}
	prev := st.Kernels[rel]
	if prev != nil && prev.Method != methodBundle {
		prev = nil // installed by dpkg: none of its files are the agent's own
	}
	rec := Record{Release: rel, Method: methodBundle, RunningAtInstall: req.Running}
	if prev != nil {
		rec.Files, rec.Modules, rec.ModulesDigest = prev.Files, prev.Modules, prev.ModulesDigest
		if prev.RunningAtInstall != "" {
			rec.RunningAtInstall = prev.RunningAtInstall
		}
	}
	owns := func(f string) bool { return slices.Contains(rec.Files, in.relRoot(f)) }

	want, modBytes, found, err := archiveDigest(ctx, archives, rel)
	if err != nil {
		return nil, err
	}
	modDir := filepath.Join(in.ModulesDir(), rel)
	modRel := in.relRoot(modDir)
	modulesDone, replace := false, false
	if _, err := os.Lstat(modDir); err == nil {
		have, err := treeDigest(ctx, modDir)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", modDir, err)
		}
		switch {
		case !found:
			in.log.Info("bundle has no module tree; using the one on the host", "dir", modDir)
			modulesDone = true
		case have == want:
			modulesDone = true
		case rec.Modules == modRel && rec.ModulesDigest == have:
			replace = true // ours, from an earlier build of this release
		default:
			return nil, fmt.Errorf("%s exists with other content than the bundle's and was not installed by kroll: refusing to overwrite it (move it away to proceed)", modDir)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	} else if !found {
		return nil, fmt.Errorf("bundle has no lib/modules/%s/ and the host has no %s: the kernel would boot without its modules", rel, modDir)
	}

	staged := []struct{ src, dst string }{{req.Vmlinuz, in.vmlinuz(rel)}}
	if req.Initrd != "" {
		staged = append(staged, struct{ src, dst string }{req.Initrd, in.initrd(rel)})
	}
	need := spaceNeed{bootWhat: "the kernel and initrd", modulesWhat: "the module tree"}
	for _, s := range staged {
		if fi, err := os.Stat(s.src); err == nil {
			need.boot += uint64(fi.Size()) + blockRound
		}
	}
	genInitrd := req.Initrd == "" && fileReady(in.initrd(rel)) != nil
	if genInitrd {
		need.boot += in.initrdEstimate()
		need.bootWhat = "the kernel and the initramfs to generate"
	}
	if !modulesDone {
		need.modules = modBytes
	}
	if err := in.checkSpace(need); err != nil {
		return nil, err
	}

	if !modulesDone {
		// Intent first: the tree about to appear under its final name is
		// the agent's.
		rec.Modules, rec.ModulesDigest = modRel, want
		if err := in.putRecord(rec); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(in.ModulesDir(), 0o755); err != nil {
			return nil, err
		}
		tmp := filepath.Join(in.ModulesDir(), ".kroll-"+rel+".new")
		old := filepath.Join(in.ModulesDir(), ".kroll-"+rel+".old")
		if err := os.RemoveAll(tmp); err != nil {
			return nil, err
		}
		if err := extractModules(ctx, archives, rel, tmp); err != nil {
			_ = os.RemoveAll(tmp)
			return nil, fmt.Errorf("unpack the module tree: %w", err)
		}
		if replace {
			in.log.Info("replacing the module tree kroll installed earlier", "dir", modDir)
			if err := os.RemoveAll(old); err != nil {
				return nil, err
			}
			if err := os.Rename(modDir, old); err != nil {
				return nil, err
			}
		}
		if err := os.Rename(tmp, modDir); err != nil {
			return nil, fmt.Errorf("move the module tree into place: %w", err)
		}
		if err := fsutil.SyncDir(in.ModulesDir()); err != nil {
			return nil, err
		}
		if err := os.RemoveAll(old); err != nil {
			in.log.Warn("cannot remove the replaced module tree", "dir", old, "err", err)
		}
	}
	depmod := []string{rel}
	if !in.hostRoot() {
		depmod = []string{"-b", in.cfg.Root, rel}
	}
	if _, err := in.run(ctx, nil, "depmod", depmod...); err != nil {
		return nil, err
	}

	if err := os.MkdirAll(in.BootDir(), 0o755); err != nil {
		return nil, err
	}
	for _, s := range staged {
		mine, err := in.placeFile(s.src, s.dst, owns(s.dst))
		if err != nil {
			return nil, err
		}
		if mine && !owns(s.dst) {
			rec.Files = append(rec.Files, in.relRoot(s.dst))
		}
	}
	if genInitrd {
		rec.Files = append(rec.Files, in.relRoot(in.initrd(rel)))
		if err := in.putRecord(rec); err != nil {
			return nil, err
		}
		if err := in.generateInitrd(ctx, rel); err != nil {
			return nil, err
		}
	} else if req.Initrd == "" {
		in.log.Info("using the initrd already on the host", "initrd", in.initrd(rel))
	}
	rec.Complete = true
	if err := in.putRecord(rec); err != nil {
		return nil, err
	}
	return &Result{KernelRelease: rel, Vmlinuz: in.vmlinuz(rel), Initrd: in.initrd(rel), Method: methodBundle}, nil
}

// generateInitrd builds <boot>/initrd.img-<rel> with the host's tool.
func (in *Installer) generateInitrd(ctx context.Context, rel string) error {
	tool := in.cfg.Initramfs
	if tool == InitramfsAuto {
		switch {
		case in.found("update-initramfs"):
			tool = InitramfsUpdateInitramfs
		case in.found("dracut"):
			tool = InitramfsDracut
		default:
			return errors.New("the bundle has no initrd and neither update-initramfs nor dracut is installed")
		}
	}
	out := in.initrd(rel)
	var err error
	switch tool {
	case InitramfsUpdateInitramfs:
		// -c fails on an existing file: an interrupted earlier run may
		// have left one (update-initramfs renames into place; it is whole).
		if fileReady(out) == nil {
			_, err = in.run(ctx, nil, "update-initramfs", "-u", "-k", rel, "-b", in.BootDir())
		} else {
			_, err = in.run(ctx, nil, "update-initramfs", "-c", "-k", rel, "-b", in.BootDir())
		}
	case InitramfsDracut:
		_, err = in.run(ctx, nil, "dracut", "--force", "--kver", rel, out)
	}
	if err != nil {
		return fmt.Errorf("generate the initramfs: %w", err)
	}
	return fileReady(out)
}

func (in *Installer) found(name string) bool {
	_, err := in.cfg.LookPath(name)
	return err == nil
}
