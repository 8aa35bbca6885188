package vm_test

import (
	"strings"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/test/vm"
)

// TestHarnessFailures checks that the harness reports what went wrong in
// the guest instead of passing silently.
func TestHarnessFailures(t *testing.T) {
	k := vm.TestKernel(t, vm.Line612)
	for _, tc := range []struct {
		name    string
		cfg     vm.Config
		wantErr string // "" = no error
		check   func(t *testing.T, res *vm.Result)
	}{
		{
			name: "exit-status",
			cfg:  vm.Config{Script: `echo "KROLL-RESULT answer 42"; exit 3`},
			check: func(t *testing.T, res *vm.Result) {
				var n int
				if err := res.Decode("answer", &n); err != nil || n != 42 {
					t.Errorf("answer = %d, %v; want 42", n, err)
				}
				if res.ExitCode != 3 {
					t.Errorf("exit code %d, want 3", res.ExitCode)
				}
			},
		},
		{
			name:    "kernel-panic",
			cfg:     vm.Config{Script: `echo c > /proc/sysrq-trigger; sleep 60`},
			wantErr: "kernel panic",
		},
		{
			name:    "timeout",
			cfg:     vm.Config{Script: `sleep 600`, Timeout: 25 * time.Second},
			wantErr: "timed out",
		},
		{
			name:    "missing-module",
			cfg:     vm.Config{Script: `true`, Modules: []string{"no_such_module"}},
			wantErr: "module no_such_module not in",
		},
		{
			name: "without-bpf-lsm",
			cfg:  vm.Config{Script: `echo "KROLL-RESULT lsm \"$(cat /sys/kernel/security/lsm)\""`, LSM: "lockdown,capability"},
			check: func(t *testing.T, res *vm.Result) {
				var lsm string
				if err := res.Decode("lsm", &lsm); err != nil {
					t.Fatal(err)
				}
				if strings.Contains(lsm, "bpf") {
					t.Errorf("lsm=%q although booted without bpf", lsm)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := tc.cfg
			cfg.Kernel = k
			res, err := vm.Run(t.Context(), cfg)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatal(err)
			case tc.wantErr != "" && err == nil:
				t.Fatalf("no error, want one containing %q", tc.wantErr)
			case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
				t.Fatalf("error %q, want one containing %q", err, tc.wantErr)
			}
			if tc.check != nil {
				tc.check(t, res)
			}
		})
	}
}
