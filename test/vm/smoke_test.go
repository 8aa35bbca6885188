package vm_test

import (
	"fmt"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/kroll-dev/kroll/pkg/kversion"
	"github.com/kroll-dev/kroll/test/vm"
)

// kernelLines are the Debian kernel lines every VM test runs on.
var kernelLines = []struct {
	name    string
	pattern *regexp.Regexp
}{
	{"6.1", vm.Line61},
	{"6.12", vm.Line612},
}

// bootKernels are the kernels the smoke test boots: the newest of each line
// and the oldest 6.1 ABI the archive still has (kexec upgrades start there).
var bootKernels = []struct {
	name string
	get  func(testing.TB) *vm.Kernel
}{
	{"6.1", func(t testing.TB) *vm.Kernel { return vm.TestKernel(t, vm.Line61) }},
	{"6.1-oldest", func(t testing.TB) *vm.Kernel { return vm.TestOldestKernel(t, vm.Line61) }},
	{"6.12", func(t testing.TB) *vm.Kernel { return vm.TestKernel(t, vm.Line612) }},
}

// TestBootDebianKernels boots each Debian kernel line and checks from
// inside the guest that the right kernel runs with the bpf LSM active.
func TestBootDebianKernels(t *testing.T) {
	prog := vm.TestProgram(t, "github.com/kroll-dev/kroll/test/vm/guests/smoke")
	for _, bk := range bootKernels {
		t.Run(bk.name, func(t *testing.T) {
			t.Parallel()
			k := bk.get(t)
			res, err := vm.Run(t.Context(), vm.Config{Kernel: k, Program: prog})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("booted %s (%s) in %s", k.Release, k.Package, res.Duration.Round(100e6))
			if res.ExitCode != 0 || res.Boots != 1 {
				t.Fatalf("exit %d, boots %d; console:\n%s", res.ExitCode, res.Boots, res.Tail(30))
			}
			var uname, procVersion string
			var lsms []string
			for key, v := range map[string]any{"uname": &uname, "proc_version": &procVersion, "lsm": &lsms} {
				if err := res.Decode(key, v); err != nil {
					t.Fatal(err)
				}
			}
			if uname != k.Release {
				t.Errorf("guest runs %q, want %q", uname, k.Release)
			}
			if !strings.HasPrefix(procVersion, "Linux version "+k.Release+" ") {
				t.Errorf("/proc/version = %q", procVersion)
			}
			// pkg/kversion on the real thing: the upstream version of a
			// Debian kernel comes from /proc/version and must agree with
			// the package version the kernel came from.
			running, err := kversion.ParseProcVersion(procVersion)
			if err != nil {
				t.Fatalf("kversion.ParseProcVersion: %v", err)
			}
			pkg, err := kversion.ParseDebianPackageVersion(k.PackageVersion)
			if err != nil {
				t.Fatalf("kversion.ParseDebianPackageVersion(%q): %v", k.PackageVersion, err)
			}
			gotUp, ok1 := running.Upstream()
			wantUp, ok2 := pkg.Upstream()
			if !ok1 || !ok2 || gotUp != wantUp || running.String() != k.Release {
				t.Errorf("running kernel parsed as %s upstream %q (%v); package %s upstream %q (%v)", running, gotUp, ok1, k.PackageVersion, wantUp, ok2)
			}
			if !slices.Contains(lsms, "bpf") {
				t.Errorf("bpf not among active LSMs %v", lsms)
			}
		})
	}
}

// TestGuestReachesHost proves qemu user networking: the guest fetches a
// page from a server the test runs on the host's loopback.
func TestGuestReachesHost(t *testing.T) {
	prog := vm.TestProgram(t, "github.com/kroll-dev/kroll/test/vm/guests/smoke")
	k := vm.TestKernel(t, vm.Line61)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	const secret = "hello from the host"
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, secret) })}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	port := ln.Addr().(*net.TCPAddr).Port

	res, err := vm.Run(t.Context(), vm.Config{
		Kernel: k, Program: prog, Network: true,
		Args: []string{"-fetch", fmt.Sprintf("http://%s:%d/", vm.HostAddr, port)},
	})
	if err != nil {
		t.Fatal(err)
	}
	var got string
	if err := res.Decode("fetched", &got); err != nil {
		t.Fatal(err)
	}
	if got != secret {
		t.Fatalf("guest fetched %q, want %q", got, secret)
	}
}
