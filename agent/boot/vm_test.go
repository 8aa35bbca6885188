//go:build linux

package boot_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/kroll-dev/kroll/test/vm"
)

// state mirrors booter.State (test/vm/guests/booter).
type state struct {
	Release string `json:"release"`
	BootID  string `json:"boot_id"`
	Cmdline string `json:"cmdline"`
}

// oneShotParams are parameters the test puts on the first boot's command
// line that Booter must not carry over.
func oneShotParams() []string {
	return []string{"BOOT_IMAGE=/boot/vmlinuz-old", "kroll.oneshot=1", "systemd.unit=rescue.target"}
}

// keepParam is a parameter Booter must carry over.
const keepParam = "kroll.keep=yes"

// TestKexecInVM proves the boot step on real kernels under qemu: the guest
// runs Booter.Boot(MethodKexec) in ModeKexec (no systemd, so the reboot(2)
// path), and comes up again in the target kernel with a new boot id and
// the command line minus one-shot parameters.
func TestKexecInVM(t *testing.T) {
	vm.RequireTools(t)
	prog := vm.TestProgram(t, "github.com/kroll-dev/kroll/test/vm/guests/booter")
	for _, tc := range []struct {
		name   string
		target func(testing.TB) *vm.Kernel
	}{
		{"6.1-oldest-to-6.1-newest", func(t testing.TB) *vm.Kernel { return vm.TestKernel(t, vm.Line61) }},
		{"6.1-oldest-to-6.12", func(t testing.TB) *vm.Kernel { return vm.TestKernel(t, vm.Line612) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			from := vm.TestOldestKernel(t, vm.Line61)
			to := tc.target(t)
			if from.Release == to.Release {
				t.Fatalf("oldest and target kernel are both %s", from.Release)
			}
			res, err := vm.Run(t.Context(), vm.Config{
				Kernel: from, Extra: []*vm.Kernel{to}, DiskMB: 64,
				Program: prog, Args: []string{"-target", to.Release},
				Cmdline: append(oneShotParams(), keepParam),
			})
			if err != nil {
				t.Fatal(err)
			}
			if res.ExitCode != 0 || res.Boots != 2 {
				t.Fatalf("exit %d, boots %d (want 0, 2); console:\n%s", res.ExitCode, res.Boots, res.Tail(40))
			}
			var before, after state
			if err := res.Decode("before", &before); err != nil {
				t.Fatal(err)
			}
			if err := res.Decode("after", &after); err != nil {
				t.Fatal(err)
			}
			t.Logf("uname -r %s → %s, boot id %s → %s, %s", before.Release, after.Release, before.BootID, after.BootID, res.Duration.Round(100e6))
			t.Logf("cmdline %q → %q", before.Cmdline, after.Cmdline)
			if before.Release != from.Release || after.Release != to.Release {
				t.Errorf("kernel %s → %s, want %s → %s", before.Release, after.Release, from.Release, to.Release)
			}
			if before.BootID == "" || before.BootID == after.BootID {
				t.Errorf("boot id %q → %q: want a new one", before.BootID, after.BootID)
			}
			var want []string
			for _, p := range strings.Fields(before.Cmdline) {
				if !slices.Contains(oneShotParams(), p) {
					want = append(want, p)
				}
			}
			if got := strings.Join(want, " "); after.Cmdline != got {
				t.Errorf("cmdline after kexec %q, want %q", after.Cmdline, got)
			}
			for _, p := range []string{"console=ttyS0", "panic=-1", "lsm=" + vm.DefaultLSM, keepParam} {
				if !slices.Contains(strings.Fields(after.Cmdline), p) {
					t.Errorf("cmdline after kexec %q lacks %s", after.Cmdline, p)
				}
			}
			for _, p := range oneShotParams() {
				if !strings.Contains(before.Cmdline, p) {
					t.Errorf("first boot's cmdline %q lacks %s: the test proves nothing", before.Cmdline, p)
				}
			}
		})
	}
}

// TestKexecRefusedInVM makes real kernels refuse kexec: Boot must then
// fail with ErrKexecUnavailable (so that the caller can fall back to a full
// reboot) instead of booting, and KexecSupported must explain what it can
// know beforehand.
func TestKexecRefusedInVM(t *testing.T) {
	vm.RequireTools(t)
	prog := vm.TestProgram(t, "github.com/kroll-dev/kroll/test/vm/guests/booter")
	for _, tc := range []struct {
		name      string
		args      []string
		cmdline   []string
		supported string // substring of KexecSupported's error; "" = nil
		bootErr   string // substring of Boot's error
		syscall   string // error of the raw kexec_file_load
	}{
		{
			name: "kexec_load_disabled", args: []string{"-disable"},
			supported: "kexec_load_disabled=1", bootErr: "kexec_load_disabled=1", syscall: "operation not permitted",
		},
		{
			// Lockdown needs a signature the guest can verify: without
			// UEFI keys even Debian's signed kernels are refused. Booter
			// cannot tell beforehand (the kernel supports signatures).
			name: "lockdown-integrity", cmdline: []string{"lockdown=integrity"},
			bootErr: "operation not permitted", syscall: "operation not permitted",
		},
		{
			name: "not-a-kernel", args: []string{"-kernel", vm.GuestProgram},
			bootErr: "exec format error", syscall: "exec format error",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			k := vm.TestOldestKernel(t, vm.Line61)
			res, err := vm.Run(t.Context(), vm.Config{
				Kernel: k, DiskMB: 32, Program: prog, Cmdline: tc.cmdline,
				Args: append([]string{"-scenario", "refuse", "-target", k.Release}, tc.args...),
			})
			if err != nil {
				t.Fatal(err)
			}
			if res.ExitCode != 0 || res.Boots != 1 {
				t.Fatalf("exit %d, boots %d (want 0, 1); console:\n%s", res.ExitCode, res.Boots, res.Tail(40))
			}
			var supported, syscallErr string
			var boot struct {
				Method      string
				Error       string
				Unavailable bool
			}
			for key, v := range map[string]any{"supported": &supported, "boot": &boot, "syscall": &syscallErr} {
				if err := res.Decode(key, v); err != nil {
					t.Fatal(err)
				}
			}
			t.Logf("KexecSupported: %q; Boot: %+v; kexec_file_load: %q", supported, boot, syscallErr)
			if (tc.supported == "") != (supported == "") || !strings.Contains(supported, tc.supported) {
				t.Errorf("KexecSupported() = %q, want an error containing %q (\"\" = nil)", supported, tc.supported)
			}
			if !boot.Unavailable || boot.Method != "" || !strings.Contains(boot.Error, tc.bootErr) {
				t.Errorf("Boot = %+v, want an ErrKexecUnavailable containing %q", boot, tc.bootErr)
			}
			if syscallErr != tc.syscall {
				t.Errorf("kexec_file_load: %q, want %q", syscallErr, tc.syscall)
			}
		})
	}
}
