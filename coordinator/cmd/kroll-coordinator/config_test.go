package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/coordinator/fsm"
)

// TestHostsConfig: [hosts] and [fleetlock] reach the timing the leader
// puts into its commands; the example file documents the defaults.
func TestHostsConfig(t *testing.T) {
	tests := []struct {
		name    string
		toml    string
		want    fsm.Timing // only the host fields are compared
		wantErr string
	}{
		{"defaults", "", fsm.Timing{FleetLockFresh: 15 * time.Minute, ExpireAfter: 7 * 24 * time.Hour, MaxHostsPerDC: 10000}, ""},
		{"set", "[hosts]\nexpire_after = \"48h\"\nmax_per_dc = 500\n[fleetlock]\nfresh_within = \"30m\"\n",
			fsm.Timing{FleetLockFresh: 30 * time.Minute, ExpireAfter: 48 * time.Hour, MaxHostsPerDC: 500}, ""},
		{"negative cap", "[hosts]\nmax_per_dc = -1\n", fsm.Timing{}, "max_per_dc"},
		{"zero expiry", "[hosts]\nexpire_after = \"0s\"\n", fsm.Timing{}, "positive"},
		{"unknown key", "[hosts]\nmax_per_datacenter = 5\n", fsm.Timing{}, "max_per_datacenter"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.toml")
			if err := os.WriteFile(path, []byte(tc.toml), 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := loadConfig(path)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one naming %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := fsm.Timing{FleetLockFresh: s.timing.FleetLockFresh, ExpireAfter: s.timing.ExpireAfter, MaxHostsPerDC: s.timing.MaxHostsPerDC}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
	// The example documents every key with its default.
	ex, err := loadConfig("../../../docs/examples/coordinator.toml")
	if err != nil {
		t.Fatal(err)
	}
	def, _ := loadConfig("")
	if ex.timing != def.timing {
		t.Fatalf("example timing %+v, defaults %+v", ex.timing, def.timing)
	}
}
