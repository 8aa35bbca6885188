package packaging

import (
	"bufio"
	"debug/elf"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// A packaged file: its path, mode and whether it is a conffile.
type pkgFile struct {
	path     string
	mode     os.FileMode
	conffile bool
	debOnly  bool // nfpm adds it to the .deb only (Debian-specific)
}

// expected is the contract of the three packages: every file, its mode
// (all owned by root) and the conffiles.
var expected = map[string][]pkgFile{
	"kroll-agent": {
		{path: "/etc/kroll/agent.toml", mode: 0o644, conffile: true},
		{path: "/usr/bin/kroll-agent", mode: 0o755},
		{path: "/usr/lib/systemd/system/kroll-agent.service", mode: 0o644},
		{path: "/usr/lib/tmpfiles.d/kroll-agent.conf", mode: 0o644},
		{path: "/usr/share/doc/kroll-agent/copyright", mode: 0o644},
		{path: "/usr/share/doc/kroll-agent/LICENSE", mode: 0o644},
		{path: "/usr/share/doc/kroll-agent/NOTICE", mode: 0o644},
		{path: "/usr/share/doc/kroll-agent/THIRD_PARTY_NOTICES", mode: 0o644},
		{path: "/usr/share/doc/kroll-agent/changelog.Debian.gz", mode: 0o644, debOnly: true},
		{path: "/usr/share/lintian/overrides/kroll-agent", mode: 0o644, debOnly: true},
	},
	"kroll-coordinator": {
		{path: "/etc/default/kroll-coordinator", mode: 0o644, conffile: true},
		{path: "/etc/kroll/coordinator.toml", mode: 0o644, conffile: true},
		{path: "/usr/bin/kroll-coordinator", mode: 0o755},
		{path: "/usr/lib/systemd/system/kroll-coordinator.service", mode: 0o644},
		{path: "/usr/lib/sysusers.d/kroll.conf", mode: 0o644},
		{path: "/usr/lib/tmpfiles.d/kroll-coordinator.conf", mode: 0o644},
		{path: "/usr/share/doc/kroll-coordinator/copyright", mode: 0o644},
		{path: "/usr/share/doc/kroll-coordinator/LICENSE", mode: 0o644},
		{path: "/usr/share/doc/kroll-coordinator/NOTICE", mode: 0o644},
		{path: "/usr/share/doc/kroll-coordinator/THIRD_PARTY_NOTICES", mode: 0o644},
		{path: "/usr/share/doc/kroll-coordinator/changelog.Debian.gz", mode: 0o644, debOnly: true},
		{path: "/usr/share/kroll/monitoring/kroll.rules.yml", mode: 0o644},
		{path: "/usr/share/kroll/monitoring/kroll.rules.test.yml", mode: 0o644},
		{path: "/usr/share/kroll/monitoring/kroll-dashboard.json", mode: 0o644},
		{path: "/usr/share/lintian/overrides/kroll-coordinator", mode: 0o644, debOnly: true},
		{path: "/usr/share/man/man8/kroll-coordinator.8.gz", mode: 0o644},
	},
	// krollctl and kroll-agent: besides these, a manual page per command
	// (built.files).
	"krollctl": {
		{path: "/usr/bin/krollctl", mode: 0o755},
		{path: "/usr/share/doc/krollctl/copyright", mode: 0o644},
		{path: "/usr/share/doc/krollctl/LICENSE", mode: 0o644},
		{path: "/usr/share/doc/krollctl/NOTICE", mode: 0o644},
		{path: "/usr/share/doc/krollctl/THIRD_PARTY_NOTICES", mode: 0o644},
		{path: "/usr/share/doc/krollctl/changelog.Debian.gz", mode: 0o644, debOnly: true},
		{path: "/usr/share/lintian/overrides/krollctl", mode: 0o644, debOnly: true},
	},
}

var pkgNames = []string{"kroll-agent", "kroll-coordinator", "krollctl"}

// need skips the test when a tool is missing, or fails it under CI=true.
func need(t *testing.T, tools ...string) {
	t.Helper()
	var missing []string
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := fmt.Sprintf("missing %s: run `make deps` (Debian packages lintian, rpm, systemd, dpkg, init-system-helpers)", strings.Join(missing, ", "))
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + " (CI=true)")
	}
	t.Skip(msg)
}

