package install

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"

	"github.com/kroll-dev/kroll/pkg/release"
)

// dpkgEnv keeps dpkg and the maintainer scripts from prompting.
var dpkgEnv = []string{"DEBIAN_FRONTEND=noninteractive", "DEBCONF_NONINTERACTIVE_SEEN=true"}

// dpkgArgs prefixes args with --root when the installer does not work on
// the host's root.
func (in *Installer) dpkgArgs(args ...string) []string {
	if in.hostRoot() {
		return args
	}
	return append([]string{"--root=" + in.cfg.Root}, args...)
}

// run runs a command and wraps a failure with the command line and its
// output.
// On success it returns the command's standard output.
func (in *Installer) run(ctx context.Context, env []string, name string, args ...string) ([]byte, error) {
	out, err := in.cfg.Runner.Run(ctx, env, name, args...)
	if err != nil {
		return out.Stdout, cmdError(name, args, out.Combined, err)
	}
	return out.Stdout, nil
}

// pkgState is a package's state in the dpkg database.
type pkgState struct {
	status  string // db:Status-Status; "not-installed" when unknown
	version string
}

// configurable lists the states that `dpkg --configure` completes.
func (p pkgState) configurable() bool {
	switch p.status {
	case "unpacked", "half-configured", "triggers-awaited", "triggers-pending":
		return true
	}
	return false
}

func (in *Installer) pkgState(ctx context.Context, pkg string) (pkgState, error) {
	args := in.dpkgArgs("-W", "-f", "${db:Status-Status}\t${Version}\n", pkg)
	res, err := in.cfg.Runner.Run(ctx, nil, "dpkg-query", args...)
	if err != nil {
		var ee *exec.ExitError
		if bytes.Contains(res.Combined, []byte("no packages found matching")) || (errors.As(err, &ee) && ee.ExitCode() == 1 && len(bytes.TrimSpace(res.Combined)) == 0) {
			return pkgState{status: "not-installed"}, nil
		}
		return pkgState{}, cmdError("dpkg-query", args, res.Combined, err)
	}
	out := res.Stdout
	// A package dpkg knows but never installed (a first install that
	// failed while unpacking) is "not-installed" with an empty version:
	// only the line end is trimmed, so its tab separator stays.
	status, version, ok := strings.Cut(strings.TrimRight(string(out), "\n"), "\t")
	status = strings.TrimSpace(status)
	if !ok || status == "" || strings.Contains(version, "\n") {
		return pkgState{}, fmt.Errorf("dpkg-query %s: unexpected output %q", pkg, out)
	}
	return pkgState{status: status, version: version}, nil
}

// debFields reads control fields of a .deb with dpkg-deb.
func (in *Installer) debFields(ctx context.Context, path string, names ...string) (map[string]string, error) {
	out, err := in.run(ctx, nil, "dpkg-deb", append([]string{"--field", path}, names...)...)
	if err != nil {
		return nil, err
	}
	fields := map[string]string{}
	last := ""
	for line := range strings.Lines(string(out)) {
		line = strings.TrimRight(line, "\n")
		if strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t") {
			if last != "" {
				fields[last] += " " + strings.TrimSpace(line)
			}
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		last = k
		fields[k] = strings.TrimSpace(v)
	}
	return fields, nil
}

// debSizes sums the sizes of the files a .deb puts under /boot and under
// /lib/modules (or /usr/lib/modules), from dpkg-deb's listing.
func (in *Installer) debSizes(ctx context.Context, path string) (spaceNeed, error) {
	out, err := in.run(ctx, nil, "dpkg-deb", "--contents", path)
	if err != nil {
		return spaceNeed{}, err
	}
	need := spaceNeed{bootWhat: "the package's /boot files", modulesWhat: "its modules"}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 6 || !strings.HasPrefix(f[0], "-") {
			continue
		}
		size, err := strconv.ParseUint(f[2], 10, 63)
		if err != nil {
			return spaceNeed{}, fmt.Errorf("dpkg-deb --contents %s: size %q: %w", path, f[2], err)
		}
		name := strings.TrimPrefix(f[5], ".")
		switch {
		case strings.HasPrefix(name, "/boot/"):
			need.boot += size + blockRound
		case strings.HasPrefix(name, "/lib/modules/"), strings.HasPrefix(name, "/usr/lib/modules/"):
			need.modules += size + blockRound
		}
	}
	if err := sc.Err(); err != nil {
		return spaceNeed{}, fmt.Errorf("dpkg-deb --contents %s: %w", path, err)
	}
	return need, nil
}

