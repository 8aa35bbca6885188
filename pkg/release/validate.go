package release

import (
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/kroll-dev/kroll/pkg/kcmdline"
	"github.com/kroll-dev/kroll/pkg/kversion"
	"github.com/kroll-dev/kroll/pkg/validation"
)

// Limits enforced by Validate.
const (
	// MaxIDLen is the longest release ID.
	MaxIDLen = 128
	// MaxArtifacts is the most artifacts a release may have.
	MaxArtifacts = 64
	// MaxArtifactSize is the largest artifact size, 2 GiB.
	MaxArtifactSize = 2 << 30
	// MaxArtifactNameLen is the longest artifact file name.
	MaxArtifactNameLen = 255
	// MaxURLLen is the longest artifact URL.
	MaxURLLen = 2048
	// MaxNotesLen is the longest Notes, in bytes.
	MaxNotesLen = 4096
)

var (
	idRE           = regexp.MustCompile(`^[a-z0-9][a-z0-9._+-]*$`)
	lineRE         = regexp.MustCompile(`^[1-9][0-9]{0,3}\.(0|[1-9][0-9]{0,3})$`)
	sha256RE       = regexp.MustCompile(`^[0-9a-f]{64}$`)
	artifactNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+~-]*$`)
)

// Oldest and newest Created times accepted; outside them a time is a typo
// (or cannot be encoded).
var (
	minCreated = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	maxCreated = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
)

// Validate checks every field of m and returns a *ValidationError listing
// all problems, or nil.
func (m Manifest) Validate() error {
	return m.validate().Err(subject)
}

func (m Manifest) validate() validation.Problems {
	var p validation.Problems

	switch {
	case m.ID == "":
		p.Add("id", "required")
	case len(m.ID) > MaxIDLen:
		p.Add("id", fmt.Sprintf("must be at most %d characters", MaxIDLen))
	case !idRE.MatchString(m.ID):
		p.Add("id", "must consist of [a-z0-9._+-] and start with a letter or digit")
	}

	lineOK := false
	switch {
	case m.Line == "":
		p.Add("line", "required")
	case !lineRE.MatchString(m.Line):
		p.Add("line", fmt.Sprintf("must be a kernel line MAJOR.MINOR such as 6.12, not %q", m.Line))
	default:
		lineOK = true
	}

	var kv kversion.Version
	kvOK := false
	if m.KernelVersion == "" {
		p.Add("kernel_version", "required")
	} else if v, err := kversion.Parse(m.KernelVersion); err != nil {
		p.Wrap("kernel_version", err)
	} else {
		kv, kvOK = v, true
		if lineOK && v.Line() != m.Line {
			p.Add("kernel_version", fmt.Sprintf("%s is not of line %s", m.KernelVersion, m.Line))
		}
	}

	switch {
	case m.UpstreamVersion != "":
		uv, err := kversion.Parse(m.UpstreamVersion)
		if err != nil {
			p.Wrap("upstream_version", err)
			break
		}
		if uv.Kind() != kversion.KindUpstream || uv.Suffix() != "" {
			p.Add("upstream_version", fmt.Sprintf("must be a plain upstream version such as 6.1.192, not %q", m.UpstreamVersion))
			break
		}
		if lineOK && uv.Line() != m.Line {
			p.Add("upstream_version", fmt.Sprintf("%s is not of line %s", m.UpstreamVersion, m.Line))
			break
		}
		if kvOK {
			if up, known := kv.Upstream(); known {
				if uup, _ := uv.Upstream(); uup != up {
					p.Add("upstream_version", fmt.Sprintf("%s contradicts kernel_version %s (upstream %s)", m.UpstreamVersion, m.KernelVersion, up))
				}
			}
		}
	case kvOK && !kv.UpstreamKnown():
		p.Add("upstream_version", fmt.Sprintf("required: kernel_version %s does not tell its upstream version", m.KernelVersion))
	}

	switch m.Kind {
	case KindDeb, KindBundle:
	case "":
		p.Add("kind", "required")
	default:
		p.Add("kind", fmt.Sprintf("must be %q or %q, not %q", KindDeb, KindBundle, m.Kind))
	}

	switch {
	case len(m.Artifacts) == 0:
		p.Add("artifacts", "must not be empty")
	case len(m.Artifacts) > MaxArtifacts:
		p.Add("artifacts", fmt.Sprintf("must have at most %d entries", MaxArtifacts))
	}
	names := make(map[string]int, len(m.Artifacts))
	for i, a := range m.Artifacts {
		f := "artifacts[" + strconv.Itoa(i) + "]"
		validateArtifact(&p, f, a)
		if a.Name == "" {
			continue
		}
		if j, dup := names[a.Name]; dup {
			p.Add(f+".name", fmt.Sprintf("duplicate of artifacts[%d].name %q", j, a.Name))
		} else {
			names[a.Name] = i
		}
	}

	validateCmdline(&p, m.CmdlineAdd, m.CmdlineRemove)

	switch {
	case m.Created.IsZero():
		p.Add("created", "required")
	case m.Created.Before(minCreated) || !m.Created.Before(maxCreated):
		p.Add("created", fmt.Sprintf("%s is out of range", m.Created.UTC().Format(time.RFC3339Nano)))
	}

	switch {
	case len(m.Notes) > MaxNotesLen:
		p.Add("notes", fmt.Sprintf("must be at most %d bytes", MaxNotesLen))
	case !printableText(m.Notes):
		p.Add("notes", "must be valid UTF-8 without control or format characters (newline and tab are allowed)")
	}
	return p
}

// validateCmdline checks the kernel parameters a release adds and
// removes.
func validateCmdline(p *validation.Problems, add, remove []string) {
	if len(add) > kcmdline.MaxChanges {
		p.Add("cmdline_add", fmt.Sprintf("must have at most %d entries", kcmdline.MaxChanges))
	}
	if len(remove) > kcmdline.MaxChanges {
		p.Add("cmdline_remove", fmt.Sprintf("must have at most %d entries", kcmdline.MaxChanges))
	}
	seen := map[string]int{}
	for i, a := range add {
		f := "cmdline_add[" + strconv.Itoa(i) + "]"
		if msg := kcmdline.CheckAdd(a); msg != "" {
			p.Add(f, msg)
			continue
		}
		if j, dup := seen[a]; dup {
			p.Add(f, fmt.Sprintf("duplicate of cmdline_add[%d] %q", j, a))
			continue
		}
		seen[a] = i
	}
	names := map[string]int{}
	for i, n := range remove {
		f := "cmdline_remove[" + strconv.Itoa(i) + "]"
		if msg := kcmdline.CheckRemove(n); msg != "" {
			p.Add(f, msg)
			continue
		}
		if j, dup := names[kcmdline.Key(n)]; dup {
			p.Add(f, fmt.Sprintf("duplicate of cmdline_remove[%d] %q", j, remove[j]))
			continue
		}
		names[kcmdline.Key(n)] = i
	}
}

func validateArtifact(p *validation.Problems, f string, a Artifact) {
	switch {
	case a.Name == "":
		p.Add(f+".name", "required")
	case len(a.Name) > MaxArtifactNameLen:
		p.Add(f+".name", fmt.Sprintf("must be at most %d characters", MaxArtifactNameLen))
	case !artifactNameRE.MatchString(a.Name):
		p.Add(f+".name", fmt.Sprintf("must be a plain file name of [A-Za-z0-9._+~-] starting with a letter or digit (no directories), not %q", a.Name))
	}

	if msg := checkURL(a.URL); msg != "" {
		p.Add(f+".url", msg)
	}

	switch {
	case a.Size <= 0:
		p.Add(f+".size", "must be > 0")
	case a.Size > MaxArtifactSize:
		p.Add(f+".size", fmt.Sprintf("must be at most %d bytes (2 GiB)", int64(MaxArtifactSize)))
	}

	switch {
	case a.SHA256 == "":
		p.Add(f+".sha256", "required")
	case !sha256RE.MatchString(a.SHA256):
		p.Add(f+".sha256", "must be 64 lowercase hex characters")
	}
}

// checkURL returns what is wrong with an artifact URL, or "".
func checkURL(s string) string {
	if s == "" {
		return "required"
	}
	if len(s) > MaxURLLen {
		return fmt.Sprintf("must be at most %d characters", MaxURLLen)
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return "must not contain spaces, control or non-ASCII characters (percent-encode them)"
		}
	}
	u, err := url.Parse(s)
	if err != nil {
		return "not a valid URL"
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Sprintf("scheme must be http or https, not %q", u.Scheme)
	case u.Host == "" || u.Hostname() == "":
		return "must have a host"
	case u.User != nil:
		return "must not contain credentials"
	case strings.Contains(s, "#"):
		return "must not have a fragment"
	}
	return ""
}

// printableText reports whether s is valid UTF-8 without control characters
// other than '\n' and '\t' and without invisible format characters (such as
// bidirectional overrides), so that printing it on a terminal shows what it
// says.
func printableText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r == '\n' || r == '\t' {
			continue
		}
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return false
		}
	}
	return true
}
