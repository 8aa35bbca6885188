package feed

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/kroll-dev/kroll/pkg/strictjson"
)

// Bounds of a manifest index.
const (
	// MaxIndexSize bounds an index document.
	MaxIndexSize = 8 << 20
	// MaxIndexEntries bounds its manifests.
	MaxIndexEntries = 10000
	// maxURL bounds one URL in it.
	maxURL = 2048
)

// Index is a manifest index document (see the package doc).
type Index struct {
	Manifests []IndexEntry `json:"manifests"`
}

// IndexEntry is one manifest of an index: its URL and its signature's
// (default the manifest URL + ".sig").
type IndexEntry struct {
	URL string `json:"url"`
	Sig string `json:"sig,omitempty"`
}

// DecodeIndex decodes an index strictly (at most MaxIndexSize bytes and
// MaxIndexEntries manifests, one object, no unknown or duplicate fields)
// and returns its entries with their URLs resolved against base, the
// index's own URL: absolute http or https URLs, no credentials, each
// manifest listed once.
func DecodeIndex(data []byte, base *url.URL) ([]IndexEntry, error) {
	var idx Index
	if err := strictjson.Decode(data, MaxIndexSize, &idx); err != nil {
		return nil, fmt.Errorf("manifest index: %w", err)
	}
	if idx.Manifests == nil {
		return nil, fmt.Errorf("manifest index: \"manifests\" is required (an empty list when there are none)")
	}
	if len(idx.Manifests) > MaxIndexEntries {
		return nil, fmt.Errorf("manifest index: %d manifests, at most %d", len(idx.Manifests), MaxIndexEntries)
	}
	seen := map[string]bool{}
	out := make([]IndexEntry, 0, len(idx.Manifests))
	for i, e := range idx.Manifests {
		m, err := resolve(base, e.URL)
		if err != nil {
			return nil, fmt.Errorf("manifest index: manifests[%d].url: %w", i, err)
		}
		sig := m + ".sig"
		if e.Sig != "" {
			if sig, err = resolve(base, e.Sig); err != nil {
				return nil, fmt.Errorf("manifest index: manifests[%d].sig: %w", i, err)
			}
		}
		if seen[m] {
			return nil, fmt.Errorf("manifest index: manifests[%d]: %s listed twice", i, m)
		}
		seen[m] = true
		out = append(out, IndexEntry{URL: m, Sig: sig})
	}
	return out, nil
}

// resolve resolves ref against base into an absolute http(s) URL.
func resolve(base *url.URL, ref string) (string, error) {
	switch {
	case ref == "":
		return "", fmt.Errorf("required")
	case len(ref) > maxURL:
		return "", fmt.Errorf("longer than %d bytes", maxURL)
	case strings.ContainsAny(ref, " \t\r\n\\"):
		return "", fmt.Errorf("%q: spaces or backslashes", ref)
	}
	r, err := url.Parse(ref)
	if err != nil {
		return "", fmt.Errorf("%q: %w", ref, err)
	}
	u := base.ResolveReference(r)
	switch {
	case u.Scheme != "http" && u.Scheme != "https" || u.Host == "":
		return "", fmt.Errorf("%q: want an http or https URL", ref)
	case u.User != nil:
		return "", fmt.Errorf("%q: credentials do not belong in the URL", ref)
	case u.Fragment != "":
		return "", fmt.Errorf("%q: no fragment", ref)
	}
	return u.String(), nil
}
