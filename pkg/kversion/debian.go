package kversion

import (
	"fmt"
	"strings"
)

// isDebianFlavour reports whether s is a Debian kernel flavour (the part of
// a Debian release name after the ABI or distribution tag). The table is the
// set of flavours Debian has built for the 6.x kernels; extend it here when
// Debian adds one.
func isDebianFlavour(s string) bool {
	switch s {
	case "amd64", "cloud-amd64", "rt-amd64",
		"arm64", "cloud-arm64", "rt-arm64", "64k-arm64", "rpi",
		"686", "686-pae", "rt-686-pae",
		"armmp", "armmp-lpae", "rt-armmp", "marvell",
		"powerpc64le", "powerpc64le-64k",
		"s390x", "riscv64", "loong64",
		"4kc-malta", "5kc-malta", "octeon", "loongson-3",
		"mips32r2el", "mips64r2el", "mips32r6el", "mips64r6el":
		return true
	}
	return false
}

// cutDebianABI matches "ABI-FLAVOUR" where ABI is a number ("47") or the
// backport form "0.debNN.M" ("0.deb11.17") and FLAVOUR is known.
func cutDebianABI(s string) (abi, flavour string, ok bool) {
	abi, flavour, ok = strings.Cut(s, "-")
	if !ok || !isDebianFlavour(flavour) {
		return "", "", false
	}
	if _, _, ok := splitABI(abi); !ok {
		return "", "", false
	}
	return abi, flavour, true
}

// splitABI splits a Debian ABI into its suite ("" for a plain ABI number,
// "debNN" for the backport form "0.debNN.M") and its number.
func splitABI(abi string) (suite string, n int, ok bool) {
	if rest, isBackport := strings.CutPrefix(abi, "0.deb"); isBackport {
		release, num, found := strings.Cut(rest, ".")
		if !found || !allDigits(release) || release[0] == '0' {
			return "", 0, false
		}
		n, err := parseNumber(num, "ABI")
		if err != nil {
			return "", 0, false
		}
		return "deb" + release, n, true
	}
	n, err := parseNumber(abi, "ABI")
	if err != nil {
		return "", 0, false
	}
	return "", n, true
}

// cutDebianTag matches "TAG-FLAVOUR" of a Debian versioned name where TAG is
// "debNN", "bpo" or "unreleased" and FLAVOUR is known.
func cutDebianTag(s string) (tag, flavour string, ok bool) {
	tag, flavour, ok = strings.Cut(s, "-")
	if !ok || !isDebianFlavour(flavour) {
		return "", "", false
	}
	switch {
	case tag == "bpo", tag == "unreleased":
	case strings.HasPrefix(tag, "deb") && allDigits(tag[3:]) && tag[3] != '0':
	default:
		return "", "", false
	}
	return tag, flavour, true
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

const expectPackage = `a Debian package version of the Linux kernel such as ` +
	`"6.1.192-2", "6.12.117-1~deb12u1" or "6.18~rc3-1~exp1" (UPSTREAM-REVISION, no epoch)`

// ParseDebianPackageVersion parses the version of a Debian kernel package
// as shown by apt or dpkg ("6.1.192-2", "6.12.117-1~deb12u1",
// "6.12.12-1~bpo12+1", "6.18~rc3-1~exp1"). The upstream part is
// MAJOR.MINOR[.PATCH][~rcN]; the Debian revision after the last "-" is kept
// and used to order versions of equal upstream version the way dpkg does.
// Epochs are rejected: Debian's kernel packages have none.
func ParseDebianPackageVersion(s string) (Version, error) {
	bad := func(reason string) (Version, error) {
		return Version{}, formatError(s, reason, expectPackage)
	}
	if s == "" {
		return bad("empty string")
	}
	if strings.Contains(s, ":") {
		return bad("epochs are not used by Debian kernel packages")
	}
	i := strings.LastIndexByte(s, '-')
	if i < 0 {
		return bad(`no Debian revision (nothing after a "-")`)
	}
	up, rev := s[:i], s[i+1:]
	if rev == "" {
		return bad("empty Debian revision")
	}
	for j := 0; j < len(rev); j++ {
		if c := rev[j]; !isDigit(c) && !isLetter(c) && c != '.' && c != '+' && c != '~' {
			return bad(fmt.Sprintf("character %q not allowed in a Debian revision", c))
		}
	}
	// Debian writes release candidates as "6.18~rc3"; the release parser
	// knows them as "6.18-rc3".
	release := up
	if before, after, found := strings.Cut(up, "~rc"); found {
		release = before + "-rc" + after
	}
	if strings.ContainsAny(up, "+-") || strings.ContainsAny(release, "~") {
		return bad(fmt.Sprintf("upstream part %q is not MAJOR.MINOR[.PATCH][~rcN]", up))
	}
	v, err := parseRelease(release)
	if err != nil || v.kind != KindUpstream || v.suffix != "" {
		return bad(fmt.Sprintf("upstream part %q is not MAJOR.MINOR[.PATCH][~rcN]", up))
	}
	v.raw, v.kind, v.pkg, v.rev = s, KindDebianPackage, s, rev
	return v, nil
}
