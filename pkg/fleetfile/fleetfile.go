// Package fleetfile reads krollctl's fleet file: the regions of a fleet,
// each its own coordinator quorum, with the coordinator URLs to try in
// turn, the CA to verify them with and the operator credentials (token
// file, client certificate and key) to present.
//
//	[defaults]              # optional; every key may be set per region
//	ca = "ca.pem"           # PEM CA bundle (default: system roots)
//	token_file = "ops.token"
//	cert = "ops.pem"        # client certificate, with key
//	key = "ops-key.pem"
//	timeout = "30s"         # per-region bound of one command
//
//	[regions.eu-central]
//	coordinators = ["https://c1.fra.example:8001", "https://c2.fra.example:8001"]
//	token_file = "eu.token"
//
// The file is read strictly: unknown keys, a region without coordinators,
// a region name that is not a lower-case DNS label, the same coordinator in
// two regions, and clear-text http:// to anything but loopback are errors.
// Relative paths are relative to the fleet file's directory. A TOML syntax
// error (a duplicate region among them) names FILE:LINE. A fleet file
// that its group or others may write is refused.
package fleetfile

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/kroll-dev/kroll/pkg/client"
	"github.com/kroll-dev/kroll/pkg/tomlfile"
)

// DefaultTimeout bounds one command against one region when the fleet
// file sets no timeout.
const DefaultTimeout = time.Minute

// maxTokenSize bounds a token file.
const maxTokenSize = 4096

// File is a parsed fleet file.
type File struct {
	// Path is where the file was read from.
	Path string
	// Regions are the regions, sorted by name.
	Regions []Region
}

// Region is one region of the fleet: a coordinator quorum and how to
// reach it. Paths are absolute or as written when absolute in the file.
type Region struct {
	// Name is a lower-case DNS label ("eu-central").
	Name string
	// Coordinators are the region's coordinator base URLs, tried in turn.
	Coordinators []string
	// CA is a PEM CA bundle file; empty means the system roots.
	CA string
	// TokenFile holds the operator bearer token; empty means none.
	TokenFile string
	// Cert and Key are a PEM client certificate and key, both or neither.
	Cert, Key string
	// Timeout bounds one command against the region.
	Timeout time.Duration
}

// settings are the keys [defaults] and every region share.
type settings struct {
	CA        *string            `toml:"ca"`
	TokenFile *string            `toml:"token_file"`
	Cert      *string            `toml:"cert"`
	Key       *string            `toml:"key"`
	Timeout   *tomlfile.Duration `toml:"timeout"`
}

type regionTable struct {
	Coordinators []string `toml:"coordinators"`
	settings
}

type fileTOML struct {
	Defaults settings               `toml:"defaults"`
	Regions  map[string]regionTable `toml:"regions"`
}

// tomlLine matches the TOML library's errors that know their line.
var tomlLine = regexp.MustCompile(`(?s)^toml: line (\d+)(?: \(last key "([^"]*)"\))?: (.*)$`)

var regionName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// Load reads and validates the fleet file at path. It reads no token,
// certificate or CA file: Region.Client does, for the regions used.
func Load(path string) (*File, error) {
	// Like ssh with its config: a file others may change could send the
	// tokens anywhere.
	data, err := readChecked(path, tomlfile.MaxSize, fileRule{what: "fleet file", fix: "chmod go-w"})
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("fleet file %s: %w", path, fs.ErrNotExist)
		}
		if !strings.HasPrefix(err.Error(), "fleet file "+path) {
			return nil, fmt.Errorf("fleet file %s: %w", path, errors.Unwrap(err))
		}
		return nil, err
	}
	var raw fileTOML
	if err := tomlfile.DecodeData(path, data, &raw); err != nil {
		// tomlfile says "config PATH: ..." or "config: ..."; the TOML
		// library "toml: line N (last key "K"): ..." when it knows where.
		msg := strings.TrimPrefix(strings.TrimPrefix(err.Error(), "config "+path+": "), "config: ")
		if m := tomlLine.FindStringSubmatch(msg); m != nil {
			if m[2] != "" {
				return nil, fmt.Errorf("fleet file %s:%s: %s: %s", path, m[1], m[2], oneLine(m[3]))
			}
			return nil, fmt.Errorf("fleet file %s:%s: %s", path, m[1], oneLine(m[3]))
		}
		return nil, fmt.Errorf("fleet file %s: %s", path, oneLine(msg))
	}
	f, err := build(path, raw)
	if err != nil {
		return nil, fmt.Errorf("fleet file %s: %w", path, err)
	}
	return f, nil
}

