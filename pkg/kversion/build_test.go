package kversion

import (
	"errors"
	"strings"
	"testing"
)

// proc returns /proc/version content for release built as Debian package
// pkg ("" = no Debian package version in the build string).
func proc(release, pkg string) string {
	s := "Linux version " + release + " (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0) #1 SMP PREEMPT_DYNAMIC"
	if pkg != "" {
		s += " Debian " + pkg
	}
	return s + " (2026-10-02)\n"
}

func TestParseBuild(t *testing.T) {
	for _, tc := range []struct {
		release, upstream string
		want              string // Describe(), or the error's substring after "error: "
	}{
		{"6.1.0-56-amd64", "6.1.192", "6.1.0-56-amd64 (upstream 6.1.192)"},
		{"6.1.0-56-amd64", "", "6.1.0-56-amd64"},
		{"6.12.117+deb12-amd64", "6.12.117", "6.12.117+deb12-amd64 (upstream 6.12.117)"},
		{"6.12.85-kroll-2", "6.12.85", "6.12.85-kroll-2 (upstream 6.12.85)"},
		{"6.12.85", "6.12.85", "6.12.85"},
		{"6.12.85-kroll-2", "6.12.86", "error: release \"6.12.85-kroll-2\" is upstream 6.12.85, not 6.12.86"},
		{"6.1.0-56-amd64", "6.12.1", "error: is on line 6.1 but upstream version \"6.12.1\" is on line 6.12"},
		{"6.1.0-56-amd64", "6.1.192-2", "error: not a plain upstream version"},
		{"6.1.0-56-amd64", "6.1.0-47-amd64", "error: not a plain upstream version"},
		{"bogus", "6.1.192", "error: unknown version format"},
	} {
		t.Run(tc.release+"/"+tc.upstream, func(t *testing.T) {
			v, err := ParseBuild(tc.release, tc.upstream)
			if want, isErr := strings.CutPrefix(tc.want, "error: "); isErr {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("ParseBuild = %v, %v; want an error containing %q", v.Describe(), err, want)
				}
				return
			}
			if err != nil || v.Describe() != tc.want {
				t.Fatalf("ParseBuild = %q, %v; want %q", v.Describe(), err, tc.want)
			}
		})
	}
}