// run runs name with args in dir (env added to the environment) and
// returns its combined output; it fails the test when the command fails.
func run(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	out, err := runErr(dir, env, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

func runErr(dir string, env []string, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// built holds the packages of two versions, built once for all subtests.
type built struct {
	repo, tmp string
	bin       string
	v1, v2    map[string]string // "kroll-agent.deb" -> path
	// arm64 are the packages of v1 cross-built for arm64; v1 and v2 are
	// the host's (amd64 on CI).
	arm64 map[string]string
	// man are the manual pages per package, one per command, as
	// generated from the binaries' command trees.
	man map[string][]pkgFile
}

// files returns every file of package n: expected plus its manual pages.
func (b *built) files(n string) []pkgFile {
	return append(slices.Clone(expected[n]), b.man[n]...)
}

// manPages lists the manual pages gen-man writes for the binary: one per
// command, the binary's own among them.
func manPages(t *testing.T, bin, name, section string) []pkgFile {
	t.Helper()
	dir := t.TempDir()
	run(t, "", nil, filepath.Join(bin, name), "gen-man", dir)
	pages, err := filepath.Glob(filepath.Join(dir, name+"*."+section))
	if err != nil || len(pages) < 5 || !slices.Contains(pages, filepath.Join(dir, name+"."+section)) {
		t.Fatalf("%s gen-man: %v, %v", name, pages, err)
	}
	var files []pkgFile
	for _, p := range pages {
		files = append(files, pkgFile{path: "/usr/share/man/man" + section + "/" + filepath.Base(p) + ".gz", mode: 0o644})
	}
	return files
}

func buildPackages(t *testing.T) *built {
	t.Helper()
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	b := &built{repo: repo, tmp: t.TempDir()}
	b.bin = filepath.Join(b.tmp, "bin")
	armBin := filepath.Join(b.tmp, "bin-arm64")
	for name, pkg := range map[string]string{
		"kroll-agent":       "./agent/cmd/kroll-agent",
		"kroll-coordinator": "./coordinator/cmd/kroll-coordinator",
		"krollctl":          "./coordinator/cmd/krollctl",
	} {
		// As `make build` and `make build-linux-arm64` do: static, stripped.
		run(t, repo, []string{"CGO_ENABLED=0"}, "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", filepath.Join(b.bin, name), pkg)
		run(t, repo, []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm64"}, "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", filepath.Join(armBin, name), pkg)
	}
	mk := func(version string, args ...string) map[string]string {
		dist := filepath.Join(b.tmp, "dist-"+version+strings.Join(args, ""))
		run(t, repo, nil, "make", append([]string{"--no-print-directory", "packages-only",
			"PKG_VERSION=" + version, "PKG_BIN=" + b.bin, "PKG_DIST=" + dist}, args...)...)
		got := map[string]string{}
		for _, n := range pkgNames {
			for _, f := range []struct{ kind, pattern string }{
				{"deb", n + "_" + version + "-1_*.deb"},
				{"rpm", n + "-" + version + "-1.*.rpm"},
			} {
				m, _ := filepath.Glob(filepath.Join(dist, f.pattern))
				if len(m) != 1 {
					t.Fatalf("%s: want one %s, found %v", dist, f.pattern, m)
				}
				got[n+"."+f.kind] = m[0]
			}
		}
		return got
	}
	b.v1, b.v2 = mk("1.0.0"), mk("1.0.1")
	// The man pages come from running the host's binaries.
	b.arm64 = mk("1.0.0", "PKG_ARCH=arm64", "PKG_BIN="+armBin, "PKG_MAN_BIN="+b.bin)
	b.man = map[string][]pkgFile{
		"krollctl":    manPages(t, b.bin, "krollctl", "1"),
		"kroll-agent": manPages(t, b.bin, "kroll-agent", "8"),
	}
	return b
}

// TestPackages builds the .deb and .rpm packages with `make packages-only`
// (nfpm) and checks them: contents and conffiles, lintian, the rpm file
// lists, the units with systemd-analyze verify, and install, upgrade,
// remove and purge with dpkg in a throwaway root.
func TestPackages(t *testing.T) {
	if testing.Short() && os.Getenv("CI") != "true" {
		t.Skip("builds packages (not with -short)")
	}
	need(t, "go", "make", "git", "gzip", "dpkg", "dpkg-deb", "dpkg-query", "lintian", "rpm",
		"systemd-analyze", "systemd-sysusers", "systemd-tmpfiles", "deb-systemd-helper", "cp")
	b := buildPackages(t)

	t.Run("contents", func(t *testing.T) { testContents(t, b) })
	t.Run("lintian", func(t *testing.T) { testLintian(t, b) })
	t.Run("rpm", func(t *testing.T) { testRPM(t, b) })
	t.Run("conffiles", func(t *testing.T) { testConffiles(t, b) })
	t.Run("systemd-analyze", func(t *testing.T) { testUnits(t, b) })
	t.Run("dpkg-root", func(t *testing.T) { testDpkgRoot(t, b) })
	t.Run("licence", func(t *testing.T) { testLicence(t, b, b.v1) })
	t.Run("arches", func(t *testing.T) { testArches(t, b) })
	t.Run("licence-arm64", func(t *testing.T) { testLicence(t, b, b.arm64) })
}

// testArches checks the architecture of the host's and the arm64
// packages: the .deb's Architecture, the .rpm's arch, the ELF machine of
// the packaged binaries, and that both ship the same files.
func testArches(t *testing.T, b *built) {
	tests := []struct {
		goarch, deb, rpm string
		machine          elf.Machine
		pkgs             map[string]string
	}{
		{"amd64", "amd64", "x86_64", elf.EM_X86_64, b.v1},
		{"arm64", "arm64", "aarch64", elf.EM_AARCH64, b.arm64},
	}
	for _, tt := range tests {
		if tt.goarch == "amd64" && runtime.GOARCH != "amd64" {
			continue // b.v1 is the host's build
		}
		t.Run(tt.goarch, func(t *testing.T) {
			for _, n := range pkgNames {
				deb, rpm := tt.pkgs[n+".deb"], tt.pkgs[n+".rpm"]
				if a := strings.TrimSpace(run(t, "", nil, "dpkg-deb", "-f", deb, "Architecture")); a != tt.deb {
					t.Errorf("%s: Architecture %q, want %q", filepath.Base(deb), a, tt.deb)
				}
				if a := run(t, "", nil, "rpm", "-qp", "--qf", "%{ARCH}", rpm); a != tt.rpm {
					t.Errorf("%s: arch %q, want %q", filepath.Base(rpm), a, tt.rpm)
				}
				root := filepath.Join(b.tmp, "arch-"+tt.goarch+"-"+n)
				run(t, "", nil, "dpkg-deb", "-x", deb, root)
				f, err := elf.Open(filepath.Join(root, "usr/bin", n))
				if err != nil {
					t.Fatal(err)
				}
				if f.Machine != tt.machine || f.Class != elf.ELFCLASS64 || f.Data != elf.ELFDATA2LSB {
					t.Errorf("%s: /usr/bin/%s is %v %v %v, want %v", filepath.Base(deb), n, f.Machine, f.Class, f.Data, tt.machine)
				}
				if f.Type != elf.ET_EXEC {
					t.Errorf("%s: /usr/bin/%s is %v, want a static ET_EXEC", filepath.Base(deb), n, f.Type)
				}
				if imp, _ := f.ImportedLibraries(); len(imp) > 0 {
					t.Errorf("%s: /usr/bin/%s links %v, want a static binary", filepath.Base(deb), n, imp)
				}
				f.Close()
				if got, want := debFiles(t, deb), debFiles(t, b.v1[n+".deb"]); !maps.Equal(got, want) {
					t.Errorf("%s: files %v\nwant the host's package's %v", filepath.Base(deb), got, want)
				}
			}
		})
	}
}

// testLicence checks the licence files of every package: LICENSE and
// NOTICE as in the repository, the copyright file naming Apache-2.0, and
// THIRD_PARTY_NOTICES covering every module `go version -m` finds linked
// into the packaged binary, with a licence text for each.
func testLicence(t *testing.T, b *built, pkgs map[string]string) {
	license, err := os.ReadFile("../LICENSE")
	if err != nil {
		t.Fatal(err)
	}
	notice, err := os.ReadFile("../NOTICE")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(license), "Apache License\n                           Version 2.0, January 2004") {
		t.Errorf("LICENSE is not the Apache License 2.0")
	}
	for _, n := range pkgNames {
		root := filepath.Join(b.tmp, "licence-"+filepath.Base(pkgs[n+".deb"]))
		run(t, "", nil, "dpkg-deb", "-x", pkgs[n+".deb"], root)
		doc := filepath.Join(root, "usr/share/doc", n)
		read := func(name string) string {
			data, err := os.ReadFile(filepath.Join(doc, name))
			if err != nil {
				t.Fatal(err)
			}
			return string(data)
		}
		if read("LICENSE") != string(license) || read("NOTICE") != string(notice) {
			t.Errorf("%s: LICENSE or NOTICE differ from the repository's", n)
		}
		if c := read("copyright"); !strings.Contains(c, "License: Apache-2.0\n") || !strings.Contains(c, "/usr/share/common-licenses/Apache-2.0") || strings.Contains(c, "not yet") {
			t.Errorf("%s: copyright does not state Apache-2.0:\n%s", n, c)
		}
		notices := read("THIRD_PARTY_NOTICES")
		if !strings.HasPrefix(notices, "Third-party software in "+n+"\n") {
			t.Errorf("%s: THIRD_PARTY_NOTICES starts %.80q", n, notices)
		}
		listed, texts, _ := strings.Cut(notices, "\n=====")
		mods := 0
		for _, line := range strings.Split(run(t, "", nil, "go", "version", "-m", filepath.Join(root, "usr/bin", n)), "\n") {
			f := strings.Fields(line)
			if len(f) < 3 || f[0] != "dep" {
				continue
			}
			mods++
			if !strings.Contains(listed, "\n  "+f[1]+" ") && !strings.Contains(listed, "\n  "+f[1]+"/") {
				t.Errorf("%s: module %s %s is linked in but not in THIRD_PARTY_NOTICES", n, f[1], f[2])
			}
		}
		if mods == 0 {
			t.Errorf("%s: go version -m lists no module", n)
		}
		for _, want := range []string{"Go standard library and runtime", "Permission is hereby granted", "Redistribution and use in source and binary forms"} {
			if !strings.Contains(texts, want) {
				t.Errorf("%s: THIRD_PARTY_NOTICES lacks %q", n, want)
			}
		}
	}
}

// debFiles lists the regular files of a .deb with their modes and owners.
func debFiles(t *testing.T, deb string) map[string]string {
	t.Helper()
	files := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(run(t, "", nil, "dpkg-deb", "-c", deb)))
	for sc.Scan() {
		// -rw-r--r-- root/root 1704 2026-11-26 13:07 ./etc/kroll/coordinator.toml
		f := strings.Fields(sc.Text())
		if len(f) < 6 || strings.HasPrefix(f[0], "d") {
			continue
		}
		files[strings.TrimPrefix(f[5], ".")] = f[0] + " " + f[1]
	}
	return files
}

func testContents(t *testing.T, b *built) {
	for _, n := range pkgNames {
		deb := b.v1[n+".deb"]
		got := debFiles(t, deb)
		want := map[string]string{}
		var conf []string
		for _, f := range b.files(n) {
			owner := "root/root"
			if strings.HasSuffix(f.path, "changelog.Debian.gz") {
				owner = "0/0" // nfpm writes the generated changelog with numeric ids
			}
			want[f.path] = f.mode.String() + " " + owner
			if f.conffile {
				conf = append(conf, f.path)
			}
		}
		for p, w := range want {
			if got[p] != w {
				t.Errorf("%s: %s: got %q, want %q", n, p, got[p], w)
			}
		}
		for p := range got {
			if _, ok := want[p]; !ok {
				t.Errorf("%s: unexpected file %s", n, p)
			}
		}
		var gotConf []string
		if len(conf) > 0 {
			gotConf = strings.Fields(run(t, "", nil, "dpkg-deb", "-I", deb, "conffiles"))
		} else if out, err := runErr("", nil, "dpkg-deb", "-I", deb, "conffiles"); err == nil {
			gotConf = strings.Fields(out)
		}
		slices.Sort(gotConf)
		slices.Sort(conf)
		if !slices.Equal(gotConf, conf) {
			t.Errorf("%s: conffiles %v, want %v", n, gotConf, conf)
		}
		ver := strings.TrimSpace(run(t, "", nil, "dpkg-deb", "-f", deb, "Version"))
		if ver != "1.0.0-1" {
			t.Errorf("%s: Version %q, want 1.0.0-1", n, ver)
		}
		scripts := run(t, "", nil, "dpkg-deb", "-I", deb)
		for _, s := range []string{"postinst", "prerm", "postrm"} {
			if has := strings.Contains(scripts, " "+s+" "); has != (n != "krollctl") {
				t.Errorf("%s: maintainer script %s present: %v\n%s", n, s, has, scripts)
			}
		}
	}
	if dep := run(t, "", nil, "dpkg-deb", "-f", b.v1["kroll-coordinator.deb"], "Depends"); !strings.Contains(dep, "systemd") {
		t.Errorf("kroll-coordinator: Depends %q lacks systemd (systemd-sysusers, systemd-tmpfiles)", dep)
	}
}

func testLintian(t *testing.T, b *built) {
	// One lintian run over the host's and the arm64 packages.
	var debs []string
	for _, n := range pkgNames {
		debs = append(debs, b.v1[n+".deb"], b.arm64[n+".deb"])
	}
	out, err := runErr("", nil, "lintian", append([]string{"--no-cfg", "--display-info", "--fail-on", "error,warning"}, debs...)...)
	t.Logf("lintian:\n%s", out)
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "E: ") || strings.HasPrefix(line, "W: ") {
			t.Errorf("lintian: %s", line)
		}
	}
	if err != nil && !t.Failed() {
		t.Errorf("lintian: %v", err)
	}
	// Every override is justified by a comment right above it.
	for _, n := range pkgNames {
		data, err := os.ReadFile(filepath.Join("lintian", n))
		if err != nil {
			t.Fatal(err)
		}
		prev := ""
		for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			if !strings.HasPrefix(line, "#") && !strings.HasPrefix(prev, "#") {
				t.Errorf("lintian/%s: override without a justifying comment: %s", n, line)
			}
			prev = line
		}
	}
}

