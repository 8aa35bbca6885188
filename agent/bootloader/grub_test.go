package bootloader

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const (
	uuid    = "0b3c8e43-6b6d-4f86-9a1e-2f0a3f1d9c41"
	oldRel  = "6.1.0-25-amd64"
	newRel  = "6.1.0-26-amd64"
	advPath = "gnulinux-advanced-" + uuid + ">gnulinux-%s-advanced-" + uuid
)

func entryPath(rel string) string { return fmt.Sprintf(advPath, rel) }

func parseFixture(t *testing.T, name string) *GRUBConfig {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, err := ParseGRUBConfig(f)
	if err != nil {
		t.Fatalf("ParseGRUBConfig(%s): %v", name, err)
	}
	return c
}

func TestParseDebianGRUBConfig(t *testing.T) {
	c := parseFixture(t, "debian12-grub.cfg")
	if !c.SavedDefault || !c.OneShot {
		t.Errorf("SavedDefault, OneShot = %v, %v; want true, true", c.SavedDefault, c.OneShot)
	}
	want := []struct {
		path, release string
		recovery      bool
	}{
		{"gnulinux-simple-" + uuid, newRel, false},
		{entryPath(newRel), newRel, false},
		{"gnulinux-advanced-" + uuid + ">gnulinux-" + newRel + "-recovery-" + uuid, newRel, true},
		{entryPath(oldRel), oldRel, false},
		{"gnulinux-advanced-" + uuid + ">gnulinux-" + oldRel + "-recovery-" + uuid, oldRel, true},
	}
	if len(c.Entries) != len(want) {
		t.Fatalf("%d entries, want %d: %+v", len(c.Entries), len(want), c.Entries)
	}
	for i, w := range want {
		e := c.Entries[i]
		if e.Path != w.path || e.Release != w.release || e.Recovery != w.recovery {
			t.Errorf("entry %d = %+v, want path %s release %s recovery %v", i, e, w.path, w.release, w.recovery)
		}
	}

	c0 := parseFixture(t, "debian12-grub-default0.cfg")
	if c0.SavedDefault || c0.Default != "0" || !c0.OneShot {
		t.Errorf("GRUB_DEFAULT=0: SavedDefault %v Default %q OneShot %v", c0.SavedDefault, c0.Default, c0.OneShot)
	}
}

func TestParseGRUBConfigErrors(t *testing.T) {
	tests := []struct{ name, cfg, want string }{
		{"unclosed", "menuentry 'a' {\n linux /vmlinuz-1\n", "not closed"},
		{"stray brace", "}\n", "without a block"},
		{"quote", "menuentry 'a {\n}\n", "unterminated single quote"},
		{"no brace", "menuentry 'a'\n", "without a title"},
		{"entry in entry", "menuentry 'a' {\nmenuentry 'b' {\n}\n}\n", "inside a menuentry"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseGRUBConfig(strings.NewReader(tt.cfg))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestShellWords(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{`menuentry 'Debian, with Linux' --class os $menuentry_id_option 'gnulinux-x' {`, []string{"menuentry", "Debian, with Linux", "--class", "os", "$menuentry_id_option", "gnulinux-x", "{"}},
		{`menuentry 'it'\''s' {`, []string{"menuentry", "it's", "{"}},
		{`set default="${saved_entry}"`, []string{"set", "default=${saved_entry}"}},
		{`if [ x"$a" = xy ]; then`, []string{"if", "[", "x$a", "=", "xy", "]"}},
		{`echo "a \"b\""`, []string{"echo", `a "b"`}},
	}
	for _, tt := range tests {
		got, err := shellWords(tt.in)
		if err != nil || strings.Join(got, "|") != strings.Join(tt.want, "|") {
			t.Errorf("shellWords(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestEntryForAndResolve(t *testing.T) {
	c := parseFixture(t, "debian12-grub.cfg")
	for _, tt := range []struct {
		release, path, err string
	}{
		{newRel, entryPath(newRel), ""},
		{oldRel, entryPath(oldRel), ""},
		{"6.1.0-27-amd64", "", "no (non-recovery) entry for kernel 6.1.0-27-amd64"},
	} {
		e, err := c.EntryFor(tt.release)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("EntryFor(%s) = %+v, %v; want error %q", tt.release, e, err, tt.err)
			}
			continue
		}
		if err != nil || e.Path != tt.path {
			t.Errorf("EntryFor(%s) = %q, %v; want %q", tt.release, e.Path, err, tt.path)
		}
	}
	for _, tt := range []struct {
		def, release, err string
	}{
		{"", newRel, ""}, // entry 0: Debian's simple entry, the newest kernel
		{"0", newRel, ""},
		{"1>2", oldRel, ""},
		{entryPath(oldRel), oldRel, ""},
		{"Advanced options for Debian GNU/Linux>Debian GNU/Linux, with Linux " + oldRel, oldRel, ""},
		{"gnulinux-advanced-" + uuid + ">gnulinux-" + oldRel + "-recovery-" + uuid, oldRel, ""},
		{"gnulinux-advanced-" + uuid, "", "is a submenu"},
		{"gnulinux-6.1.0-24-amd64-advanced-" + uuid, "", "is not in grub.cfg"},
		{"7", "", "is not in grub.cfg"},
		{"gnulinux-simple-" + uuid + ">x", "", "is no submenu"},
	} {
		e, err := c.Resolve(tt.def)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("Resolve(%q) = %+v, %v; want error %q", tt.def, e, err, tt.err)
			}
			continue
		}
		if err != nil || e.Release != tt.release {
			t.Errorf("Resolve(%q) = %+v, %v; want release %s", tt.def, e, err, tt.release)
		}
	}
}

// probeStub runs the real GRUB tools but answers grub-probe, which cannot
// probe a temporary directory (it looks for the block device holding it),
// as on a host whose /boot is a plain partition (or, with abstraction, on
// LVM).
type probeStub struct {
	abstraction string
	calls       []string
}

func (p *probeStub) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	p.calls = append(p.calls, name+" "+strings.Join(args, " "))
	if name == "grub-probe" {
		return []byte(p.abstraction + "\n"), nil
	}
	return ExecRunner{}.Run(ctx, name, args...)
}

