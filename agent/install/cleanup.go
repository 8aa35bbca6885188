package install

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Keep names the kernels cleanup must keep.
type Keep struct {
	// Running is the running kernel's release.
	Running string
	// Previous is the kernel that ran before it (the rollback target of
	// the last upgrade); "" takes it from the install records.
	Previous string
	// Target is the kernel just installed.
	Target string
}

// Cleanup removes the kernels other than keep's: packages named
// linux-image-<release> of an installed kernel with dpkg --purge, and the
// files and module trees of bundles the agent installed. It returns what
// it removed; an error lists what could not be removed (or why nothing
// was). Without a known previous kernel it removes nothing.
func (in *Installer) Cleanup(ctx context.Context, keep Keep) ([]string, error) {
	if keep.Running == "" || keep.Target == "" {
		return nil, errors.New("cleanup: the running and the target kernel must be known")
	}
	st, err := in.loadState()
	if err != nil {
		return nil, fmt.Errorf("cleanup: %w", err)
	}
	if keep.Previous == "" {
		if r := st.Kernels[keep.Running]; r != nil {
			keep.Previous = r.RunningAtInstall
		}
	}
	if keep.Previous == "" {
		return nil, fmt.Errorf("cleanup: the kernel before %s is unknown (it was not installed by kroll): no kernel removed", keep.Running)
	}
	kept := []string{keep.Running, keep.Previous, keep.Target}
	var removed []string
	var errs []error

	if in.found("dpkg-query") {
		pkgs, err := in.kernelPackages(ctx)
		if err != nil {
			errs = append(errs, err)
		}
		for _, p := range pkgs {
			if slices.Contains(kept, p.release) {
				continue
			}
			in.log.Info("removing an old kernel package", "package", p.name, "kept", kept)
			if _, err := in.run(ctx, dpkgEnv, "dpkg", in.dpkgArgs("--purge", p.name)...); err != nil {
				errs = append(errs, err)
				continue
			}
			removed = append(removed, p.name)
			delete(st.Kernels, p.release)
		}
	}
	for rel, r := range st.Kernels {
		if slices.Contains(kept, rel) || r.Method != methodBundle {
			continue
		}
		in.log.Info("removing an old kernel kroll installed", "release", rel, "kept", kept)
		var failed bool
		for _, f := range append(slices.Clone(r.Files), r.Modules) {
			if f == "" {
				continue
			}
			if err := os.RemoveAll(filepath.Join(in.cfg.Root, f)); err != nil {
				errs = append(errs, err)
				failed = true
			}
		}
		if !failed {
			removed = append(removed, rel)
			delete(st.Kernels, rel)
		}
	}
	if err := in.saveState(st); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return removed, fmt.Errorf("cleanup: %w", err)
	}
	return removed, nil
}

// kernelPackage is an installed linux-image-<release> package.
type kernelPackage struct{ name, release string }

// kernelPackages lists the packages named linux-image-<release> (no
// meta-packages, -dbg or -unsigned variants: the release must be a kernel
// whose image or module tree is on the host) that dpkg has installed or
// left configuration files of.
func (in *Installer) kernelPackages(ctx context.Context) ([]kernelPackage, error) {
	args := in.dpkgArgs("-W", "-f", "${Package}\t${db:Status-Status}\n", "linux-image-*")
	out, err := in.cfg.Runner.Run(ctx, nil, "dpkg-query", args...)
	if err != nil {
		if strings.Contains(string(out), "no packages found matching") {
			return nil, nil
		}
		return nil, cmdError("dpkg-query", args, out, err)
	}
	var pkgs []kernelPackage
	for line := range strings.Lines(string(out)) {
		name, status, ok := strings.Cut(strings.TrimSpace(line), "\t")
		if !ok || status == "not-installed" {
			continue
		}
		rel, _ := strings.CutPrefix(name, "linux-image-")
		if checkRelease(rel) != nil {
			continue // linux-image-amd64 and other meta-packages
		}
		_, errImg := os.Stat(in.vmlinuz(rel))
		_, errMod := os.Stat(filepath.Join(in.ModulesDir(), rel))
		if errImg != nil && errMod != nil && status == "installed" {
			continue // not a kernel image package (-dbg, -unsigned, …)
		}
		pkgs = append(pkgs, kernelPackage{name: name, release: rel})
	}
	return pkgs, nil
}