// installDeb installs the release's linux-image .deb with dpkg.
func (in *Installer) installDeb(ctx context.Context, req Request) (*Result, error) {
	rel := req.Manifest.KernelVersion
	art, err := oneArtifact(req.Manifest, ".deb")
	if err != nil {
		return nil, err
	}
	path, err := verifiedArtifact(req.Dir, art)
	if err != nil {
		return nil, err
	}
	f, err := in.debFields(ctx, path, "Package", "Version", "Depends", "Pre-Depends")
	if err != nil {
		return nil, err
	}
	pkg, ver := f["Package"], f["Version"]
	if !strings.HasPrefix(pkg, "linux-image-") || !strings.HasSuffix(pkg, "-"+rel) || ver == "" {
		return nil, fmt.Errorf("%s is package %q version %q, not a linux-image package of kernel %s", art.Name, pkg, ver, rel)
	}
	res := &Result{KernelRelease: rel, Vmlinuz: in.vmlinuz(rel), Initrd: in.initrd(rel), Method: methodDpkg}
	rec := Record{Release: rel, Method: methodDpkg, Package: pkg, Version: ver, RunningAtInstall: req.Running}
	cur, err := in.pkgState(ctx, pkg)
	if err != nil {
		return nil, err
	}
	switch {
	case cur.status == "installed" && cur.version == ver:
		in.log.Info("kernel package already installed", "package", pkg, "version", ver)
	case cur.version == ver && cur.configurable():
		// An earlier run was interrupted after unpacking: finish it.
		in.log.Info("completing an interrupted install", "package", pkg, "version", ver, "state", cur.status)
		if err := in.putRecord(rec); err != nil {
			return nil, err
		}
		if _, err := in.run(ctx, dpkgEnv, "dpkg", in.dpkgArgs("--force-confdef", "--force-confold", "--configure", pkg)...); err != nil {
			return nil, err
		}
	default:
		need, err := in.debSizes(ctx, path)
		if err != nil {
			return nil, err
		}
		// The package's hooks generate the initramfs on /boot.
		need.boot += in.initrdEstimate()
		need.bootWhat += " and the initramfs to generate"
		if err := in.ensureSpace(ctx, need, req); err != nil {
			return nil, err
		}
		if err := in.checkDepends(ctx, pkg, f["Pre-Depends"], f["Depends"]); err != nil {
			return nil, err
		}
		if err := in.putRecord(rec); err != nil {
			return nil, err
		}
		in.log.Info("installing kernel package", "package", pkg, "version", ver, "file", path)
		if _, err := in.run(ctx, dpkgEnv, "dpkg", in.dpkgArgs("--force-confdef", "--force-confold", "--install", path)...); err != nil {
			return nil, err
		}
	}
	after, err := in.pkgState(ctx, pkg)
	if err != nil {
		return nil, err
	}
	if after.status != "installed" || after.version != ver {
		return nil, fmt.Errorf("after dpkg, %s is %s version %q, want installed version %q", pkg, after.status, after.version, ver)
	}
	if err := fileReady(res.Initrd); err != nil {
		return nil, fmt.Errorf("%s is installed but its initramfs is missing (%w): is initramfs-tools or dracut installed?", pkg, err)
	}
	// An installed package (this or an earlier run) says nothing about
	// the file on /boot now: it must be the verified package's image,
	// which the stager unpacked from it.
	if req.Vmlinuz == "" {
		return nil, fmt.Errorf("no staged kernel image of %s to check %s against", art.Name, res.Vmlinuz)
	}
	want, err := fileSHA256(req.Vmlinuz)
	if err != nil {
		return nil, fmt.Errorf("staged kernel image: %w: %w", ErrStagedChanged, err)
	}
	if have, err := fileSHA256(res.Vmlinuz); err != nil || have != want {
		return nil, fmt.Errorf("%s is not the kernel image of the verified package %s (sha256 %s, the package's %s, %v): it changed after dpkg installed it; reinstall the package (dpkg --install of the release's .deb) or move the file away", res.Vmlinuz, art.Name, have, want, err)
	}
	rec.Complete = true
	if err := in.putRecord(rec); err != nil {
		return nil, err
	}
	return res, nil
}

