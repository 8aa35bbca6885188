package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kroll-dev/kroll/agent/running"
	"github.com/kroll-dev/kroll/pkg/signing"
)

func TestExampleConfig(t *testing.T) {
	dir := t.TempDir()
	if _, err := signing.GenerateKeyFiles(filepath.Join(dir, "release"), false); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile("../../../docs/examples/agent.toml")
	if err != nil {
		t.Fatal(err)
	}
	s := strings.ReplaceAll(string(data), "/etc/kroll/release.pub", filepath.Join(dir, "release.pub"))
	s = strings.ReplaceAll(s, `policy_keys = ["/etc/kroll/policy.pub"]`, `policy_keys = []`)
	s = strings.Replace(s, `# host_id = "edge-fra1-0042"`, `host_id = "edge-fra1-0042"`, 1)
	s = strings.Replace(s, `# kernel_line = "6.12"`, `kernel_line = "6.12"`, 1)
	p := filepath.Join(dir, "agent.toml")
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := loadConfig(p, running.ProcFS{})
	if err != nil {
		t.Fatal(err)
	}
	if c.hostID != "edge-fra1-0042" || c.datacenter != "fra1" || c.bootMode != "kexec" || len(c.coordURLs) != 3 ||
		c.stageDir != "/var/lib/kroll-agent/releases" || len(c.releaseKeys) != 1 ||
		c.installMode != installAuto || c.install.Initramfs != "auto" || c.install.MinFreeBoot != 64<<20 || c.loader != "auto" {
		t.Fatalf("resolved %+v", c)
	}
}

