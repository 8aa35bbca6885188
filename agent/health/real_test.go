package health

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kroll-dev/kroll/agent/running"
)

// unameRelease returns the release of the running kernel as uname -r
// prints it.
func unameRelease(t *testing.T) string {
	t.Helper()
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	return unix.ByteSliceToString(u.Release[:])
}

// TestRealProc runs the kernel and boot-id checks against this machine's
// /proc. The systemd check is given a fake so that the test behaves the
// same whether or not systemd is PID 1.
func TestRealProc(t *testing.T) {
	release := unameRelease(t)
	cur, err := running.ProcFS{}.Version()
	if err != nil {
		t.Fatalf("running kernel version: %v", err)
	}
	upstream, known := cur.Upstream()
	bootID, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		t.Fatal(err)
	}
	current := strings.TrimSpace(string(bootID))

	tests := []struct {
		name         string
		want         Expect
		wantKernel   bool
		wantBootID   bool
		needUpstream bool
	}{
		{"running release", Expect{KernelRelease: release}, true, true, false},
		{"running release and upstream", Expect{KernelRelease: release, UpstreamVersion: upstream}, true, true, true},
		{"wrong release", Expect{KernelRelease: release + "-not"}, false, true, false},
		{"wrong upstream", Expect{KernelRelease: release, UpstreamVersion: "1.0.1"}, false, true, false},
		{"same boot", Expect{KernelRelease: release, PreviousBootID: current}, true, false, false},
		{"new boot", Expect{KernelRelease: release, PreviousBootID: "00000000-0000-0000-0000-000000000000"}, true, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.needUpstream && !known {
				// Only a Debian ABI name without a Debian build string hides
				// the upstream version; the "wrong upstream" case still
				// exercises the failure path.
				t.Fatalf("running kernel %q does not reveal its upstream version; this test needs one that does", release)
			}
			c := newTestChecker(t, Config{Systemd: &fakeSystemd{states: []string{"running"}}})
			res, err := c.Check(context.Background(), tt.want)
			if err != nil {
				t.Fatal(err)
			}
			k, b := find(t, res, "kernel"), find(t, res, "boot-id")
			if k.OK != tt.wantKernel {
				t.Errorf("kernel check = %+v, want OK %v", k, tt.wantKernel)
			}
			if b.OK != tt.wantBootID {
				t.Errorf("boot-id check = %+v, want OK %v", b, tt.wantBootID)
			}
			if res.Healthy != (tt.wantKernel && tt.wantBootID) {
				t.Errorf("Healthy = %v: %s", res.Healthy, res.Summary())
			}
		})
	}
}

// TestNewSystemdNoBus points the system bus address at a socket that does
// not exist: NewSystemd must fail quickly, naming the bus and the cause.
func TestNewSystemdNoBus(t *testing.T) {
	socket := filepath.Join(t.TempDir(), "system_bus_socket")
	addr := "unix:path=" + socket
	t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", addr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sd, err := NewSystemd(ctx)
	if err == nil {
		t.Fatalf("NewSystemd = %v, want an error", sd)
	}
	if sd != nil {
		t.Errorf("NewSystemd returned %v with its error", sd)
	}
	if !errors.Is(err, syscall.ENOENT) {
		t.Errorf("error %v does not wrap ENOENT", err)
	}
	for _, w := range []string{"D-Bus system bus", addr} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
}