func testRPM(t *testing.T, b *built) {
	for _, n := range pkgNames {
		rpm := b.v1[n+".rpm"]
		var want, conf []string
		modes := map[string]string{}
		for _, f := range b.files(n) {
			if f.debOnly {
				continue
			}
			want = append(want, f.path)
			modes[f.path] = f.mode.String() + " root root"
			if f.conffile {
				conf = append(conf, f.path)
			}
		}
		slices.Sort(want)
		slices.Sort(conf)
		got := strings.Fields(run(t, "", nil, "rpm", "-qpl", rpm))
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s.rpm: rpm -qpl %v, want %v (the .deb's files without the Debian-only ones)", n, got, want)
		}
		gotConf := strings.Fields(run(t, "", nil, "rpm", "-qpc", rpm))
		slices.Sort(gotConf)
		if !slices.Equal(gotConf, conf) {
			t.Errorf("%s.rpm: config files %v, want %v", n, gotConf, conf)
		}
		q := run(t, "", nil, "rpm", "-qp", "--qf", `[%{FILEMODES:perms} %{FILEUSERNAME} %{FILEGROUPNAME} %{FILENAMES}\n]`, rpm)
		for _, line := range strings.Split(strings.TrimSpace(q), "\n") {
			f := strings.Fields(line)
			if len(f) != 4 {
				t.Fatalf("%s.rpm: unexpected line %q", n, line)
			}
			if w := modes[f[3]]; strings.Join(f[:3], " ") != w {
				t.Errorf("%s.rpm: %s: %s, want %s", n, f[3], strings.Join(f[:3], " "), w)
			}
		}
		if v := run(t, "", nil, "rpm", "-qp", "--qf", "%{VERSION}-%{RELEASE}", rpm); v != "1.0.0-1" {
			t.Errorf("%s.rpm: version %q, want 1.0.0-1", n, v)
		}
		scripts := run(t, "", nil, "rpm", "-qp", "--scripts", rpm)
		if (n != "krollctl") != strings.Contains(scripts, "postinstall scriptlet") {
			t.Errorf("%s.rpm: scriptlets:\n%s", n, scripts)
		}
	}
}

