package feed

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/url"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/kroll-dev/kroll/coordinator/fsm"
)

// Kinds of feed.
const (
	// KindApt is a Debian-format apt repository.
	KindApt = "apt"
	// KindIndex is a JSON index of signed release manifests.
	KindIndex = "index"
)

// Defaults and bounds of a feed's settings.
const (
	DefaultTimeout = 30 * time.Second
	// MinInterval bounds how often a feed is polled.
	MinInterval = time.Second
	// MaxTimeout bounds one request.
	MaxTimeout = 10 * time.Minute
)

// Config is one feed ([[feed]] in the coordinator's configuration).
type Config struct {
	// Name names the feed (releases it adds have Source "feed:NAME").
	Name string
	// Kind is KindApt or KindIndex.
	Kind string
	// URL is the repository's base URL (apt) or the index's URL (index);
	// http or https.
	URL string
	// Suite, Component, Arch and Package (a path.Match glob of package
	// names) select the builds of an apt repository.
	Suite, Component, Arch, Package string
	// Line is the kernel line ("6.12") the feed's builds are of.
	Line string
	// Interval is how often the feed is polled (at least MinInterval).
	Interval time.Duration
	// Timeout bounds each request (default DefaultTimeout).
	Timeout time.Duration
	// CAFile is a PEM bundle of the CAs the feed's HTTPS server chains
	// to (default the system's).
	CAFile string
	// Keys are the release keys whose signatures the feed accepts: the
	// coordinator's trusted release keys or a subset of them (the caller
	// resolves and checks them; see SubsetKeys).
	Keys []ed25519.PublicKey
}

var (
	linePattern = regexp.MustCompile(`^[1-9][0-9]{0,2}\.[0-9]{1,3}$`)
	// debField is what a suite, component or architecture may be: one
	// path segment of Debian's usual characters.
	debField = regexp.MustCompile(`^[a-z0-9][a-z0-9.+~_-]{0,63}$`)
)

// Validate checks the feed's settings and fills in defaults; the error
// lists every problem.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if !fsm.ValidName(c.Name) || strings.Contains(c.Name, ":") {
		bad("name %q: letters, digits, '.', '_', '-'", c.Name)
	}
	u, err := url.Parse(c.URL)
	switch {
	case c.URL == "":
		bad("url is required")
	case err != nil:
		bad("url %q: %v", c.URL, err)
	case u.Scheme != "http" && u.Scheme != "https" || u.Host == "":
		bad("url %q: want an absolute http or https URL", c.URL)
	case u.User != nil:
		bad("url %q: credentials do not belong in the URL", c.URL)
	case u.RawQuery != "" || u.Fragment != "":
		bad("url %q: no query or fragment", c.URL)
	}
	if !linePattern.MatchString(c.Line) {
		bad("line %q: want a kernel line MAJOR.MINOR such as 6.12", c.Line)
	}
	switch c.Kind {
	case KindApt:
		for _, f := range []struct{ name, v string }{{"suite", c.Suite}, {"component", c.Component}, {"arch", c.Arch}} {
			if !debField.MatchString(f.v) {
				bad("%s %q: required, one path segment (a-z, 0-9, . + ~ _ -)", f.name, f.v)
			}
		}
		if _, err := path.Match(c.Package, ""); c.Package == "" || err != nil || strings.Contains(c.Package, "/") {
			bad("package %q: want a glob of package names such as linux-image-6.12.*-amd64", c.Package)
		}
	case KindIndex:
		if c.Suite != "" || c.Component != "" || c.Arch != "" || c.Package != "" {
			bad("suite, component, arch and package are for apt feeds, not index feeds")
		}
	default:
		bad("kind %q: want %q or %q", c.Kind, KindApt, KindIndex)
	}
	switch {
	case c.Interval == 0:
		bad("interval is required (e.g. \"15m\")")
	case c.Interval < MinInterval:
		bad("interval %s: at least %s", c.Interval, MinInterval)
	}
	switch {
	case c.Timeout == 0:
		c.Timeout = DefaultTimeout
	case c.Timeout < 0 || c.Timeout > MaxTimeout:
		bad("timeout %s: between 0 (the default %s) and %s", c.Timeout, DefaultTimeout, MaxTimeout)
	}
	if len(c.Keys) == 0 {
		bad("no trusted release keys: a feed accepts only builds signed by [releases] trusted_keys")
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("feed %q: %w", c.Name, errors.Join(errs...))
}

// SubsetKeys returns the keys of want that are among trusted, or an error
// naming the first that is not: a feed may narrow the coordinator's
// trusted release keys, never widen them. Without want it returns
// trusted.
func SubsetKeys(want, trusted []ed25519.PublicKey) ([]ed25519.PublicKey, error) {
	if len(want) == 0 {
		return trusted, nil
	}
	for i, k := range want {
		found := false
		for _, t := range trusted {
			if k.Equal(t) {
				found = true
				break
			}
		}
		if !found {
			return nil, fmt.Errorf("keys[%d]: not one of [releases] trusted_keys: a feed may narrow the trusted release keys, never add to them", i)
		}
	}
	return want, nil
}
