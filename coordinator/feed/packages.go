package feed

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// Bounds of a Packages index.
const (
	// MaxPackagesSize bounds a Packages index (decompressed).
	MaxPackagesSize = 64 << 20
	// MaxStanzas bounds its stanzas.
	MaxStanzas = 200000
	// maxLine bounds one line of it.
	maxLine = 64 << 10
	// maxFields bounds the fields of one stanza.
	maxFields = 200
)

// Package is one stanza of a Packages index (the fields the feed uses).
type Package struct {
	Name         string
	Version      string
	Architecture string
	// Filename is the .deb's path relative to the repository's base URL.
	Filename string
	Size     int64
	// SHA256 is the .deb's lowercase hex SHA-256.
	SHA256 string
	// Line is the line number of the stanza's first field.
	Line int
}

var (
	debPackageName = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)
	debVersion     = regexp.MustCompile(`^([0-9]+:)?[A-Za-z0-9][A-Za-z0-9.+~:-]*$`)
	debArch        = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
	sha256Hex      = regexp.MustCompile(`^[0-9a-f]{64}$`)
	fieldName      = regexp.MustCompile(`^[A-Za-z0-9][!-9;-~]*$`)
)

// ParsePackages parses a Debian Packages index (deb822 stanzas separated
// by blank lines) strictly: at most MaxPackagesSize bytes, MaxStanzas
// stanzas and lines of 64 KiB; every stanza has Package, Version,
// Filename, Size and SHA256, each once and valid (a package name, a Debian
// version, a relative path without "..", a positive size, 64 lowercase hex
// digits); no field is repeated; continuation lines belong to a field.
// Other fields are ignored. The error names the line.
func ParsePackages(r io.Reader) ([]Package, error) {
	lr := &io.LimitedReader{R: r, N: MaxPackagesSize + 1}
	sc := bufio.NewScanner(lr)
	sc.Buffer(make([]byte, 0, 4096), maxLine)
	var (
		out    []Package
		fields = map[string]string{}
		last   string
		start  int
		n      int
	)
	flush := func() error {
		if len(fields) == 0 {
			return nil
		}
		p, err := packageOf(fields, start)
		if err != nil {
			return err
		}
		if len(out) == MaxStanzas {
			return fmt.Errorf("packages index: more than %d stanzas", MaxStanzas)
		}
		out = append(out, p)
		clear(fields)
		last = ""
		return nil
	}
	for sc.Scan() {
		n++
		line := sc.Bytes()
		if len(bytes.TrimSpace(line)) == 0 {
			if err := flush(); err != nil {
				return nil, err
			}
			continue
		}
		if !validText(line) {
			return nil, fmt.Errorf("packages index line %d: control characters or invalid UTF-8", n)
		}
		if line[0] == ' ' || line[0] == '\t' {
			if last == "" {
				return nil, fmt.Errorf("packages index line %d: continuation line without a field", n)
			}
			fields[last] += "\n" + strings.TrimSpace(string(line))
			continue
		}
		if line[0] == '#' {
			return nil, fmt.Errorf("packages index line %d: comments are not part of a Packages index", n)
		}
		name, value, ok := strings.Cut(string(line), ":")
		if !ok || !fieldName.MatchString(name) {
			return nil, fmt.Errorf("packages index line %d: not a \"Field: value\" line", n)
		}
		key := strings.ToLower(name)
		if _, dup := fields[key]; dup {
			return nil, fmt.Errorf("packages index line %d: field %s repeated in the stanza", n, name)
		}
		if len(fields) == maxFields {
			return nil, fmt.Errorf("packages index line %d: more than %d fields in the stanza", n, maxFields)
		}
		if len(fields) == 0 {
			start = n
		}
		fields[key] = strings.TrimSpace(value)
		last = key
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("packages index line %d: longer than %d bytes", n+1, maxLine)
		}
		return nil, fmt.Errorf("packages index: %w", err)
	}
	if lr.N <= 0 {
		return nil, fmt.Errorf("packages index: larger than %d bytes", MaxPackagesSize)
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return out, nil
}

// packageOf checks a stanza's fields (lowercased names).
func packageOf(f map[string]string, line int) (Package, error) {
	bad := func(format string, args ...any) (Package, error) {
		return Package{}, fmt.Errorf("packages index stanza at line %d: "+format, append([]any{line}, args...)...)
	}
	for _, k := range []string{"package", "version", "filename", "size", "sha256"} {
		if f[k] == "" {
			return bad("%s is required", k)
		}
	}
	p := Package{Name: f["package"], Version: f["version"], Architecture: f["architecture"], Filename: f["filename"], SHA256: f["sha256"], Line: line}
	if !debPackageName.MatchString(p.Name) {
		return bad("package %q is not a Debian package name", p.Name)
	}
	if !debVersion.MatchString(p.Version) || len(p.Version) > 256 {
		return bad("package %s: version %q is not a Debian version", p.Name, p.Version)
	}
	if p.Architecture != "" && !debArch.MatchString(p.Architecture) {
		return bad("package %s: architecture %q", p.Name, p.Architecture)
	}
	if err := checkFilename(p.Filename); err != nil {
		return bad("package %s: filename %q: %v", p.Name, p.Filename, err)
	}
	size, err := strconv.ParseInt(f["size"], 10, 64)
	if err != nil || size <= 0 || f["size"][0] == '+' {
		return bad("package %s: size %q is not a positive decimal number", p.Name, f["size"])
	}
	p.Size = size
	if !sha256Hex.MatchString(p.SHA256) {
		return bad("package %s: sha256 %q is not 64 lowercase hex digits", p.Name, p.SHA256)
	}
	return p, nil
}

// checkFilename accepts a relative slash-separated path of .deb file
// under the repository: no empty, "." or ".." segments, no backslashes,
// spaces or URL syntax (?, #, %).
func checkFilename(name string) error {
	if len(name) > 1024 {
		return errors.New("longer than 1024 bytes")
	}
	if !strings.HasSuffix(name, ".deb") {
		return errors.New("not a .deb")
	}
	if strings.ContainsAny(name, "\\?#% \t\n") {
		return errors.New("contains a backslash, space or one of ? # %")
	}
	for _, seg := range strings.Split(name, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return errors.New(`want a relative path without empty, "." or ".." segments`)
		}
	}
	return nil
}

// validText reports whether b is UTF-8 without control characters
// (tabs allowed).
func validText(b []byte) bool {
	for _, r := range string(b) {
		if r == '\uFFFD' || (r < 0x20 && r != '\t') || r == 0x7f {
			return false
		}
	}
	return true
}
