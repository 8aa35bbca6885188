// Package stage prepares a kernel release on an agent host before a reboot
// slot is requested (DESIGN §4 "Stage"): it verifies the ed25519-signed
// release manifest, checks free space, downloads the artifacts with HTTP
// range resume and bounded retries, verifies their sizes and sha256 and
// unpacks vmlinuz (and initrd or modules) from a Debian linux-image .deb or
// a kroll release bundle, refusing archives that try to escape the staging
// tree.
package stage

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kroll-dev/kroll/pkg/fsutil"
	"github.com/kroll-dev/kroll/pkg/release"
)

// Default limits used when the corresponding Config field is zero.
const (
	// DefaultMaxRetries is how many times a failed download is retried.
	DefaultMaxRetries = 5
	// DefaultBackoff is the delay before the first retry; it doubles
	// with each further retry.
	DefaultBackoff = 500 * time.Millisecond
	// DefaultMaxEntrySize is the largest archive entry accepted, 512 MiB.
	DefaultMaxEntrySize = 512 << 20
	// DefaultMaxTotalSize is the most bytes extracted from one release,
	// 4 GiB.
	DefaultMaxTotalSize = 4 << 30
	// maxBackoff caps the delay between two attempts.
	maxBackoff = 30 * time.Second
)

// markerName is the file in a release directory that records a completed
// staging.
const markerName = ".staged"

// rootName is the directory of a release directory that holds the
// unpacked files.
const rootName = "root"

// Config configures a Stager.
type Config struct {
	// Dir is the staging directory; each release is staged in
	// Dir/<release id>/.
	Dir string
	// Trusted are the keys allowed to sign release manifests.
	Trusted []ed25519.PublicKey
	// HTTPClient downloads the artifacts; nil means a new http.Client
	// without timeout (the context bounds the work).
	HTTPClient *http.Client
	// MaxRetries is how many times one artifact download is retried after
	// a network error or a 5xx response; 0 means DefaultMaxRetries and a
	// negative value means no retry.
	MaxRetries int
	// Backoff is the delay before the first retry, doubled for each
	// further one; 0 means DefaultBackoff.
	Backoff time.Duration
	// MinFreeBytes is the free space that must remain on Dir's file system
	// in addition to three times the artifacts' total size.
	MinFreeBytes uint64
	// Modules also extracts lib/modules/<version>/ from a .deb.
	Modules bool
	// MaxEntrySize is the largest archive entry accepted; 0 means
	// DefaultMaxEntrySize.
	MaxEntrySize int64
	// MaxTotalSize is the most bytes extracted from a release; 0 means
	// DefaultMaxTotalSize.
	MaxTotalSize int64
}

// Stager stages releases. It is safe for concurrent use on different
// releases.
type Stager struct {
	cfg Config
}

// Staged describes a staged release.
type Staged struct {
	// Release is the verified manifest.
	Release release.Manifest
	// Dir is the release directory, Config.Dir/<release id>.
	Dir string
	// Vmlinuz is the path of the unpacked kernel image.
	Vmlinuz string
	// Initrd is the path of the unpacked initrd, or "" when the release
	// has none.
	Initrd string
	// KernelRelease is the kernel release (uname -r) the image reports,
	// taken from its vmlinuz-<release> file name (or the manifest's
	// kernel_version for a bundle's plain "vmlinuz").
	KernelRelease string
}

// marker is the content of the marker file.
type marker struct {
	ManifestSHA256 string `json:"manifest_sha256"`
	Vmlinuz        string `json:"vmlinuz"`
	Initrd         string `json:"initrd,omitempty"`
	KernelRelease  string `json:"kernel_release"`
}

// New returns a Stager for cfg, filling in defaults.
func New(cfg Config) (*Stager, error) {
	if cfg.Dir == "" {
		return nil, errors.New("stage: Config.Dir is required")
	}
	if len(cfg.Trusted) == 0 {
		return nil, errors.New("stage: Config.Trusted needs at least one key")
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{}
	}
	switch {
	case cfg.MaxRetries == 0:
		cfg.MaxRetries = DefaultMaxRetries
	case cfg.MaxRetries < 0:
		cfg.MaxRetries = 0
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = DefaultBackoff
	}
	if cfg.MaxEntrySize <= 0 {
		cfg.MaxEntrySize = DefaultMaxEntrySize
	}
	if cfg.MaxTotalSize <= 0 {
		cfg.MaxTotalSize = DefaultMaxTotalSize
	}
	return &Stager{cfg: cfg}, nil
}

// Verify decodes the release manifest and checks its signature by one of
// the trusted keys; it fetches nothing.
func (s *Stager) Verify(manifest, sig []byte) (release.Manifest, error) {
	return VerifyManifest(manifest, sig, s.cfg.Trusted)
}

