// Package aptrepo builds real Debian package repositories for tests and
// the demo: .debs built by dpkg-deb (or existing ones copied in), the
// Packages index of dists/SUITE/COMPONENT/binary-ARCH written by
// dpkg-scanpackages, and kroll release manifests with their detached
// signatures published next to each .deb (FILENAME.manifest.json and
// .sig), the layout coordinator/feed's apt feeds poll. Serving the
// directory over HTTP (http.FileServer) is the caller's.
package aptrepo

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/kroll-dev/kroll/pkg/release"
)

// The repository's fixed selection: a feed of it is configured with
// these.
const (
	Suite     = "stable"
	Component = "main"
	Arch      = "amd64"
)

// Tools are the commands a repository needs (Debian package dpkg-dev).
var Tools = []string{"dpkg-deb", "dpkg-scanpackages"}

// Repo is a repository in a directory.
type Repo struct {
	// Dir is the repository's root (serve it as the feed's URL).
	Dir string
}

// Deb is a package in the repository's pool.
type Deb struct {
	// Filename is its path relative to the repository (the Packages
	// index's Filename).
	Filename string
	// Size and SHA256 describe its content.
	Size   int64
	SHA256 string
}

// Name is the .deb's file name (a manifest's artifact name).
func (d Deb) Name() string { return filepath.Base(d.Filename) }

// New returns a repository in dir (created when missing), after checking
// that the tools it needs are installed.
func New(dir string) (*Repo, error) {
	for _, tool := range Tools {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("aptrepo: %s not found (Debian package dpkg-dev; make deps installs it): %w", tool, err)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("aptrepo: %w", err)
	}
	return &Repo{Dir: dir}, nil
}

// poolPath is a package's Filename in the pool.
func poolPath(pkg, version string) string {
	return fmt.Sprintf("pool/%s/l/linux/%s_%s_%s.deb", Component, pkg, version, Arch)
}

// BuildDeb builds a small fake linux-image package pkg (such as
// linux-image-6.12.80-cf1-amd64) of Debian version with dpkg-deb: a
// control file and a /boot/vmlinuz-RELEASE that is no kernel. It is not
// indexed until Index.
func (r *Repo) BuildDeb(ctx context.Context, pkg, version string) (Deb, error) {
	root, err := os.MkdirTemp("", "aptrepo-deb-")
	if err != nil {
		return Deb{}, fmt.Errorf("aptrepo: %w", err)
	}
	defer os.RemoveAll(root)
	files := map[string]string{
		"DEBIAN/control": fmt.Sprintf("Package: %s\nVersion: %s\nArchitecture: %s\nMaintainer: Kroll Tests <tests@example.net>\nDescription: fake kernel image %s\n",
			pkg, version, Arch, version),
		"boot/vmlinuz-" + strings.TrimPrefix(pkg, "linux-image-"): "not a kernel " + version,
	}
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return Deb{}, fmt.Errorf("aptrepo: %w", err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return Deb{}, fmt.Errorf("aptrepo: %w", err)
		}
	}
	filename := poolPath(pkg, version)
	out := filepath.Join(r.Dir, filename)
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return Deb{}, fmt.Errorf("aptrepo: %w", err)
	}
	cmd := exec.CommandContext(ctx, "dpkg-deb", "--root-owner-group", "--build", root, out)
	if b, err := cmd.CombinedOutput(); err != nil {
		return Deb{}, fmt.Errorf("aptrepo: dpkg-deb --build %s: %w: %s", pkg, err, b)
	}
	return describe(r.Dir, filename)
}