var keyLine = regexp.MustCompile(`^\s*[A-Za-z0-9_."-]+\s*=`)

func testConffiles(t *testing.T, b *built) {
	root := filepath.Join(b.tmp, "conffiles")
	for _, n := range []string{"kroll-agent", "kroll-coordinator"} {
		run(t, "", nil, "dpkg-deb", "-x", b.v1[n+".deb"], root)
	}
	// Commented defaults only: every setting is commented out, so a fresh
	// installation runs on defaults (the examples' placeholders are not
	// taken for real settings).
	for _, f := range []string{"etc/kroll/agent.toml", "etc/kroll/coordinator.toml"} {
		data, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(data), "\n") {
			trimmed := strings.TrimSpace(line)
			switch {
			case trimmed == "", strings.HasPrefix(trimmed, "#"):
			case strings.HasPrefix(trimmed, "[") && strings.HasSuffix(trimmed, "]"):
			default:
				t.Errorf("%s:%d: not commented out: %q", f, i+1, line)
			}
			if keyLine.MatchString(line) {
				t.Errorf("%s:%d: a setting in the packaged defaults: %q", f, i+1, line)
			}
		}
	}
	// The agent refuses the packaged configuration with one clear line
	// naming what the operator must set (postinst does not start it).
	out, err := runErr("", nil, filepath.Join(b.bin, "kroll-agent"), "status", "--config", filepath.Join(root, "etc/kroll/agent.toml"))
	if err == nil || !strings.Contains(out, "datacenter: required") {
		t.Errorf("kroll-agent status with the packaged agent.toml: err %v, output %q; want a failure naming datacenter", err, out)
	}
	// The defaults file names every variable the unit's ExecStart uses.
	unit, err := os.ReadFile(filepath.Join(root, "usr/lib/systemd/system/kroll-coordinator.service"))
	if err != nil {
		t.Fatal(err)
	}
	def, err := os.ReadFile(filepath.Join(root, "etc/default/kroll-coordinator"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`\$\{?([A-Z_]+)\}?`).FindAllStringSubmatch(string(unit), -1) {
		if m[1] == "MAINPID" {
			continue
		}
		if !regexp.MustCompile(`(?m)^` + m[1] + `=`).Match(def) {
			t.Errorf("/etc/default/kroll-coordinator does not set %s (used by the unit)", m[1])
		}
	}
}

