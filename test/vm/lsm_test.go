package vm_test

import (
	"testing"

	"github.com/kroll-dev/kroll/test/vm"
)

// TestLSMDenies proves on real kernels that a bpf LSM program loads,
// attaches and denies a syscall: socket(AF_ALG) works before the program
// is attached, fails with EPERM while it is, and works again after.
func TestLSMDenies(t *testing.T) {
	prog := vm.TestProgram(t, "github.com/kroll-dev/kroll/test/vm/guests/lsmdeny")
	for _, line := range kernelLines {
		t.Run(line.name, func(t *testing.T) {
			t.Parallel()
			k := vm.TestKernel(t, line.pattern)
			res, err := vm.Run(t.Context(), vm.Config{Kernel: k, Program: prog, Modules: []string{"af_alg"}})
			if err != nil {
				t.Fatal(err)
			}
			if res.ExitCode != 0 {
				t.Fatalf("guest exit %d; console:\n%s", res.ExitCode, res.Tail(30))
			}
			for key, want := range map[string]string{"before": "ok", "attached": "EPERM", "after": "ok"} {
				var got string
				if err := res.Decode(key, &got); err != nil {
					t.Fatal(err)
				}
				if got != want {
					t.Errorf("%s %s: socket(AF_ALG) = %s, want %s", k.Release, key, got, want)
				}
			}
			var denials uint64
			if err := res.Decode("denials", &denials); err != nil {
				t.Fatal(err)
			}
			if denials != 1 {
				t.Errorf("program counted %d denials, want 1", denials)
			}
			t.Logf("%s: AF_ALG allowed → denied (EPERM) → allowed; %s", k.Release, res.Duration.Round(100e6))
		})
	}
}