// oneArtifact returns the single artifact whose name ends in suffix.
func oneArtifact(m release.Manifest, suffix string) (release.Artifact, error) {
	var found []release.Artifact
	for _, a := range m.Artifacts {
		if strings.HasSuffix(a.Name, suffix) {
			found = append(found, a)
		}
	}
	if len(found) != 1 {
		return release.Artifact{}, fmt.Errorf("release %s: want exactly one %s artifact, found %d", m.ID, suffix, len(found))
	}
	return found[0], nil
}

// installedPkg is one package of the dpkg database.
type installedPkg struct {
	version string
}

// checkDepends checks that every Pre-Depends and Depends group of pkg is
// satisfied by an installed package (or one that provides it), so dpkg
// does not leave the kernel unpacked but unconfigured. It reports every
// unsatisfied group; it never installs anything.
func (in *Installer) checkDepends(ctx context.Context, pkg string, fields ...string) error {
	var groups []string
	for _, f := range fields {
		for g := range strings.SplitSeq(f, ",") {
			if g = strings.TrimSpace(g); g != "" {
				groups = append(groups, g)
			}
		}
	}
	if len(groups) == 0 {
		return nil
	}
	out, err := in.run(ctx, nil, "dpkg-query", in.dpkgArgs("-W", "-f", "${Package}\t${Version}\t${db:Status-Status}\t${Provides}\n")...)
	if err != nil {
		return err
	}
	installed := map[string][]installedPkg{}
	provided := map[string][]installedPkg{} // virtual name → provided versions ("" = unversioned)
	for line := range strings.Lines(string(out)) {
		f := strings.Split(strings.TrimRight(line, "\n"), "\t")
		if len(f) != 4 {
			continue
		}
		switch f[2] {
		case "installed", "triggers-awaited", "triggers-pending":
		default:
			continue
		}
		installed[f[0]] = append(installed[f[0]], installedPkg{version: f[1]})
		for p := range strings.SplitSeq(f[3], ",") {
			name, _, ver := parseRelation(p)
			if name != "" {
				provided[name] = append(provided[name], installedPkg{version: ver})
			}
		}
	}
	var missing []string
	for _, g := range groups {
		ok := false
		for alt := range strings.SplitSeq(g, "|") {
			name, op, ver := parseRelation(alt)
			if name == "" {
				continue
			}
			for _, p := range installed[name] {
				if op == "" || in.versionSatisfies(ctx, p.version, op, ver) {
					ok = true
				}
			}
			for _, p := range provided[name] {
				if op == "" || (p.version != "" && in.versionSatisfies(ctx, p.version, op, ver)) {
					ok = true
				}
			}
			if ok {
				break
			}
		}
		if !ok {
			missing = append(missing, g)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s depends on %s, not installed on this host (install them first; the agent never runs apt)", pkg, strings.Join(missing, ", "))
	}
	return nil
}

// parseRelation splits "name:arch (op version) [arches]" into its name,
// operator and version.
func parseRelation(s string) (name, op, version string) {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '['); i >= 0 {
		s = strings.TrimSpace(s[:i])
	}
	if i := strings.IndexByte(s, '<'); i >= 0 && !strings.Contains(s, "(") {
		s = strings.TrimSpace(s[:i]) // build profiles
	}
	rest := ""
	if i := strings.IndexByte(s, '('); i >= 0 {
		s, rest = strings.TrimSpace(s[:i]), strings.TrimSpace(s[i+1:])
		rest = strings.TrimSuffix(rest, ")")
	}
	name, _, _ = strings.Cut(s, ":")
	if rest != "" {
		i := strings.IndexFunc(rest, func(r rune) bool { return !strings.ContainsRune("<>=", r) })
		if i > 0 {
			op, version = rest[:i], strings.TrimSpace(rest[i:])
		}
	}
	switch op {
	case "<":
		op = "<="
	case ">":
		op = ">="
	}
	return name, op, version
}

// versionSatisfies asks dpkg whether version op want holds.
func (in *Installer) versionSatisfies(ctx context.Context, version, op, want string) bool {
	_, err := in.cfg.Runner.Run(ctx, nil, "dpkg", "--compare-versions", version, op, want)
	return err == nil
}