// TestCompareBuild: the target (a manifest's release and upstream
// version) against the running kernel (/proc/version), the way the agent
// decides whether a release is an upgrade.
func TestCompareBuild(t *testing.T) {
	for _, tc := range []struct {
		name                      string
		release, upstream         string // target
		runRelease, runPackage    string // running
		want                      int
		wantErr                   string
		wantSameUpstreamBuildErr  bool
		compareAlsoSaysNotOlderTo bool // documents the hole: Compare alone would accept it
	}{
		{name: "newer ABI", release: "6.1.0-56-amd64", upstream: "6.1.192", runRelease: "6.1.0-47-amd64", runPackage: "6.1.158-1", want: 1},
		{name: "older ABI, older upstream", release: "6.1.0-47-amd64", upstream: "6.1.158", runRelease: "6.1.0-56-amd64", runPackage: "6.1.192-1", want: -1},
		{name: "older ABI, same upstream", release: "6.1.0-47-amd64", upstream: "6.1.192", runRelease: "6.1.0-56-amd64", runPackage: "6.1.192-2", want: -1},
		{name: "newer ABI, same upstream", release: "6.1.0-57-amd64", upstream: "6.1.192", runRelease: "6.1.0-56-amd64", runPackage: "6.1.192-2", want: 1},
		{name: "same ABI, revision unknown on one side", release: "6.1.0-56-amd64", upstream: "6.1.192", runRelease: "6.1.0-56-amd64", runPackage: "6.1.192-2", want: 0},
		{name: "ABI order contradicts upstream", release: "6.1.0-47-amd64", upstream: "6.1.193", runRelease: "6.1.0-56-amd64", runPackage: "6.1.192-2",
			wantErr: "contradicts their upstream versions 6.1.193 and 6.1.192"},
		{name: "older internal build", release: "6.12.85-kroll-2", upstream: "6.12.85", runRelease: "6.12.85-kroll-3", want: -1},
		{name: "newer internal build", release: "6.12.85-kroll-3", upstream: "6.12.85", runRelease: "6.12.85-kroll-2", want: 1},
		{name: "internal build over plain", release: "6.12.85-kroll-1", upstream: "6.12.85", runRelease: "6.12.85", want: 1},
		{name: "plain under internal build", release: "6.12.85", runRelease: "6.12.85-kroll-1", want: -1},
		{name: "internal build, more digits", release: "6.12.85-kroll-10", upstream: "6.12.85", runRelease: "6.12.85-kroll-9", want: 1},
		{name: "same shape, two numbers", release: "6.12.85-kroll-3.2", upstream: "6.12.85", runRelease: "6.12.85-kroll-3.10", want: -1},
		// Unrelated local suffixes are not ordered as text.
		{name: "unrelated suffix", release: "6.12.85-zz", upstream: "6.12.85", runRelease: "6.12.85-kroll-3", wantSameUpstreamBuildErr: true},
		{name: "suffix with a tail", release: "6.12.85-kroll-3.old", upstream: "6.12.85", runRelease: "6.12.85-kroll-3", wantSameUpstreamBuildErr: true},
		{name: "debug build", release: "6.12.85-kroll-3-debug", upstream: "6.12.85", runRelease: "6.12.85-kroll-3", wantSameUpstreamBuildErr: true},
		{name: "other builder", release: "6.12.85-acme-4", upstream: "6.12.85", runRelease: "6.12.85-kroll-3", wantSameUpstreamBuildErr: true},
		{name: "Debian name over plain upstream", release: "6.12.85+deb13-amd64", upstream: "6.12.85", runRelease: "6.12.85", runPackage: "6.12.85-3",
			wantSameUpstreamBuildErr: true, compareAlsoSaysNotOlderTo: true},
		{name: "ABI name over plain upstream", release: "6.1.0-47-amd64", upstream: "6.1.192", runRelease: "6.1.192",
			wantSameUpstreamBuildErr: true, compareAlsoSaysNotOlderTo: true},
		{name: "other flavour", release: "6.1.0-56-cloud-amd64", upstream: "6.1.192", runRelease: "6.1.0-56-amd64", runPackage: "6.1.192-2",
			wantSameUpstreamBuildErr: true},
		{name: "newer tag", release: "6.12.85+deb13-amd64", runRelease: "6.12.85+deb12-amd64", runPackage: "6.12.85-1~deb12u1", want: 1},
		{name: "newer upstream, other kind", release: "6.12.86", runRelease: "6.12.85+deb13-amd64", runPackage: "6.12.85-3", want: 1},
		{name: "ABI, upstream unknown, newer ABI", release: "6.1.0-56-amd64", runRelease: "6.1.0-47-amd64", runPackage: "6.1.158-1", want: 1},
		{name: "ABI, upstream unknown, against plain", release: "6.1.0-56-amd64", runRelease: "6.1.192", wantErr: "cannot order"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target, err := ParseBuild(tc.release, tc.upstream)
			if err != nil {
				t.Fatal(err)
			}
			running, err := ParseProcVersion(proc(tc.runRelease, tc.runPackage))
			if err != nil {
				t.Fatal(err)
			}
			got, err := CompareBuild(target, running)
			switch {
			case tc.wantSameUpstreamBuildErr:
				if !errors.Is(err, ErrSameUpstreamBuild) {
					t.Fatalf("CompareBuild = %d, %v; want ErrSameUpstreamBuild", got, err)
				}
			case tc.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("CompareBuild = %d, %v; want an error containing %q", got, err, tc.wantErr)
				}
			case err != nil || got != tc.want:
				t.Fatalf("CompareBuild = %d, %v; want %d", got, err, tc.want)
			}
			if err == nil {
				// Antisymmetric.
				if back, err := CompareBuild(running, target); err != nil || back != -got {
					t.Errorf("CompareBuild(running, target) = %d, %v; want %d", back, err, -got)
				}
			} else if _, back := CompareBuild(running, target); back == nil {
				t.Errorf("CompareBuild(running, target) decided what CompareBuild(target, running) refused: %v", err)
			}
			if tc.compareAlsoSaysNotOlderTo {
				if c, err := Compare(target, running); err != nil || c < 0 {
					t.Errorf("Compare = %d, %v: the case no longer shows why CompareBuild is needed", c, err)
				}
			}
		})
	}
}

func TestCompareBuildPackages(t *testing.T) {
	a, _ := ParseDebianPackageVersion("6.12.85-3")
	b, _ := ParseDebianPackageVersion("6.12.85-2")
	if c, err := CompareBuild(a, b); err != nil || c != 1 {
		t.Fatalf("CompareBuild(6.12.85-3, 6.12.85-2) = %d, %v", c, err)
	}
	if c, err := CompareBuild(a, a); err != nil || c != 0 {
		t.Fatalf("CompareBuild(a, a) = %d, %v", c, err)
	}
	if _, err := CompareBuild(Version{}, a); err == nil {
		t.Fatal("zero Version ordered")
	}
}