// grubBootDir returns a boot directory holding fixture as grub/grub.cfg.
func grubBootDir(t *testing.T, fixture string) string {
	t.Helper()
	dir := t.TempDir()
	data, err := os.ReadFile(filepath.Join("testdata", fixture))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "grub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "grub", "grub.cfg"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func requireGRUBTools(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"grub-editenv", "grub-reboot", "grub-set-default"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: install grub2-common (make deps): %v", tool, err)
		}
	}
}

// TestGRUBRealTools drives the real grub-reboot, grub-set-default and
// grub-editenv on a temporary boot directory with Debian's grub.cfg: the
// default is pinned to the running kernel, a one-shot entry boots the
// target once (GRUB clears next_entry when it boots it), and the target
// becomes the default only when asked.
func TestGRUBRealTools(t *testing.T) {
	requireGRUBTools(t)
	ctx := context.Background()
	dir := grubBootDir(t, "debian12-grub.cfg")
	stub := &probeStub{}
	l, err := New(ctx, Config{Kind: KindGRUB, BootDir: dir, Runner: stub})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Check(ctx); err != nil {
		t.Fatalf("Check: %v", err)
	}
	env := filepath.Join(dir, "grub", "grubenv")
	editenv := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("grub-editenv", append([]string{env}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("grub-editenv %v: %v: %s", args, err, out)
		}
		return string(out)
	}
	wantDefault := func(step, want string) {
		t.Helper()
		got, err := l.Default(ctx)
		if err != nil || got != want {
			t.Fatalf("%s: Default = %q, %v; want %q (grubenv: %s)", step, got, err, want, editenv("list"))
		}
	}

	// No grubenv yet: GRUB starts entry 0, Debian's "simple" entry, which
	// is the newest kernel: what dpkg of a new kernel would boot.
	wantDefault("fresh", newRel)
	// The agent pins the running kernel before it asks for a slot.
	if err := l.SetDefault(ctx, oldRel); err != nil {
		t.Fatal(err)
	}
	wantDefault("pinned", oldRel)
	if got := editenv("list"); !strings.Contains(got, "saved_entry="+entryPath(oldRel)+"\n") {
		t.Fatalf("grubenv after SetDefault: %s", got)
	}
	// A full reboot into the target: one-shot.
	if err := l.SetOneShot(ctx, newRel); err != nil {
		t.Fatal(err)
	}
	wantDefault("one-shot", newRel)
	if got := editenv("list"); !strings.Contains(got, "next_entry="+entryPath(newRel)+"\n") || !strings.Contains(got, "saved_entry="+entryPath(oldRel)+"\n") {
		t.Fatalf("grubenv after SetOneShot: %s", got)
	}
	// GRUB boots the one-shot entry and clears next_entry (save_env in
	// grub.cfg's header): the boot after it is the previous kernel's
	// again, e.g. after a panic or a failed health check.
	editenv("unset", "next_entry")
	wantDefault("after the one-shot boot", oldRel)
	// Healthy: the target becomes the default.
	if err := l.SetOneShot(ctx, newRel); err != nil {
		t.Fatal(err)
	}
	if err := l.SetDefault(ctx, newRel); err != nil {
		t.Fatal(err)
	}
	wantDefault("healthy", newRel)
	if got := editenv("list"); strings.Contains(got, "next_entry="+entryPath(newRel)) {
		t.Fatalf("grub-set-default left the one-shot entry: %s", got)
	}
	// A kernel without an entry is refused and changes nothing.
	if err := l.SetOneShot(ctx, "6.1.0-27-amd64"); err == nil || !strings.Contains(err.Error(), "no (non-recovery) entry") {
		t.Fatalf("SetOneShot of a kernel without an entry: %v", err)
	}
	wantDefault("unchanged", newRel)
	// saved_entry naming a removed kernel: an error, not a guess.
	editenv("set", "saved_entry=gnulinux-advanced-"+uuid+">gnulinux-6.1.0-20-amd64-advanced-"+uuid)
	if got, err := l.Default(ctx); err == nil || !strings.Contains(err.Error(), "is not in grub.cfg") {
		t.Fatalf("Default with a stale saved_entry = %q, %v", got, err)
	}
}