// VerifyManifest decodes a release manifest and checks its signature by
// one of the trusted keys.
func VerifyManifest(manifest, sig []byte, trusted []ed25519.PublicKey) (release.Manifest, error) {
	v, err := release.Open(manifest, sig, trusted)
	if err != nil {
		return release.Manifest{}, fmt.Errorf("stage: %w", err)
	}
	return v.Manifest(), nil
}

// Stage verifies the signed manifest, downloads its artifacts and unpacks
// the kernel. Staging a release that is already staged (same manifest)
// returns at once.
func (s *Stager) Stage(ctx context.Context, manifest, sig []byte) (*Staged, error) {
	m, err := s.Verify(manifest, sig)
	if err != nil {
		return nil, err
	}
	canon, err := m.Canonical()
	if err != nil {
		return nil, fmt.Errorf("stage %s: %w", m.ID, err)
	}
	sum := sha256.Sum256(canon)
	msha := hex.EncodeToString(sum[:])

	dir := filepath.Join(s.cfg.Dir, m.ID)
	if st, ok := s.readMarker(dir, msha); ok && artifactsPresent(dir, m.Artifacts) {
		st.Release = m
		return st, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("stage %s: %w", m.ID, err)
	}
	if err := checkFreeSpace(dir, m.Artifacts, s.cfg.MinFreeBytes); err != nil {
		return nil, fmt.Errorf("stage %s: %w", m.ID, err)
	}
	paths := make([]string, len(m.Artifacts))
	for i, a := range m.Artifacts {
		p, err := s.fetch(ctx, dir, a)
		if err != nil {
			return nil, fmt.Errorf("stage %s: %w", m.ID, err)
		}
		paths[i] = p
	}
	st, err := s.unpack(ctx, m, dir, paths)
	if err != nil {
		return nil, fmt.Errorf("stage %s: %w", m.ID, err)
	}
	mk := marker{ManifestSHA256: msha, Vmlinuz: rel(dir, st.Vmlinuz), KernelRelease: st.KernelRelease}
	if st.Initrd != "" {
		mk.Initrd = rel(dir, st.Initrd)
	}
	b, err := json.Marshal(mk)
	if err != nil {
		return nil, fmt.Errorf("stage %s: marker: %w", m.ID, err)
	}
	if err := fsutil.WriteFileAtomic(filepath.Join(dir, markerName), b, 0o644, false); err != nil {
		return nil, fmt.Errorf("stage %s: %w", m.ID, err)
	}
	return st, nil
}

// rel returns p relative to dir (p is always inside dir).
func rel(dir, p string) string {
	r, err := filepath.Rel(dir, p)
	if err != nil {
		return p
	}
	return r
}

// readMarker returns the staged release recorded in dir when its marker
// names the manifest with sha256 msha and the files it lists exist.
func (s *Stager) readMarker(dir, msha string) (*Staged, bool) {
	b, err := os.ReadFile(filepath.Join(dir, markerName))
	if err != nil {
		return nil, false
	}
	var mk marker
	if err := json.Unmarshal(b, &mk); err != nil || mk.ManifestSHA256 != msha || !filepath.IsLocal(mk.Vmlinuz) {
		return nil, false
	}
	st := &Staged{Dir: dir, Vmlinuz: filepath.Join(dir, mk.Vmlinuz), KernelRelease: mk.KernelRelease}
	if _, err := os.Stat(st.Vmlinuz); err != nil {
		return nil, false
	}
	if mk.Initrd != "" {
		if !filepath.IsLocal(mk.Initrd) {
			return nil, false
		}
		st.Initrd = filepath.Join(dir, mk.Initrd)
		if _, err := os.Stat(st.Initrd); err != nil {
			return nil, false
		}
	}
	return st, true
}

// artifactsPresent reports whether every artifact is still in dir with its
// size (the installer removes one whose content changed, to have it
// downloaded again).
func artifactsPresent(dir string, arts []release.Artifact) bool {
	for _, a := range arts {
		fi, err := os.Stat(filepath.Join(dir, a.Name))
		if err != nil || fi.Size() != a.Size {
			return false
		}
	}
	return true
}

// checkFreeSpace fails unless dir's file system has at least three times
// the artifacts' total size plus minFree bytes available.
func checkFreeSpace(dir string, arts []release.Artifact, minFree uint64) error {
	var total uint64
	for _, a := range arts {
		total += uint64(a.Size)
	}
	need := total*3 + minFree
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		return fmt.Errorf("check free space in %s: %w", dir, err)
	}
	avail := fs.Bavail * uint64(fs.Bsize)
	if avail < need {
		return fmt.Errorf("not enough free space in %s: %d bytes available, need %d (3 × %d bytes of artifacts + %d reserved)",
			dir, avail, need, total, minFree)
	}
	return nil
}
