package wire

import "strings"

// ValidLine reports whether s is a kernel line as the coordinator assigns
// them: MAJOR.MINOR in decimal without leading zeros, each at most three
// digits, the major not 0 ("6.12", "6.0").
func ValidLine(s string) bool {
	major, minor, ok := strings.Cut(s, ".")
	return ok && lineNumber(major) && lineNumber(minor) && major != "0"
}

func lineNumber(s string) bool {
	if len(s) == 0 || len(s) > 3 || (len(s) > 1 && s[0] == '0') {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