func TestGRUBCheck(t *testing.T) {
	requireGRUBTools(t)
	ctx := context.Background()
	tests := []struct {
		name, fixture, abstraction, want string
	}{
		{"saved", "debian12-grub.cfg", "", ""},
		{"GRUB_DEFAULT=0", "debian12-grub-default0.cfg", "", "set GRUB_DEFAULT=saved in /etc/default/grub.d/kroll.cfg (or /etc/default/grub) and run update-grub"},
		{"grubenv on LVM", "debian12-grub.cfg", "lvm", "is on lvm, where GRUB cannot write"},
		{"grubenv on RAID", "debian12-grub.cfg", "diskfilter", "is on diskfilter"},
		{"no grub.cfg", "", "", "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.fixture != "" {
				dir = grubBootDir(t, tt.fixture)
			}
			l, err := New(ctx, Config{Kind: KindGRUB, BootDir: dir, Runner: &probeStub{abstraction: tt.abstraction}})
			if err != nil {
				t.Fatal(err)
			}
			err = l.Check(ctx)
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("Check = %v, want %q", err, tt.want)
			}
		})
	}
	// With GRUB_DEFAULT=0 the default is entry 0 whatever grubenv says.
	dir := grubBootDir(t, "debian12-grub-default0.cfg")
	l, err := New(ctx, Config{Kind: KindGRUB, BootDir: dir, Runner: &probeStub{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.SetDefault(ctx, oldRel); err == nil || !strings.Contains(err.Error(), "the next boot starts "+newRel+", not "+oldRel) {
		t.Fatalf("SetDefault under GRUB_DEFAULT=0: %v", err)
	}
}

// fakeRunner records commands and answers from a table.
type fakeRunner struct {
	calls []string
	reply func(cmd string) ([]byte, error)
}

func (f *fakeRunner) Run(_ context.Context, name string, args ...string) ([]byte, error) {
	cmd := strings.TrimSpace(name + " " + strings.Join(args, " "))
	f.calls = append(f.calls, cmd)
	if f.reply == nil {
		return nil, nil
	}
	return f.reply(cmd)
}

func TestGRUBCommandLines(t *testing.T) {
	ctx := context.Background()
	dir := grubBootDir(t, "debian12-grub.cfg")
	env := filepath.Join(dir, "grub", "grubenv")
	if err := os.WriteFile(env, []byte("# GRUB Environment Block\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	saved := entryPath(oldRel)
	f := &fakeRunner{reply: func(cmd string) ([]byte, error) {
		switch {
		case cmd == "grub-editenv "+env+" list":
			return []byte("saved_entry=" + saved + "\n"), nil
		case strings.HasPrefix(cmd, "grub-set-default "):
			saved = cmd[strings.LastIndexByte(cmd, ' ')+1:]
			return nil, nil
		case strings.HasPrefix(cmd, "grub-reboot "):
			return []byte("grub-reboot: cannot write " + env), errors.New("exit status 1")
		}
		return nil, fmt.Errorf("unexpected %q", cmd)
	}}
	l, err := New(ctx, Config{Kind: KindGRUB, BootDir: dir, Runner: f})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.SetDefault(ctx, newRel); err != nil {
		t.Fatal(err)
	}
	want := []string{"grub-set-default --boot-directory=" + dir + " " + entryPath(newRel), "grub-editenv " + env + " list"}
	if strings.Join(f.calls, "\n") != strings.Join(want, "\n") {
		t.Errorf("calls:\n%s\nwant\n%s", strings.Join(f.calls, "\n"), strings.Join(want, "\n"))
	}
	err = l.SetOneShot(ctx, oldRel)
	if err == nil || !strings.Contains(err.Error(), "grub-reboot --boot-directory="+dir+" "+entryPath(oldRel)+": exit status 1: grub-reboot: cannot write") {
		t.Fatalf("SetOneShot error = %v", err)
	}
}
