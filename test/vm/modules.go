package vm

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/ulikunitz/xz"
)

// module is one kernel module file of a kernel package.
type module struct {
	name string // canonical name: file name without .ko[.xz], '-' → '_'
	path string
}

// moduleName returns the canonical module name for a file or module name.
func moduleName(s string) string {
	s = filepath.Base(s)
	s = strings.TrimSuffix(s, ".xz")
	s = strings.TrimSuffix(s, ".zst")
	s = strings.TrimSuffix(s, ".ko")
	return strings.ReplaceAll(s, "-", "_")
}

// moduleIndex maps canonical module names to their files.
func moduleIndex(modulesDir string) (map[string]module, error) {
	idx := make(map[string]module)
	err := filepath.WalkDir(filepath.Join(modulesDir, "kernel"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		if n := d.Name(); strings.HasSuffix(n, ".ko") || strings.HasSuffix(n, ".ko.xz") {
			m := module{name: moduleName(n), path: p}
			idx[m.name] = m
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("vm: index modules of %s: %w", modulesDir, err)
	}
	return idx, nil
}

// readModule returns the ELF object of a module file, decompressing .ko.xz.
func readModule(path string) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if !strings.HasSuffix(path, ".xz") {
		return raw, nil
	}
	r, err := xz.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("vm: %s: %w", path, err)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("vm: %s: %w", path, err)
	}
	return out, nil
}

// moduleDepends reads the depends= entry of a module's .modinfo section.
func moduleDepends(obj []byte) ([]string, error) {
	f, err := elf.NewFile(bytes.NewReader(obj))
	if err != nil {
		return nil, err
	}
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, fmt.Errorf("no .modinfo section")
	}
	data, err := sec.Data()
	if err != nil {
		return nil, err
	}
	for _, kv := range bytes.Split(data, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("depends=")); ok {
			var deps []string
			for _, d := range strings.Split(string(v), ",") {
				if d != "" {
					deps = append(deps, moduleName(d))
				}
			}
			return deps, nil
		}
	}
	return nil, nil
}

// loadedModule is a module resolved for the initramfs, in load order.
type loadedModule struct {
	name string
	obj  []byte // uncompressed ELF
}

// resolveModules returns the named modules and everything they depend on,
// dependencies first. Names may use '-' or '_'.
func resolveModules(modulesDir string, names []string) ([]loadedModule, error) {
	if len(names) == 0 {
		return nil, nil
	}
	idx, err := moduleIndex(modulesDir)
	if err != nil {
		return nil, err
	}
	builtin, err := builtinModules(modulesDir)
	if err != nil {
		return nil, err
	}
	var order []loadedModule
	state := map[string]int{} // 1 = visiting, 2 = done
	var visit func(name, from string) error
	visit = func(name, from string) error {
		switch state[name] {
		case 1:
			return fmt.Errorf("vm: module dependency cycle at %s", name)
		case 2:
			return nil
		}
		if builtin[name] {
			return nil
		}
		m, ok := idx[name]
		if !ok {
			if from != "" {
				return fmt.Errorf("vm: module %s (needed by %s) not in %s", name, from, modulesDir)
			}
			return fmt.Errorf("vm: module %s not in %s (built into the kernel, or misspelled?)", name, modulesDir)
		}
		state[name] = 1
		obj, err := readModule(m.path)
		if err != nil {
			return err
		}
		deps, err := moduleDepends(obj)
		if err != nil {
			return fmt.Errorf("vm: module %s: %w", name, err)
		}
		for _, d := range deps {
			if err := visit(d, name); err != nil {
				return err
			}
		}
		state[name] = 2
		order = append(order, loadedModule{name: name, obj: obj})
		return nil
	}
	for _, n := range names {
		if err := visit(moduleName(n), ""); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// builtinModules reads modules.builtin: modules compiled into the kernel
// need no loading.
func builtinModules(modulesDir string) (map[string]bool, error) {
	data, err := os.ReadFile(filepath.Join(modulesDir, "modules.builtin"))
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("vm: %w", err)
	}
	set := make(map[string]bool)
	for _, l := range strings.Fields(string(data)) {
		set[moduleName(l)] = true
	}
	return set, nil
}
