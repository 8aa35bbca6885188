package kversion

import (
	"errors"
	"fmt"
)

// ContainsFix reports whether the running kernel contains a fix that was
// released in the upstream versions fixedIn, at most one per line, e.g.
// [6.12.85, 6.18.22, 6.1.170] for a fix backported to three LTS lines.
//
// The running kernel contains the fix iff fixedIn has an entry of its
// MAJOR.MINOR line and its upstream version is greater than or equal to
// that entry (release candidates count as older than the release:
// 6.18.0-rc3 does not contain a fix listed as 6.18.0). Local suffixes and
// Debian revisions of the running kernel are not considered: a patch
// cherry-picked into an internal build before its upstream release is not
// recognised, which errs towards keeping mitigations.
//
// If fixedIn has no entry for the running kernel's line, the answer is
// (false, nil): no fix is known for that line, so mitigations must stay in
// force. This is deliberately conservative, also for a line newer than all
// listed ones.
//
// Errors, never a silent answer, are returned when:
//   - fixedIn contains the zero Version, an entry that is not a plain
//     upstream release (a local suffix, a Debian name or a Debian package
//     version: their relation to upstream fixes is not defined by the
//     string), or two entries of the same line. fixedIn is validated in full
//     even when the running kernel's line is not listed;
//   - running is the zero Version or its upstream version is unknown (a bare
//     Debian ABI name such as "6.1.0-47-amd64"; ParseProcVersion recovers
//     the upstream version from /proc/version).
func ContainsFix(running Version, fixedIn []Version) (bool, error) {
	var (
		match   Version
		matched bool
		seen    = make(map[string]string, len(fixedIn))
	)
	for i, f := range fixedIn {
		switch {
		case f.kind == 0:
			return false, fmt.Errorf("kversion: fixed-in entry %d is the zero Version", i)
		case f.kind == KindDebianABI && !f.upstream:
			return false, fmt.Errorf("kversion: fixed-in entry %d %q is a Debian ABI name whose upstream version is unknown; list the upstream release (e.g. %q)",
				i, f.raw, f.Line()+".N")
		case f.kind == KindUpstream && f.suffix != "":
			up, _ := f.Upstream()
			return false, fmt.Errorf("kversion: fixed-in entry %d %q has the local suffix %q; list the plain upstream release (e.g. %q)",
				i, f.raw, f.suffix, up)
		case f.kind != KindUpstream:
			up, _ := f.Upstream()
			return false, fmt.Errorf("kversion: fixed-in entry %d %q is a %s version, not a plain upstream release (e.g. %q)",
				i, f.raw, f.kind, up)
		}
		if prev, dup := seen[f.Line()]; dup {
			return false, fmt.Errorf("kversion: fixed-in entries %q and %q are both on line %s; list one version per line",
				prev, f.raw, f.Line())
		}
		seen[f.Line()] = f.raw
		if running.kind != 0 && f.SameLine(running) {
			match, matched = f, true
		}
	}
	switch {
	case running.kind == 0:
		return false, errors.New("kversion: running kernel is the zero Version")
	case !running.upstream:
		return false, fmt.Errorf("kversion: cannot tell whether %q contains the fix: it is a Debian ABI name whose upstream version is unknown (read it from /proc/version)",
			running.raw)
	case !matched:
		return false, nil
	}
	return cmpUpstream(running, match) >= 0, nil
}
