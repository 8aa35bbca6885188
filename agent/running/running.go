// Package running reads what the running kernel reports about itself: its
// release (uname -r), its version as /proc/version states it (with the
// upstream version of a Debian ABI name), the id of the current boot and
// its command line.
//
// Every part of the agent that needs one of these asks a Kernel, so there
// is one place that reads and validates them. Nothing is cached: each call
// reads procfs again.
package running

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"unicode"

	"github.com/kroll-dev/kroll/pkg/kversion"
)

// DefaultProcDir is where procfs is mounted.
const DefaultProcDir = "/proc"

// maxProcFile bounds how much of a procfs file is read. The largest file
// read is the command line (COMMAND_LINE_SIZE is at most a few KiB).
const maxProcFile = 64 << 10

// maxRelease is the longest release the kernel reports (a utsname field
// is 65 bytes including the terminating NUL).
const maxRelease = 64

// ErrMalformed marks content that was read but is not what the kernel
// writes (an empty release, a boot id that is not a UUID, an unparsable
// /proc/version). Read errors wrap the underlying fs error instead.
var ErrMalformed = errors.New("malformed")

// Kernel is the running kernel. Implementations read fresh on every call
// and are safe for concurrent use.
type Kernel interface {
	// Release returns the kernel release (uname -r), e.g.
	// "6.1.0-56-amd64".
	Release() (string, error)
	// Version returns the kernel's version as /proc/version states it
	// (kversion.ParseProcVersion): its String() is the release, and for a
	// Debian ABI name the upstream version comes from the Debian package
	// version in the build string.
	Version() (kversion.Version, error)
	// BootID returns the id of the current boot, a lowercase UUID that
	// changes with every boot, kexec included.
	BootID() (string, error)
	// Cmdline returns the command line the kernel was booted with,
	// unfiltered, without the trailing newline.
	Cmdline() (string, error)
}

// ProcFS is the Kernel read from a procfs tree. Its zero value reads
// DefaultProcDir; tests point Dir at a fake tree holding
// sys/kernel/osrelease, version, sys/kernel/random/boot_id and cmdline.
type ProcFS struct {
	// Dir is the procfs root; "" means DefaultProcDir.
	Dir string
}

var _ Kernel = ProcFS{}

func (p ProcFS) path(rel string) string {
	dir := p.Dir
	if dir == "" {
		dir = DefaultProcDir
	}
	return filepath.Join(dir, filepath.FromSlash(rel))
}

// read returns the content of the file rel below the proc root, at most
// maxProcFile bytes; more is an error.
func (p ProcFS) read(rel string) (string, string, error) {
	path := p.path(rel)
	f, err := os.Open(path)
	if err != nil {
		return "", path, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxProcFile+1))
	if err != nil {
		return "", path, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(b) > maxProcFile {
		return "", path, fmt.Errorf("%s: more than %d bytes: %w", path, maxProcFile, ErrMalformed)
	}
	return string(b), path, nil
}

// Release reads sys/kernel/osrelease.
func (p ProcFS) Release() (string, error) {
	raw, path, err := p.read("sys/kernel/osrelease")
	if err != nil {
		return "", err
	}
	rel := strings.TrimSpace(raw)
	switch {
	case rel == "":
		return "", fmt.Errorf("%s is empty: %w", path, ErrMalformed)
	case len(rel) > maxRelease:
		return "", fmt.Errorf("release in %s is %d bytes, at most %d: %w", path, len(rel), maxRelease, ErrMalformed)
	case strings.IndexFunc(rel, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }) >= 0:
		return "", fmt.Errorf("release %q in %s has white space or unprintable characters: %w", rel, path, ErrMalformed)
	}
	return rel, nil
}

// Version reads and parses version.
func (p ProcFS) Version() (kversion.Version, error) {
	raw, path, err := p.read("version")
	if err != nil {
		return kversion.Version{}, err
	}
	v, err := kversion.ParseProcVersion(raw)
	if err != nil {
		return kversion.Version{}, fmt.Errorf("%s: %w: %w", path, ErrMalformed, err)
	}
	return v, nil
}

// BootID reads sys/kernel/random/boot_id.
func (p ProcFS) BootID() (string, error) {
	raw, path, err := p.read("sys/kernel/random/boot_id")
	if err != nil {
		return "", err
	}
	id := strings.TrimSpace(raw)
	if !isUUID(id) {
		return "", fmt.Errorf("boot id %q in %s is not a UUID: %w", id, path, ErrMalformed)
	}
	return id, nil
}

// Cmdline reads cmdline.
func (p ProcFS) Cmdline() (string, error) {
	raw, path, err := p.read("cmdline")
	if err != nil {
		return "", err
	}
	line := strings.TrimSuffix(raw, "\n")
	if strings.ContainsAny(line, "\x00\n") {
		return "", fmt.Errorf("%s has a NUL or a line break inside: %w", path, ErrMalformed)
	}
	return line, nil
}

// isUUID reports whether s is a UUID in the kernel's lowercase form.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return false
			}
		}
	}
	return true
}
