package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kroll-dev/kroll/coordinator/api"
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

// TestAPIConfig: [api] reaches the server's admission; the example file
// documents the defaults.
func TestAPIConfig(t *testing.T) {
	tests := []struct {
		name    string
		toml    string
		want    api.Admission
		wantErr string
	}{
		{"defaults", "", api.Admission{}, ""},
		{"set", "[api]\nheartbeat_concurrency = 16\nheartbeat_queue = -1\nheartbeat_queue_wait = \"50ms\"\npriority_concurrency = 32\npriority_queue = 8\npriority_queue_wait = \"2s\"\nretry_after = \"30s\"\n",
			api.Admission{HeartbeatConcurrency: 16, HeartbeatQueue: -1, HeartbeatQueueWait: 50 * time.Millisecond,
				PriorityConcurrency: 32, PriorityQueue: 8, PriorityQueueWait: 2 * time.Second, RetryAfter: 30 * time.Second}, ""},
		{"negative concurrency", "[api]\nheartbeat_concurrency = -4\n", api.Admission{}, "api.heartbeat_concurrency"},
		{"queue below -1", "[api]\npriority_queue = -2\n", api.Admission{}, "api.heartbeat_queue and api.priority_queue"},
		{"sub-second Retry-After", "[api]\nretry_after = \"500ms\"\n", api.Admission{}, "api.retry_after"},
		{"unknown key", "[api]\nmax_heartbeats = 5\n", api.Admission{}, "max_heartbeats"},
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
			if s.admission != tc.want {
				t.Fatalf("got %+v, want %+v", s.admission, tc.want)
			}
		})
	}
	ex, err := loadConfig("../../../docs/examples/coordinator.toml")
	if err != nil {
		t.Fatal(err)
	}
	def, _ := loadConfig("")
	if got, want := ex.admission.WithDefaults(ex.heartbeatInterval), def.admission.WithDefaults(def.heartbeatInterval); got != want {
		t.Fatalf("example admission %+v, defaults %+v", got, want)
	}
}
