package bpf

import (
	"debug/elf"
	"encoding/binary"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
)

// archObjects pairs the committed amd64 and arm64 objects in dir by base
// name and fails unless there are want pairs.
func archObjects(t *testing.T, dir string, want int) map[string][2]string {
	t.Helper()
	x86, err := filepath.Glob(filepath.Join(dir, "*_x86_bpfel.o"))
	if err != nil {
		t.Fatal(err)
	}
	arm, err := filepath.Glob(filepath.Join(dir, "*_arm64_bpfel.o"))
	if err != nil {
		t.Fatal(err)
	}
	objs := map[string][2]string{}
	for _, p := range x86 {
		objs[strings.TrimSuffix(filepath.Base(p), "_x86_bpfel.o")] = [2]string{p, ""}
	}
	for _, p := range arm {
		base := strings.TrimSuffix(filepath.Base(p), "_arm64_bpfel.o")
		o, ok := objs[base]
		if !ok {
			t.Errorf("%s has no amd64 counterpart", p)
			continue
		}
		o[1] = p
		objs[base] = o
	}
	for base, o := range objs {
		if o[1] == "" {
			t.Errorf("%s has no arm64 object (bpf2go -target amd64,arm64 in gen.go, then make generate)", o[0])
			delete(objs, base)
		}
	}
	if len(objs) != want {
		t.Fatalf("found %d object pairs %v, want %d", len(objs), objs, want)
	}
	return objs
}

// TestArm64Objects checks that every arm64 object is a little-endian
// EM_BPF ELF with the same programs (names, types, attach points,
// licenses) and maps as its amd64 twin, that all programs are LSM
// programs (arch-neutral: BPF_PROG reads the trampoline's u64 arguments,
// no pt_regs), and that the generated Go bindings differ only in their
// build constraint and object name.
func TestArm64Objects(t *testing.T) {
	all := archObjects(t, ".", len(Kinds)+1) // one per kind, and the probe
	// The VM harness's own fixture (bpf2go in its gen.go too).
	for base, o := range archObjects(t, "../test/vm/guests/lsmdeny", 1) {
		all["lsmdeny/"+base] = o
	}
	for base, o := range all {
		t.Run(base, func(t *testing.T) {
			var specs [2]*ebpf.CollectionSpec
			for i, p := range o {
				f, err := elf.Open(p)
				if err != nil {
					t.Fatal(err)
				}
				if f.Machine != elf.EM_BPF || f.Data != elf.ELFDATA2LSB || f.Class != elf.ELFCLASS64 {
					t.Errorf("%s: machine %v, %v, %v; want EM_BPF, little-endian, 64-bit", p, f.Machine, f.Data, f.Class)
				}
				f.Close()
				specs[i], err = ebpf.LoadCollectionSpec(p)
				if err != nil {
					t.Fatalf("%s: %v", p, err)
				}
				if specs[i].ByteOrder != binary.LittleEndian {
					t.Errorf("%s: byte order %v", p, specs[i].ByteOrder)
				}
			}
			x86, arm := specs[0], specs[1]
			if got, want := slices.Sorted(maps.Keys(arm.Programs)), slices.Sorted(maps.Keys(x86.Programs)); !slices.Equal(got, want) || len(want) == 0 {
				t.Fatalf("programs: arm64 %q, amd64 %q", got, want)
			}
			for name, xp := range x86.Programs {
				ap := arm.Programs[name]
				if xp.Type != ebpf.LSM || xp.AttachType != ebpf.AttachLSMMac {
					t.Errorf("program %s: type %v/%v; only LSM programs are known to be arch-neutral here", name, xp.Type, xp.AttachType)
				}
				if ap.Type != xp.Type || ap.AttachType != xp.AttachType || ap.AttachTo != xp.AttachTo ||
					ap.SectionName != xp.SectionName || ap.License != xp.License {
					t.Errorf("program %s: arm64 %v %v %q %q %q, amd64 %v %v %q %q %q", name,
						ap.Type, ap.AttachType, ap.AttachTo, ap.SectionName, ap.License,
						xp.Type, xp.AttachType, xp.AttachTo, xp.SectionName, xp.License)
				}
				if len(ap.Instructions) != len(xp.Instructions) {
					t.Errorf("program %s: %d instructions on arm64, %d on amd64", name, len(ap.Instructions), len(xp.Instructions))
				}
			}
			if got, want := slices.Sorted(maps.Keys(arm.Maps)), slices.Sorted(maps.Keys(x86.Maps)); !slices.Equal(got, want) || len(want) == 0 {
				t.Fatalf("maps: arm64 %q, amd64 %q", got, want)
			}
			for name, xm := range x86.Maps {
				am := arm.Maps[name]
				if am.Type != xm.Type || am.KeySize != xm.KeySize || am.ValueSize != xm.ValueSize ||
					am.MaxEntries != xm.MaxEntries || am.Flags != xm.Flags || am.Pinning != xm.Pinning {
					t.Errorf("map %s: arm64 %+v, amd64 %+v", name, am, xm)
				}
			}
			// The Go bindings: same types, names and sizes.
			gx, err := os.ReadFile(strings.TrimSuffix(o[0], ".o") + ".go")
			if err != nil {
				t.Fatal(err)
			}
			ga, err := os.ReadFile(strings.TrimSuffix(o[1], ".o") + ".go")
			if err != nil {
				t.Fatal(err)
			}
			norm := func(b []byte, tag, obj string) string {
				s := strings.Replace(string(b), tag, "//go:build TARGET && linux", 1)
				return strings.ReplaceAll(s, obj, "OBJECT")
			}
			if norm(gx, "//go:build (386 || amd64) && linux", filepath.Base(o[0])) != norm(ga, "//go:build arm64 && linux", filepath.Base(o[1])) {
				t.Errorf("%s and %s differ beyond their build constraint and object name", strings.TrimSuffix(o[0], ".o")+".go", strings.TrimSuffix(o[1], ".o")+".go")
			}
		})
	}
}
