package policy

import (
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/kroll-dev/kroll/pkg/kversion"
	"github.com/kroll-dev/kroll/pkg/validation"
)

// Limits enforced by Validate.
const (
	// MaxNameLen is the longest policy ID or datacenter name.
	MaxNameLen = 63
	// MaxListLen is the most entries any list of a policy may have.
	MaxListLen = 256
	// MaxPathLen is the longest path in allow_exe and paths (PATH_MAX - 1).
	MaxPathLen = 4095
	// MaxModuleNameLen is the longest module name (MODULE_NAME_LEN - 1).
	MaxModuleNameLen = 55
)

var (
	nameRE   = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)
	cveRE    = regexp.MustCompile(`^CVE-[0-9]{4}-[0-9]{4,19}$`)
	moduleRE = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)
)

// Oldest and newest expiry accepted regardless of the current time; outside
// them a time is a typo (or cannot be encoded).
var (
	minExpires = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	maxExpires = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
)

// Validate checks every field of p, including that it has not expired at
// now, and returns a *ValidationError listing all problems, or nil.
func (p Policy) Validate(now time.Time) error {
	return p.validate(now, true).Err(subject)
}

func (p Policy) validate(now time.Time, checkExpiry bool) validation.Problems {
	var pr validation.Problems

	if msg := checkName(p.ID); msg != "" {
		pr.Add("id", msg)
	}
	if p.CVE != "" && !cveRE.MatchString(p.CVE) {
		pr.Add("cve", fmt.Sprintf("must look like CVE-YYYY-NNNN, not %q", p.CVE))
	}
	if p.Version <= 0 {
		pr.Add("version", "must be > 0")
	}

	switch p.Kind {
	case KindSocketFamily, KindModuleRequest, KindUsernsCreate, KindFileOpen:
	case "":
		pr.Add("kind", "required")
	default:
		pr.Add("kind", fmt.Sprintf("must be one of %s, %s, %s, %s; not %q",
			KindSocketFamily, KindModuleRequest, KindUsernsCreate, KindFileOpen, p.Kind))
	}

	switch p.Mode {
	case ModeAudit, ModeEnforce:
	case "":
		pr.Add("mode", "required")
	default:
		pr.Add("mode", fmt.Sprintf("must be %s or %s, not %q", ModeAudit, ModeEnforce, p.Mode))
	}

	p.Params.validate(&pr, p.Kind)
	p.AppliesTo.validate(&pr)

	switch {
	case p.Expires.IsZero():
		pr.Add("expires", "required")
	case p.Expires.Before(minExpires) || !p.Expires.Before(maxExpires):
		pr.Add("expires", fmt.Sprintf("%s is out of range", formatTime(p.Expires)))
	case checkExpiry && !p.Expires.After(now):
		pr.Add("expires", fmt.Sprintf("%s is in the past", formatTime(p.Expires)))
	}
	return pr
}

func formatTime(t time.Time) string {
	return t.UTC().Format(time.RFC3339Nano)
}

// checkName returns what is wrong with a policy ID or datacenter name, or "".
func checkName(s string) string {
	switch {
	case s == "":
		return "required"
	case len(s) > MaxNameLen || !nameRE.MatchString(s):
		return fmt.Sprintf("must be 1 to %d characters of [a-z0-9-], not starting or ending with '-'; not %q", MaxNameLen, s)
	}
	return ""
}

// validate checks the params of a policy of the given kind. An unknown
// kind is reported by the caller; its params are not checked.
func (pa Params) validate(pr *validation.Problems, kind Kind) {
	var allowed map[string]bool
	switch kind {
	case KindSocketFamily:
		allowed = map[string]bool{"family": true, "operations": true, "allow_exe": true}
		pa.validateFamily(pr)
		pa.validateOperations(pr)
	case KindModuleRequest:
		allowed = map[string]bool{"modules": true}
		pa.validateModules(pr)
	case KindUsernsCreate:
		allowed = map[string]bool{"allow_exe": true}
	case KindFileOpen:
		allowed = map[string]bool{"paths": true}
		validatePaths(pr, "params.paths", pa.Paths, true)
	default:
		return
	}
	if allowed["allow_exe"] {
		validatePaths(pr, "params.allow_exe", pa.AllowExe, false)
	}

	present := []struct {
		name string
		set  bool
	}{
		{"family", pa.Family != ""},
		{"operations", pa.Operations != nil},
		{"allow_exe", pa.AllowExe != nil},
		{"modules", pa.Modules != nil},
		{"paths", pa.Paths != nil},
	}
	for _, f := range present {
		if f.set && !allowed[f.name] {
			pr.Add("params."+f.name, fmt.Sprintf("not allowed for kind %s", kind))
		}
	}
}