// build validates raw and applies the defaults.
func build(path string, raw fileTOML) (*File, error) {
	if len(raw.Regions) == 0 {
		return nil, errors.New("no regions: add a [regions.NAME] table with coordinators = [URL, ...]")
	}
	dir := filepath.Dir(path)
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	defaults, err := resolve(dir, "defaults", raw.Defaults)
	if err != nil {
		errs = append(errs, err)
	}
	f := &File{Path: path}
	owner := map[string]string{} // coordinator URL → region
	for _, name := range slices.Sorted(maps.Keys(raw.Regions)) {
		rt := raw.Regions[name]
		if !regionName.MatchString(name) {
			bad("region %q: want a lower-case DNS label (a-z, 0-9, '-')", printable(name))
			continue
		}
		r, err := resolve(dir, "regions."+name, rt.settings)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		r.Name = name
		fill(&r, defaults)
		if r.Timeout == 0 {
			r.Timeout = DefaultTimeout
		}
		if (r.Cert == "") != (r.Key == "") {
			bad("regions.%s: cert and key go together", name)
		}
		if len(rt.Coordinators) == 0 {
			bad("regions.%s.coordinators: no URLs (want at least one)", name)
		}
		for i, raw := range rt.Coordinators {
			u, err := checkURL(raw, r.CA != "" || r.Cert != "")
			if err != nil {
				bad("regions.%s.coordinators[%d]: %w", name, i, err)
				continue
			}
			if other, dup := owner[u]; dup {
				if other == name {
					bad("regions.%s.coordinators[%d]: %s is listed twice", name, i, u)
				} else {
					bad("regions.%s.coordinators[%d]: %s is a coordinator of region %s too (one quorum, one region)", name, i, u, other)
				}
				continue
			}
			owner[u] = name
			r.Coordinators = append(r.Coordinators, u)
		}
		f.Regions = append(f.Regions, r)
	}
	if len(errs) > 0 {
		slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
		return nil, errors.Join(errs...)
	}
	slices.SortFunc(f.Regions, func(a, b Region) int { return strings.Compare(a.Name, b.Name) })
	return f, nil
}

// resolve checks the settings of one table and makes their paths absolute.
func resolve(dir, table string, s settings) (Region, error) {
	var r Region
	var errs []error
	for _, p := range []struct {
		key string
		in  *string
		out *string
	}{{"ca", s.CA, &r.CA}, {"token_file", s.TokenFile, &r.TokenFile}, {"cert", s.Cert, &r.Cert}, {"key", s.Key, &r.Key}} {
		if p.in == nil {
			continue
		}
		v := *p.in
		switch {
		case v == "":
			errs = append(errs, fmt.Errorf("%s.%s: empty path (leave the key out instead)", table, p.key))
		case strings.HasPrefix(v, "~"):
			errs = append(errs, fmt.Errorf("%s.%s: %q: ~ is not expanded; write the path absolute or relative to the fleet file", table, p.key, printable(v)))
		case strings.ContainsFunc(v, unicode.IsControl):
			errs = append(errs, fmt.Errorf("%s.%s: %q: control characters in a path", table, p.key, printable(v)))
		case filepath.IsAbs(v):
			*p.out = filepath.Clean(v)
		default:
			*p.out = filepath.Join(dir, v)
		}
	}
	if s.Timeout != nil {
		r.Timeout = s.Timeout.Duration
	}
	return r, errors.Join(errs...)
}

// fill sets the settings r leaves unset from d. Credentials are taken as
// a whole: a region with a token or a certificate of its own inherits no
// credential from the defaults.
func fill(r *Region, d Region) {
	if r.CA == "" {
		r.CA = d.CA
	}
	if r.TokenFile == "" && r.Cert == "" && r.Key == "" {
		r.TokenFile, r.Cert, r.Key = d.TokenFile, d.Cert, d.Key
	}
	if r.Timeout == 0 {
		r.Timeout = d.Timeout
	}
}

