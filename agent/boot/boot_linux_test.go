package boot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// fakeSystem records the privileged actions instead of doing them.
type fakeSystem struct {
	calls     []string
	loadErr   error
	rebootErr error
	unitErr   error
}

func (f *fakeSystem) kexecFileLoad(kernel, initrd *os.File, cmdline string, flags int) error {
	ini := "-"
	if initrd != nil {
		ini = filepath.Base(initrd.Name())
	}
	f.calls = append(f.calls, fmt.Sprintf("kexec_file_load %s %s flags=%#x %q", filepath.Base(kernel.Name()), ini, flags, cmdline))
	return f.loadErr
}

func (f *fakeSystem) sync() { f.calls = append(f.calls, "sync") }

func (f *fakeSystem) reboot(cmd int) error {
	f.calls = append(f.calls, fmt.Sprintf("reboot %#x", cmd))
	return f.rebootErr
}

func (f *fakeSystem) startUnit(_ context.Context, unit, mode string) error {
	f.calls = append(f.calls, "start "+unit+" "+mode)
	return f.unitErr
}

const testBootID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"

// fakeRoot builds a directory tree with files (relative path → content)
// and returns a Config whose proc, sys, run and boot directories lie in it.
func fakeRoot(t *testing.T, files map[string]string) Config {
	t.Helper()
	root := t.TempDir()
	for p, content := range files {
		full := filepath.Join(root, p)
		if strings.HasSuffix(p, "/") { // a directory
			if err := os.MkdirAll(full, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return Config{
		ProcDir: filepath.Join(root, "proc"),
		SysDir:  filepath.Join(root, "sys"),
		runDir:  filepath.Join(root, "run"),
		bootDir: filepath.Join(root, "boot"),
	}
}

// kexecHost is a host where kexec works and systemd does not run.
func kexecHost() map[string]string {
	return map[string]string{
		"proc/cmdline":                            "BOOT_IMAGE=/boot/vmlinuz-6.1.0-47-amd64 root=UUID=abc ro console=ttyS0 quiet\n",
		"proc/1/comm":                             "init\n",
		"proc/self/status":                        "Name:\tkroll\nCapEff:\t000001ffffffffff\n",
		"proc/sys/kernel/random/boot_id":          testBootID + "\n",
		"proc/sys/kernel/kexec_load_disabled":     "0\n",
		"proc/sys/kernel/osrelease":               "6.1.0-47-amd64\n",
		"sys/kernel/kexec_loaded":                 "0\n",
		"sys/kernel/security/lockdown":            "[none] integrity confidentiality\n",
		"boot/config-6.1.0-47-amd64":              "CONFIG_KEXEC_FILE=y\nCONFIG_KEXEC_SIG=y\n",
		"run/":                                    "",
		"images/vmlinuz-new":                      "kernel",
		"images/initrd.img-new":                   "initrd",
		"proc/sys/kernel/kexec_load_limit_reboot": "-1\n",
	}
}

func with(base map[string]string, kv ...string) map[string]string {
	m := make(map[string]string, len(base))
	for k, v := range base {
		m[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "\x00delete" {
			delete(m, kv[i])
			continue
		}
		m[kv[i]] = kv[i+1]
	}
	return m
}

const deleted = "\x00delete"

func TestNew(t *testing.T) {
	for _, tc := range []struct {
		name     string
		cfg      Config
		wantMode Mode
		wantErr  string
	}{
		{"default-is-dry-run", Config{}, ModeDryRun, ""},
		{"kexec", Config{Mode: ModeKexec}, ModeKexec, ""},
		{"reboot", Config{Mode: ModeReboot}, ModeReboot, ""},
		{"unknown-mode", Config{Mode: "kexec-please"}, "", "unknown mode"},
		{"bad-strip-param", Config{StripParams: []string{"a=b"}}, "", "invalid parameter name"},
		{"empty-strip-param", Config{StripParams: []string{""}}, "", "invalid parameter name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.sys = &fakeSystem{}
			b, err := New(tc.cfg)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("New: %v, want error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if b.Mode() != tc.wantMode {
				t.Errorf("mode %q, want %q", b.Mode(), tc.wantMode)
			}
		})
	}
}

func TestCmdline(t *testing.T) {
	for _, tc := range []struct {
		name  string
		proc  string
		strip []string
		want  string
	}{
		{"grub", "BOOT_IMAGE=/boot/vmlinuz-6.1.0-47-amd64 root=UUID=abc ro quiet\n", nil, "root=UUID=abc ro quiet"},
		{"nothing-to-strip", "console=ttyS0 panic=-1 lsm=lockdown,bpf", nil, "console=ttyS0 panic=-1 lsm=lockdown,bpf"},
		{"one-shot-targets", "root=/dev/sda1 systemd.unit=rescue.target single ro kroll.oneshot=1 rd.break emergency", nil, "root=/dev/sda1 ro"},
		{"dash-underscore-equal", "a=1 systemd.run-success-action=reboot kexec-jump-back-entry=0x1 b", nil, "a=1 b"},
		{"initrd-and-elfcorehdr", "initrd=\\initrd.img elfcorehdr=0x1000 crashkernel=256M", nil, "crashkernel=256M"},
		{"quoted-values", `dyndbg="file foo.c +p" BOOT_IMAGE="/boot/vm linuz" "systemd.unit=x y" x`, nil, `dyndbg="file foo.c +p" x`},
		{"extra-strip", "root=/dev/vda nokaslr kroll.test=1 kroll_test2", []string{"nokaslr", "kroll-test2"}, "root=/dev/vda kroll.test=1"},
		{"init-args-kept", "ro single -- single -s BOOT_IMAGE=x", nil, "ro -- single -s BOOT_IMAGE=x"},
		{"whitespace", "  a   b\tc \n", nil, "a b c"},
		{"empty", "\n", nil, ""},
		{"name-prefix-is-not-a-match", "initrdmem=1 BOOT_IMAGES=2 singles", nil, "initrdmem=1 BOOT_IMAGES=2 singles"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := fakeRoot(t, with(kexecHost(), "proc/cmdline", tc.proc))
			cfg.StripParams = tc.strip
			cfg.sys = &fakeSystem{}
			b, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			got, err := b.Cmdline()
			if err != nil || got != tc.want {
				t.Errorf("Cmdline() = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestKexecSupported(t *testing.T) {
	for _, tc := range []struct {
		name    string
		files   map[string]string
		wantErr string // "" = supported
	}{
		{"supported", kexecHost(), ""},
		{"no-kexec-core", with(kexecHost(), "sys/kernel/kexec_loaded", deleted), "no kexec support"},
		{"disabled-by-sysctl", with(kexecHost(), "proc/sys/kernel/kexec_load_disabled", "1\n"), "kexec_load_disabled=1"},
		{"load-limit-reached", with(kexecHost(), "proc/sys/kernel/kexec_load_limit_reboot", "0\n"), "kexec_load_limit_reboot=0"},
		{"old-kernel-without-limits", with(kexecHost(), "proc/sys/kernel/kexec_load_limit_reboot", deleted), ""},
		{"no-cap-sys-boot", with(kexecHost(), "proc/self/status", "CapEff:\t0000000000000000\n"), "CAP_SYS_BOOT"},
		{"only-cap-sys-boot", with(kexecHost(), "proc/self/status", "CapEff:\t0000000000400000\n"), ""},
		{"lockdown-with-signatures", with(kexecHost(), "sys/kernel/security/lockdown", "none [integrity] confidentiality"), ""},
		{"lockdown-without-signatures", with(kexecHost(), "sys/kernel/security/lockdown", "none integrity [confidentiality]",
			"boot/config-6.1.0-47-amd64", "CONFIG_KEXEC_FILE=y\n# CONFIG_KEXEC_SIG is not set\n"), `lockdown "confidentiality"`},
		{"lockdown-config-unknown", with(kexecHost(), "sys/kernel/security/lockdown", "none [integrity] confidentiality",
			"boot/config-6.1.0-47-amd64", deleted), ""},
		{"no-lockdown-lsm", with(kexecHost(), "sys/kernel/security/lockdown", deleted), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := fakeRoot(t, tc.files)
			fake := &fakeSystem{}
			cfg.sys = fake
			b, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			err = b.KexecSupported()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("KexecSupported() = %v, want nil", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("KexecSupported() = %v, want error containing %q", err, tc.wantErr)
			case err != nil && !errors.Is(err, ErrKexecUnavailable):
				t.Fatalf("KexecSupported() = %v, not an ErrKexecUnavailable", err)
			}
			if len(fake.calls) != 0 {
				t.Errorf("KexecSupported made calls %q", fake.calls)
			}
		})
	}
}

func TestBoot(t *testing.T) {
	const cmdline = "root=UUID=abc ro console=ttyS0 quiet"
	systemdRun := with(kexecHost(), "run/systemd/system/", "")
	systemdComm := with(kexecHost(), "proc/1/comm", "systemd\n")
	for _, tc := range []struct {
		name        string
		files       map[string]string
		mode        Mode
		method      Method
		img         Image // paths relative to the fake root's images/
		fake        fakeSystem
		wantMethod  Method
		wantCalls   []string
		wantErr     string
		wantUnavail bool
	}{
		{
			name: "kexec-syscall", files: kexecHost(), mode: ModeKexec, method: MethodKexec,
			img:        Image{Kernel: "vmlinuz-new", Initrd: "initrd.img-new"},
			wantMethod: MethodKexec,
			wantCalls:  []string{`kexec_file_load vmlinuz-new initrd.img-new flags=0x0 "` + cmdline + `"`, "sync", "reboot 0x45584543"},
		},
		{
			name: "kexec-without-initrd", files: kexecHost(), mode: ModeKexec, method: MethodKexec,
			img:        Image{Kernel: "vmlinuz-new", NoInitrd: true},
			wantMethod: MethodKexec,
			wantCalls:  []string{`kexec_file_load vmlinuz-new - flags=0x4 "` + cmdline + `"`, "sync", "reboot 0x45584543"},
		},
		{
			name: "kexec-explicit-cmdline", files: kexecHost(), mode: ModeKexec, method: MethodKexec,
			img:        Image{Kernel: "vmlinuz-new", Initrd: "initrd.img-new", Cmdline: "root=/dev/vdb BOOT_IMAGE=kept"},
			wantMethod: MethodKexec,
			wantCalls:  []string{`kexec_file_load vmlinuz-new initrd.img-new flags=0x0 "root=/dev/vdb BOOT_IMAGE=kept"`, "sync", "reboot 0x45584543"},
		},
		{
			name: "kexec-systemd-by-run-dir", files: systemdRun, mode: ModeKexec, method: MethodKexec,
			img:        Image{Kernel: "vmlinuz-new", Initrd: "initrd.img-new"},
			wantMethod: MethodKexec,
			wantCalls:  []string{`kexec_file_load vmlinuz-new initrd.img-new flags=0x0 "` + cmdline + `"`, "start kexec.target replace-irreversibly"},
		},
		{
			name: "kexec-systemd-by-comm", files: systemdComm, mode: ModeKexec, method: MethodKexec,
			img:        Image{Kernel: "vmlinuz-new", Initrd: "initrd.img-new"},
			wantMethod: MethodKexec,
			wantCalls:  []string{`kexec_file_load vmlinuz-new initrd.img-new flags=0x0 "` + cmdline + `"`, "start kexec.target replace-irreversibly"},
		},
		{
			name: "reboot-syscall", files: kexecHost(), mode: ModeKexec, method: MethodReboot,
			wantMethod: MethodReboot, wantCalls: []string{"sync", "reboot 0x1234567"},
		},
		{
			name: "reboot-systemd", files: systemdRun, mode: ModeReboot, method: MethodReboot,
			wantMethod: MethodReboot, wantCalls: []string{"start reboot.target replace-irreversibly"},
		},
		{
			name: "reboot-mode-turns-kexec-into-reboot", files: kexecHost(), mode: ModeReboot, method: MethodKexec,
			img:        Image{Kernel: "vmlinuz-new", Initrd: "initrd.img-new"},
			wantMethod: MethodReboot, wantCalls: []string{"sync", "reboot 0x1234567"},
		},
		{
			name: "dry-run-kexec", files: systemdRun, mode: ModeDryRun, method: MethodKexec,
			img:        Image{Kernel: "vmlinuz-new", Initrd: "initrd.img-new"},
			wantMethod: MethodDryRun,
		},
		{
			name: "dry-run-reboot", files: kexecHost(), mode: "", method: MethodReboot,
			wantMethod: MethodDryRun,
		},
		{
			name: "dry-run-method", files: kexecHost(), mode: ModeKexec, method: MethodDryRun,
			img:        Image{Kernel: "vmlinuz-new"},
			wantMethod: MethodDryRun,
		},
		{
			name: "kexec-disabled-by-sysctl", files: with(kexecHost(), "proc/sys/kernel/kexec_load_disabled", "1"), mode: ModeKexec, method: MethodKexec,
			img:     Image{Kernel: "vmlinuz-new", Initrd: "initrd.img-new"},
			wantErr: "kexec_load_disabled=1", wantUnavail: true,
		},
		{
			name: "kexec-enosys", files: kexecHost(), mode: ModeKexec, method: MethodKexec,
			img:       Image{Kernel: "vmlinuz-new", Initrd: "initrd.img-new"},
			fake:      fakeSystem{loadErr: syscall.ENOSYS},
			wantCalls: []string{`kexec_file_load vmlinuz-new initrd.img-new flags=0x0 "` + cmdline + `"`},
			wantErr:   "function not implemented", wantUnavail: true,
		},
		{
			name: "kexec-signature-rejected", files: kexecHost(), mode: ModeKexec, method: MethodKexec,
			img:       Image{Kernel: "vmlinuz-new", Initrd: "initrd.img-new"},
			fake:      fakeSystem{loadErr: syscall.EKEYREJECTED},
			wantCalls: []string{`kexec_file_load vmlinuz-new initrd.img-new flags=0x0 "` + cmdline + `"`},
			wantErr:   "key was rejected", wantUnavail: true,
		},
		{
			name: "kexec-load-transient-error", files: kexecHost(), mode: ModeKexec, method: MethodKexec,
			img:       Image{Kernel: "vmlinuz-new", Initrd: "initrd.img-new"},
			fake:      fakeSystem{loadErr: syscall.EBUSY},
			wantCalls: []string{`kexec_file_load vmlinuz-new initrd.img-new flags=0x0 "` + cmdline + `"`},
			wantErr:   "busy",
		},
		{
			name: "kexec-missing-kernel", files: kexecHost(), mode: ModeKexec, method: MethodKexec,
			img:     Image{Kernel: "vmlinuz-gone", Initrd: "initrd.img-new"},
			wantErr: "no such file",
		},
		{
			name: "kexec-initrd-missing", files: kexecHost(), mode: ModeKexec, method: MethodKexec,
			img:     Image{Kernel: "vmlinuz-new"},
			wantErr: "no initrd for",
		},
		{
			name: "kexec-initrd-file-gone", files: kexecHost(), mode: ModeKexec, method: MethodKexec,
			img:     Image{Kernel: "vmlinuz-new", Initrd: "initrd.img-gone"},
			wantErr: "no such file",
		},
		{
			name: "kexec-empty-kernel", files: kexecHost(), mode: ModeKexec, method: MethodKexec,
			wantErr: "Image.Kernel is empty",
		},
		{
			name: "kexec-reboot-syscall-fails", files: kexecHost(), mode: ModeKexec, method: MethodKexec,
			img:       Image{Kernel: "vmlinuz-new", NoInitrd: true},
			fake:      fakeSystem{rebootErr: syscall.EPERM},
			wantCalls: []string{`kexec_file_load vmlinuz-new - flags=0x4 "` + cmdline + `"`, "sync", "reboot 0x45584543"},
			wantErr:   "LINUX_REBOOT_CMD_KEXEC",
		},
		{
			name: "systemd-unreachable", files: systemdRun, mode: ModeReboot, method: MethodReboot,
			fake:      fakeSystem{unitErr: errors.New("connect to systemd: no bus")},
			wantCalls: []string{"start reboot.target replace-irreversibly"},
			wantErr:   "no bus",
		},
		{
			name: "unknown-method", files: kexecHost(), mode: ModeKexec, method: "warp",
			wantErr: "unknown method",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := fakeRoot(t, tc.files)
			cfg.Mode = tc.mode
			fake := tc.fake
			cfg.sys = &fake
			b, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			img := tc.img
			images := filepath.Join(filepath.Dir(cfg.ProcDir), "images")
			for _, p := range []*string{&img.Kernel, &img.Initrd} {
				if *p != "" {
					*p = filepath.Join(images, *p)
				}
			}
			got, err := b.Boot(t.Context(), tc.method, img)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Boot = %q, %v; want error containing %q", got, err, tc.wantErr)
				}
				if got != "" {
					t.Errorf("Boot returned method %q with its error", got)
				}
				if errors.Is(err, ErrKexecUnavailable) != tc.wantUnavail {
					t.Errorf("errors.Is(%v, ErrKexecUnavailable) = %v, want %v", err, !tc.wantUnavail, tc.wantUnavail)
				}
			} else if err != nil || got != tc.wantMethod {
				t.Fatalf("Boot = %q, %v; want %q", got, err, tc.wantMethod)
			}
			if !slices.Equal(fake.calls, tc.wantCalls) {
				t.Errorf("calls\n%q\nwant\n%q", fake.calls, tc.wantCalls)
			}
		})
	}
}