// AddDeb copies an existing .deb (such as a real Debian kernel package)
// into the pool, named by its own control fields. It is not indexed until
// Index.
func (r *Repo) AddDeb(ctx context.Context, path string) (Deb, error) {
	fields := map[string]string{}
	for _, f := range []string{"Package", "Version"} {
		out, err := exec.CommandContext(ctx, "dpkg-deb", "--field", path, f).Output()
		if err != nil {
			return Deb{}, fmt.Errorf("aptrepo: dpkg-deb --field %s %s: %w", path, f, err)
		}
		if fields[f] = strings.TrimSpace(string(out)); fields[f] == "" {
			return Deb{}, fmt.Errorf("aptrepo: %s has no %s field", path, f)
		}
	}
	filename := poolPath(fields["Package"], fields["Version"])
	if err := copyFile(path, filepath.Join(r.Dir, filename)); err != nil {
		return Deb{}, err
	}
	return describe(r.Dir, filename)
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("aptrepo: %w", err)
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("aptrepo: %w", err)
	}
	out, err := os.Create(dst)
	if err != nil {
		return fmt.Errorf("aptrepo: %w", err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("aptrepo: copy %s: %w", src, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("aptrepo: %w", err)
	}
	return nil
}

// describe returns the Deb of filename under dir.
func describe(dir, filename string) (Deb, error) {
	data, err := os.ReadFile(filepath.Join(dir, filename))
	if err != nil {
		return Deb{}, fmt.Errorf("aptrepo: %w", err)
	}
	h := sha256.Sum256(data)
	return Deb{Filename: filename, Size: int64(len(data)), SHA256: hex.EncodeToString(h[:])}, nil
}

// Index regenerates dists/SUITE/COMPONENT/binary-ARCH/Packages.gz (and
// the plain Packages when plain) with dpkg-scanpackages, replacing each
// file atomically: a poller may be reading. An empty repository has an
// empty index.
func (r *Repo) Index(ctx context.Context, plain bool) error {
	if err := os.MkdirAll(filepath.Join(r.Dir, "pool"), 0o755); err != nil {
		return fmt.Errorf("aptrepo: %w", err)
	}
	cmd := exec.CommandContext(ctx, "dpkg-scanpackages", "--multiversion", "pool", "/dev/null")
	cmd.Dir = r.Dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("aptrepo: dpkg-scanpackages: %w: %s", err, stderr.String())
	}
	dir := filepath.Join(r.Dir, "dists", Suite, Component, "binary-"+Arch)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("aptrepo: %w", err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write(out); err != nil {
		return fmt.Errorf("aptrepo: %w", err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("aptrepo: %w", err)
	}
	files := map[string][]byte{"Packages.gz": gz.Bytes()}
	if plain {
		files["Packages"] = out
	}
	for name, data := range files {
		if err := writeAtomic(filepath.Join(dir, name), data); err != nil {
			return err
		}
	}
	return nil
}

func writeAtomic(path string, data []byte) error {
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path))
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("aptrepo: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("aptrepo: %w", err)
	}
	return nil
}

// Artifact is the manifest artifact of deb served under baseURL.
func (d Deb) Artifact(baseURL string) release.Artifact {
	return release.Artifact{Name: d.Name(), URL: strings.TrimSuffix(baseURL, "/") + "/" + d.Filename, Size: d.Size, SHA256: d.SHA256}
}

// Publish writes m next to deb as FILENAME.manifest.json and, when key is
// set, its signature FILENAME.manifest.json.sig.
func (r *Repo) Publish(deb Deb, m release.Manifest, key ed25519.PrivateKey) error {
	return WriteSigned(filepath.Join(r.Dir, deb.Filename+".manifest.json"), m, key)
}

// WriteSigned writes m at path (indented, as a person would, not
// canonically) and, when key is set, its signature at path.sig.
func WriteSigned(path string, m release.Manifest, key ed25519.PrivateKey) error {
	canon, err := m.Canonical()
	if err != nil {
		return fmt.Errorf("aptrepo: %w", err)
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, canon, "", "  "); err != nil {
		return fmt.Errorf("aptrepo: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("aptrepo: %w", err)
	}
	var sig []byte
	if key != nil {
		s, err := release.SignManifest(key, m)
		if err != nil {
			return fmt.Errorf("aptrepo: sign %s: %w", m.ID, err)
		}
		sig = append(s.Marshal(), '\n')
	}
	// The manifest last: a poller that sees it sees its signature.
	if sig != nil {
		if err := writeAtomic(path+".sig", sig); err != nil {
			return err
		}
	}
	return writeAtomic(path, pretty.Bytes())
}