func testUnits(t *testing.T, b *built) {
	// A root with the packages unpacked and this system's unit files (for
	// sysinit.target & co.), so that ExecStart paths are checked as well.
	root := filepath.Join(b.tmp, "sdroot")
	for _, n := range []string{"kroll-agent", "kroll-coordinator"} {
		run(t, "", nil, "dpkg-deb", "-x", b.v1[n+".deb"], root)
	}
	sys := "/usr/lib/systemd/system"
	if _, err := os.Stat(filepath.Join(sys, "sysinit.target")); err != nil {
		sys = "/lib/systemd/system"
	}
	run(t, "", nil, "cp", "-a", "--no-clobber", sys+"/.", filepath.Join(root, "usr/lib/systemd/system"))
	kill, err := exec.LookPath("kill")
	if err != nil {
		t.Fatal(err)
	}
	run(t, "", nil, "cp", kill, filepath.Join(root, "usr/bin/kill"))
	if err := os.Symlink("usr/bin", filepath.Join(root, "bin")); err != nil {
		t.Fatal(err)
	}
	out, err := runErr("", nil, "systemd-analyze", "verify", "--root="+root, "kroll-agent.service", "kroll-coordinator.service")
	if err != nil || strings.Contains(out, "kroll") {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	for _, u := range []string{"kroll-agent.service", "kroll-coordinator.service"} {
		data, err := os.ReadFile(filepath.Join(root, "usr/lib/systemd/system", u))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"Type=notify", "Restart=on-failure", "NoNewPrivileges=yes", "WantedBy=multi-user.target"} {
			if !strings.Contains(string(data), "\n"+want+"\n") {
				t.Errorf("%s lacks %s", u, want)
			}
		}
	}
	agent, _ := os.ReadFile(filepath.Join(root, "usr/lib/systemd/system/kroll-agent.service"))
	for _, want := range []string{
		"WatchdogSec=", "Before=network-online.target",
		"CapabilityBoundingSet=CAP_BPF CAP_PERFMON CAP_SYS_ADMIN CAP_NET_ADMIN CAP_SYS_BOOT\n",
		"ExecStart=/usr/bin/kroll-agent run --config /etc/kroll/agent.toml\n",
		// The install step's dpkg writes the kernel under /usr and /boot.
		"ReadOnlyPaths=/usr /etc -/efi\nReadWritePaths=/usr/lib /usr/share\n",
	} {
		if !strings.Contains(string(agent), want) {
			t.Errorf("kroll-agent.service lacks %q", want)
		}
	}
	coord, _ := os.ReadFile(filepath.Join(root, "usr/lib/systemd/system/kroll-coordinator.service"))
	for _, want := range []string{
		"ProtectSystem=strict\n", "ReadWritePaths=/var/lib/kroll-coordinator\n", "User=kroll\n",
		"CapabilityBoundingSet=\n", "EnvironmentFile=/etc/default/kroll-coordinator\n",
	} {
		if !strings.Contains(string(coord), want) {
			t.Errorf("kroll-coordinator.service lacks %q", want)
		}
	}
}

// dpkgRoot is a throwaway dpkg root; maintainer scripts run outside it
// with DPKG_ROOT set (--force-script-chrootless), and stubs for systemctl
// and deb-systemd-invoke record any attempt to touch this system's services.
type dpkgRoot struct {
	t          *testing.T
	root, log  string
	stub, path string
}

