// Package buildinfo holds the version and commit the Makefile stamps into
// every kroll binary (go build -ldflags "-X ...").
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Set at link time by the Makefile; defaults for plain "go build".
var (
	version = "dev"
	commit  = ""
)

// Version returns the release version, e.g. "v0.1.0" or "dev".
func Version() string { return version }

// Commit returns the git commit the binary was built from: the stamped one,
// else the one the Go toolchain recorded, else "unknown".
func Commit() string {
	if commit != "" {
		return commit
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return "unknown"
}

// String is the one-line version banner of binary name.
func String(name string) string {
	return fmt.Sprintf("%s %s (commit %s, %s)", name, Version(), Commit(), runtime.Version())
}