func (pa Params) validateFamily(pr *validation.Problems) {
	if pa.Family == "" {
		pr.Add("params.family", "required")
		return
	}
	n, ok := SocketFamily(pa.Family)
	switch {
	case !ok:
		pr.Add("params.family", fmt.Sprintf("unknown socket family %q", pa.Family))
	case n == 0:
		pr.Add("params.family", "AF_UNSPEC is not a socket family that can be restricted")
	}
}

func (pa Params) validateOperations(pr *validation.Problems) {
	if len(pa.Operations) == 0 {
		pr.Add("params.operations", "must not be empty")
		return
	}
	seen := make(map[Operation]bool, len(pa.Operations))
	for i, op := range pa.Operations {
		f := "params.operations[" + strconv.Itoa(i) + "]"
		switch {
		case op != OpCreate && op != OpBind:
			pr.Add(f, fmt.Sprintf("must be %s or %s, not %q", OpCreate, OpBind, op))
		case seen[op]:
			pr.Add(f, fmt.Sprintf("duplicate operation %q", op))
		}
		seen[op] = true
	}
}

func (pa Params) validateModules(pr *validation.Problems) {
	switch {
	case len(pa.Modules) == 0:
		pr.Add("params.modules", "must not be empty")
		return
	case len(pa.Modules) > MaxListLen:
		pr.Add("params.modules", fmt.Sprintf("must have at most %d entries", MaxListLen))
		return
	}
	seen := make(map[string]bool, len(pa.Modules))
	for i, m := range pa.Modules {
		f := "params.modules[" + strconv.Itoa(i) + "]"
		switch {
		case m == "":
			pr.Add(f, "must not be empty")
		case len(m) > MaxModuleNameLen:
			pr.Add(f, fmt.Sprintf("must be at most %d characters", MaxModuleNameLen))
		case !moduleRE.MatchString(m):
			pr.Add(f, fmt.Sprintf("must be a module name or alias of [A-Za-z0-9_.-], not %q", m))
		case seen[m]:
			pr.Add(f, fmt.Sprintf("duplicate module %q", m))
		}
		seen[m] = true
	}
}

// validatePaths checks a list of absolute paths.
func validatePaths(pr *validation.Problems, field string, paths []string, required bool) {
	switch {
	case len(paths) == 0:
		if required {
			pr.Add(field, "must not be empty")
		}
		return
	case len(paths) > MaxListLen:
		pr.Add(field, fmt.Sprintf("must have at most %d entries", MaxListLen))
		return
	}
	seen := make(map[string]bool, len(paths))
	for i, p := range paths {
		f := field + "[" + strconv.Itoa(i) + "]"
		switch {
		case !strings.HasPrefix(p, "/"):
			pr.Add(f, "must be an absolute path")
		case len(p) > MaxPathLen:
			pr.Add(f, fmt.Sprintf("must be at most %d bytes", MaxPathLen))
		case strings.ContainsFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f }):
			pr.Add(f, "must not contain control characters")
		case path.Clean(p) != p:
			pr.Add(f, fmt.Sprintf("must be a clean path (%s, not %s)", path.Clean(p), p))
		case seen[p]:
			pr.Add(f, fmt.Sprintf("duplicate path %q", p))
		}
		seen[p] = true
	}
}

func (a AppliesTo) validate(pr *validation.Problems) {
	switch {
	case len(a.FixedIn) == 0:
		pr.Add("applies_to.fixed_in", "must not be empty")
	case len(a.FixedIn) > MaxListLen:
		pr.Add("applies_to.fixed_in", fmt.Sprintf("must have at most %d entries", MaxListLen))
	default:
		keys := make(map[string]int, len(a.FixedIn))
		for i, s := range a.FixedIn {
			f := "applies_to.fixed_in[" + strconv.Itoa(i) + "]"
			fix, err := kversion.ParseFix(s)
			if err != nil {
				pr.Wrap(f, err)
				continue
			}
			if j, dup := keys[fix.Key()]; dup {
				pr.Add(f, fmt.Sprintf("second %s entry for line %s (applies_to.fixed_in[%d] is %s)", fix.Form(), fix.Line(), j, a.FixedIn[j]))
				continue
			}
			keys[fix.Key()] = i
		}
	}

	if len(a.Datacenters) > MaxListLen {
		pr.Add("applies_to.datacenters", fmt.Sprintf("must have at most %d entries", MaxListLen))
		return
	}
	seen := make(map[string]bool, len(a.Datacenters))
	for i, dc := range a.Datacenters {
		f := "applies_to.datacenters[" + strconv.Itoa(i) + "]"
		if msg := checkName(dc); msg != "" {
			pr.Add(f, msg)
		} else if seen[dc] {
			pr.Add(f, fmt.Sprintf("duplicate datacenter %q", dc))
		}
		seen[dc] = true
	}
}
