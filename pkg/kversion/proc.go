package kversion

import (
	"fmt"
	"strings"
	"unicode"
)

const expectProc = `/proc/version content "Linux version RELEASE (BUILDER) (COMPILER) #N ..."`

// ParseProcVersion parses the content of /proc/version, e.g.
//
//	Linux version 6.1.0-56-amd64 (debian-kernel@lists.debian.org) (gcc-12 ...) #1 SMP PREEMPT_DYNAMIC Debian 6.1.192-2 (2026-10-02)
//
// The release is the third word and is parsed with Parse; String() of the
// result returns it. When the build string after "#N" names a Debian package
// version ("Debian 6.1.192-2"), it is recorded (DebianPackageVersion) and:
//
//   - for a Debian ABI name it supplies the upstream version, which becomes
//     known (6.1.0-56-amd64 + Debian 6.1.192-2 → upstream 6.1.192, ABI 56);
//     its MAJOR.MINOR must equal the release's, else the content is rejected;
//   - for any other release it must name the same upstream version as the
//     release, else the content is rejected as inconsistent.
//
// Compiler strings before "#N" such as "(Debian 12.2.0-14+deb12u1)" are
// ignored.
func ParseProcVersion(s string) (Version, error) {
	bad := func(reason string) (Version, error) {
		return Version{}, formatError(s, reason, expectProc)
	}
	word, rest := cutWord(s)
	if word != "Linux" {
		return bad(`does not start with "Linux version"`)
	}
	if word, rest = cutWord(rest); word != "version" {
		return bad(`does not start with "Linux version"`)
	}
	release, rest := cutWord(rest)
	if release == "" {
		return bad("no release after \"Linux version\"")
	}
	v, err := Parse(release)
	if err != nil {
		return Version{}, fmt.Errorf("kversion: release in /proc/version: %w", err)
	}

	words := strings.Fields(buildString(rest))
	for i, w := range words {
		if w != "Debian" {
			continue
		}
		if i+1 >= len(words) {
			return bad(`"Debian" at the end of the build string, without a package version`)
		}
		p, err := ParseDebianPackageVersion(words[i+1])
		if err != nil {
			return Version{}, fmt.Errorf("kversion: Debian package version in /proc/version: %w", err)
		}
		if !v.SameLine(p) {
			return bad(fmt.Sprintf("release %q is on line %s but Debian package version %q is on line %s",
				release, v.Line(), p.pkg, p.Line()))
		}
		if v.upstream {
			if v.patch != p.patch || v.rc != p.rc {
				vu, _ := v.Upstream()
				pu, _ := p.Upstream()
				return bad(fmt.Sprintf("release %q is upstream %s but Debian package version %q is upstream %s",
					release, vu, p.pkg, pu))
			}
		} else {
			v.patch, v.rc, v.upstream = p.patch, p.rc, true
		}
		v.pkg, v.rev = p.pkg, p.rev
		break
	}
	return v, nil
}

// cutWord returns the first whitespace-separated word of s and what follows.
func cutWord(s string) (word, rest string) {
	s = strings.TrimLeftFunc(s, unicode.IsSpace)
	i := strings.IndexFunc(s, unicode.IsSpace)
	if i < 0 {
		return s, ""
	}
	return s[:i], s[i:]
}

// buildString returns the kernel's UTS_VERSION part of the text after the
// release in /proc/version: from the first word starting with "#" outside
// the parenthesised builder and compiler strings, or "" if there is none.
func buildString(s string) string {
	depth := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '(':
			depth++
		case c == ')':
			if depth > 0 {
				depth--
			}
		case c == '#' && depth == 0 && (i == 0 || s[i-1] == ' ' || s[i-1] == '\t'):
			return s[i:]
		}
	}
	return ""
}