// TestInstallDefaults: the install step is on when the boot step is real
// and off in dry-run unless configured; the margins are in MiB.
func TestInstallDefaults(t *testing.T) {
	dir := t.TempDir()
	if _, err := signing.GenerateKeyFiles(filepath.Join(dir, "k"), false); err != nil {
		t.Fatal(err)
	}
	base := "host_id = \"h1\"\nkernel_line = \"6.1\"\ndatacenter = \"fra1\"\n[coordinator]\nurls = [\"http://127.0.0.1:8001\"]\n[trust]\nrelease_keys = [\"" + filepath.Join(dir, "k.pub") + "\"]\n"
	for _, tc := range []struct {
		name, toml, mode string
		boot, mods       uint64
	}{
		{"dry-run", base, installOff, 0, 0},
		{"kexec", base + "[boot]\nmode = \"kexec\"\n", installAuto, 0, 0},
		{"dry-run but asked", base + "[install]\nmode = \"auto\"\nmin_free_boot_mb = 100\nmin_free_modules_mb = 300\n", installAuto, 100 << 20, 300 << 20},
		{"kexec but off", base + "[boot]\nmode = \"reboot\"\n[install]\nmode = \"off\"\n", installOff, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "agent.toml")
			if err := os.WriteFile(p, []byte(tc.toml), 0o644); err != nil {
				t.Fatal(err)
			}
			c, err := loadConfig(p, running.ProcFS{})
			if err != nil {
				t.Fatal(err)
			}
			if c.installMode != tc.mode || c.install.MinFreeBoot != tc.boot || c.install.MinFreeModules != tc.mods || c.install.StateDir != defaultStateDir {
				t.Fatalf("install %q %+v, want %q boot %d modules %d", c.installMode, c.install, tc.mode, tc.boot, tc.mods)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := signing.GenerateKeyFiles(filepath.Join(dir, "k"), false); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "k.pub")
	base := "host_id = \"h1\"\nkernel_line = \"6.1\"\ndatacenter = \"fra1\"\n[coordinator]\nurls = [\"http://127.0.0.1:8001\"]\n[trust]\nrelease_keys = [\"" + key + "\"]\n"
	for _, tc := range []struct{ name, toml, want string }{
		{"unknown key", base + "[boot]\nmood = \"kexec\"\n", "unknown keys: boot.mood"},
		{"no datacenter", strings.Replace(base, "datacenter = \"fra1\"\n", "", 1), "datacenter: required"},
		{"bad mode", base + "[boot]\nmode = \"yolo\"\n", `boot.mode: "yolo"`},
		{"bad loader", base + "[boot]\nloader = \"lilo\"\n", `boot.loader: "lilo", want auto, grub, systemd-boot or none`},
		{"relative boot dir", base + "[boot]\nboot_dir = \"boot\"\n", `boot.boot_dir: "boot" is not an absolute path`},
		{"no coordinator", strings.Replace(base, "urls = [\"http://127.0.0.1:8001\"]\n", "", 1), "coordinator.urls"},
		{"no release key", strings.Replace(base, "release_keys = [\""+key+"\"]\n", "", 1), "trust.release_keys"},
		{"bad prefix", base + "[anycast]\ntable = 100\nprefixes = [\"192.0.2.0/33\"]\n", "anycast.prefixes[0]"},
		{"prefix without table", base + "[anycast]\nprefixes = [\"192.0.2.0/24\"]\n", "need anycast.table"},
		{"bad drain", base + "[drain]\non_timeout = \"panic\"\n", "drain.on_timeout"},
		{"negative duration", base + "[drain]\ndeadline = \"-1s\"\n", "must be positive"},
		{"bad host id", strings.Replace(base, `host_id = "h1"`, `host_id = "../etc"`, 1), "host_id"},
		{"relative state dir", "state_dir = \"var/lib\"\n" + base, "state_dir: \"var/lib\" is not an absolute path"},
		{"backoff above its cap", base + "[timing]\nerror_backoff = \"1m\"\nerror_backoff_max = \"10s\"\n", "timing.error_backoff (1m0s) must not be longer"},
		{"command without name", base + "[[health.commands]]\ncommand = [\"true\"]\n", "health.commands[0]"},
		{"bad install mode", base + "[install]\nmode = \"yes\"\n", `install.mode: "yes", want auto or off`},
		{"bad initramfs tool", base + "[install]\ninitramfs = \"mkinitcpio\"\n", `install.initramfs: "mkinitcpio"`},
		{"negative install margin", base + "[install]\nmin_free_boot_mb = -1\n", "install.min_free_boot_mb: -1"},
		{"huge install margin", base + "[install]\nmin_free_modules_mb = 2000000\n", "install.min_free_modules_mb: 2000000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "agent.toml")
			if err := os.WriteFile(p, []byte(tc.toml), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := loadConfig(p, running.ProcFS{})
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

// FuzzConfig: any agent.toml is refused with an error or resolves to a
// configuration that passes its own checks; never a panic.
func FuzzConfig(f *testing.F) {
	f.Add([]byte("host_id = \"h1\"\ndatacenter = \"fra1\"\nkernel_line = \"6.1\"\n[coordinator]\nurls = [\"http://127.0.0.1:8001\"]\n"))
	f.Add([]byte("[anycast]\ntable = 100\nprefixes = [\"192.0.2.0/24\"]\n[drain]\ndeadline = \"5s\"\n[gossip]\nbind = \"0.0.0.0:7946\"\n"))
	f.Add([]byte("[[health.commands]]\nname = \"x\"\ncommand = [\"true\"]\ntimeout = \"1s\"\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, "agent.toml")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := loadConfig(p, running.ProcFS{})
		if err != nil {
			return
		}
		if c.datacenter == "" || len(c.coordURLs) == 0 || len(c.releaseKeys) == 0 {
			t.Fatalf("accepted an incomplete configuration: %+v", c)
		}
	})
}

// TestMetricsListen: the metrics endpoint is on by default, on localhost;
// metrics.listen moves it, "" turns it off, a malformed address is refused.
func TestMetricsListen(t *testing.T) {
	dir := t.TempDir()
	if _, err := signing.GenerateKeyFiles(filepath.Join(dir, "k"), false); err != nil {
		t.Fatal(err)
	}
	base := "host_id = \"h1\"\nkernel_line = \"6.1\"\ndatacenter = \"fra1\"\n[coordinator]\nurls = [\"http://127.0.0.1:8001\"]\n[trust]\nrelease_keys = [\"" + filepath.Join(dir, "k.pub") + "\"]\n"
	for _, tc := range []struct{ name, toml, want, err string }{
		{"default", base, "127.0.0.1:9465", ""},
		{"section without key", base + "[metrics]\n", "127.0.0.1:9465", ""},
		{"moved", base + "[metrics]\nlisten = \"[::1]:9100\"\n", "[::1]:9100", ""},
		{"off", base + "[metrics]\nlisten = \"\"\n", "", ""},
		{"no port", base + "[metrics]\nlisten = \"127.0.0.1\"\n", "", "metrics.listen"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "agent.toml")
			if err := os.WriteFile(p, []byte(tc.toml), 0o644); err != nil {
				t.Fatal(err)
			}
			c, err := loadConfig(p, running.ProcFS{})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one mentioning %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.metrics != tc.want {
				t.Fatalf("metrics listen %q, want %q", c.metrics, tc.want)
			}
		})
	}
}