func newDpkgRoot(t *testing.T, dir string) *dpkgRoot {
	r := &dpkgRoot{t: t, root: filepath.Join(dir, "root"), stub: filepath.Join(dir, "stub"), log: filepath.Join(dir, "dpkg.log")}
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates"} {
		if err := os.MkdirAll(filepath.Join(r.root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(r.root, "var/lib/dpkg/status"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(r.stub, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"systemctl", "deb-systemd-invoke"} {
		script := fmt.Sprintf("#!/bin/sh\necho \"%s $*\" >>%s/calls\nexit 1\n", s, r.stub)
		if err := os.WriteFile(filepath.Join(r.stub, s), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	r.path = "PATH=" + r.stub + ":" + os.Getenv("PATH")
	return r
}

func (r *dpkgRoot) dpkg(args ...string) string {
	r.t.Helper()
	base := []string{"--root=" + r.root, "--force-not-root", "--force-script-chrootless", "--force-depends", "--log=" + r.log}
	return run(r.t, "", []string{r.path}, "dpkg", append(base, args...)...)
}

func (r *dpkgRoot) status(pkg string) string {
	out, _ := runErr("", nil, "dpkg-query", "--admindir="+filepath.Join(r.root, "var/lib/dpkg"), "-W", "-f", "${Status} ${Version}", pkg)
	return strings.TrimSpace(out)
}

func (r *dpkgRoot) p(rel string) string { return filepath.Join(r.root, rel) }

// mode fails unless path exists with mode and owner uid:gid.
func (r *dpkgRoot) mode(rel string, mode os.FileMode, uid, gid int) {
	r.t.Helper()
	fi, err := os.Lstat(r.p(rel))
	if err != nil {
		r.t.Errorf("%s: %v", rel, err)
		return
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode() != mode || int(st.Uid) != uid || int(st.Gid) != gid {
		r.t.Errorf("%s: %v %d:%d, want %v %d:%d", rel, fi.Mode(), st.Uid, st.Gid, mode, uid, gid)
	}
}

func (r *dpkgRoot) exists(rel string, want bool) {
	r.t.Helper()
	_, err := os.Lstat(r.p(rel))
	if got := err == nil; got != want {
		r.t.Errorf("%s exists: %v, want %v", rel, got, want)
	}
}

func (r *dpkgRoot) link(rel, target string) {
	r.t.Helper()
	got, err := os.Readlink(r.p(rel))
	if err != nil || got != target {
		r.t.Errorf("%s -> %q (%v), want -> %q", rel, got, err, target)
	}
}

func (r *dpkgRoot) write(rel, content string, app bool) {
	r.t.Helper()
	flag := os.O_CREATE | os.O_WRONLY | os.O_TRUNC
	if app {
		flag = os.O_CREATE | os.O_WRONLY | os.O_APPEND
	}
	f, err := os.OpenFile(r.p(rel), flag, 0o600)
	if err != nil {
		r.t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(content); err != nil {
		r.t.Fatal(err)
	}
}

func (r *dpkgRoot) contains(rel, want string) {
	r.t.Helper()
	data, err := os.ReadFile(r.p(rel))
	if err != nil || !strings.Contains(string(data), want) {
		r.t.Errorf("%s does not contain %q (%v)", rel, want, err)
	}
}

// kroll returns the uid and gid of the kroll user in the root's passwd.
func (r *dpkgRoot) kroll() (uid, gid int, ok bool) {
	data, _ := os.ReadFile(r.p("etc/passwd"))
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Split(line, ":")
		if len(f) == 7 && f[0] == "kroll" {
			u, _ := strconv.Atoi(f[2])
			g, _ := strconv.Atoi(f[3])
			return u, g, f[6] == "/usr/sbin/nologin" && f[5] == "/var/lib/kroll-coordinator"
		}
	}
	return 0, 0, false
}

const (
	wants     = "etc/systemd/system/multi-user.target.wants/"
	unitDir   = "/usr/lib/systemd/system/"
	agentUnit = "kroll-agent.service"
	coordUnit = "kroll-coordinator.service"
)

func testDpkgRoot(t *testing.T, b *built) {
	if os.Geteuid() != 0 {
		// systemd-tmpfiles chowns the state dirs to root and kroll.
		msg := "installing into a throwaway root needs root (state dir ownership)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + " (CI=true)")
		}
		t.Skip(msg)
	}
	r := newDpkgRoot(t, filepath.Join(b.tmp, "dpkg"))
	debs := func(v map[string]string) []string {
		return []string{v["kroll-agent.deb"], v["kroll-coordinator.deb"], v["krollctl.deb"]}
	}

	// Installation.
	r.dpkg(append([]string{"-i"}, debs(b.v1)...)...)
	for _, n := range pkgNames {
		if s := r.status(n); s != "install ok installed 1.0.0-1" {
			t.Errorf("%s: %q after install", n, s)
		}
		for _, f := range b.files(n) {
			r.mode(f.path, f.mode, 0, 0)
		}
	}
	uid, gid, ok := r.kroll()
	if !ok {
		data, _ := os.ReadFile(r.p("etc/passwd"))
		t.Fatalf("no kroll system user (home /var/lib/kroll-coordinator, shell nologin) in the root's passwd:\n%s", data)
	}
	if uid == 0 || uid >= 1000 {
		t.Errorf("kroll uid %d is not a system uid", uid)
	}
	r.mode("var/lib/kroll-agent", os.ModeDir|0o700, 0, 0)
	r.mode("var/lib/kroll-coordinator", os.ModeDir|0o750, uid, gid)
	r.link(wants+agentUnit, unitDir+agentUnit)
	r.link(wants+coordUnit, unitDir+coordUnit)

	// The agent is mid-rollout: a journal and a local change of its
	// configuration; the coordinator has Raft data.
	r.write("var/lib/kroll-agent/journal.json", `{"phase":"draining"}`, false)
	r.write("etc/kroll/agent.toml", "datacenter = \"fra1\"\n", true)
	r.write("var/lib/kroll-coordinator/wal", "raft", false)
	r.write("etc/default/kroll-coordinator", "NODE_ID=c1\n", true)

	// Upgrade: everything kept, the administrator's changes included.
	r.dpkg(append([]string{"-i"}, debs(b.v2)...)...)
	for _, n := range pkgNames {
		if s := r.status(n); s != "install ok installed 1.0.1-1" {
			t.Errorf("%s: %q after upgrade", n, s)
		}
	}
	r.contains("var/lib/kroll-agent/journal.json", "draining")
	r.contains("etc/kroll/agent.toml", "datacenter = \"fra1\"")
	r.contains("var/lib/kroll-coordinator/wal", "raft")
	r.contains("etc/default/kroll-coordinator", "NODE_ID=c1")
	r.link(wants+agentUnit, unitDir+agentUnit)

	// Removal: binaries and units go; configuration, state and the user
	// stay; the units are masked so that their enablement cannot start a
	// missing binary.
	r.dpkg("-r", "kroll-agent", "kroll-coordinator")
	for _, n := range []string{"kroll-agent", "kroll-coordinator"} {
		if s := r.status(n); s != "deinstall ok config-files 1.0.1-1" {
			t.Errorf("%s: %q after remove", n, s)
		}
		for _, f := range b.files(n) {
			r.exists(f.path, f.conffile)
		}
	}
	r.contains("etc/kroll/agent.toml", "datacenter = \"fra1\"")
	r.contains("var/lib/kroll-agent/journal.json", "draining")
	r.contains("var/lib/kroll-coordinator/wal", "raft")
	r.link("etc/systemd/system/"+agentUnit, "/dev/null")
	r.link("etc/systemd/system/"+coordUnit, "/dev/null")

	// Reinstallation after removal: unmasked, enabled again, state intact.
	r.dpkg("-i", b.v2["kroll-agent.deb"])
	r.exists("etc/systemd/system/"+agentUnit, false)
	r.link(wants+agentUnit, unitDir+agentUnit)
	r.contains("var/lib/kroll-agent/journal.json", "draining")
	r.contains("etc/kroll/agent.toml", "datacenter = \"fra1\"")
	r.dpkg("-r", "kroll-agent")

	// Purge: configuration, state and unit links go; the user stays.
	r.dpkg("--purge", "kroll-agent", "kroll-coordinator", "krollctl")
	for _, n := range pkgNames {
		if s := r.status(n); strings.HasPrefix(s, "install") || strings.Contains(s, "config-files") {
			t.Errorf("%s: %q after purge", n, s)
		}
		for _, f := range b.files(n) {
			r.exists(f.path, false)
		}
	}
	for _, p := range []string{"etc/kroll", "var/lib/kroll-agent", "var/lib/kroll-coordinator"} {
		r.exists(p, false)
	}
	_ = filepath.WalkDir(r.p("etc/systemd"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.Contains(d.Name(), "kroll") {
			t.Errorf("left after purge: %s", p)
		}
		return nil
	})
	if _, _, ok := r.kroll(); !ok {
		t.Errorf("the kroll user is gone after purge (Debian keeps system users)")
	}

	// Nothing tried to touch this system's services.
	if calls, err := os.ReadFile(filepath.Join(r.stub, "calls")); err == nil {
		t.Errorf("maintainer scripts called systemctl/deb-systemd-invoke while DPKG_ROOT was set:\n%s", calls)
	}
}

// TestVersion checks packaging/version.sh in a scratch git repository:
// valid dpkg and rpm versions that sort in the order of the builds.
func TestVersion(t *testing.T) {
	need(t, "git", "dpkg", "rpm")
	repo := t.TempDir()
	if err := os.MkdirAll(filepath.Join(repo, "packaging"), 0o755); err != nil {
		t.Fatal(err)
	}
	script, err := os.ReadFile("version.sh")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repo, "packaging/version.sh"), script, 0o755); err != nil {
		t.Fatal(err)
	}
	env := []string{"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.net", "GIT_COMMITTER_NAME=t",
		"GIT_COMMITTER_EMAIL=t@example.net", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1"}
	git := func(args ...string) string { return strings.TrimSpace(run(t, repo, env, "git", args...)) }
	commit := func(content string) string {
		if err := os.WriteFile(filepath.Join(repo, "f"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		git("add", "f", "packaging/version.sh")
		git("commit", "-q", "-m", content)
		return git("rev-parse", "--short=7", "HEAD")
	}
	version := func() string { return strings.TrimSpace(run(t, repo, nil, "packaging/version.sh")) }

	git("init", "-q")
	sha := commit("one")
	var seq []string
	v := version()
	if !regexp.MustCompile(`^0\.0\.0~git[0-9]{14}\.` + sha + `$`).MatchString(v) {
		t.Errorf("untagged: %q", v)
	}
	seq = append(seq, v)
	if err := os.WriteFile(filepath.Join(repo, "f"), []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	if v := version(); !strings.HasSuffix(v, sha+".dirty") {
		t.Errorf("untagged, dirty: %q", v)
	}
	git("checkout", "-q", "f")
	git("tag", "v1.2.3")
	seq = append(seq, "1.2.3")
	if v := version(); v != "1.2.3" {
		t.Errorf("at v1.2.3: %q", v)
	}
	sha = commit("two")
	seq = append(seq, "1.2.3+git1."+sha)
	if v := version(); v != "1.2.3+git1."+sha {
		t.Errorf("one commit after v1.2.3: %q", v)
	}
	commit("three")
	git("tag", "v2.0.0-rc1")
	seq = append(seq, "2.0.0~rc1")
	if v := version(); v != "2.0.0~rc1" {
		t.Errorf("at v2.0.0-rc1: %q", v)
	}
	seq = append(seq, "2.0.0")

	for i, v := range seq {
		run(t, "", nil, "dpkg", "--validate-version", v+"-1")
		if i == 0 {
			continue
		}
		if _, err := runErr("", nil, "dpkg", "--compare-versions", seq[i-1]+"-1", "lt", v+"-1"); err != nil {
			t.Errorf("dpkg: %s does not sort before %s", seq[i-1], v)
		}
		cmp := strings.TrimSpace(run(t, "", nil, "rpm", "--eval", fmt.Sprintf(`%%{lua: print(rpm.vercmp(%q, %q))}`, seq[i-1], v)))
		if cmp != "-1" {
			t.Errorf("rpm: vercmp(%s, %s) = %s, want -1", seq[i-1], v, cmp)
		}
	}
}

// TestMaintainerScriptsLive runs the postinst and prerm scripts as on a
// running systemd system, with every tool they may call replaced by a stub
// that only records the call: a private mount namespace gets a tmpfs /run
// with /run/systemd/system (and a tmpfs /etc/default for the coordinator's
// settings), and PATH holds the stubs and a few plain tools only. Nothing
// of this system is touched. It checks the restart policy: enable on
// installation, start only when configured, never restart a mid-rollout
// agent on upgrade, leave running services alone in prerm on upgrade.
func TestMaintainerScriptsLive(t *testing.T) {
	need(t, "unshare", "mount", "sed")
	if os.Geteuid() != 0 {
		msg := "needs root for a private mount namespace (unshare --mount)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + " (CI=true)")
		}
		t.Skip(msg)
	}
	dir := t.TempDir()
	stubs := filepath.Join(dir, "stubs")
	if err := os.MkdirAll(stubs, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tool := range []string{"sed", "mkdir", "chmod", "rm", "rmdir", "cat"} {
		p, err := exec.LookPath(tool)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(p, filepath.Join(stubs, tool)); err != nil {
			t.Fatal(err)
		}
	}
	record := "#!/bin/sh\necho \"${0##*/} $*\" >>\"$CALLS\"\n"
	for _, s := range []string{"systemctl", "deb-systemd-invoke", "deb-systemd-helper", "systemd-tmpfiles", "systemd-sysusers"} {
		if err := os.WriteFile(filepath.Join(stubs, s), []byte(record+"exit 0\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	agent := record + `[ "$STUB_CONFIG_OK" = 1 ] || { echo "kroll-agent: config: datacenter: required" >&2; exit 1; }
case " $* " in
*" --json "*) printf '{"schema":1,"seq":3,"phase":"%s"}\n' "$STUB_PHASE" ;;
*) echo "phase: $STUB_PHASE" ;;
esac
`
	if err := os.WriteFile(filepath.Join(stubs, "kroll-agent"), []byte(agent), 0o755); err != nil {
		t.Fatal(err)
	}
	driver := filepath.Join(dir, "driver.sh")
	if err := os.WriteFile(driver, []byte(`set -e
mount -t tmpfs kroll-test /run
mkdir -p /run/systemd/system
mount -t tmpfs kroll-test /etc/default
printf '%s\n' "$STUB_DEFAULTS" >/etc/default/kroll-coordinator
script=$1
shift
PATH=$STUB_PATH exec /bin/sh "$script" "$@"
`), 0o644); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		name, script string
		args         []string
		env          []string
		want, not    []string
		stderr       string
	}{
		{name: "agent fresh install, not configured", script: "deb/agent.postinst", args: []string{"configure", ""},
			want: []string{"systemd-tmpfiles --create kroll-agent.conf", "deb-systemd-helper enable kroll-agent.service", "systemctl --system daemon-reload"},
			not:  []string{"deb-systemd-invoke"}, stderr: "not started"},
		{name: "agent fresh install, configured", script: "deb/agent.postinst", args: []string{"configure", ""},
			env: []string{"STUB_CONFIG_OK=1", "STUB_PHASE=idle"}, want: []string{"deb-systemd-invoke restart kroll-agent.service"}},
		{name: "agent upgrade, idle", script: "deb/agent.postinst", args: []string{"configure", "1.0.0-1"},
			env: []string{"STUB_CONFIG_OK=1", "STUB_PHASE=idle"}, want: []string{"deb-systemd-invoke restart kroll-agent.service"}},
		{name: "agent upgrade, healthy", script: "deb/agent.postinst", args: []string{"configure", "1.0.0-1"},
			env: []string{"STUB_CONFIG_OK=1", "STUB_PHASE=healthy"}, want: []string{"deb-systemd-invoke restart kroll-agent.service"}},
		{name: "agent upgrade, draining", script: "deb/agent.postinst", args: []string{"configure", "1.0.0-1"},
			env: []string{"STUB_CONFIG_OK=1", "STUB_PHASE=draining"}, want: []string{"deb-systemd-invoke start kroll-agent.service"},
			not: []string{"restart"}, stderr: "not restarted"},
		{name: "agent upgrade, rebooting", script: "deb/agent.postinst", args: []string{"configure", "1.0.0-1"},
			env: []string{"STUB_CONFIG_OK=1", "STUB_PHASE=rebooting"}, want: []string{"deb-systemd-invoke start kroll-agent.service"},
			not: []string{"restart"}, stderr: "not restarted"},
		{name: "agent upgrade, configuration broken", script: "deb/agent.postinst", args: []string{"configure", "1.0.0-1"},
			not: []string{"deb-systemd-invoke"}, stderr: "not started"},
		{name: "agent prerm upgrade", script: "deb/agent.prerm", args: []string{"upgrade", "1.0.1-1"},
			not: []string{"deb-systemd-invoke", "systemctl"}},
		{name: "agent prerm remove", script: "deb/agent.prerm", args: []string{"remove"},
			want: []string{"deb-systemd-invoke stop kroll-agent.service"}},
		{name: "coordinator fresh install, not configured", script: "deb/coordinator.postinst", args: []string{"configure", ""},
			env:  []string{"STUB_DEFAULTS=NODE_ID="},
			want: []string{"systemd-sysusers kroll.conf", "systemd-tmpfiles --create kroll-coordinator.conf", "deb-systemd-helper enable kroll-coordinator.service"},
			not:  []string{"deb-systemd-invoke"}, stderr: "not started"},
		{name: "coordinator fresh install, configured", script: "deb/coordinator.postinst", args: []string{"configure", ""},
			env: []string{"STUB_DEFAULTS=NODE_ID=c1"}, want: []string{"deb-systemd-invoke start kroll-coordinator.service"}, not: []string{"restart"}},
		{name: "coordinator upgrade", script: "deb/coordinator.postinst", args: []string{"configure", "1.0.0-1"},
			env: []string{"STUB_DEFAULTS=NODE_ID=c1"}, want: []string{"deb-systemd-invoke restart kroll-coordinator.service"}},
		{name: "coordinator upgrade, RESTART_ON_UPGRADE=no", script: "deb/coordinator.postinst", args: []string{"configure", "1.0.0-1"},
			env: []string{"STUB_DEFAULTS=NODE_ID=c1\nRESTART_ON_UPGRADE=no"}, want: []string{"deb-systemd-invoke start kroll-coordinator.service"},
			not: []string{"restart"}, stderr: "not restarted"},
		{name: "coordinator prerm upgrade", script: "deb/coordinator.prerm", args: []string{"upgrade", "1.0.1-1"},
			not: []string{"deb-systemd-invoke", "systemctl"}},
		// The RPM scriptlets: the same policy with systemctl.
		{name: "rpm agent install, not configured", script: "rpm/agent.post", args: []string{"1"},
			want: []string{"systemctl --no-reload enable kroll-agent.service", "systemctl daemon-reload"},
			not:  []string{"start", "restart"}, stderr: "not started"},
		{name: "rpm agent upgrade, idle", script: "rpm/agent.post", args: []string{"2"},
			env: []string{"STUB_CONFIG_OK=1", "STUB_PHASE=idle"}, want: []string{"systemctl restart kroll-agent.service"},
			not: []string{"--no-reload enable"}},
		{name: "rpm agent upgrade, draining", script: "rpm/agent.post", args: []string{"2"},
			env: []string{"STUB_CONFIG_OK=1", "STUB_PHASE=draining"}, want: []string{"systemctl start kroll-agent.service"},
			not: []string{"restart"}, stderr: "not restarted"},
		{name: "rpm agent preun upgrade", script: "rpm/agent.preun", args: []string{"1"}, not: []string{"systemctl"}},
		{name: "rpm agent preun erase", script: "rpm/agent.preun", args: []string{"0"},
			want: []string{"systemctl --no-reload disable --now kroll-agent.service"}},
		{name: "rpm coordinator install, not configured", script: "rpm/coordinator.post", args: []string{"1"},
			env:  []string{"STUB_DEFAULTS=NODE_ID="},
			want: []string{"systemd-sysusers kroll.conf", "systemctl --no-reload enable kroll-coordinator.service"},
			not:  []string{"start", "restart"}, stderr: "not started"},
		{name: "rpm coordinator upgrade", script: "rpm/coordinator.post", args: []string{"2"},
			env: []string{"STUB_DEFAULTS=NODE_ID=c1"}, want: []string{"systemctl restart kroll-coordinator.service"}},
		{name: "rpm coordinator upgrade, RESTART_ON_UPGRADE=no", script: "rpm/coordinator.post", args: []string{"2"},
			env: []string{"STUB_DEFAULTS=NODE_ID=c1\nRESTART_ON_UPGRADE=no"}, want: []string{"systemctl start kroll-coordinator.service"},
			not: []string{"restart"}},
		{name: "rpm coordinator preun upgrade", script: "rpm/coordinator.preun", args: []string{"1"}, not: []string{"systemctl"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			calls := filepath.Join(t.TempDir(), "calls")
			script, err := filepath.Abs(c.script)
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command("unshare", append([]string{"--mount", "--propagation", "private", "/bin/sh", driver, script}, c.args...)...)
			// A clean environment: no DPKG_ROOT, nothing of the caller's.
			cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "STUB_PATH=" + stubs, "CALLS=" + calls}, c.env...)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("%s %v: %v\n%s", c.script, c.args, err, stderr.String())
			}
			data, _ := os.ReadFile(calls)
			got := string(data)
			for _, w := range c.want {
				if !strings.Contains(got, w+"\n") {
					t.Errorf("no call %q; calls:\n%s", w, got)
				}
			}
			for _, n := range c.not {
				if strings.Contains(got, n) {
					t.Errorf("unexpected call with %q; calls:\n%s", n, got)
				}
			}
			if !strings.Contains(stderr.String(), c.stderr) {
				t.Errorf("stderr %q lacks %q", stderr.String(), c.stderr)
			}
		})
	}
}