// checkURL validates one coordinator URL and returns its canonical form
// (no trailing slash). Clear-text http:// is refused off loopback, and
// with TLS settings at all.
func checkURL(raw string, withTLS bool) (string, error) {
	if strings.ContainsFunc(raw, unicode.IsControl) || strings.ContainsFunc(raw, unicode.IsSpace) {
		return "", fmt.Errorf("%q: spaces or control characters", printable(raw))
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("%q: %w", raw, errors.Unwrap(err))
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf("%q: want https:// (or http:// on loopback)", raw)
	case u.Hostname() == "":
		return "", fmt.Errorf("%q: no host", raw)
	case u.User != nil:
		return "", fmt.Errorf("%q: credentials in the URL are not supported; use token_file", u.Redacted())
	case u.RawQuery != "" || u.Fragment != "" || u.Opaque != "":
		return "", fmt.Errorf("%q: query and fragment are not supported", raw)
	case u.Scheme == "http" && !isLoopback(u.Hostname()):
		return "", fmt.Errorf("%q: clear-text http:// to a non-loopback host: use https://", raw)
	case u.Scheme == "http" && withTLS:
		return "", fmt.Errorf("%q: ca, cert and key are set but the URL is not https://", raw)
	}
	return u.Scheme + "://" + u.Host + strings.TrimRight(u.EscapedPath(), "/"), nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Names returns the region names, sorted.
func (f *File) Names() []string {
	names := make([]string, len(f.Regions))
	for i, r := range f.Regions {
		names[i] = r.Name
	}
	return names
}

// Select returns the named regions, sorted by name; an unknown or twice
// named region is an error naming the regions there are.
func (f *File) Select(names []string) ([]Region, error) {
	seen := map[string]bool{}
	var out []Region
	for _, n := range names {
		if seen[n] {
			return nil, fmt.Errorf("region %q named twice", printable(n))
		}
		seen[n] = true
		i := slices.IndexFunc(f.Regions, func(r Region) bool { return r.Name == n })
		if i < 0 {
			return nil, fmt.Errorf("no region %q in %s (regions: %s)", printable(n), f.Path, strings.Join(f.Names(), ", "))
		}
		out = append(out, f.Regions[i])
	}
	slices.SortFunc(out, func(a, b Region) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Client returns a client of the region's coordinators: the first URL,
// the others as fallbacks, with the region's CA and credentials. It reads
// the token file and the client key, which must be regular files of the
// current user (or root) only their owner may read (mode 0600 or
// stricter), in a directory others cannot write to; the token file holds
// one token.
func (r Region) Client() (*client.Client, error) {
	token, err := r.token()
	if err != nil {
		return nil, fmt.Errorf("region %s: %w", r.Name, err)
	}
	tlsCfg, err := r.tlsConfig()
	if err != nil {
		return nil, fmt.Errorf("region %s: %w", r.Name, err)
	}
	c, err := client.New(r.Coordinators[0], client.Options{Token: token, TLS: tlsCfg, Fallbacks: r.Coordinators[1:], Timeout: r.Timeout})
	if err != nil {
		return nil, fmt.Errorf("region %s: %w", r.Name, err)
	}
	return c, nil
}

// maxKeySize bounds a client key file.
const maxKeySize = 64 << 10

// tlsConfig returns the region's TLS settings (nil without any): the CA,
// and the client certificate with its key, which is read like the token
// file (readChecked: owner only, mode 0600 or stricter).
func (r Region) tlsConfig() (*tls.Config, error) {
	if (r.Cert == "") != (r.Key == "") {
		return nil, errors.New("TLS client certificate and key must be given together")
	}
	cfg, err := client.TLSConfig(r.CA, "", "")
	if err != nil || r.Cert == "" {
		return cfg, err
	}
	certPEM, err := os.ReadFile(r.Cert)
	if err != nil {
		return nil, fmt.Errorf("TLS client certificate: %w", err)
	}
	keyPEM, err := readChecked(r.Key, maxKeySize, fileRule{what: "key", noun: "the private key", secret: true, fix: "chmod 600"})
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("TLS client certificate %s and key %s: %w", r.Cert, r.Key, err)
	}
	if cfg == nil {
		cfg = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	cfg.Certificates = []tls.Certificate{cert}
	return cfg, nil
}

// token reads the region's token file; "" without one.
func (r Region) token() (string, error) {
	if r.TokenFile == "" {
		return "", nil
	}
	data, err := readChecked(r.TokenFile, maxTokenSize, fileRule{what: "token_file", noun: "the token", secret: true, fix: "chmod 600"})
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(data))
	switch {
	case tok == "":
		return "", fmt.Errorf("token_file %s: empty", r.TokenFile)
	case strings.ContainsFunc(tok, func(c rune) bool { return unicode.IsSpace(c) || unicode.IsControl(c) || c > unicode.MaxASCII }):
		return "", fmt.Errorf("token_file %s: want one token of printable ASCII on one line", r.TokenFile)
	}
	return tok, nil
}

// printable replaces control characters so a name from the file cannot
// move the terminal.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '?'
		}
		return r
	}, s)
}

// oneLine joins the lines of s with "; ".
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ; ")), " ")
}
